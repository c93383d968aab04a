"""Issue 13: one MFU module, one dtype vocabulary, one best-GEMM function, no MFU above 100%."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from fixture_records import (
    bench_record,
    gemm_row,
    gpu_env,
    payload,
    record,
    write_results,
)
from torch import nn

from mpbench.bench.bandwidth import measure_op
from mpbench.bench.ceiling import best_gemm, best_gemm_per_dtype, best_tflops, model_gemm_ceiling
from mpbench.bench.gemm import GemmShape, measure_gemm
from mpbench.bench.timing import TimingConfig
from mpbench.cli.main import cli
from mpbench.dtypes import dtype_key, recipe_gemm_key
from mpbench.mfu import achieved_tflops, against, mfu_figures, peak_tflops
from mpbench.precision import get_recipe
from mpbench.report.blocks import Table
from mpbench.report.resultset import ResultSet
from mpbench.report.sections_kernels import compute_key, mfu_blocks
from mpbench.results.payloads import MfuResult

H100 = "NVIDIA H100 80GB HBM3"
EXAMPLES = Path(__file__).resolve().parent.parent / "reports"


@pytest.mark.unit
def test_one_vocabulary_for_peaks_recipes_and_bench() -> None:
    # the peak table, the recipes and the micro-benchmarks use the same keys
    assert peak_tflops(H100, "fp8") == peak_tflops(H100, "float8") == (
        1978.9, peak_tflops(H100, "bf16")[1])  # type: ignore[index]
    assert peak_tflops("NVIDIA B200", "fp4") is not None
    assert {get_recipe(n).gemm_key() for n in ("fp32", "tf32", "fp16", "bf16", "bf16-pure")} == {
        "fp32", "tf32", "fp16", "bf16"}
    assert get_recipe("fp8-te-delayed").gemm_key() == "fp8"
    assert get_recipe("fp4-te-nvfp4").gemm_key() == "fp4"  # of the fp8 family, FP4 GEMMs
    assert get_recipe("fp4-te-nvfp4").describe()["gemm_dtype"] == "fp4"
    assert dtype_key("torch.bfloat16") == "bf16" and dtype_key("e2m1") == "fp4"
    # old records (no gemm_dtype) get theirs from family, compute dtype and matmul mode
    assert recipe_gemm_key("fp32", "float32", "high") == "tf32"
    assert recipe_gemm_key("fp16", "float16") == "fp16"
    assert compute_key(record("fp8-te")) == "fp8"
    with pytest.raises(ValueError, match="unknown dtype"):
        dtype_key("int3")
    # the micro-benchmarks take every key; one without a torch kernel is skipped with its reason
    quick = TimingConfig(warmup=1, min_reps=1, max_reps=2, min_time_s=0.01, max_case_s=0.1)
    cpu = torch.device("cpu")
    gemm = measure_gemm(GemmShape("square", 32, 32, 32), "fp4", cpu, quick)
    assert gemm.status == "skipped" and "fp4 has no GEMM path" in (gemm.reason or "")
    assert measure_op("add", "fp4", 1024, 64, cpu, quick).status == "skipped"


@pytest.mark.unit
def test_mfu_numbers_against_spec_peak_and_ceiling() -> None:
    assert achieved_tflops(6e9, 1e5) == pytest.approx(600.0)
    f = mfu_figures(494.7, "bf16", "cuda", H100, ceiling=700.0, ceiling_source="bench")
    assert f.spec_peak_tflops == 989.4 and f.mfu_vs_spec == pytest.approx(0.5)
    assert f.mfu_vs_ceiling == pytest.approx(494.7 / 700.0) and f.ceiling_note is None
    assert "H100 datasheet" in (f.spec_source or "")
    cpu = mfu_figures(0.05, "fp32", "cpu", None, ceiling=0.2)
    assert cpu.mfu_vs_spec is None and "no spec peak table for CPUs" in (cpu.spec_note or "")
    assert cpu.mfu_vs_ceiling == pytest.approx(0.25)
    emulated = mfu_figures(0.05, "fp8", "cpu", None, ceiling=0.2, numerics_only=True)
    assert emulated.mfu_vs_ceiling is None and "numerics-only" in (emulated.ceiling_note or "")


@pytest.mark.unit
def test_a_ceiling_that_training_beats_is_no_ceiling() -> None:
    f = mfu_figures(0.0078, "fp16", "cpu", None, ceiling=0.0062)
    assert f.mfu_vs_ceiling is None and f.ceiling_tflops == 0.0062
    assert f.ceiling_note == ("no valid ceiling: training reached 0.0078 TFLOP/s, above the "
                              "measured 0.0062")
    assert against(1.0, 1.0) == (1.0, None)  # exactly at the ceiling is still valid
    assert against(2.0, 1.0)[0] is None and against(None, 1.0) == (None, None)


@pytest.mark.unit
def test_best_gemm_is_one_selection() -> None:
    rows = [gemm_row("bf16", 512, 10.0), gemm_row("bf16", 1024, 30.0),
            gemm_row("bf16", 2048, 90.0, numerics_only=True),  # speed means nothing
            gemm_row("bf16", 4096, 99.0, status="failed", reason="x"),
            gemm_row("fp16", 1024, 25.0), gemm_row("fp32", 1024, None)]
    align = [{**gemm_row("bf16", 1000, 35.0), "base": 1024, "offset": -24, "multiple_of": 8}]
    other = bench_record("gemm", [gemm_row("bf16", 1024, 500.0)], gpu_env())
    bench = [bench_record("gemm", rows), bench_record("alignment", align), other]
    best = best_gemm(bench, "bfloat16", "Test CPU")
    assert best is not None and best.tflops == 35.0 and best.k == 1000  # alignment rows count
    assert best_tflops(bench, "bf16") == 500.0  # any device when none is named
    assert best_gemm(bench, "fp32") is None  # an untimed row is no ceiling
    assert {k: r.tflops for k, r in best_gemm_per_dtype(bench, "Test CPU").items()} == {
        "fp16": 25.0, "bf16": 35.0}


@pytest.mark.unit
def test_model_ceiling_times_the_models_own_linears_under_the_recipe() -> None:
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32, bias=False))
    got = model_gemm_ceiling(model, get_recipe("bf16"), torch.device("cpu"), tokens=64)
    assert got is not None and got[0] > 0
    assert "2 linear GEMMs (2 shapes) at 64 tokens under the bf16 recipe" in got[1]
    assert f"{torch.get_num_threads()} torch threads" in got[1]
    assert model_gemm_ceiling(model, get_recipe("fp8-emulated"), torch.device("cpu"), 64) is None


def _mfu_table(s: ResultSet) -> Table:
    [table] = [b for b in mfu_blocks(s) if isinstance(b, Table)]
    return table


@pytest.mark.unit
def test_report_reads_the_records_figures_and_says_no_valid_ceiling(tmp_path: Path) -> None:
    achieved = record("fp32").achieved_tflops  # 6e6 FLOPs/token x 512 tokens / 0.1 s
    assert achieved == pytest.approx(0.03072)
    mfu = {"mfu": payload(MfuResult, dtype="fp32", ceiling_tflops=0.12288)}
    beaten = {"mfu": payload(MfuResult, dtype="fp16", ceiling_tflops=0.01)}
    path = write_results(tmp_path / "r", [record("fp32", profiler_results=mfu),
                                          record("fp16", profiler_results=beaten)])
    table = _mfu_table(ResultSet.load(path))
    ceiling_col = table.columns.index("MFU (ceiling)")
    note_col = table.columns.index("ceiling note")
    fp32, fp16 = table.rows
    assert fp32[ceiling_col].sort == pytest.approx(0.25)
    assert fp16[ceiling_col].sort is None
    assert fp16[note_col].text.startswith("no valid ceiling: training reached 0.03072 TFLOP/s, above the measured 0.01")


# the gpt-cpu example as it was committed under schema 1, whose report printed 128-203%
SCHEMA_1 = Path(__file__).resolve().parent / "data" / "schema1-gpt-cpu"


def _example_dirs() -> list[Path]:
    return [*sorted(p for p in EXAMPLES.iterdir() if (p / "runs").is_dir()), SCHEMA_1]


@pytest.mark.integration
def test_no_report_of_the_committed_examples_shows_mfu_above_100_percent(tmp_path: Path) -> None:
    dirs = _example_dirs()
    assert dirs, "the committed examples are missing"
    for d in dirs:
        table = _mfu_table(ResultSet.load(d))
        for col in ("MFU (spec)", "MFU (ceiling)"):
            i = table.columns.index(col)
            assert all(row[i].sort is None or float(row[i].sort) <= 1.0 for row in table.rows), d
    # and in the HTML as rendered: no percentage above 100 in the MFU table
    out = tmp_path / "x.html"
    result = CliRunner().invoke(cli, ["report", str(SCHEMA_1), "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    table_html = html[html.index("MFU (ceiling)"):]
    table_html = table_html[:table_html.index("</table>")]
    assert "no valid ceiling: training reached" in table_html  # the fp16 runs beat the GEMM
    assert all(float(p) <= 100.0 for p in re.findall(r">(\d+(?:\.\d+)?)%<", table_html))
