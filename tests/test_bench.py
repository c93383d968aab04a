"""Micro-benchmarks: FLOP and byte accounting, timing plans, prediction math, store, config, CLI."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from mpbench.bench.bandwidth import measure_op, op_bytes, run_bandwidth
from mpbench.bench.ceiling import best_tflops, measured_ceiling_tflops
from mpbench.bench.config import load_microbench
from mpbench.bench.gemm import (
    GemmShape,
    fp8_shape_problem,
    measure_gemm,
    multiple_of,
    quantize_fp8,
    run_alignment,
    run_gemm,
    transformer_shapes,
)
from mpbench.bench.predict import (
    amdahl,
    gemm_share_from_buckets,
    gemm_share_from_record,
    gemm_speedup,
    predict,
    roofline,
    run_predictions,
)
from mpbench.bench.rows import BandwidthRow, GemmRow
from mpbench.bench.store import BenchRecord, bench_frame, load_bench, prepare_out, write_bench
from mpbench.bench.timing import TimingConfig, plan_reps
from mpbench.cli.main import cli
from mpbench.dtypes import dtype_key
from mpbench.errors import UserError
from mpbench.results.key import make_key
from mpbench.results.payloads import TensorCoreResult
from mpbench.results.schema import RunRecord
from mpbench.results.store import ResultsDir

CPU = torch.device("cpu")
FAST = TimingConfig(warmup=1, min_reps=3, max_reps=10, min_time_s=0.02, max_case_s=0.5)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Other processes share the 2 cores; two OpenMP threads then stall unpredictably.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- GEMM


@pytest.mark.unit
def test_gemm_fp32_flops_and_plausible_cpu_speed() -> None:
    row = measure_gemm(GemmShape("square", 256, 192, 128), "fp32", CPU, FAST)
    assert row.status == "ok" and row.flops == 2 * 256 * 192 * 128
    assert row.reps >= 3 and row.time_ms is not None and row.tflops is not None
    assert row.tflops == pytest.approx(row.flops / (row.time_ms * 1e-3) / 1e12)
    assert 0.001 <= row.tflops <= 5.0  # 1-2 CPU cores: GFLOP/s to a few TFLOP/s at most
    assert row.rel_error is None and not row.numerics_only


@pytest.mark.unit
def test_gemm_16bit_errors_match_their_mantissas() -> None:
    rows = {r.dtype: r for r in run_gemm([GemmShape("square", 64, 64, 64)], ["bf16", "fp16"], CPU, FAST)}
    # bf16 has 8 mantissa bits, fp16 11: relative errors near 2^-9 and 2^-12.
    assert rows["bf16"].rel_error is not None and 3e-4 < rows["bf16"].rel_error < 1e-2
    assert rows["fp16"].rel_error is not None and 3e-5 < rows["fp16"].rel_error < 1e-3
    assert rows["fp16"].rel_error < rows["bf16"].rel_error


@pytest.mark.unit
def test_fp8_on_cpu_is_numerics_only_and_tf32_is_skipped() -> None:
    fp8 = measure_gemm(GemmShape("square", 64, 64, 64), "fp8", CPU, FAST)
    assert fp8.status == "ok" and fp8.numerics_only and fp8.tflops is None
    assert fp8.reason and "numerics only" in fp8.reason
    assert fp8.rel_error is not None and 5e-3 < fp8.rel_error < 0.1  # e4m3: 3 mantissa bits
    tf32 = measure_gemm(GemmShape("square", 64, 64, 64), "tf32", CPU, FAST)
    assert tf32.status == "skipped" and tf32.reason and "CUDA" in tf32.reason


@pytest.mark.unit
def test_fp8_refuses_k_or_n_off_sixteen() -> None:
    assert fp8_shape_problem(64, 64, 64) is None
    assert fp8_shape_problem(64, 64, 255) == "FP8 GEMM needs K and N divisible by 16 (K=255)"
    row = measure_gemm(GemmShape("square", 64, 20, 64), "fp8", CPU, FAST)
    assert row.status == "unsupported" and "N=20" in (row.reason or "") and "on a CPU" in (row.reason or "")


@pytest.mark.unit
def test_quantize_fp8_maps_amax_to_448() -> None:
    x = torch.tensor([[-3.0, 0.5], [1.5, 2.0]])
    q, scale = quantize_fp8(x)
    assert q.dtype == torch.float8_e4m3fn and scale.item() == pytest.approx(3.0 / 448)
    assert q.float().abs().max().item() == 448.0
    assert torch.allclose(q.float() * scale, x, rtol=0.07)


@pytest.mark.unit
def test_transformer_shapes_follow_the_model_dims() -> None:
    shapes = {s.label: s for s in transformer_shapes("gpt2-small", 8, backward=True)}
    assert (shapes["gpt2-small.qkv"].n, shapes["gpt2-small.qkv"].k) == (3 * 768, 768)
    assert (shapes["gpt2-small.mlp_down"].n, shapes["gpt2-small.mlp_down"].k) == (768, 3072)
    assert shapes["gpt2-small.lm_head"].n == 50304
    dgrad, wgrad = shapes["gpt2-small.mlp_up.dgrad"], shapes["gpt2-small.mlp_up.wgrad"]
    assert (dgrad.m, dgrad.n, dgrad.k) == (8, 768, 3072)
    assert (wgrad.m, wgrad.n, wgrad.k) == (3072, 768, 8)
    llama = {s.label: s for s in transformer_shapes("llama-1b", 8)}
    assert llama["llama-1b.qkv"].n == 2048 + 2 * 8 * 64  # grouped-query: 8 kv heads of 64
    assert len(llama) == 5


@pytest.mark.unit
def test_plan_reps_fills_the_budget_within_limits() -> None:
    cfg = TimingConfig(min_reps=5, max_reps=100, min_time_s=0.2, max_case_s=1.0)
    assert plan_reps(0.01, cfg) == 20
    assert plan_reps(1e-6, cfg) == 100
    assert plan_reps(0.1, cfg) == 5  # min_reps even when max_case_s allows fewer
    assert plan_reps(0.001, cfg.model_copy(update={"max_case_s": 0.01})) == 10


@pytest.mark.unit
def test_dtype_aliases() -> None:
    assert dtype_key(torch.bfloat16) == "bf16" and dtype_key("float16") == "fp16"
    assert dtype_key("float8") == "fp8" and dtype_key("tf32") == "tf32"
    with pytest.raises(ValueError, match="unknown dtype"):
        dtype_key("int8")


# ---------------------------------------------------------------- alignment and bandwidth


@pytest.mark.unit
def test_alignment_rows_for_each_size_and_dtype() -> None:
    assert [multiple_of(n, n) for n in (4096, 4095, 4100, 4104)] == [16, 1, 4, 8]
    rows = run_alignment(64, [0, -1, 8], ["fp32", "bf16"], CPU, FAST)
    assert [(r.n, r.k, r.m, r.dtype) for r in rows] == [
        (64, 64, 64, "fp32"), (64, 64, 64, "bf16"), (63, 63, 64, "fp32"), (63, 63, 64, "bf16"),
        (72, 72, 64, "fp32"), (72, 72, 64, "bf16")]
    for r in rows:
        assert r.status == "ok" and r.tflops and r.relative_to_aligned
        aligned = next(a for a in rows if a.dtype == r.dtype and a.offset == 0)
        assert r.relative_to_aligned == pytest.approx(r.tflops / aligned.tflops)
    assert [r.relative_to_aligned for r in rows if r.offset == 0] == [1.0, 1.0]


@pytest.mark.unit
def test_bandwidth_bytes_per_dtype() -> None:
    assert op_bytes("add", 1000, 100, 4) == 12000
    assert op_bytes("layer_norm", 1000, 100, 2) == (2000 + 200) * 2
    n = 1 << 18
    rows = {r.dtype: r for r in run_bandwidth(["add"], ["fp32", "bf16"], n, 256, CPU, FAST)}
    assert rows["fp32"].bytes == 3 * n * 4 and rows["bf16"].bytes == 3 * n * 2
    assert rows["bf16"].bytes_per_element == 2
    for r in rows.values():
        assert r.status == "ok" and r.time_ms and r.gbps and r.elements_per_s
        assert r.gbps == pytest.approx(r.bytes / (r.time_ms * 1e-3) / 1e9)
        assert r.elements_per_s == pytest.approx(n / (r.time_ms * 1e-3))
    assert rows["fp32"].vs_fp32 == 1.0
    assert rows["bf16"].vs_fp32 == pytest.approx(rows["bf16"].elements_per_s / rows["fp32"].elements_per_s)
    ln = measure_op("layer_norm", "fp16", 1000, 300, CPU, FAST)
    assert ln.elements == 900 and ln.bytes == (1800 + 600) * 2  # whole rows only


# ---------------------------------------------------------------- prediction


def gemm_row(dtype: str, n: int, tflops: float | None, **kw: Any) -> GemmRow:
    return GemmRow(dtype=dtype, shape="square", m=n, n=n, k=n, flops=2 * n**3, tflops=tflops, **kw)


def bw_row(dtype: str, vs: float) -> BandwidthRow:
    return BandwidthRow(dtype=dtype, op="add", elements=1, bytes=1, bytes_per_element=1, vs_fp32=vs)


@pytest.mark.unit
def test_amdahl_and_roofline() -> None:
    assert amdahl(0.5, 2.0) == pytest.approx(1 / 0.75)
    assert amdahl(1.0, 3.0) == pytest.approx(3.0) and amdahl(0.0, 3.0) == 1.0
    assert roofline(0.6, 4.0, 1.0) == amdahl(0.6, 4.0)
    assert roofline(0.5, 4.0, 2.0) == pytest.approx(1 / (0.25 + 0.125))


@pytest.mark.unit
def test_gemm_speedup_is_the_median_over_common_shapes() -> None:
    rows = [gemm_row("fp32", 64, 1.0), gemm_row("fp32", 128, 2.0), gemm_row("fp32", 256, 2.0),
            gemm_row("bf16", 64, 2.0), gemm_row("bf16", 128, 8.0), gemm_row("bf16", 256, 6.0),
            gemm_row("bf16", 512, 100.0),  # no fp32 partner: ignored
            gemm_row("fp8", 64, 50.0, numerics_only=True)]
    value, basis = gemm_speedup(rows, "bf16", "fp32") or (0, "")
    assert value == 3.0 and "3 shapes" in basis  # ratios 2, 4, 3
    assert gemm_speedup(rows, "fp8", "bf16") is None
    p = predict(rows, [bw_row("fp32", 1.0), bw_row("bf16", 1.8)], "bf16", "fp32", 0.8, "assumed")
    assert p.predicted_amdahl == pytest.approx(1 / (0.2 + 0.8 / 3))
    assert p.predicted_roofline == pytest.approx(1 / (0.2 / 1.8 + 0.8 / 3))
    skipped = predict(rows, [], "fp8", "bf16", 0.8, "assumed")
    assert skipped.status == "skipped" and skipped.predicted_amdahl is None


@pytest.mark.unit
def test_gemm_share_from_buckets_in_dict_and_list_form() -> None:
    buckets = {"gemm_bf16": 60.0, "attention": 20.0, "communication": 10.0, "elementwise": 10.0}
    assert gemm_share_from_buckets(buckets) == pytest.approx(0.6)
    as_list = [{"name": "gemm_fp8", "share": 0.3}, {"name": "simt_gemm", "share": 0.2},
               {"name": "fp8_cast", "share": 0.5}]
    assert gemm_share_from_buckets(as_list) == pytest.approx(0.5)
    assert gemm_share_from_buckets({}) is None


def kernel_buckets(**shares: float) -> dict[str, Any]:
    """A tensor_cores result with these bucket shares, built through its typed model."""
    return TensorCoreResult(buckets=shares).model_dump(mode="json", exclude_unset=True)


def run_record(precision: str, family: str, tps: float, **kw: Any) -> RunRecord:
    fields: dict[str, Any] = dict(
        run_id=f"gpt-tiny-{precision}-s0", suite="t", profile="cpu", model="gpt-tiny", model_dims={},
        precision=precision, recipe={"family": family}, seed=0, batch_size=1, seq_len=8, train={},
        device="cpu", device_name="test-cpu", status="ok", tokens_per_step=8, tokens_per_s=tps,
        env={}, started_at="2026-01-01T00:00:00", finished_at="2026-01-01T00:00:01", duration_s=1.0)
    fields.update(kw)
    fields.setdefault("config_key", make_key("gpt-tiny", precision, {},
                                             {"batch_size": 1, "seq_len": 8}, [], None, "cpu"))
    return RunRecord(**fields)


@pytest.mark.unit
def test_predictions_from_training_runs() -> None:
    profiled = run_record("fp32", "fp32", 1000.0, profiler_results={"tensor_cores": kernel_buckets(gemm=3, other=1)})
    assert gemm_share_from_record(profiled, None) == (0.75, f"tensor_cores profile of run {profiled.run_id}")
    flops_only = run_record("fp32", "fp32", 1000.0, achieved_tflops=0.05)
    share, source = gemm_share_from_record(flops_only, 0.2) or (0.0, "")
    assert share == pytest.approx(0.25) and "FLOP share" in source
    assert gemm_share_from_record(flops_only, None) is None
    assert gemm_share_from_record(flops_only, 0.04) is None  # a beaten ceiling gives no share
    rows = [gemm_row("fp32", 64, 1.0), gemm_row("bf16", 64, 4.0)]
    bf16 = run_record("bf16", "bf16", 1500.0)
    out = run_predictions(rows, [], [profiled, bf16], lambda d: None)
    assert len(out) == 1 and (out[0].dtype, out[0].baseline) == ("bf16", "fp32")
    assert out[0].gemm_share == 0.75 and out[0].predicted_amdahl == pytest.approx(1 / (0.25 + 0.75 / 4))
    assert out[0].measured_speedup == pytest.approx(1.5)


# ---------------------------------------------------------------- store and ceiling


def bench_record(rows: list[GemmRow], name: str = "test-cpu") -> BenchRecord:
    return BenchRecord(benchmark="gemm", suite="t", profile="cpu", device="cpu", device_name=name,
                       rows=[r.model_dump() for r in rows], env={"cpu": {}},
                       started_at="2026-01-01T00:00:00", finished_at="2026-01-01T00:00:01",
                       duration_s=1.0)


@pytest.mark.unit
def test_store_round_trip_and_frame(tmp_path: Path) -> None:
    prepare_out(tmp_path / "r", "t", {}, "name: t\n")
    rec = bench_record([gemm_row("fp32", 64, 0.1), gemm_row("bf16", 64, 0.3)])
    write_bench(tmp_path / "r", rec)
    [back] = load_bench(tmp_path / "r")
    assert back.rows == rec.rows and back.benchmark == "gemm"
    assert load_bench(tmp_path / "r" / "bench" / "gemm.json")[0].rows == rec.rows
    frame = bench_frame([back])
    assert list(frame["dtype"]) == ["fp32", "bf16"] and list(frame["tflops"]) == [0.1, 0.3]
    assert set(frame["benchmark"]) == {"gemm"}


@pytest.mark.unit
def test_store_errors_on_corrupt_and_foreign_files(tmp_path: Path) -> None:
    prepare_out(tmp_path, "t", {}, "name: t\n")
    assert load_bench(tmp_path) == []
    path = tmp_path / "bench" / "gemm.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match=r"gemm.json: corrupt JSON at line 1"):
        load_bench(tmp_path)
    path.write_text(json.dumps({"kind": "train", "schema_version": 1}))
    with pytest.raises(UserError, match="not an mpbench bench record"):
        load_bench(tmp_path)
    raw = json.loads(bench_record([gemm_row("fp32", 64, 0.1)]).model_dump_json())
    path.write_text(json.dumps({**raw, "schema_version": 99}))
    with pytest.raises(UserError, match="newer than this mpbench reads"):
        load_bench(tmp_path)
    del raw["rows"][0]["m"]
    path.write_text(json.dumps(raw))
    with pytest.raises(UserError, match=r"corrupt bench record: .*m: required key is missing"):
        load_bench(tmp_path)
    with pytest.raises(UserError, match="not an mpbench results directory"):
        load_bench(tmp_path / "bench")


@pytest.mark.unit
def test_prepare_out_keeps_training_results(tmp_path: Path) -> None:
    ResultsDir(tmp_path).create("gpt", {}, "name: gpt\n")
    prepare_out(tmp_path, "microbench", {}, "name: microbench\n")
    assert (tmp_path / "suite.yaml").read_text() == "name: gpt\n"
    assert (tmp_path / "bench" / "suite.yaml").read_text() == "name: microbench\n"
    write_bench(tmp_path, bench_record([gemm_row("fp32", 64, 0.1)]))
    with pytest.raises(UserError, match="already holds bench results"):
        prepare_out(tmp_path, "microbench", {}, "")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(UserError, match="not empty and not an mpbench results directory"):
        prepare_out(tmp_path / "other", "microbench", {}, "")


@pytest.mark.unit
def test_measured_ceiling_from_records_and_quick_measure() -> None:
    recs = [bench_record([gemm_row("bf16", 64, 0.3), gemm_row("bf16", 128, 0.5),
                          gemm_row("bf16", 256, 0.9, status="failed"),
                          gemm_row("fp8", 64, 9.0, numerics_only=True)]),
            bench_record([gemm_row("bf16", 64, 7.0)], name="another-machine")]
    assert best_tflops(recs, "bf16", "test-cpu") == 0.5
    assert best_tflops(recs, "fp8", "test-cpu") is None
    # This machine's name differs from "test-cpu": the records do not count, and no measuring.
    assert measured_ceiling_tflops("cpu", torch.bfloat16, recs, measure=False) is None
    assert measured_ceiling_tflops("cpu", "fp8") is None  # numerics only on a CPU
    assert measured_ceiling_tflops("cpu", "tf32") is None
    fp32 = measured_ceiling_tflops("cpu", "float32")
    assert fp32 is not None and 0.001 <= fp32 <= 5.0


# ---------------------------------------------------------------- config and CLI


@pytest.mark.unit
def test_bundled_suite_profiles() -> None:
    cpu = load_microbench("suites/microbench.yaml", "cpu")
    cuda = load_microbench("suites/microbench.yaml", "cuda")
    assert cpu.profile == "cpu" and max(cpu.gemm.square) <= 512
    assert cuda.gemm.square[-1] == 16384 and cuda.alignment.base == 4096
    assert "fp8" in cuda.alignment.dtypes and cuda.gemm.backward_shapes
    quick = cpu.quick()
    assert quick.gemm.square == cpu.gemm.square[:1] and quick.timing.min_time_s < cpu.timing.min_time_s


@pytest.mark.unit
@pytest.mark.parametrize(("text", "message"), [
    ("name: m\ngemm: {sqare: [64]}\n", "gemm.sqare: unknown key; did you mean 'square'?"),
    ("name: m\nalignment: {base: 4095}\n", "alignment.base: input should be a multiple of 16"),
    ("name: m\nalignment: {offsets: [1, 2]}\n", "alignment: offsets must include 0"),
    ("name: m\ndevices: {cpu: {gemm: {models: [gpt-huge]}}}\n",
     "devices.cpu.gemm.models: unknown model 'gpt-huge'"),
    ("name: m\nbandwidth: {dtypes: [fp8]}\n", "bandwidth.dtypes[0]: input should be"),
    ("name: m\nmodels: [gpt-tiny]\nprecisions: [fp32]\n", "is a training suite"),
    ("name: m\ngemm: [\n", "YAML syntax error"),
])
def test_config_errors_name_the_dotted_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=None) as info:
        load_microbench(path, "cpu")
    assert message in str(info.value)


TINY = """
name: tiny
threads: 1
timing: {warmup: 1, min_reps: 2, max_reps: 5, min_time_s: 0.01, max_case_s: 0.2}
gemm: {dtypes: [fp32, tf32, bf16, fp8], square: [64], models: [gpt-tiny], tokens: 32}
alignment: {dtypes: [fp32], base: 32, offsets: [0, -1]}
bandwidth: {dtypes: [fp32, bf16], ops: [add, layer_norm], elements: 65536, hidden: 256}
prediction: {gemm_shares: [0.5]}
"""


@pytest.mark.integration
def test_cli_bench_writes_records_and_summary(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["bench", str(suite), "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "GEMM TFLOP/s per dtype" in result.output and "numerics only" in result.output
    records = {r.benchmark: r for r in load_bench(out)}
    assert set(records) == {"gemm", "alignment", "bandwidth", "prediction"}
    gemm = [GemmRow.model_validate(r) for r in records["gemm"].rows]
    assert {(r.dtype, r.status) for r in gemm} >= {("fp32", "ok"), ("tf32", "skipped"), ("bf16", "ok")}
    # One square and gpt-tiny's five layers, of which mlp_up and lm_head (vocab 256 = ffn 256)
    # share their dims and are measured once; fp8 twice (with and without fast accumulation).
    assert len({(r.m, r.n, r.k) for r in gemm}) == 1 + 4 and len(gemm) == 5 * 5
    assert [r.model_dump()["n"] for r in records["alignment"].rows] == [32, 31]
    pred = {(d["dtype"], d["baseline"]): d for d in (r.model_dump() for r in records["prediction"].rows)}
    assert pred[("bf16", "fp32")]["status"] == "ok"
    assert pred[("fp8", "bf16")]["status"] == "skipped"  # numerics only on a CPU
    again = CliRunner().invoke(cli, ["bench", str(suite), "--device", "cpu", "-o", str(out)])
    assert again.exit_code == 2 and "already holds bench results" in again.output


@pytest.mark.integration
def test_cli_bench_predicts_next_to_training_runs(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY.replace("models: [gpt-tiny]", "models: []"))
    runs = tmp_path / "runs"
    results = ResultsDir(runs)
    results.create("t", {}, "")
    from mpbench.bench.ceiling import device_name

    here = device_name(CPU)
    results.write(run_record("fp32", "fp32", 1000.0, device_name=here,
                             profiler_results={"tensor_cores": kernel_buckets(gemm=1, other=1)}))
    results.write(run_record("bf16", "bf16", 1200.0, device_name=here, run_id="gpt-tiny-bf16-s0"))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["bench", str(suite), "--device", "cpu", "-o", str(out),
                                      "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    [pred] = [r for r in load_bench(out) if r.benchmark == "prediction"]
    measured = [r.model_dump() for r in pred.rows if r.model_dump()["measured_speedup"] is not None]
    assert len(measured) == 1 and measured[0]["measured_speedup"] == pytest.approx(1.2)
    assert measured[0]["gemm_share"] == 0.5
    assert math.isclose(measured[0]["predicted_amdahl"], amdahl(0.5, measured[0]["gemm_speedup"]))


@pytest.mark.integration
@pytest.mark.parametrize(("args", "message"), [
    (["bench", "nope.yaml", "--device", "cpu"], "suite file not found: nope.yaml"),
    (["bench", "BAD", "--device", "cpu"], "YAML syntax error at line 2"),
    (["bench", "suites/microbench.yaml", "--device", "cpu", "--runs", "missing-dir"],
     "results not found: missing-dir"),
])
def test_cli_bench_user_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    args = [str(bad) if a == "BAD" else a for a in args]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cli_bench_cuda_without_gpu_exits_2() -> None:
    result = CliRunner().invoke(cli, ["bench", "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA GPU" in result.output


# ---------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_cuda_16bit_gemm_beats_strict_fp32() -> None:
    dev = torch.device("cuda")
    timing = TimingConfig(warmup=3, min_reps=5, min_time_s=0.1)
    rows = {r.dtype: r for r in run_gemm([GemmShape("square", 4096, 4096, 4096)],
                                          ["fp32", "tf32", "bf16", "fp16"], dev, timing)}
    assert all(r.status == "ok" and r.tflops for r in rows.values())
    assert rows["bf16"].tflops > 2 * rows["fp32"].tflops  # type: ignore[operator]
    assert rows["tf32"].tflops > rows["fp32"].tflops  # type: ignore[operator]
    assert measured_ceiling_tflops(dev, "bf16", [bench_record(list(rows.values()),
                                                              torch.cuda.get_device_name())]) == rows["bf16"].tflops


@pytest.mark.gpu
def test_cuda_fp8_scaled_mm() -> None:
    dev = torch.device("cuda")
    if torch.cuda.get_device_capability() < (8, 9):
        row = measure_gemm(GemmShape("square", 1024, 1024, 1024), "fp8", dev, FAST)
        assert row.status == "skipped" and "8.9" in (row.reason or "")
        return
    listed = run_gemm([GemmShape("square", 8192, 8192, 8192)], ["bf16", "fp8"], dev,
                      TimingConfig(min_time_s=0.1))
    rows = {(r.dtype, r.variant): r for r in listed}
    fast, fp8 = rows[("fp8", "fast_accum")], rows[("fp8", "exact_accum")]
    assert fast.status == "ok" and fast.tflops and fast.tflops > 0.9 * (fp8.tflops or 0)
    rows = {r.dtype: r for r in listed if r.variant != "fast_accum"}
    assert fp8.status == "ok" and not fp8.numerics_only and fp8.tflops
    assert fp8.rel_error is not None and fp8.rel_error < 0.1
    assert fp8.tflops > rows["bf16"].tflops  # type: ignore[operator]
    misaligned = measure_gemm(GemmShape("x", 1024, 1024, 1020), "fp8", dev, FAST)
    # cuBLASLt refuses K % 16 != 0; should a newer torch pad instead, it must still run right.
    assert misaligned.status == "unsupported" or (misaligned.status == "ok" and misaligned.tflops)
