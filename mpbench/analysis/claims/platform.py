"""Platform claims: what the device supports, and gradient communication in 16-bit."""

from __future__ import annotations

from mpbench.analysis.claims.registry import APPROX, Evidence, claim
from mpbench.analysis.claims.verdict import (
    Bound,
    ClaimOutcome,
    ClaimRow,
    Verdict,
    fmt,
    judged_row,
    not_applicable,
    not_measured,
    outcome_from_rows,
)
from mpbench.analysis.stats import metric_ratio
from mpbench.bench.ceiling import best_gemm
from mpbench.results.env_card import Capabilities
from mpbench.results.payloads import CommUse, ParallelResult
from mpbench.results.schema import RunRecord

BF16_HW = Bound(
    "condition", None, None, "", ("002",), "pre-Ampere: no BF16 tensor cores",
    "on a GPU of compute capability below 8.0, BF16 tensor cores are absent (and a bf16 GEMM, "
    "where benchmarked, runs well below fp16's)")
COMM = Bound(
    "at_most", None, 0.5 * (1 + APPROX), "×", ("002",), "halve communication bandwidth",
    "'halve' read with 10% slack: 16-bit gradient all-reduce bytes per step at most 0.55× fp32's")
EMULATED = 0.5
"""A bf16 GEMM below half of fp16's TFLOP/s is taken as running without BF16 tensor cores."""


def support_line(caps: Capabilities) -> str:
    marks = [f"{k.upper()} {'yes' if caps.native(k) else 'no'}" for k in ("fp16", "bf16", "tf32", "fp8")]
    where = "tensor cores" if caps.kind == "cuda" else "native CPU paths"
    return f"{where}: " + ", ".join(marks)


def _bf16_fp16_gemm(ev: Evidence) -> float | None:
    bf16, fp16 = best_gemm(ev.bench, "bf16"), best_gemm(ev.bench, "fp16")
    if bf16 is None or fp16 is None or not bf16.tflops or not fp16.tflops:
        return None
    return bf16.tflops / fp16.tflops


@claim("bf16-hardware", "Pre-Ampere GPUs have no BF16 tensor cores", BF16_HW,
       "nothing: the environment card records the device's capabilities")
def bf16_hardware(ev: Evidence, bound: Bound) -> ClaimOutcome:
    if not ev.records:
        return not_measured("no run records")
    caps = ev.caps
    line = support_line(caps)
    if caps.kind != "cuda":
        flags = ", ".join(caps.isa_flags or []) or "none recorded"
        return not_applicable(f"a pre-Ampere NVIDIA GPU: this is a CPU ({caps.name}, ISA "
                              f"flags {flags}) with no tensor cores", line)
    cc = str(caps.capability or "0.0")
    major = int(cc.split(".")[0])
    if major >= 8:
        return not_applicable(f"a pre-Ampere GPU: {caps.name} is compute capability {cc} "
                              "(Ampere or newer) and has BF16 tensor cores", line)
    ratio = _bf16_fp16_gemm(ev)
    if ratio is None:
        detected: Verdict = "holds" if not caps.bf16 else "fails"
        return ClaimOutcome(detected, line,
                            f"compute capability {cc}: BF16 tensor cores "
                            f"{'absent' if not caps.bf16 else 'reported'} by the capability "
                            "table; run `mpbench bench` to confirm with a bf16 vs fp16 GEMM")
    verdict: Verdict = "holds" if ratio < EMULATED else "fails"
    return ClaimOutcome(verdict, f"{line}; bf16/fp16 GEMM {fmt(ratio)}×",
                        f"compute capability {cc}; best bf16 GEMM TFLOP/s over fp16's is {fmt(ratio)} "
                        f"(below {EMULATED} means no BF16 tensor cores)", value=ratio, n=1)


def _comm(r: RunRecord) -> CommUse | None:
    par = r.result(ParallelResult)
    return par.comm_use if par else None


def _comm_dtype(r: RunRecord) -> str | None:
    c = _comm(r)
    return c.dtype if c else None


def _comm_bytes(r: RunRecord) -> float | None:
    c = _comm(r)
    return float(c.bytes_per_step) if c else None


@claim("comm-halving", "All-reduce in FP16/BF16 halves gradient communication", COMM,
       "data-parallel runs (torchrun) with fp32 and 16-bit gradient communication")
def comm_halving(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows: list[ClaimRow] = []
    for key, groups in ev.compared.items():
        runs = [r for g in groups for r in g.ok if _comm_dtype(r)]
        by_dtype: dict[str, list[RunRecord]] = {}
        for r in runs:
            by_dtype.setdefault(_comm_dtype(r) or "", []).append(r)
        base = by_dtype.get("fp32") or by_dtype.get("float32")
        for d, group in by_dtype.items():
            if base and d in ("fp16", "bf16", "float16", "bfloat16"):
                est = metric_ratio(base, group, _comm_bytes)
                if est is not None:
                    rows.append(judged_row(f"{key.label}: {d}/fp32 bytes", est, bound))
    if not rows:
        return not_measured("run data-parallel under torchrun with gradient communication in "
                            "fp32 and in bf16/fp16 (the suite's parallel section)")
    return outcome_from_rows(rows, bound, "configurations (16-bit over fp32 gradient bytes)")
