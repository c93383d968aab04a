"""A series of results (say one per nightly run): the trend per configuration and metric, and
its change points, found by ruptures' PELT (a maintained change-point library).

Each point is one results directory; its value for a configuration is the median of the
runs' medians (one run is one sample, as in the gate). Points are ordered by the time their
first run started. Change points are searched in the log of the values with an l2 cost and
a BIC-like penalty, beta * sigma^2 * log(n), where sigma is the series' own noise estimated
robustly from successive differences (median absolute deviation), so a flat noisy series
needs a jump of several sigma to split. A change counts when it also moves the segment
mean by more than `min_change`; it is a regression when the metric got worse (higher step
time, memory or eval loss).

A nightly job asks one question: does the series stand in a regression now? PELT needs
points after a change to see it, so "the latest point is a change point" almost never fires.
The question is answered on segments instead: splits smaller than `min_change` are merged,
and the series is regressed when its latest segment is worse than the segment before it by
more than `min_change` (a regression not recovered from). A change the team accepts is
left behind with `since`: the series then starts at the accepted point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mpbench.analysis.compare import Group, Groups
from mpbench.errors import UserError
from mpbench.results.schema import RunRecord
from mpbench.results.store import MANIFEST, load_records

PENALTY_BETA = 6.0
SIGMA_FLOOR = 0.005
"""Noise floor (0.5% in log space): a perfectly flat series still needs a real jump."""


@dataclass(frozen=True)
class Point:
    label: str
    """The results directory's name."""
    started_at: str
    records: list[RunRecord]


@dataclass(frozen=True)
class ChangePoint:
    index: int
    """First point of the new segment."""
    before: float
    after: float
    kind: str
    """'regression', 'improvement' or 'change' (below min_change)."""

    @property
    def change(self) -> float:
        return self.after / self.before - 1.0


@dataclass
class Series:
    config: str
    metric: str
    unit: str
    values: list[float | None]
    runs: list[int]
    change_points: list[ChangePoint] = field(default_factory=list)
    open_regression: ChangePoint | None = None
    """The latest segment against the one before it, when it is a regression (see module)."""


def _results_dirs(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if not p.exists():
            raise UserError(f"history: {p} not found; give results directories written by "
                            "`mpbench run` (or a directory holding them)")
        if p.is_dir() and not (p / MANIFEST).is_file():
            inner = sorted(q.parent for q in p.glob(f"*/{MANIFEST}"))
            if not inner:
                raise UserError(f"history: {p} holds no mpbench results (no {MANIFEST} in it "
                                "or its subdirectories)")
            out.extend(inner)
        else:
            out.append(p)
    return out


def load_points(paths: Sequence[Path]) -> list[Point]:
    """Every results directory as one point, oldest first; bad input is a UserError."""
    if not paths:
        raise UserError("history: no results given; pass 2+ results directories")
    points = []
    for d in _results_dirs(paths):
        records = load_records(d)
        if not records:
            raise UserError(f"history: {d} holds no runs; run the suite there or leave it out")
        points.append(Point(d.name, min(r.started_at for r in records), records))
    if len(points) < 2:
        raise UserError(f"history: only {len(points)} results directory; a history needs 2+")
    suites = {p.label: {r.suite for r in p.records} for p in points}
    names = {s for v in suites.values() for s in v}
    if len(names) > 1:
        first = points[0]
        other = next(p for p in points if suites[p.label] != suites[first.label])
        raise UserError(f"history: mixed suites: {first.label} holds "
                        f"{'/'.join(sorted(suites[first.label]))}, {other.label} holds "
                        f"{'/'.join(sorted(suites[other.label]))}; give results of one suite")
    return sorted(points, key=lambda p: p.started_at)


def _key(g: Group[RunRecord]) -> str:
    """The configuration key's label (results/key.py), as the summary and the gate show it."""
    return g.key.label


METRICS: list[tuple[str, str, Callable[[Group[RunRecord]], float | None]]] = [
    ("step time", "ms", lambda g: g.step_ms),
    ("peak memory", "MiB", lambda g: g.peak_memory_bytes / 2**20 if g.peak_memory_bytes else None),
    ("eval loss", "nats", lambda g: g.median_of("eval_loss")),
]


def noise_sigma(logs: np.ndarray) -> float:
    d = np.diff(logs)
    if d.size < 2:
        return SIGMA_FLOOR
    mad = float(np.median(np.abs(d - np.median(d))))
    return max(1.4826 * mad / math.sqrt(2), SIGMA_FLOOR)


def change_points(values: Sequence[float], min_change: float,
                  beta: float = PENALTY_BETA) -> list[ChangePoint]:
    """PELT (ruptures) on log values; every split with its segment means and kind."""
    import ruptures

    x = np.log(np.asarray(values, dtype=float))
    if x.size < 3:
        return []
    sigma = noise_sigma(x)
    algo = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(x.reshape(-1, 1))
    ends = algo.predict(pen=beta * sigma**2 * math.log(x.size))
    bounds = [0, *ends]
    out = []
    for i in range(1, len(bounds) - 1):
        before = float(np.exp(x[bounds[i - 1]:bounds[i]].mean()))
        after = float(np.exp(x[bounds[i]:bounds[i + 1]].mean()))
        ratio = after / before - 1.0
        kind = ("regression" if ratio > min_change else
                "improvement" if ratio < -min_change else "change")
        out.append(ChangePoint(bounds[i], before, after, kind))
    return out


def open_regression(values: Sequence[float], cps: Sequence[ChangePoint],
                    min_change: float) -> ChangePoint | None:
    """The regression the series still stands in: its latest segment (splits below
    `min_change` merged) worse than the segment before it by more than `min_change`."""
    starts = [cp.index for cp in cps if cp.kind != "change"]
    if not starts:
        return None
    x = np.log(np.asarray(values, dtype=float))
    previous = starts[-2] if len(starts) > 1 else 0
    before = float(np.exp(x[previous:starts[-1]].mean()))
    after = float(np.exp(x[starts[-1]:].mean()))
    if after / before - 1.0 <= min_change:
        return None
    return ChangePoint(starts[-1], before, after, "regression")


def since(points: list[Point], accepted: str) -> list[Point]:
    """The points from `accepted` on: a results directory's name, or a date (ISO, by the
    time a point's first run started)."""
    labels = [p.label for p in points]
    if accepted in labels:
        kept = points[labels.index(accepted):]
        if len(kept) < 2:
            raise UserError(f"history --since {accepted}: leaves 1 results directory; a history "
                            "needs 2+; give an earlier point")
        return kept
    try:
        day = _naive_utc(datetime.fromisoformat(accepted))
    except ValueError:
        raise UserError(f"history --since {accepted}: neither a results directory here nor an "
                        f"ISO date; give one of {', '.join(labels)} or a date like "
                        "2026-12-01") from None
    kept = [p for p in points if _naive_utc(datetime.fromisoformat(p.started_at)) >= day]
    if len(kept) < 2:
        raise UserError(f"history --since {accepted}: leaves {len(kept)} results directory; a "
                        "history needs 2+; give an earlier point")
    return kept


def _naive_utc(t: datetime) -> datetime:
    return t if t.tzinfo is None else t.astimezone(timezone.utc).replace(tzinfo=None)


def build_series(points: list[Point], min_change: float = 0.05) -> list[Series]:
    per_point = [{_key(g): g for g in Groups(p.records)} for p in points]
    configs = list(dict.fromkeys(k for groups in per_point for k in groups))
    out = []
    for config in configs:
        for metric, unit, fn in METRICS:
            values: list[float | None] = []
            runs = []
            for groups in per_point:
                g = groups.get(config)
                values.append(fn(g) if g is not None and g.ok else None)
                runs.append(len(g.ok) if g is not None else 0)
            present = [v for v in values if v is not None and v > 0]
            if not present:
                continue
            s = Series(config, metric, unit, values, runs)
            if len(present) == len(values):  # change points only on a complete series
                s.change_points = change_points(present, min_change)
                s.open_regression = open_regression(present, s.change_points, min_change)
            out.append(s)
    return out
