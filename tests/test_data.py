"""Token sources: the synthetic entropy floor, the stdlib corpus, user files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from mpbench.config.schema import DataConfig
from mpbench.data import (
    entropy_rate,
    make_source,
    markov_source,
    sample_chain,
    stationary_distribution,
    stdlib_files,
    stdlib_source,
)

pytestmark = pytest.mark.unit


def test_entropy_rate_of_a_two_state_chain_by_hand() -> None:
    P = np.array([[0.9, 0.1], [0.5, 0.5]])
    pi = stationary_distribution(P)
    assert pi == pytest.approx([5 / 6, 1 / 6])
    h0 = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    h1 = np.log(2)
    assert entropy_rate(P) == pytest.approx(5 / 6 * h0 + 1 / 6 * h1)


def test_deterministic_chain_has_zero_entropy() -> None:
    P = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert entropy_rate(P) == pytest.approx(0.0, abs=1e-12)


def test_sampled_chain_empirical_entropy_matches_the_rate() -> None:
    src = markov_source(vocab_size=8, concentration=0.5, train_tokens=400_000, seed=5)
    pairs = Counter(zip(src.train[:-1].tolist(), src.train[1:].tolist(), strict=False))
    firsts = Counter(src.train[:-1].tolist())
    n = sum(pairs.values())
    empirical = -sum(c / n * np.log(c / firsts[a]) for (a, _), c in pairs.items())
    assert src.entropy_floor is not None
    # chains are concatenated, so a few hundred transitions cross chain boundaries
    assert empirical == pytest.approx(src.entropy_floor, abs=0.02)


def test_chain_sampling_is_reproducible() -> None:
    P = np.full((4, 4), 0.25)
    assert np.array_equal(sample_chain(P, 1000, 8, 1), sample_chain(P, 1000, 8, 1))


def test_stdlib_corpus_is_deterministic_and_split_by_file() -> None:
    a = stdlib_source(300_000)
    b = stdlib_source(300_000)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert a.vocab_size == 256 and a.details["files_read"] >= 2
    assert a.train.size + a.val.size == a.details["bytes"]
    assert b"def " in a.train.tobytes() or b"import" in a.train.tobytes()
    assert stdlib_files()[0].suffix == ".py"


def test_batches_are_next_token_windows() -> None:
    src = stdlib_source(200_000)
    gen = torch.Generator().manual_seed(0)
    x, y = src.batch("train", 3, 32, gen)
    assert x.shape == y.shape == (3, 32)
    assert torch.equal(x[:, 1:], y[:, :-1])
    gen2 = torch.Generator().manual_seed(0)
    assert torch.equal(src.batch("train", 3, 32, gen2)[0], x)


def test_text_and_token_bin_files(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_bytes(b"hello world " * 1000)
    src = make_source(DataConfig(source="text", path=str(text)))
    assert src.vocab_size == 256 and src.train.size == 10800 and src.val.size == 1200
    tokens = np.arange(5000, dtype=np.uint16) % 3000
    tokens.tofile(tmp_path / "t.bin")
    src = make_source(DataConfig(source="bin", path=str(tmp_path / "t.bin"), vocab_size=64))
    assert src.vocab_size == 3000  # grown to cover the largest id
    assert src.train.size == 4500
