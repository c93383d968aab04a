"""Token sources that need no download."""

from __future__ import annotations

from pathlib import Path

from mpbench.config.schema import DataConfig
from mpbench.data.base import TokenSource
from mpbench.data.corpus import stdlib_source, text_file_source, token_bin_source
from mpbench.data.synthetic import markov_source

__all__ = ["TokenSource", "make_source"]


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
