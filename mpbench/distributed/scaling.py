"""Scaling efficiency from records of the same runs at several world sizes.

  tokens/s per device = tokens/s (the global rate) / world size
  efficiency(N)       = tokens/s per device at N / tokens/s per device at the baseline
The baseline is world size 1 of the same strategy; else a one-process run (no parallel
section) of the same model, precision and shapes; else the smallest world size present,
which the row names. Strong scaling (the default) keeps the global batch fixed, so each
device's share shrinks with N; weak scaling keeps the per-device batch fixed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from mpbench.results.payloads import ParallelResult, stored
from mpbench.results.schema import RunRecord


def _facts(r: RunRecord) -> dict[str, Any]:
    par = stored(r, "parallel", ParallelResult)
    world = (par.world_size if par else None) or 1
    return {
        "world": world,
        "strategy": (par.strategy if par else None) or "single process",
        "comm": (par.grad_comm_dtype if par else None) or "-",
        "per_device_batch": r.batch_size // world,
    }


def scaling_rows(records: list[RunRecord], weak: bool = False) -> list[dict[str, Any]]:
    ok = [r for r in records if r.status == "ok" and r.tokens_per_s]
    per_device: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in ok:
        f = _facts(r)
        batch = f["per_device_batch"] if weak else r.batch_size
        key = (r.model, r.precision, r.seq_len, batch, f["strategy"], f["comm"], f["world"])
        per_device[key].append(float(r.tokens_per_s or 0) / f["world"])
    medians = {k: statistics.median(v) for k, v in per_device.items()}
    rows = []
    for key, value in sorted(medians.items()):
        model, precision, seq, batch, strategy, comm, world = key
        base_key = next((k for k in [(*key[:6], 1),
                                     (model, precision, seq, batch, "single process", "-", 1)]
                         if k in medians), None)
        note = ""
        if base_key is None:
            same = sorted(k for k in medians if k[:6] == key[:6])
            base_key = same[0]
            note = f"baseline: world size {base_key[6]}"
        elif base_key[4] == "single process" and strategy != "single process":
            note = "baseline: one process without DDP/FSDP2"
        rows.append({
            "model": model, "precision": precision, "seq_len": seq,
            ("per_device_batch" if weak else "global_batch"): batch,
            "strategy": strategy, "grad_comm_dtype": comm, "world_size": world,
            "tokens_per_s_per_device": value, "runs": len(per_device[key]),
            "efficiency": value / medians[base_key], "note": note,
        })
    return rows
