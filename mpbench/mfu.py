"""MFU, computed here and nowhere else: achieved TFLOP/s against the dtype's spec peak
(mpbench.hardware) and against the measured GEMM ceiling, both keyed by the one dtype
vocabulary (mpbench.dtypes).

Training writes the figures into its record (RunRecord.mfu and the mfu profiler's output);
every view reads them from there. A ratio above 1 means the reference is no bound on this
run: then there is no MFU against it, only a note saying what training reached above what.
"""

from __future__ import annotations

from pydantic import BaseModel

from mpbench.dtypes import DtypeKey, dtype_key
from mpbench.hardware import peak_tflops, unknown_peak_note

CPU_SPEC_NOTE = "no spec peak table for CPUs; the measured ceiling is the reference"
NUMERICS_ONLY_NOTE = "numerics-only recipe: its speed is not measured against a ceiling"


class MfuFigures(BaseModel):
    """A run's MFU figures; None where a reference is missing or invalid (the note says why)."""

    dtype: DtypeKey
    achieved_tflops: float | None = None
    spec_peak_tflops: float | None = None
    spec_source: str | None = None
    mfu_vs_spec: float | None = None
    spec_note: str | None = None
    ceiling_tflops: float | None = None
    ceiling_source: str | None = None
    mfu_vs_ceiling: float | None = None
    ceiling_note: str | None = None


def achieved_tflops(flops_per_token: float | None, tokens_per_s: float | None) -> float | None:
    if not flops_per_token or not tokens_per_s:
        return None
    return flops_per_token * tokens_per_s / 1e12


def invalid_ceiling_note(achieved: float, ceiling: float, what: str = "measured") -> str:
    return (f"no valid ceiling: training reached {achieved:.4g} TFLOP/s, above the {what} "
            f"{ceiling:.4g}")


def against(achieved: float | None, reference: float | None, what: str = "measured"
            ) -> tuple[float | None, str | None]:
    """(MFU, note): achieved over `reference`, or None with a note where the reference is
    beaten (it bounds nothing, so no MFU above 100% is ever given)."""
    if achieved is None or not reference:
        return None, None
    ratio = achieved / reference
    if ratio > 1.0:
        return None, invalid_ceiling_note(achieved, reference, what)
    return ratio, None


def spec_figures(achieved: float | None, dtype: str, device_kind: str,
                 device_name: str | None) -> dict[str, float | str | None]:
    """spec_peak_tflops, spec_source, mfu_vs_spec, spec_note of a run on this device."""
    key = dtype_key(dtype)
    if device_kind != "cuda" or not device_name:
        return {"spec_peak_tflops": None, "spec_source": None, "mfu_vs_spec": None,
                "spec_note": CPU_SPEC_NOTE}
    found = peak_tflops(device_name, key)
    if found is None:
        return {"spec_peak_tflops": None, "spec_source": None, "mfu_vs_spec": None,
                "spec_note": unknown_peak_note(device_name, key)}
    peak, source = found
    ratio, note = against(achieved, peak, f"{key} spec peak")
    return {"spec_peak_tflops": peak, "spec_source": f"{source}, {key}", "mfu_vs_spec": ratio,
            "spec_note": note}


def mfu_figures(achieved: float | None, dtype: str, device_kind: str, device_name: str | None,
                ceiling: float | None = None, ceiling_source: str | None = None,
                numerics_only: bool = False) -> MfuFigures:
    """Every MFU figure of one run. A numerics-only recipe (FP8 emulated on a CPU) gets none:
    its speed means nothing for the hardware."""
    key = dtype_key(dtype)
    if numerics_only:
        return MfuFigures(dtype=key, achieved_tflops=achieved, spec_note=NUMERICS_ONLY_NOTE,
                          ceiling_note=NUMERICS_ONLY_NOTE)
    spec = spec_figures(achieved, key, device_kind, device_name)
    ratio, note = against(achieved, ceiling)
    if ceiling is None:
        note = f"no measured {key} ceiling on this device"
    return MfuFigures.model_validate({
        "dtype": key, "achieved_tflops": achieved, **spec, "ceiling_tflops": ceiling,
        "ceiling_source": ceiling_source, "mfu_vs_ceiling": ratio, "ceiling_note": note})
