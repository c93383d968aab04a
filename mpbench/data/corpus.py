"""Byte-level text corpora that need no download: the Python standard library, or a file."""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

import numpy as np

from mpbench.data.base import TokenSource


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
