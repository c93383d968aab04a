"""Pair current runs with baseline runs by configuration; refuse apples-to-oranges comparisons."""

from __future__ import annotations

from dataclasses import dataclass, field

from mpbench.errors import UserError
from mpbench.gate.runs import GateRun


@dataclass
class ConfigPair:
    """One configuration (seeds pooled) on both sides."""

    config_id: str
    baseline: list[GateRun]
    current: list[GateRun]


@dataclass
class Matching:
    pairs: list[ConfigPair]
    only_current: list[str] = field(default_factory=list)
    """Run ids with no baseline configuration (new runs)."""
    only_baseline: list[str] = field(default_factory=list)
    """Run ids whose configuration the current results lack (dropped runs)."""


def _platforms(runs: list[GateRun]) -> set[tuple[str, str, str]]:
    return {(r.device_kind, r.device_name, r.profile) for r in runs}


def _describe(platforms: set[tuple[str, str, str]]) -> str:
    return "; ".join(f"{kind} '{name}', profile '{profile}'"
                     for kind, name, profile in sorted(platforms))


def platform_mismatch(current: list[GateRun], baseline: list[GateRun]) -> str | None:
    """Why the two sides ran on different devices or device profiles, or None when they match."""
    cur, base = _platforms(current), _platforms(baseline)
    if cur == base:
        return None
    return f"current ran on {_describe(cur)}; baseline on {_describe(base)}"


def check_platforms(current: list[GateRun], baseline: list[GateRun], allow: bool) -> str | None:
    mismatch = platform_mismatch(current, baseline)
    if mismatch and not allow:
        raise UserError(f"device or profile differs: {mismatch}; compare results from the same "
                        "device and profile, or pass --allow-mismatch to compare anyway")
    return mismatch


def match_runs(current: list[GateRun], baseline: list[GateRun], ignore_platform: bool) -> Matching:
    """Group by configuration; with ignore_platform, device and profile are not part of the key."""

    def key(r: GateRun) -> tuple[str, ...]:
        return (r.config_id,) if ignore_platform else (r.config_id, r.device_kind, r.profile)

    cur: dict[tuple[str, ...], list[GateRun]] = {}
    base: dict[tuple[str, ...], list[GateRun]] = {}
    for r in current:
        cur.setdefault(key(r), []).append(r)
    for r in baseline:
        base.setdefault(key(r), []).append(r)
    pairs = [ConfigPair(runs[0].config_id, base[k], runs) for k, runs in cur.items() if k in base]
    return Matching(
        pairs=pairs,
        only_current=list(dict.fromkeys(
            r.run_id for k, runs in cur.items() if k not in base for r in runs)),
        only_baseline=list(dict.fromkeys(  # pooled baselines repeat run ids
            r.run_id for k, runs in base.items() if k not in cur for r in runs)),
    )


def changed_settings(baseline: list[GateRun], current: list[GateRun], what: str) -> list[str]:
    """'torch: 2.12.0 -> 2.13.0' or 'threads: 2 -> 1': what differs, the likely cause."""
    def table(runs: list[GateRun]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in runs:
            source = r.software if what == "software" else r.train
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
