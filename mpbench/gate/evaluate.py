"""Load current results and a baseline, compare them and decide: pass, regression, or bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from mpbench.errors import UserError
from mpbench.gate.matching import changed_settings, check_platforms, match_runs
from mpbench.gate.rules import Finding, Limits, check_pair
from mpbench.interop.pytest_benchmark import (
    RunSummary,
    exported_runs,
    is_pytest_benchmark,
    summary_of,
)
from mpbench.results.store import MANIFEST, load_records, parse_record

EXIT_PASS, EXIT_REGRESSION = 0, 1


@dataclass
class GateReport:
    current: str
    baseline: str
    limits: Limits
    strict: bool
    findings: list[Finding]
    only_current: list[str] = field(default_factory=list)
    only_baseline: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    drift: dict[str, Any] | None = None
    """The machine-drift probe, current over baseline (None when a side has no probe)."""

    def with_verdict(self, verdict: str) -> list[Finding]:
        return [f for f in self.findings if f.verdict == verdict]

    @property
    def failures(self) -> list[Finding]:
        """Regressions, and with --strict also inconclusive findings."""
        bad = {"regression", "inconclusive"} if self.strict else {"regression"}
        return [f for f in self.findings if f.verdict in bad]

    @property
    def exit_code(self) -> int:
        dropped = self.strict and bool(self.only_baseline)
        return EXIT_REGRESSION if self.failures or dropped else EXIT_PASS

    def headline(self) -> str:
        if self.exit_code == EXIT_PASS:
            n_inc = len(self.with_verdict("inconclusive"))
            extra = f" ({n_inc} inconclusive; --strict would fail them)" if n_inc else ""
            return f"gate PASSED: no regression in {len(self.findings)} checks{extra}"
        parts = [f"{f.config} {f.metric} ({f.verdict}: {f.detail})" for f in self.failures]
        if self.strict and self.only_baseline:
            parts.append(f"{len(self.only_baseline)} baseline runs missing from current (--strict)")
        return f"gate FAILED: {len(parts)} problem(s): " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "current": self.current, "baseline": self.baseline, "strict": self.strict,
            "limits": vars(self.limits), "exit_code": self.exit_code, "headline": self.headline(),
            "findings": [f.as_dict() for f in self.findings],
            "only_current": self.only_current, "only_baseline": self.only_baseline,
            "notes": self.notes, "machine_drift": self.drift,
        }


DRIFT_NOTE = 0.03
"""A probe change beyond this is reported as the machine getting slower or faster."""


def machine_drift(current: list[RunSummary], baseline: list[RunSummary]) -> dict[str, Any] | None:
    cur = [r.probe_ms for r in current if r.probe_ms]
    base = [r.probe_ms for r in baseline if r.probe_ms]
    if not cur or not base:
        return None
    b, c = float(median(base)), float(median(cur))
    return {"baseline_probe_ms": b, "current_probe_ms": c, "change": c / b - 1.0,
            "runs_with_probe": {"baseline": len(base), "current": len(cur)}}


def drift_note(drift: dict[str, Any] | None, normalize: bool) -> str | None:
    if drift is None:
        return ("machine drift unknown: a side has no drift probe (records from before "
                "mpbench timed one)")
    change = drift["change"]
    how = (f"drift probe {drift['baseline_probe_ms']:.3f} -> {drift['current_probe_ms']:.3f} ms "
           f"({change:+.1%})")
    if normalize:
        return f"step times divided by each run's drift probe (--normalize-by-probe); {how}"
    if abs(change) > DRIFT_NOTE:
        side = "slower" if change > 0 else "faster"
        return (f"machine drift: the machine itself ran {side} in current than in the baseline "
                f"({how}); consider --normalize-by-probe")
    return f"no machine drift beyond {DRIFT_NOTE:.0%} ({how})"


def check_probes(runs: list[RunSummary], side: str) -> None:
    missing = [r.run_id for r in runs if r.status == "ok" and not r.probe_ms]
    if missing:
        raise UserError(f"--normalize-by-probe: {len(missing)} {side} run(s) have no drift probe "
                        f"(e.g. {missing[0]}, recorded before mpbench timed one); rerun them "
                        "with this mpbench or drop --normalize-by-probe")


def compare_runs(current: list[RunSummary], baseline: list[RunSummary], limits: Limits,
                 allow_mismatch: bool = False, strict: bool = False,
                 labels: tuple[str, str] = ("current", "baseline")) -> GateReport:
    mismatch = check_platforms(current, baseline, allow_mismatch)
    matching = match_runs(current, baseline, ignore_platform=bool(mismatch))
    notes = [f"compared despite a mismatch (--allow-mismatch): {mismatch}"] if mismatch else []
    software = changed_settings(baseline, current, "software")
    if software:
        notes.append("software changed: " + "; ".join(software))
    if limits.normalize_by_probe:
        check_probes(current, "current")
        check_probes(baseline, "baseline")
    drift = machine_drift(current, baseline)
    note = drift_note(drift, limits.normalize_by_probe)
    if note:
        notes.append(note)
    findings: list[Finding] = []
    for pair in matching.pairs:
        findings.extend(check_pair(pair, limits))
        train = changed_settings(pair.baseline.records, pair.current.records, "train")
        if train:
            notes.append(f"{pair.config_id}: train settings changed: " + "; ".join(train))
        seeds_b = {r.seed for r in pair.baseline.records}
        seeds_c = {r.seed for r in pair.current.records}
        if seeds_b != seeds_c:
            notes.append(f"{pair.config_id}: seeds differ (baseline {sorted(seeds_b)}, "
                         f"current {sorted(seeds_c)}); each run counts as one sample")
    return GateReport(labels[0], labels[1], limits, strict, findings,
                      matching.only_current, matching.only_baseline, notes, drift)


# -- the runs of each side: a results directory, a record, or an exported file --------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: corrupt JSON at line {exc.lineno}, column {exc.colno}; "
                        "restore the file or produce it again") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text JSON file") from None


def _summaries(path: Path) -> list[RunSummary]:
    if path.is_dir():
        return [summary_of(r) for r in load_records(path)]
    raw = _read_json(path)
    if is_pytest_benchmark(raw):
        return exported_runs(raw, path)
    record = parse_record(raw, path)
    return [summary_of(record)]


def result_sets(path: Path) -> list[Path]:
    """PATH itself, or, for a directory of results directories, each of them (sorted)."""
    if path.is_dir() and not (path / MANIFEST).is_file():
        inner = sorted(p.parent for p in path.glob(f"*/{MANIFEST}"))
        if inner:
            return inner
    return [path]


def load_runs(path: Path, flag: str) -> list[RunSummary]:
    """All runs at PATH: a results directory, one run record, or a `mpbench export` file."""
    if not path.exists():
        raise UserError(f"{flag}: {path} not found; give a results directory written by "
                        "`mpbench run` or a file written by `mpbench export`")
    try:
        summaries = _summaries(path)
    except UserError as exc:
        raise UserError(f"{flag}: {exc}") from None
    if not summaries:
        raise UserError(f"{flag}: {path} holds no runs; run the suite first")
    for s in summaries:
        s.source = str(path)
    return summaries


def run_gate(current: Path, baselines: list[Path], limits: Limits, allow_mismatch: bool = False,
             strict: bool = False) -> GateReport:
    """Load both sides (raising UserError on bad input) and apply every rule.

    Several baselines (repeated --baseline, or a directory of results directories, say the
    last few nightly runs of main) are pooled: their runs count as repeats, and the spread
    between the baselines is noise the change must beat (see slowdown_test_runs).
    """
    cur = load_runs(current, "CURRENT")
    base = [r for path in baselines for inner in result_sets(path)
            for r in load_runs(inner, "--baseline")]
    label = ", ".join(str(p) for p in baselines)
    return compare_runs(cur, base, limits, allow_mismatch, strict, (str(current), label))
