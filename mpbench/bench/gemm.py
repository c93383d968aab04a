"""GEMM throughput per dtype: fp32 (strict), tf32, fp16, bf16 and fp8 through torch._scaled_mm,
on square shapes, a model's linear layers, and the alignment sweep.

The alignment sweep times the same GEMM with K and N a multiple of 16 and off it by a few.
Tensor-core kernels want K and N divisible by 8 (16-bit) or 16 (FP8); off-by-a-few sizes fall
back to padded or slower kernels (FP8 refuses them). M stays at `base`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from mpbench.bench.rows import AlignmentRow, GemmRow
from mpbench.bench.timing import TimingConfig, time_op
from mpbench.config.model_sizes import MODEL_SIZES
from mpbench.dtypes import DtypeKey

FP8_MAX = 448.0  # largest finite float8_e4m3fn
NUMERICS_ONLY_NOTE = ("numerics only: torch._scaled_mm on a CPU is a reference path, not FP8 "
                      "hardware; its time is no FP8 speed figure")


# Storage dtype of the operands (tf32 stores fp32; fp8 operands are e4m3 with a bf16 output).
# fp4 has no torch matmul to time: it is skipped with its reason.
STORAGE: dict[str, torch.dtype] = {
    "fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
    "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn,
}


def skip_reason(key: DtypeKey, device: torch.device) -> str | None:
    """Why `key` cannot be measured on `device` at all (None: it can)."""
    if key not in STORAGE:
        return (f"{key} has no GEMM path in mpbench's micro-benchmarks (torch offers no {key} "
                "matmul to time); its runs get no measured ceiling")
    if key == "tf32" and device.type != "cuda":
        return "TF32 is a CUDA tensor-core mode; a CPU has no TF32 matmul"
    if key == "tf32" and torch.cuda.get_device_capability(device) < (8, 0):
        return "TF32 needs compute capability >= 8.0 (Ampere)"
    if key == "fp8" and device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
        cc = ".".join(map(str, torch.cuda.get_device_capability(device)))
        return f"FP8 GEMMs (torch._scaled_mm) need compute capability >= 8.9; this GPU is {cc}"
    return None


def numerics_only(key: DtypeKey, device: torch.device) -> bool:
    """FP8 on a CPU runs through a reference path: its numbers are right, its speed means nothing."""
    return key == "fp8" and device.type != "cuda"


@dataclass(frozen=True)
class GemmShape:
    label: str
    m: int
    n: int
    k: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k


def square_shapes(sizes: list[int]) -> list[GemmShape]:
    return [GemmShape("square", s, s, s) for s in sizes]


def transformer_shapes(model: str, tokens: int, backward: bool = False) -> list[GemmShape]:
    """The linear layers of a named model for `tokens` rows (batch x sequence): C[M,N] = X[M,K] W^T.

    With `backward`, each layer also gives its input-gradient GEMM (M, K, N) and its
    weight-gradient GEMM (N, K, M), where the token dimension becomes the reduction.
    """
    cfg = MODEL_SIZES[model]
    d, f = cfg.n_embd, cfg.ffn_dim
    qkv = 3 * d if cfg.arch == "gpt" else d + 2 * cfg.kv_heads * cfg.head_dim
    layers = {"qkv": (qkv, d), "attn_out": (d, d), "mlp_up": (f, d), "mlp_down": (d, f),
              "lm_head": (cfg.vocab_size, d)}
    shapes = []
    for name, (n, k) in layers.items():
        shapes.append(GemmShape(f"{model}.{name}", tokens, n, k))
        if backward:
            shapes.append(GemmShape(f"{model}.{name}.dgrad", tokens, k, n))
            shapes.append(GemmShape(f"{model}.{name}.wgrad", n, k, tokens))
    return shapes


@contextmanager
def matmul_precision(mode: str) -> Iterator[None]:
    """'highest' = strict fp32, 'high' = TF32 tensor cores on CUDA; restored afterwards."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(mode)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def quantize_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensorwise e4m3 quantisation: (x / scale) in fp8, and the fp32 scale that undoes it."""
    amax = x.abs().max().float().clamp(min=1e-12)
    scale = amax / FP8_MAX
    # Clamp first: releases before torch 2.12 turn out-of-range casts into NaN.
    q = (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale.reshape(())


def fp8_shape_problem(m: int, n: int, k: int) -> str | None:
    """cuBLASLt's FP8 rule, which the CPU path does not enforce."""
    bad = [f"{name}={v}" for name, v in (("K", k), ("N", n)) if v % 16]
    return f"FP8 GEMM needs K and N divisible by 16 ({', '.join(bad)})" if bad else None


def gemm_fn(a: torch.Tensor, b: torch.Tensor, key: DtypeKey, fast_accum: bool = False
            ) -> Callable[[], torch.Tensor]:
    """A no-argument GEMM of fp32 operands a[M,K] @ b[K,N], in the storage format of `key`."""
    if key == "fp8":
        a8, sa = quantize_fp8(a)
        # _scaled_mm wants mat2 column-major: quantise b^T row-major, then view it transposed.
        bt8, sb = quantize_fp8(b.t().contiguous())
        b8 = bt8.t()
        return lambda: torch._scaled_mm(a8, b8, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                        use_fast_accum=fast_accum)
    dtype = STORAGE[key]
    a_c, b_c = a.to(dtype), b.to(dtype)
    out = torch.empty(a.shape[0], b.shape[1], dtype=dtype, device=a.device)
    return lambda: torch.matmul(a_c, b_c, out=out)


def operands(shape: GemmShape, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(shape.m, shape.k, generator=gen, device=device)
    b = torch.randn(shape.k, shape.n, generator=gen, device=device)
    return a, b


def relative_error(c: torch.Tensor, ref: torch.Tensor) -> float:
    return float((c.float() - ref).norm() / ref.norm().clamp(min=1e-30))


def measure_gemm(shape: GemmShape, key: DtypeKey, device: torch.device, timing: TimingConfig,
                 ref: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                 fast_accum: bool = False) -> GemmRow:
    """One GEMM case. `ref` = (a, b, a @ b in strict fp32), shared across the dtypes of a shape."""
    row = GemmRow(dtype=key, shape=shape.label, m=shape.m, n=shape.n, k=shape.k, flops=shape.flops,
                  numerics_only=numerics_only(key, device),
                  variant=("fast_accum" if fast_accum else "exact_accum") if key == "fp8" else None)
    reason = skip_reason(key, device)
    shape_problem = fp8_shape_problem(shape.m, shape.n, shape.k) if key == "fp8" else None
    if reason is None and shape_problem and device.type != "cuda":
        # The CPU path would run it; mark what CUDA's cuBLASLt rule says instead.
        return row.model_copy(update={"status": "unsupported",
                                      "reason": f"{shape_problem} (rule applied by mpbench on a CPU)"})
    if reason:
        return row.model_copy(update={"status": "skipped", "reason": reason})
    try:
        if ref is None:
            a, b = operands(shape, device)
            with matmul_precision("highest"):
                ref = (a, b, a @ b)
        a, b, c_ref = ref
        with matmul_precision("high" if key == "tf32" else "highest"):
            fn = gemm_fn(a, b, key, fast_accum)
            t = time_op(fn, device, timing)
            err = relative_error(fn(), c_ref) if key != "fp32" else None
    except torch.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        return row.model_copy(update={"status": "oom", "reason": str(exc).splitlines()[0]})
    except RuntimeError as exc:
        message = str(exc).splitlines()[0]
        if shape_problem:  # torch refused the misaligned FP8 GEMM, as the alignment claim says
            return row.model_copy(update={"status": "unsupported",
                                          "reason": f"{shape_problem}; torch: {message}"})
        return row.model_copy(update={"status": "failed", "reason": message})
    tflops = shape.flops / (t.median_ms * 1e-3) / 1e12
    return row.model_copy(update={
        "time_ms": t.median_ms, "time_min_ms": t.min_ms, "spread": t.spread, "reps": t.reps,
        "rel_error": err,
        # No TFLOP/s for a numerics-only path, so that no table or ceiling can take it for FP8 speed.
        "tflops": None if row.numerics_only else tflops,
        "reason": NUMERICS_ONLY_NOTE if row.numerics_only else None,
    })


def fp8_variants(fast_accum: bool | None) -> list[bool]:
    """use_fast_accum values to time: both by default. Training runs both: TE's forward GEMM
    (module/base.py _2X_ACC_FPROP = False: no split accumulator) and torchao's output GEMM
    (Float8LinearConfig.gemm_config_output = Float8GemmConfig(use_fast_accum=True)) use fast
    accumulation, their backward GEMMs do not (both read upstream)."""
    return [False, True] if fast_accum is None else [fast_accum]


def run_gemm(shapes: list[GemmShape], dtypes: list[DtypeKey], device: torch.device,
             timing: TimingConfig, fast_accum: bool | None = None,
             on_row: Callable[[GemmRow], None] | None = None) -> list[GemmRow]:
    """Every (shape, dtype) case, fp8 in each accumulation variant; the fp32 reference of a
    shape is computed once."""
    rows = []
    for shape in shapes:
        try:
            a, b = operands(shape, device)
            with matmul_precision("highest"):
                ref: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = (a, b, a @ b)
        except torch.OutOfMemoryError:
            ref = None  # each case then tries (and records) on its own
            torch.cuda.empty_cache()
        for key in dtypes:
            for fast in fp8_variants(fast_accum) if key == "fp8" else [False]:
                row = measure_gemm(shape, key, device, timing, ref, fast)
                rows.append(row)
                if on_row:
                    on_row(row)
        del ref
    return rows


# -- the alignment sweep ---------------------------------------------------------------------

def multiple_of(*dims: int, cap: int = 16) -> int:
    """Largest power of two, at most `cap`, that divides every dim."""
    g = math.gcd(*dims)
    m = 1
    while m < cap and g % (m * 2) == 0:
        m *= 2
    return m


def alignment_shapes(base: int, offsets: list[int]) -> list[tuple[int, GemmShape]]:
    return [(off, GemmShape(f"align{base}{off:+d}" if off else f"align{base}", base, base + off,
                            base + off)) for off in offsets]


def add_relative(rows: list[AlignmentRow]) -> list[AlignmentRow]:
    """Each row's TFLOP/s over the offset-0 row of its dtype."""
    aligned = {r.dtype: r.tflops for r in rows if r.offset == 0 and r.tflops}
    return [r.model_copy(update={"relative_to_aligned": r.tflops / aligned[r.dtype]})
            if r.tflops and aligned.get(r.dtype) else r for r in rows]


def run_alignment(base: int, offsets: list[int], dtypes: list[DtypeKey], device: torch.device,
                  timing: TimingConfig, fast_accum: bool = False,
                  on_row: Callable[[AlignmentRow], None] | None = None) -> list[AlignmentRow]:
    rows = []
    for off, shape in alignment_shapes(base, offsets):
        try:
            a, b = operands(shape, device, seed=1)
            with matmul_precision("highest"):
                ref: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = (a, b, a @ b)
        except torch.OutOfMemoryError:
            ref = None
            torch.cuda.empty_cache()
        for key in dtypes:
            g = measure_gemm(shape, key, device, timing, ref, fast_accum)
            row = AlignmentRow(**g.model_dump(), base=base, offset=off,
                               multiple_of=multiple_of(shape.n, shape.k))
            rows.append(row)
            if on_row:
                on_row(row)
        del ref
    return add_relative(rows)
