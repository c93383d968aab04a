"""MFU, computed here and nowhere else: achieved TFLOP/s against the dtype's spec peak
(the datasheet table below) and against the measured GEMM ceiling, both keyed by the one dtype
vocabulary (mpbench.dtypes).

The spec peaks: dense (no 2:4 sparsity) peak TFLOP/s of known GPUs per compute dtype, each
from its datasheet. Matched by the exact name torch.cuda.get_device_name() reports (case and
spacing aside), never by substring: "NVIDIA H100 NVL" must not get the SXM peaks of "NVIDIA
H100 80GB HBM3". Where a datasheet prints only the sparse figure (marked "with sparsity"), the
dense peak is half of it; every entry's source says which it used. float32 is the
non-tensor-core FP32 rate (MI300X: its FP32 matrix rate). A figure from a preliminary
datasheet is marked provisional and its source says so wherever it is shown. A GPU missing
here gets no spec MFU; its runs are measured against the measured GEMM ceiling only.

Training writes the figures into its record (RunRecord.mfu and the mfu profiler's output);
every view reads them from there. A ratio above 1 means the reference is no bound on this
run: then there is no MFU against it, only a note saying what training reached above what.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from mpbench.dtypes import DtypeKey, dtype_key

# -- the datasheet peaks ----------------------------------------------------------------------

@dataclass(frozen=True)
class PeakTable:
    names: tuple[str, ...]
    """Exact torch.cuda.get_device_name() strings of this model."""
    tflops: dict[str, float]
    """Keyed by the one dtype vocabulary (mpbench.dtypes)."""
    source: str
    """The datasheet (and column) and whether its figures are dense or halved from sparse."""
    provisional: frozenset[str] = frozenset()
    """Dtypes whose figure comes from a preliminary specification."""


def _peaks(fp32: float, tf32: float | None, bf16: float | None, fp16: float,
           fp8: float | None = None, fp4: float | None = None) -> dict[str, float]:
    out = {"fp32": fp32, "tf32": tf32, "bf16": bf16, "fp16": fp16, "fp8": fp8, "fp4": fp4}
    return {k: v for k, v in out.items() if v is not None}


_HOPPER_SXM = _peaks(66.9, 494.7, 989.4, 989.4, 1978.9)
_HOPPER_NVL = _peaks(60.0, 417.5, 835.5, 835.5, 1670.5)
_A100 = _peaks(19.5, 156.0, 312.0, 312.0)

PEAKS: tuple[PeakTable, ...] = (
    PeakTable(("Tesla V100-SXM2-16GB", "Tesla V100-SXM2-32GB", "Tesla V100-SXM3-32GB"),
              _peaks(15.7, None, None, 125.0),
              "NVIDIA V100 datasheet, SXM2 column (dense: Volta has no sparsity)"),
    PeakTable(("Tesla V100-PCIE-16GB", "Tesla V100-PCIE-32GB"),
              _peaks(14.0, None, None, 112.0),
              "NVIDIA V100 datasheet, PCIe column (dense: Volta has no sparsity)"),
    PeakTable(("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB"), _A100,
              "NVIDIA A100 datasheet, SXM columns (dense figures; sparse ones marked *)"),
    PeakTable(("NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe"), _A100,
              "NVIDIA A100 datasheet, PCIe columns (dense figures; same peaks as SXM)"),
    PeakTable(("NVIDIA A10",), _peaks(31.2, 62.5, 125.0, 125.0),
              "NVIDIA A10 datasheet (dense figures; sparse ones marked *)"),
    PeakTable(("NVIDIA L4",), _peaks(30.3, 60.0, 121.0, 121.0, 242.5),
              "NVIDIA L4 datasheet (dense: its sparse figures halved)"),
    PeakTable(("NVIDIA L40S",), _peaks(91.6, 183.0, 362.05, 362.05, 733.0),
              "NVIDIA L40S datasheet (dense figures as printed: BF16/FP16 362.05, TF32 183, FP8 "
              "733; the starred 733/366/1,466 are with sparsity)"),
    PeakTable(("NVIDIA GeForce RTX 4090",), _peaks(82.6, 82.6, 165.2, 165.2, 330.3),
              "NVIDIA Ada GPU architecture whitepaper, RTX 4090, FP32-accumulate rows (dense)"),
    PeakTable(("NVIDIA H100 80GB HBM3",), _HOPPER_SXM,
              "NVIDIA H100 datasheet, SXM column (dense: its sparse figures halved)"),
    PeakTable(("NVIDIA H100 PCIe",), _peaks(51.2, 378.0, 756.0, 756.0, 1513.0),
              "NVIDIA H100 datasheet, PCIe column (dense: its sparse figures halved)"),
    PeakTable(("NVIDIA H100 NVL",), _HOPPER_NVL,
              "NVIDIA H100 datasheet, H100 NVL column, per GPU (dense: sparse figures halved)"),
    PeakTable(("NVIDIA H200",), _HOPPER_SXM,
              "NVIDIA H200 datasheet, H200 SXM column (dense: its sparse figures halved)"),
    PeakTable(("NVIDIA H200 NVL",), _HOPPER_NVL,
              "NVIDIA H200 datasheet, H200 NVL column (dense: its sparse figures halved)"),
    PeakTable(("NVIDIA GH200 480GB", "NVIDIA GH200 120GB", "NVIDIA GH200 144G HBM3e"),
              _HOPPER_SXM,
              "NVIDIA GH200 Grace Hopper Superchip datasheet, GPU (dense: sparse figures halved)"),
    # TF32: the HGX B200 table's 8-GPU total, 18 PFLOPS with sparsity, / 8 / 2 = 1,125, half
    # the BF16 rate as on every tensor-core generation since Ampere; the per-GPU row's "2.2
    # PFLOPS" (1,100 dense) is that figure rounded.
    PeakTable(("NVIDIA B200",), _peaks(75.0, 1125.0, 2250.0, 2250.0, 4500.0, 9000.0),
              "NVIDIA HGX B200 datasheet, 8-GPU totals / 8 (dense: sparse figures halved)"),
    PeakTable(("NVIDIA B300 SXM6 AC", "NVIDIA B300"),
              _peaks(75.0, 1125.0, 2250.0, 2250.0, 4500.0, 13125.0),
              "NVIDIA HGX B300 datasheet (preliminary specifications), 8-GPU totals / 8 (dense: "
              "FP4 105 PFLOPS dense as printed, provisional: later NVIDIA material prints 108; "
              "other figures sparse halved)", provisional=frozenset({"fp4"})),
    PeakTable(("NVIDIA GB200",), _peaks(80.0, 1250.0, 2500.0, 2500.0, 5000.0, 10000.0),
              "NVIDIA GB200 NVL72 datasheet, 72-GPU totals / 72 (dense: sparse figures halved)"),
    # MI300X VF: the SR-IOV virtual function of the same chip that cloud VMs report
    PeakTable(("AMD Instinct MI300X", "AMD Instinct MI300X VF"),
              _peaks(163.4, 653.7, 1307.4, 1307.4, 2614.9),
              "AMD Instinct MI300X datasheet (dense figures; FP32 = its FP32 matrix rate)"),
)


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


_BY_NAME = {_norm(n): t for t in PEAKS for n in t.names}


def gpu_peaks(device_name: str) -> PeakTable | None:
    """The peak table of the GPU with this exact name, or None when it is not known."""
    return _BY_NAME.get(_norm(device_name))


def _key(dtype: str) -> str | None:
    try:
        return dtype_key(dtype)
    except ValueError:
        return None


def peak_tflops(device_name: str, dtype: str) -> tuple[float, str] | None:
    """(peak, source) for a GPU name and dtype (any name mpbench.dtypes knows), or None when
    the GPU, the dtype, or this GPU's figure for it is unknown. A provisional figure's source
    says so."""
    table = gpu_peaks(device_name)
    key = _key(dtype)
    if table is None or key is None or key not in table.tflops:
        return None
    note = " [provisional figure]" if key in table.provisional else ""
    return table.tflops[key], table.source + note


def unknown_peak_note(device_name: str, dtype: str) -> str:
    """Why a run has no spec MFU (it still has MFU against the measured ceiling)."""
    if gpu_peaks(device_name) is None:
        return (f"GPU {device_name!r} is unknown to mpbench.mfu's datasheet table (exact "
                "names only): no spec MFU; MFU is against the measured GEMM ceiling only")
    key = _key(dtype)
    if key is None:
        return (f"dtype {dtype!r} is not one mpbench knows: no spec MFU; MFU is against the "
                "measured GEMM ceiling only")
    return (f"{key} peak of {device_name} unknown (its datasheet gives none): no spec "
            "MFU; MFU is against the measured GEMM ceiling only")


# -- the figures -----------------------------------------------------------------------------

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
