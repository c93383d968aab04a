"""The report's sections in order: each is one block builder applied to every result set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mpbench.report.blocks import Block, Section, SetBlocks
from mpbench.report.resultset import ResultSet
from mpbench.report.sections_explain import waterfall_blocks
from mpbench.report.sections_fingerprint import fingerprint_section
from mpbench.report.sections_kernels import (
    fp8_blocks,
    mfu_blocks,
    microbench_blocks,
    tensor_core_blocks,
)
from mpbench.report.sections_meta import env_blocks, failures_blocks
from mpbench.report.sections_perf import comparison_section, memory_blocks, throughput_blocks
from mpbench.report.sections_quality import energy_blocks, loss_blocks, numerics_blocks
from mpbench.report.sections_scaling import scaling_section


@dataclass(frozen=True)
class PerSet:
    """A section whose every result set gets the blocks `build` makes from it."""

    id: str
    title: str
    intro: str
    build: Callable[[ResultSet], list[Block]]

    def section(self, sets: list[ResultSet]) -> Section:
        return Section(self.id, self.title, self.intro,
                       [SetBlocks(s.label, self.build(s)) for s in sets])


def _tensor_core_blocks(s: ResultSet) -> list[Block]:
    return tensor_core_blocks(s) + mfu_blocks(s) + fp8_blocks(s)


ENVIRONMENT = PerSet("environment", "Environment",
                     "The machine, software and suite each result set was measured with.",
                     env_blocks)
THROUGHPUT = PerSet("throughput", "Throughput",
                    "Tokens per second over the measured window (after warm-up), and each "
                    "precision's speedup over strict FP32 for the same model, batch and "
                    "sequence.", throughput_blocks)
AFTER_COMPARISON = (
    PerSet("memory", "Memory and max batch",
           "Peak memory per run, broken down by what holds it where the memory profiler ran, "
           "and the largest batch each precision fits.", memory_blocks),
    PerSet("tensor-cores", "Tensor Core share and MFU",
           "Where the device time goes, and model FLOP utilisation against the dtype's spec "
           "peak and against the best GEMM measured on this device.", _tensor_core_blocks),
    PerSet("explain", "Where the time went, and which layers to convert",
           "Each recipe's measured step-time difference from its baseline (FP32; BF16 for FP8) "
           "split into GEMMs, attention, casts, norm and elementwise work, optimizer, "
           "communication and the unattributed rest; the per-layer advisor's timings, filter "
           "and its prediction against trained runs.", waterfall_blocks),
    PerSet("microbench", "Micro-benchmarks",
           "GEMM throughput per dtype, the alignment penalty, bandwidth-bound ops, and the "
           "end-to-end gain predicted from them next to the measured one.", microbench_blocks),
    PerSet("loss", "Loss curves and quality",
           "Training loss per step: FP32's band over seeds as the convergence verdict "
           "judges it (mean ± band_k stdev, extensions.convergence.band_k) and the mean "
           "curve of every other precision; final and eval losses.", loss_blocks),
    PerSet("numerics", "Numerics",
           "Loss-scale history, skipped steps, gradient underflow and overflow.",
           numerics_blocks),
    PerSet("energy", "Energy per token",
           "GPU energy over the measured window (NVML), per token trained.", energy_blocks),
    PerSet("failures", "Skipped and failed runs",
           "A run that could not run or did not finish is a result: here is why.",
           failures_blocks),
)


def sections(sets: list[ResultSet]) -> list[Section]:
    """Environment, throughput, the cross-set comparison (two sets or more), then the rest."""
    cmp = comparison_section(sets)
    scaling = scaling_section(sets)  # distributed runs only
    fp = fingerprint_section(sets)  # result sets with numerics fingerprints
    return [ENVIRONMENT.section(sets), THROUGHPUT.section(sets), *([cmp] if cmp else []),
            *([scaling] if scaling else []), *([fp] if fp else []),
            *(p.section(sets) for p in AFTER_COMPARISON)]
