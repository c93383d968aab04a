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
from dataclasses import dataclass
from typing import Any

from mpbench.results.payloads import ParallelResult
from mpbench.results.schema import RunRecord


def _facts(r: RunRecord) -> dict[str, Any]:
    par = r.result(ParallelResult)
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


# -- across nodes: the same suite on one node and on several ---------------------------------
Recipe = tuple[str, str, int, str, str]
"""(model, precision, seq_len, strategy, grad comm dtype): what is compared across nodes."""


@dataclass(frozen=True)
class NodeScaling:
    """One recipe at one node count, against the same recipe on a single node.

    tokens/s per device = the record's tokens/s / world size (a device: a GPU, or one process
    on a CPU). efficiency = that per-device rate / the single-node run's. Weak scaling when
    the per-device batch is the single node's (the global batch grew with the nodes), strong
    when the global batch is (each device's share shrank)."""

    recipe: Recipe
    nodes: int
    world_size: int
    global_batch: int
    per_device_batch: int
    tokens_per_s_per_device: float
    runs: int
    efficiency: float | None
    mode: str
    """weak, strong, same devices (as many as on one node, spread over nodes), baseline (the
    single-node row itself) or '' (no single-node run to compare with)."""
    exposed_comm_share: float | None
    """Median over runs of the probe's exposed communication / forward+backward time."""
    baseline_tokens_per_s_per_device: float | None = None
    baseline_runs: int = 0
    spread: tuple[float, float] = (0.0, 0.0)
    """Lowest and highest tokens/s per device over the runs (repeats)."""
    baseline_spread: tuple[float, float] | None = None


def _nodes(r: RunRecord) -> int:
    par = r.result(ParallelResult)
    return (par.nodes if par and par.nodes else None) or 1


def _exposed_share(r: RunRecord) -> float | None:
    par = r.result(ParallelResult)
    probe = par.probe if par else None
    if probe is None or probe.fwd_bwd_ms <= 0:
        return None
    return max(0.0, probe.exposed_comm_ms) / probe.fwd_bwd_ms


def node_scaling(records: list[RunRecord]) -> list[NodeScaling]:
    """Every recipe at every node count, with its efficiency against one node."""
    groups: dict[tuple[Recipe, int, int, int], list[RunRecord]] = defaultdict(list)
    for r in records:
        if r.status != "ok" or not r.tokens_per_s:
            continue
        f = _facts(r)
        recipe = (r.model, r.precision, r.seq_len, f["strategy"], f["comm"])
        groups[(recipe, _nodes(r), f["world"], r.batch_size)].append(r)
    per_run = {k: [float(r.tokens_per_s or 0) / k[2] for r in runs] for k, runs in groups.items()}
    rate = {k: statistics.median(v) for k, v in per_run.items()}
    rows = []
    for key, runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][3])):
        recipe, nodes, world, batch = key
        singles = [k for k in groups if k[0] == recipe and k[1] == 1]
        weak = [k for k in singles if k[3] // k[2] == batch // world]
        strong = [k for k in singles if k[3] == batch]
        base = next(iter(weak or strong), None)
        mode = ("" if base is None else "baseline" if nodes == 1 else
                "same devices" if base[2] == world else "weak" if weak else "strong")
        shares = [s for s in map(_exposed_share, runs) if s is not None]
        rows.append(NodeScaling(
            recipe=recipe, nodes=nodes, world_size=world, global_batch=batch,
            per_device_batch=batch // world, tokens_per_s_per_device=rate[key], runs=len(runs),
            efficiency=rate[key] / rate[base] if base is not None else None, mode=mode,
            exposed_comm_share=statistics.median(shares) if shares else None,
            baseline_tokens_per_s_per_device=rate[base] if base is not None else None,
            baseline_runs=len(groups[base]) if base is not None else 0,
            spread=(min(per_run[key]), max(per_run[key])),
            baseline_spread=(min(per_run[base]), max(per_run[base])) if base else None))
    return rows


@dataclass(frozen=True)
class RankingChange:
    """The recipes at one node count and global batch, fastest first (tokens/s per device),
    next to the same recipes' single-node runs they are compared with.

    verdict: 'changes' when two recipes swap places and, on one node and on several, every
    run of the faster one beat every run of the slower one (two runs each at least: steps in
    one process are not independent samples); 'inconclusive' when the orders differ but no
    swap is that clear; 'holds' when the orders are the same."""

    model: str
    seq_len: int
    nodes: int
    global_batch: int
    single_node: list[str]
    several: list[str]
    min_runs: int
    """The fewest runs behind any of the figures ordered."""
    verdict: str


def recipe_label(recipe: Recipe) -> str:
    _, precision, _, strategy, comm = recipe
    return precision if strategy == "single process" else f"{precision} ({strategy}, {comm} comm)"


def _beats(fast: tuple[float, float], slow: tuple[float, float], runs: int) -> bool:
    return runs >= 2 and fast[0] > slow[1]


def _clear_swap(rows: list[NodeScaling]) -> bool:
    for a in rows:
        for b in rows:
            runs = min(a.runs, b.runs, a.baseline_runs, b.baseline_runs)
            if (a.baseline_spread and b.baseline_spread
                    and _beats(a.baseline_spread, b.baseline_spread, runs)
                    and _beats(b.spread, a.spread, runs)):
                return True
    return False


def ranking_changes(rows: list[NodeScaling]) -> list[RankingChange]:
    """Whether the order of the recipes by tokens/s per device differs from one node's."""
    groups: dict[tuple[str, int, int, int], list[NodeScaling]] = defaultdict(list)
    for row in rows:
        if row.nodes > 1 and row.baseline_tokens_per_s_per_device is not None:
            groups[(row.recipe[0], row.recipe[2], row.nodes, row.global_batch)].append(row)
    out = []
    for (model, seq, nodes, batch), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        one = [recipe_label(r.recipe) for r in
               sorted(members, key=lambda r: -(r.baseline_tokens_per_s_per_device or 0.0))]
        several = [recipe_label(r.recipe) for r in
                   sorted(members, key=lambda r: -r.tokens_per_s_per_device)]
        verdict = ("holds" if one == several else
                   "changes" if _clear_swap(members) else "inconclusive")
        out.append(RankingChange(model, seq, nodes, batch, one, several,
                                 min(min(r.runs, r.baseline_runs) for r in members), verdict))
    return out
