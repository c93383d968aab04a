"""Pair current runs with baseline runs by configuration; refuse apples-to-oranges comparisons."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from mpbench.analysis.compare import Group, Groups
from mpbench.errors import UserError
from mpbench.interop.pytest_benchmark import RunSummary


@dataclass
class ConfigPair:
    """One configuration (seeds pooled) on both sides."""

    config_id: str
    baseline: Group[RunSummary]
    current: Group[RunSummary]


@dataclass
class Matching:
    pairs: list[ConfigPair]
    only_current: list[str] = field(default_factory=list)
    """Run ids with no baseline configuration (new runs)."""
    only_baseline: list[str] = field(default_factory=list)
    """Run ids whose configuration the current results lack (dropped runs)."""


def _platforms(runs: list[RunSummary]) -> set[tuple[str, str, str]]:
    return {(r.device_kind, r.device_name, r.profile) for r in runs}


def _describe(platforms: set[tuple[str, str, str]]) -> str:
    return "; ".join(f"{kind} '{name}', profile '{profile}'"
                     for kind, name, profile in sorted(platforms))


def platform_mismatch(current: list[RunSummary], baseline: list[RunSummary]) -> str | None:
    """Why the two sides ran on different devices or device profiles, or None when they match."""
    cur, base = _platforms(current), _platforms(baseline)
    if cur == base:
        return None
    return f"current ran on {_describe(cur)}; baseline on {_describe(base)}"


def check_platforms(current: list[RunSummary], baseline: list[RunSummary], allow: bool) -> str | None:
    mismatch = platform_mismatch(current, baseline)
    if mismatch and not allow:
        raise UserError(f"device or profile differs: {mismatch}; compare results from the same "
                        "device and profile, or pass --allow-mismatch to compare anyway")
    return mismatch


def match_runs(current: list[RunSummary], baseline: list[RunSummary],
               ignore_platform: bool) -> Matching:
    """Group by configuration; with ignore_platform, device and profile are not part of the key."""

    def key(r: RunSummary) -> Hashable:
        return (r.config_id,) if ignore_platform else (r.config_id, r.device_kind, r.profile)

    cur, base = Groups(current, key), Groups(baseline, key)
    pairs = [ConfigPair(g.key.label, b, g) for k, g in cur.items() if (b := base.get(k))]
    return Matching(
        pairs=pairs,
        only_current=list(dict.fromkeys(
            r.run_id for k, g in cur.items() if base.get(k) is None for r in g.records)),
        only_baseline=list(dict.fromkeys(  # pooled baselines repeat run ids
            r.run_id for k, g in base.items() if cur.get(k) is None for r in g.records)),
    )


def changed_settings(baseline: list[RunSummary], current: list[RunSummary], what: str) -> list[str]:
    """'torch: 2.12.0 -> 2.13.0' or 'threads: 2 -> 1': what differs, the likely cause."""
    def table(runs: list[RunSummary]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in runs:
            source = r.versions if what == "software" else r.train
            for k, v in source.items():
                out.setdefault(k, set()).add(str(v))
        return out

    base, cur = table(baseline), table(current)
    changes = []
    for k in sorted(set(base) | set(cur)):
        b, c = base.get(k, {"-"}), cur.get(k, {"-"})
        if b != c:
            changes.append(f"{k}: {'/'.join(sorted(b))} -> {'/'.join(sorted(c))}")
    return changes
