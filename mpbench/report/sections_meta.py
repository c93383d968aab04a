"""Report sections about the claims, the machine and the runs that did not complete."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mpbench.analysis.claims import CLAIMS, ClaimVerdict, Verdict
from mpbench.analysis.claims.platform import support_line
from mpbench.config.claim_ids import CLAIM_IDS
from mpbench.report.blocks import Block, Cell, Note, Table, num, text
from mpbench.report.resultset import ResultSet
from mpbench.results.env import cpu_16bit_note
from mpbench.results.schema import RunRecord

VERDICT_CLASS: dict[Verdict, str] = {"holds": "v-holds", "fails": "v-fails", "inconclusive": "v-inconclusive",
                 "not applicable": "v-na", "not measured": "v-nm"}
VERDICT_ORDER = {"fails": 0, "holds": 1, "inconclusive": 2, "not applicable": 3, "not measured": 4}


def verdict_cell(v: ClaimVerdict) -> Cell:
    label = "fails here" if v.verdict == "fails" else v.verdict
    return Cell(label, VERDICT_ORDER[v.verdict], f"v {VERDICT_CLASS[v.verdict]}",
                title=v.reason, sub=v.measured if v.measured != "-" else "")


def verdict_table(sets: list[ResultSet]) -> Table:
    columns = ["claim", *(s.label if len(sets) > 1 else "verdict and measured value" for s in sets),
               "bound (quoted figure, source)"]
    rows = []
    for cid in CLAIM_IDS:
        spec = CLAIMS[cid]
        targeted = any(next(v for v in s.verdicts if v.claim_id == cid).targeted for s in sets)
        claim_cell = Cell(cid, cid, "claim" + (" targeted" if targeted else ""),
                          sub=spec.statement, title="targeted by the suite" if targeted else "")
        cells = [verdict_cell(next(v for v in s.verdicts if v.claim_id == cid)) for s in sets]
        b = spec.bound
        sub = (f"{b.reading} ({b.source_text})" if b.kind == "condition"
               else f"“{b.figure}” ({b.source_text})")
        bound_cell = Cell(b.short, b.short, "bound", sub=sub, title=b.reading)
        rows.append([claim_cell, *cells, bound_cell])
    return Table(columns, rows, "", set())


@dataclass
class ClaimDetail:
    claim_id: str
    statement: str
    reading: str
    figure: str
    sources: str
    parts: list[tuple[str, ClaimVerdict, Table | None]]


def claim_details(sets: list[ResultSet]) -> list[ClaimDetail]:
    out = []
    for cid in CLAIM_IDS:
        spec = CLAIMS[cid]
        parts = []
        for s in sets:
            v = next(v for v in s.verdicts if v.claim_id == cid)
            table = None
            if v.rows:
                table = Table(["comparison", "value", "n", "verdict", "note"], [
                    [text(r.label), Cell(r.text, r.value), num(float(r.n), 0),
                     Cell(r.verdict or ("context" if not r.counted else "-"), r.verdict or "",
                          f"v {VERDICT_CLASS[r.verdict] if r.verdict else 'v-ctx'}"),
                     Cell(r.note + ("" if r.counted else " (not counted)"), r.note)]
                    for r in v.rows], numeric={1, 2})
            parts.append((s.label, v, table))
        out.append(ClaimDetail(cid, spec.statement, spec.bound.reading, spec.bound.figure,
                               spec.bound.source_text, parts))
    return out


def verdict_counts(s: ResultSet) -> list[tuple[str, int, str]]:
    c = Counter(v.verdict for v in s.verdicts)
    return [(k, c[k], VERDICT_CLASS[k]) for k in VERDICT_CLASS if c[k]]


def _kv(rows: list[tuple[str, object]]) -> Table:
    return Table(["", ""], [[Cell(k, k, "key"), text(v)] for k, v in rows if v not in (None, "")],
                 sortable=False)


def env_blocks(s: ResultSet) -> list[Block]:
    r = s.first
    if r is None:
        return [Note("No run records in this directory.", "missing")]
    env = r.env
    caps = env.capabilities(r.device, r.device_name)
    if caps.kind == "cuda":
        gpu = env.gpu
        device = [("device", f"{caps.name} (compute capability {caps.capability})"),
                  ("GPUs", gpu.count if gpu else None), ("driver", gpu.driver if gpu else None),
                  ("power limit", f"{gpu.power_limit_w:.0f} W" if gpu and gpu.power_limit_w
                   else None)]
    else:
        cpu = env.cpu
        device = [("device", f"CPU: {caps.name} ({cpu.logical_cores} logical cores, "
                             f"{cpu.torch_threads} torch threads)"),
                  ("ISA", f"{caps.capability}; flags {', '.join(caps.isa_flags) or 'none'}"),
                  ("ISA overrides", ", ".join(f"{k}={v}" for k, v in
                                              caps.isa_env_overrides.items())),
                  ("16-bit on this CPU", cpu_16bit_note(cpu))]
    statuses = Counter(x.status for x in s.records)
    rows: list[tuple[str, object]] = [("results", str(s.path)), ("suite", r.suite), ("description", r.suite_description),
            ("profile", r.profile), *device, ("capabilities", support_line(caps)),
            ("torch", env.torch), ("CUDA / cuDNN", f"{env.cuda} / {env.cudnn}"
                                   if env.cuda else None),
            ("TransformerEngine", env.transformer_engine), ("torchao", env.torchao),
            ("python", env.python), ("OS", env.os),
            ("mpbench", f"{env.mpbench} (commit {env.mpbench_commit or 'unknown'})"),
            ("host", env.hostname),
            ("runs", ", ".join(f"{n} {k}" for k, n in sorted(statuses.items()))),
            ("recorded", f"{min(x.started_at for x in s.records)} to "
                         f"{max(x.finished_at for x in s.records)}"),
            ("bench records", ", ".join(b.benchmark for b in s.bench) or None)]
    return [_kv(rows)]


def failures_blocks(s: ResultSet) -> list[Block]:
    """Runs that did not complete, one row per precision, status and reason."""
    bad = [r for r in s.records if r.status != "ok"]
    if not bad:
        return [Note(f"All {len(s.records)} runs completed.")]
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for r in bad:
        groups.setdefault((r.precision, r.status, r.reason or "no reason recorded"), []).append(r)
    rows = []
    for (precision, status, reason), runs in groups.items():
        which = ", ".join(sorted({f"{r.model} seed {r.seed}" for r in runs}))
        steps = ", ".join(str(r.diverged_step) for r in runs if r.diverged_step is not None)
        last = [r.last_good_loss for r in runs if r.last_good_loss is not None]
        rows.append([Cell(precision, precision, "prec"), Cell(status, status, f"st st-{status}"),
                     text(reason), num(float(len(runs)), 0), text(which), text(steps or "-"),
                     num(min(last) if last else None, 4)])
    ok = len(s.records) - len(bad)
    return [Note(f"{ok} of {len(s.records)} runs completed; the rest, grouped by reason:"),
            Table(["precision", "status", "reason", "runs", "which", "diverged at step",
                   "last good loss"], rows, numeric={3, 6})]
