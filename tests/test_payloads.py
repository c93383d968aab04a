"""Every stored profiler result reads back as its typed model (results/payloads/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpbench.config.parallel import ParallelRun
from mpbench.profilers import PROFILERS
from mpbench.report.sections_quality import gpm_line
from mpbench.results.payloads import (
    RESULTS,
    GpmMetrics,
    NvmlResult,
    ParallelResult,
    ProfileResult,
    TensorCoreResult,
)
from mpbench.results.recipe_card import recipe_card
from mpbench.results.store import load_records

ROOT = Path(__file__).resolve().parent.parent
RECORDED = sorted({p.parent.parent for p in (ROOT / "reports").glob("*/runs/*.json")}
                  | {p.parent.parent for p in (ROOT / "tests/data").glob("*/runs/*.json")})


@pytest.mark.unit
@pytest.mark.parametrize("results_dir", RECORDED, ids=lambda p: p.name)
def test_committed_profiler_results_validate_against_their_models(results_dir: Path) -> None:
    seen = 0
    for r in load_records(results_dir):
        for name, found in r.profiler_results.items():
            if name in RESULTS and isinstance(found, dict) and "skipped" not in found:
                assert RESULTS[name].stored(found) == json.loads(json.dumps(found)), name
                seen += 1
    assert seen > 0


@pytest.mark.unit
def test_every_profiler_binds_the_model_it_stores() -> None:
    for name, cls in PROFILERS.items():
        assert cls.Result is not ProfileResult, name
        assert RESULTS[name] is cls.Result, name


@pytest.mark.unit
def test_parallel_result_names_every_parallel_run_setting() -> None:
    """merge() stores ParallelRun.model_dump() there: a new setting must be a field too."""
    assert set(ParallelRun.model_fields) <= set(ParallelResult.model_fields)


@pytest.mark.unit
def test_a_renamed_kernel_field_is_refused() -> None:
    with pytest.raises(ValueError, match=r"top_kernels\.0\.time_ms"):
        TensorCoreResult.stored({"buckets": {"matmul": 1.0}, "top_kernels": [
            {"name": "mm", "bucket": "matmul", "time_ms": 1.0, "share": 1.0}]})


@pytest.mark.unit
@pytest.mark.parametrize("results_dir", RECORDED, ids=lambda p: p.name)
def test_committed_recipes_read_as_recipe_cards(results_dir: Path) -> None:
    for r in load_records(results_dir):
        card = recipe_card(r)
        assert (card.family, card.numerics_only) == (r.recipe["family"], r.recipe["numerics_only"])
        fp8 = r.recipe.get("fp8")
        assert (card.fp8 is None) == (fp8 is None)
        if card.fp8 is not None and fp8 is not None:
            assert card.fp8.layers_in_fp8 == fp8["layers_in_fp8"]


@pytest.mark.unit
def test_gpm_line_reads_nvml_percentages() -> None:
    """NVML GPM metrics are percentages (0-100), not fractions; a failed metric says so."""
    gpm = GpmMetrics(sm_util=85.2, any_tensor_util=0.5, hmma_tensor_util=None, dram_bw_util=40.0,
                     fp32_util=3.0, errors={"hmma_tensor_util": "nvmlReturn 3 (metric 7)"})
    assert gpm_line(NvmlResult(gpm=gpm)) == ("sm_util 85%, any_tensor_util 0%, hmma_tensor_util "
                                             "failed, dram_bw_util 40%, fp32_util 3%")
    assert gpm_line(NvmlResult(gpm_unsupported="pre-Hopper")) == "unsupported: pre-Hopper"
    assert gpm_line(NvmlResult()) == "-"
