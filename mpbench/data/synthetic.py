"""A first-order Markov chain over a small vocabulary whose entropy rate is known exactly.

No model can beat the entropy rate on average, so the best achievable loss is known,
and the report can say how close each precision gets to it.
"""

from __future__ import annotations

import numpy as np

from mpbench.data.base import TokenSource


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
