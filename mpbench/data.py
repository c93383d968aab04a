"""Token sources that need no download: a train and a validation stream of token ids,
sampled reproducibly.

- synthetic: a first-order Markov chain over a small vocabulary whose entropy rate is known
  exactly. No model can beat the entropy rate on average, so the best achievable loss is
  known, and the report can say how close each precision gets to it;
- stdlib / text: byte-level text, the Python standard library or a file;
- token-bin: a nanoGPT-style flat array of uint16 token ids.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpbench.config.schema import DataConfig


@dataclass
class TokenSource:
    name: str
    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    entropy_floor: float | None = None
    """Lowest achievable loss in nats/token, when the source knows it (synthetic)."""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._train_t = torch.from_numpy(self.train.astype(np.int64))
        self._val_t = torch.from_numpy(self.val.astype(np.int64))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vocab_size": self.vocab_size,
            "train_tokens": int(self.train.size),
            "val_tokens": int(self.val.size),
            "entropy_floor": self.entropy_floor,
            **self.details,
        }

    def batch(
        self, split: str, batch_size: int, seq_len: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows (B, T) and their next-token targets, drawn with `gen`."""
        data = self._train_t if split == "train" else self._val_t
        if data.numel() <= seq_len + 1:
            raise ValueError(f"{split} split has {data.numel()} tokens, fewer than seq_len+1")
        starts = torch.randint(0, data.numel() - seq_len - 1, (batch_size,), generator=gen)
        offsets = torch.arange(seq_len + 1)
        windows = data[starts[:, None] + offsets]  # (B, T+1)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def make_source(cfg: DataConfig, base_dir: Path | None = None) -> TokenSource:
    if cfg.source == "synthetic":
        return markov_source(cfg.vocab_size, cfg.concentration, seed=cfg.seed)
    if cfg.source == "stdlib":
        return stdlib_source(cfg.max_bytes)
    path = Path(cfg.path or "")
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if cfg.source == "text":
        return text_file_source(path, cfg.max_bytes, cfg.val_fraction)
    return token_bin_source(path, cfg.vocab_size, cfg.val_fraction)


# -- synthetic: a Markov chain with a known entropy rate ------------------------------------

def transition_matrix(vocab_size: int, concentration: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(vocab_size, concentration), size=vocab_size)


def stationary_distribution(P: np.ndarray) -> np.ndarray:
    eigvals, eigvecs = np.linalg.eig(P.T)
    pi = np.real(eigvecs[:, np.argmin(np.abs(eigvals - 1.0))])
    return pi / pi.sum()


def entropy_rate(P: np.ndarray) -> float:
    """H = sum_i pi_i * H(P_i), in nats per token."""
    pi = stationary_distribution(P)
    with np.errstate(divide="ignore", invalid="ignore"):
        row_entropy = -np.nansum(np.where(P > 0, P * np.log(P), 0.0), axis=1)
    return float(pi @ row_entropy)


def sample_chain(P: np.ndarray, n_tokens: int, n_chains: int, seed: int) -> np.ndarray:
    """n_chains independent chains started from the stationary law, concatenated."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(P, axis=1)
    cdf[:, -1] = 1.0
    length = -(-n_tokens // n_chains)
    out = np.empty((n_chains, length), dtype=np.int64)
    state = rng.choice(len(P), size=n_chains, p=stationary_distribution(P))
    for t in range(length):
        out[:, t] = state
        u = rng.random(n_chains)
        state = (cdf[state] < u[:, None]).sum(axis=1)
    return out.reshape(-1)[:n_tokens]


def markov_source(
    vocab_size: int = 64,
    concentration: float = 0.1,
    train_tokens: int = 1_000_000,
    val_tokens: int = 100_000,
    seed: int = 1234,
) -> TokenSource:
    P = transition_matrix(vocab_size, concentration, seed)
    rate = entropy_rate(P)
    train = sample_chain(P, train_tokens, 256, seed + 1)
    val = sample_chain(P, val_tokens, 64, seed + 2)
    details = {"concentration": concentration, "seed": seed, "entropy_rate_nats": rate}
    return TokenSource("synthetic-markov", train, val, vocab_size, rate, details)


# -- byte-level text and token files --------------------------------------------------------

def stdlib_files(root: Path | None = None) -> list[Path]:
    """The standard library's .py files in a fixed order, without site-packages."""
    root = root or Path(sysconfig.get_paths()["stdlib"])
    files = [
        p for p in root.rglob("*.py")
        if "site-packages" not in p.parts and "dist-packages" not in p.parts
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def stdlib_source(max_bytes: int, val_every: int = 10, root: Path | None = None) -> TokenSource:
    """Every `val_every`-th file goes to validation, so the split is by file, not mid-file."""
    train_parts: list[bytes] = []
    val_parts: list[bytes] = []
    total = 0
    digest = hashlib.sha256()
    files = stdlib_files(root)
    for i, path in enumerate(files):
        data = path.read_bytes()
        (val_parts if i % val_every == 0 else train_parts).append(data)
        digest.update(data)
        total += len(data)
        if total >= max_bytes:
            break
    train = np.frombuffer(b"".join(train_parts), dtype=np.uint8)
    val = np.frombuffer(b"".join(val_parts), dtype=np.uint8)
    details = {
        "root": str(root or sysconfig.get_paths()["stdlib"]),
        "files_read": i + 1,
        "bytes": total,
        "sha256": digest.hexdigest()[:16],
    }
    return TokenSource("stdlib-bytes", train, val, 256, None, details)


def text_file_source(path: Path, max_bytes: int, val_fraction: float) -> TokenSource:
    data = np.frombuffer(path.read_bytes()[:max_bytes], dtype=np.uint8)
    split = int(len(data) * (1.0 - val_fraction))
    return TokenSource("text-bytes", data[:split], data[split:], 256, None, {"path": str(path)})


def token_bin_source(path: Path, vocab_size: int, val_fraction: float) -> TokenSource:
    """A nanoGPT-style flat array of uint16 token ids."""
    data = np.fromfile(path, dtype=np.uint16)
    split = int(len(data) * (1.0 - val_fraction))
    vocab = max(vocab_size, int(data.max()) + 1) if data.size else vocab_size
    return TokenSource("token-bin", data[:split], data[split:], vocab, None, {"path": str(path)})
