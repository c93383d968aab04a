"""Memory claims: peak memory, Adam's bytes per parameter, max batch, activation checkpointing."""

from __future__ import annotations

from statistics import median

from mpbench.analysis.claims.registry import APPROX, Evidence, claim
from mpbench.analysis.claims.verdict import (
    Bound,
    ClaimOutcome,
    ClaimRow,
    combine,
    fmt,
    judge,
    judged_row,
    not_measured,
    outcome_from_rows,
)
from mpbench.analysis.stats import metric_ratio, throughput_ratio
from mpbench.results.payloads import MaxBatchResult, MemoryResult
from mpbench.results.schema import RunRecord

MEMORY_HALVING = Bound(
    "at_most", None, 0.5 * (1 + APPROX), "×", ("003", "001"), "50% memory reduction",
    "'halves' read with 10% slack: 16-bit peak memory at most 0.55× fp32's, same model and batch")
ADAM_16 = Bound(
    "within", 16 * 0.95, 16 * 1.05, " B/param", ("002",), "16 bytes/param (4+4+8)",
    "params + grads + Adam m, v = 16 bytes/param within 5%, for fp32 and each mixed recipe")
LARGER_BATCH = Bound(
    "condition", None, None, "", ("001", "003"), "larger batch sizes; double effective batch sizes",
    "the largest batch that fits is larger in fp16/bf16 than in fp32 (003's 2× shown next to it)")
CHECKPOINTING = Bound(
    "condition", None, None, "", ("000", "002"), "less memory, extra compute",
    "with checkpointing: activation (or peak) memory below 1.0× and step time above 1.0× "
    "of the same run without it")
CPU_MEMORY_NOTE = ("on a CPU the peak is RSS above the run's start, which the allocator's "
                   "caching blurs for small models")


@claim("memory-halving", "Mixed precision halves GPU memory use", MEMORY_HALVING,
       "fp32 and fp16/bf16 runs (profilers: [memory] for the breakdown)")
def memory_halving(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows: list[ClaimRow] = []
    for key, groups in ev.compared.items():
        base = ev.groups.baseline_runs(key)
        config_rows = []
        for g in groups:
            est = (metric_ratio(base, g.ok, RunRecord.peak_memory)
                   if base and g.role == "mixed" else None)
            if est is None:
                continue
            row = judged_row(f"{key.label}: {g.recipe_id}/fp32 peak", est, bound)
            if ev.device == "cpu" and est.low is None:
                row.verdict = "inconclusive"
                row.note = "one run each: CPU RSS peaks are too noisy for a point; add seeds"
            config_rows.append(row)
        if config_rows:  # the leaner 16-bit recipe counts
            best = min(config_rows, key=lambda r: r.value if r.value is not None else 1e30)
            for r in config_rows:
                r.counted = r is best
            rows.extend(config_rows)
    if not rows:
        return not_measured("needs fp32 and fp16/bf16 runs with peak memory in one configuration")
    return outcome_from_rows(rows, bound, "configurations (leaner 16-bit recipe over fp32)",
                             CPU_MEMORY_NOTE if ev.device == "cpu" else "")


def _activations(r: RunRecord) -> float | None:
    m = r.result(MemoryResult)
    return float(m.activations_bytes) if m and m.activations_bytes is not None else None


def _per_param(runs: list[RunRecord], part: str) -> float | None:
    values = []
    for r in runs:
        m = r.result(MemoryResult)
        b = (m.model_state_bytes if m else None) if part == "state" else _activations(r)
        if b is not None and r.n_params:
            values.append(b / r.n_params if part == "state" else b)
    return float(median(values)) if values else None


@claim("adam-16-bytes", "With Adam, model state is 16 bytes/param in FP32 and in mixed precision; "
       "the savings come from activations", ADAM_16, "profilers: [memory]")
def adam_16_bytes(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows: list[ClaimRow] = []
    for key, groups in ev.compared.items():
        label = key.label
        for g in groups:
            per_param = _per_param(g.ok, "state")
            if per_param is None:
                continue
            mixed = g.role in ("baseline", "mixed")
            verdict, why = judge(per_param, per_param, per_param, bound)
            rows.append(ClaimRow(f"{label}: {g.recipe_id} model state", value=per_param,
                                 n=len(g.ok), unit=" B/param",
                                 verdict=verdict if mixed else None, counted=mixed,
                                 note=why if mixed else "not a mixed recipe (context)"))
        base_act = _per_param(ev.groups.baseline_runs(key), "activations")
        for g in groups:
            act = _per_param(g.ok, "activations") if g.role == "mixed" else None
            if base_act and act is not None:
                rows.append(ClaimRow(f"{label}: {g.recipe_id}/fp32 activations",
                                     value=act / base_act, n=1,
                                     counted=False, note="where the savings come from (context)"))
    if not any(r.counted for r in rows):
        return not_measured(f"no memory breakdown: add {MemoryResult.suite_line()} with fp32 "
                            "and fp16/bf16")
    counted = [r for r in rows if r.counted]
    verdict = combine([r.verdict for r in counted if r.verdict is not None])
    values = [r.value for r in counted if r.value is not None]
    acts = [r for r in rows if "activations" in r.label and r.value is not None]
    spread = (fmt(min(values)) if fmt(min(values)) == fmt(max(values))
              else f"{fmt(min(values))}-{fmt(max(values))}")
    measured = f"{spread} B/param over {len(counted)} precision runs"
    reason = f"model state per parameter against {bound.text}"
    if acts:
        reason += "; activations " + ", ".join(
            f"{r.label.split(': ')[1].split('/')[0]} {fmt(r.value)}× fp32's" for r in acts[:3])
    return ClaimOutcome(verdict, measured, reason, rows, value=float(median(values)),
                        low=min(values), high=max(values), n=len(counted))


@claim("larger-batch", "Mixed precision lets larger batches (or models) fit", LARGER_BATCH,
       "profilers: [max_batch]")
def larger_batch(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows: list[ClaimRow] = []
    for key, groups in ev.compared.items():
        sizes = {}
        for g in groups:
            found = [mb for r in g.ok if (mb := r.result(MaxBatchResult)) is not None
                     and mb.max_batch_size is not None]
            if found:
                sizes[g.recipe_id] = (min(mb.max_batch_size or 0 for mb in found), found[0].limit or "")
        base_g = ev.groups.baseline(key)
        if base_g is None or base_g.recipe_id not in sizes:
            continue
        base, base_limit = sizes[base_g.recipe_id]
        for p in (g.recipe_id for g in groups if g.role == "mixed"):
            if p not in sizes:
                continue
            b, limit = sizes[p]
            v = b / base
            rows.append(ClaimRow(f"{key.model} t{key.seq_len}: {p} {b} vs fp32 {base}", value=v, n=1,
                            verdict="holds" if b > base else "fails",
                            note=f"limits: {p} {limit or '?'}, fp32 {base_limit or '?'}; "
                                 "003 says 2×"))
    if not rows:
        return not_measured(f"no max-batch search: add {MaxBatchResult.suite_line()} with "
                            "fp32 and fp16/bf16")
    best: dict[str, ClaimRow] = {}
    for r in rows:
        cfg = r.label.split(":")[0]
        if cfg not in best or (r.value or 0) > (best[cfg].value or 0):
            best[cfg] = r
    for r in rows:
        r.counted = best[r.label.split(":")[0]] is r
    return outcome_from_rows(rows, Bound("at_least", 1.0, None, "×", (), "", ""),
                             "models (16-bit max batch over fp32's)")


def _ckpt_pairs(ev: Evidence) -> list[tuple[str, list[RunRecord], list[RunRecord]]]:
    pairs = []
    for key, groups in ev.compared.items():
        if key.settings.get("activation_checkpointing"):
            continue
        ckpt = key.model_copy(
            update={"settings": {**key.settings, "activation_checkpointing": True}})
        for g in groups:
            if other := ev.groups.ok(ckpt.with_recipe_id(g.recipe_id)):
                pairs.append((f"{key.label}: {g.recipe_id}", g.ok, other))
    return pairs


@claim("checkpointing-tradeoff", "Gradient checkpointing cuts activation memory at the cost of "
       "extra compute", CHECKPOINTING,
       "the same runs with and without train.activation_checkpointing")
def checkpointing(ev: Evidence, bound: Bound) -> ClaimOutcome:
    less = Bound("at_most", None, 1.0, "×", (), "", "")
    more = Bound("at_least", 1.0, None, "×", (), "", "")
    rows: list[ClaimRow] = []
    for label, plain, ckpt in _ckpt_pairs(ev):
        metric = (_activations if all(_activations(r) is not None for r in plain + ckpt)
                  else RunRecord.peak_memory)
        what = "activations" if metric is _activations else "peak memory"
        mem = metric_ratio(plain, ckpt, metric)
        if mem is not None:
            rows.append(judged_row(f"{label} {what} ckpt/plain", mem, less))
        speed = throughput_ratio(ckpt, plain)  # plain's tokens/s over ckpt's = step-time ratio
        if speed is not None:
            rows.append(judged_row(f"{label} step time ckpt/plain", speed, more))
    if not rows:
        return not_measured("needs the same model, precision and batch run with and without "
                            "train.activation_checkpointing in one results set; a suite sets it "
                            "for all its runs, so a checkpointing sweep is what the suite lacks")
    return outcome_from_rows(rows, less, "comparisons (memory down, step time up)")
