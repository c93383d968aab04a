"""The waterfall: a recipe's measured step-time difference split by the profiler's buckets."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fixture_records import gpu_env, payload, record, write_results

from mpbench.analysis.step_parts import (
    CASTS,
    GEMM,
    HOST,
    NORM_ELEMENTWISE,
    OPTIMIZER,
    OTHER_OPS,
    UNATTRIBUTED,
)
from mpbench.analysis.waterfall import waterfalls
from mpbench.cli.explain import waterfall_lines
from mpbench.cli.main import cli
from mpbench.results.payloads import TensorCoreResult

pytestmark = pytest.mark.unit


def cpu_profile(matmul_ms: float, other_ms: float, copy_ms: float, opt_ms: float,
                steps: int = 2, fwd_matmul_ms: float | None = None,
                wall_ms: float | None = None, plain_ms: list[float] | None = None
                ) -> dict[str, object]:
    """A CPU tensor_cores result over `steps` profiled steps (times given per step; `plain_ms`:
    the plain steps timed before the profile, one by one)."""
    us = {"matmul": matmul_ms * 1000 * steps, "attention": 1000.0 * steps,
          "normalization": 500.0 * steps, "optimizer": opt_ms * 1000 * steps,
          "other": other_ms * 1000 * steps}
    total = sum(us.values())
    top = [{"name": "aten::mm", "bucket": "matmul", "time_us": us["matmul"],
            "share": us["matmul"] / total},
           {"name": "aten::copy_", "bucket": "other", "time_us": copy_ms * 1000 * steps,
            "share": copy_ms * 1000 * steps / total}]
    phases = ({"forward": {"matmul": fwd_matmul_ms * 1000 * steps, "other": 1.0},
               "backward": {"matmul": (matmul_ms - fwd_matmul_ms) * 1000 * steps}}
              if fwd_matmul_ms is not None else {})
    return payload(TensorCoreResult, buckets={k: v / total for k, v in us.items()},
                   bucket_time_us=us, top_kernels=top, total_time_us=total,
                   device_kind="cpu", tensor_core_share=None, steps=steps, phase_time_us=phases,
                   **({"wall_time_us": wall_ms * 1000 * steps} if wall_ms is not None else {}),
                   plain_step_us=[ms * 1000 for ms in plain_ms or []])


def profiled_pair(base: dict[str, object], new: dict[str, object], base_ms: float = 20.0,
                  new_ms: float = 15.0) -> list:
    """fp32 runs with profile `base` and bf16 runs with `new`, two seeds each."""
    return ([record("fp32", s, step_ms=base_ms, noise=0.01,
                    profiler_results={"tensor_cores": base}) for s in (0, 1)]
            + [record("bf16", s, step_ms=new_ms, noise=0.01,
                      profiler_results={"tensor_cores": new}) for s in (0, 1)])


def pair(base_ms: float = 20.0, new_ms: float = 15.0) -> list:
    """fp32 and bf16, two runs each: bf16 saves 8 ms of matmul, adds 2 ms of casts."""
    return profiled_pair(cpu_profile(matmul_ms=12.0, other_ms=4.0, copy_ms=0.5, opt_ms=1.0),
                         cpu_profile(matmul_ms=4.0, other_ms=6.0, copy_ms=2.5, opt_ms=1.0),
                         base_ms, new_ms)


def test_cpu_waterfall_parts_are_the_bucket_differences_and_sum_to_measured() -> None:
    found, missing = waterfalls(pair())
    assert not missing and len(found) == 1
    w = found[0]
    assert w.baseline.precision == "fp32" and w.recipe.precision == "bf16"
    assert w.delta_ms == pytest.approx(-5.0, abs=0.05)
    parts = w.parts_ms
    assert parts[GEMM] == pytest.approx(-8.0)
    assert parts[CASTS] == pytest.approx(2.0)  # aten::copy_ 0.5 -> 2.5 ms per step
    assert parts[NORM_ELEMENTWISE] == pytest.approx(0.0)  # other 4 -> 6, of which 2 are casts
    assert parts[OPTIMIZER] == pytest.approx(0.0) and parts[OTHER_OPS] == 0.0
    # covered: fp32 19.0 ms of 20, bf16 13.0 of 15: the rest is its own bar
    assert w.unattributed_ms == pytest.approx(1.0, abs=0.05)
    assert sum(v for _, v in w.bars) == pytest.approx(w.delta_ms)
    assert [p for p, _ in w.bars][-1] == UNATTRIBUTED
    assert w.ratio is not None and w.ratio.has_interval and w.ratio.value == pytest.approx(0.75, abs=0.01)


def test_gpu_buckets_map_to_parts_and_fp8_compares_with_bf16() -> None:
    def gpu(gemm: dict[str, float], cast: float, elem: float) -> dict[str, object]:
        us = {**gemm, "fp8_cast": cast, "elementwise": elem, "attention": 3000.0,
              "communication": 0.0, "other": 100.0}
        total = sum(us.values())
        return payload(TensorCoreResult, buckets={k: v / total for k, v in us.items()},
                       bucket_time_us=us, device_kind="cuda", steps=1, total_time_us=total)

    env = gpu_env()
    recs = [record("bf16", s, step_ms=30.0, noise=0.01, env=env, profiler_results={
                "tensor_cores": gpu({"gemm_bf16": 20000.0}, 0.0, 4000.0)}) for s in (0, 1)]
    recs += [record("fp8-te", s, step_ms=26.0, noise=0.01, env=env, profiler_results={
                 "tensor_cores": gpu({"gemm_fp8": 12000.0, "gemm_bf16": 2000.0}, 3000.0,
                                     4500.0)}) for s in (0, 1)]
    found, _ = waterfalls(recs)
    (w,) = found
    assert w.baseline.precision == "bf16"
    assert w.parts_ms[GEMM] == pytest.approx(-6.0)
    assert w.parts_ms[CASTS] == pytest.approx(3.0)
    assert w.parts_ms[NORM_ELEMENTWISE] == pytest.approx(0.5)
    assert w.unattributed_ms == pytest.approx(-1.5, abs=0.05)  # -4 measured, -2.5 attributed


def test_gemms_split_into_forward_and_backward_by_the_stored_phases() -> None:
    from mpbench.analysis.step_parts import GEMM_BWD, GEMM_FWD

    base = cpu_profile(12.0, 4.0, 0.5, 1.0, fwd_matmul_ms=4.0)
    new = cpu_profile(4.0, 6.0, 2.5, 1.0, fwd_matmul_ms=1.5)
    recs = profiled_pair(base, new)
    (w,) = waterfalls(recs)[0]
    assert w.parts_ms[GEMM_FWD] == pytest.approx(-2.5)  # 4.0 -> 1.5 ms
    assert w.parts_ms[GEMM_BWD] == pytest.approx(-5.5)  # 8.0 -> 2.5 ms
    assert GEMM not in w.parts_ms
    assert sum(v for _, v in w.bars) == pytest.approx(w.delta_ms)
    # one side without phases (an older record): one GEMM bar, same total
    plain = TensorCoreResult.model_validate(cpu_profile(12.0, 4.0, 0.5, 1.0))
    recs[0].profiler_results["tensor_cores"] = recs[1].profiler_results["tensor_cores"] = plain
    (w,) = waterfalls(recs)[0]
    assert w.parts_ms[GEMM] == pytest.approx(-8.0) and GEMM_FWD not in w.parts_ms


def test_phases_of_a_real_cpu_profile_and_of_gpu_kernel_stand_ins() -> None:
    from types import SimpleNamespace

    import torch
    from torch import nn
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from mpbench.profilers.profile_summary import cpu_phase_times, gpu_phase_times

    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
    opt = torch.optim.AdamW(model.parameters())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(torch.randn(16, 32)).square().mean().backward()
        opt.step()
    found = cpu_phase_times(prof.events())
    assert found["forward"]["matmul"] > 0 and found["backward"]["matmul"] > 0
    assert set(found["optimizer"]) == {"optimizer"}
    # GPU: a kernel takes the phase of the CPU operator that launched it (FunctionEvent.kernels)
    engine = SimpleNamespace(name="autograd::engine::evaluate_function: MmBackward0",
                             device_type=DeviceType.CPU, cpu_parent=None, kernels=[])
    mm_bwd = SimpleNamespace(name="aten::mm", device_type=DeviceType.CPU, cpu_parent=engine,
                             kernels=[SimpleNamespace(name="nvjet_tst_128x64", duration=30.0)])
    mm_fwd = SimpleNamespace(name="aten::mm", device_type=DeviceType.CPU, cpu_parent=None,
                             kernels=[SimpleNamespace(name="nvjet_tst_128x64", duration=10.0)])
    assert gpu_phase_times([engine, mm_bwd, mm_fwd]) == {  # type: ignore[list-item]
        "backward": {"gemm_bf16": 30.0}, "forward": {"gemm_bf16": 10.0}}


def test_older_records_set_the_rest_against_the_profiled_steps() -> None:
    """Without plain steps the profiled steps' wall time is the match: host time is what it
    spends outside every operator, the rest (measured window against it) is unattributed."""
    base = cpu_profile(12.0, 4.0, 0.5, 1.0, wall_ms=21.0)  # ops 19.0 of 21.0 profiled ms
    new = cpu_profile(4.0, 6.0, 2.5, 1.0, wall_ms=14.0)  # ops 13.0 of 14.0
    recs = profiled_pair(base, new)
    (w,) = waterfalls(recs)[0]
    bars = dict(w.bars)
    assert bars[HOST] == pytest.approx(-1.0)  # 2.0 -> 1.0 ms outside every operator
    assert bars[UNATTRIBUTED] == pytest.approx(2.0, abs=0.05)  # (15 - 14) - (20 - 21)
    assert sum(bars.values()) == pytest.approx(w.delta_ms)
    assert w.attributed_fraction == pytest.approx(-7.0 / w.delta_ms)
    assert w.unattributed_noise_ms is None  # no plain steps: no sampling noise to give


def test_the_rest_is_set_against_plain_steps_timed_before_the_profile() -> None:
    """fp32: 18 ms of operators, 0.5 ms between them, and the profiler's 1 ms recorded inside
    the operators (self 19.0, plain 18.5, profiled 19.5); bf16: 11 ms, 0.5 ms, 2 ms (self
    13.0, plain 11.5, profiled 13.5: more operators, more overhead). Net of the extra 1 ms of
    overhead the parts explain all of the plain steps' -7 ms; the measured window's -5 ms
    differs by +2 ms, far beyond the steps' sampling noise: unattributed, and said so."""
    from mpbench.analysis.step_parts import OVERHEAD

    plain_fp32 = [18.3, 18.5, 18.7, 18.4, 18.6]  # median 18.5, MAD 0.1
    plain_bf16 = [11.3, 11.5, 11.7, 11.4, 11.6]
    base = cpu_profile(12.0, 4.0, 0.5, 1.0, wall_ms=19.5, plain_ms=plain_fp32)  # ops 19.0
    new = cpu_profile(4.0, 6.0, 2.5, 1.0, wall_ms=13.5, plain_ms=plain_bf16)  # ops 13.0
    recs = profiled_pair(base, new)
    (w,) = waterfalls(recs)[0]
    bars = dict(w.bars)
    assert bars[OVERHEAD] == pytest.approx(-1.0)
    assert bars[HOST] == pytest.approx(0.0, abs=1e-9)  # 0.5 ms between operators in both
    assert bars[UNATTRIBUTED] == pytest.approx(2.0, abs=0.05)  # measured -5.0, plain -7.0
    assert sum(bars.values()) == pytest.approx(w.delta_ms)
    assert w.attributed_fraction == pytest.approx(-7.0 / w.delta_ms)
    assert w.baseline.overhead_ms == pytest.approx(1.0)
    assert w.recipe.overhead_ms == pytest.approx(2.0)
    # noise: each plain median's variance (1.2533 * 1.4826 * 0.1)^2 / 5, the window's from its
    # 20 steps (fixture noise 1%), two runs a side averaged: 2 standard errors well under 2 ms
    noise = w.unattributed_noise_ms
    assert noise is not None and 0.1 < noise < 0.5
    lines = "\n".join(waterfall_lines(w))
    assert f"unattributed beyond the two windows' sampling noise, ±{noise:.2f} ms" in lines
    assert "1.00 ms per step in fp32, 2.00 ms in bf16; its difference is the overhead bar" in lines


def test_unattributed_noise_is_two_standard_errors_of_the_two_medians() -> None:
    """Known spreads: window steps alternate 19.5/20.5 ms (MAD 0.5), plain steps 18/19/20 ms
    (MAD 1.0); one run a side. Variance of a median: (1.2533 * 1.4826 * MAD)^2 / n."""
    from mpbench.analysis.waterfall import waterfall

    def run(recipe: str, shift: float) -> object:
        rec = record(recipe, 0, step_ms=20.0 + shift, profiler_results={"tensor_cores": (
            cpu_profile(12.0, 4.0, 0.5, 1.0, wall_ms=21.0,
                        plain_ms=[18.0 + shift, 19.0 + shift, 20.0 + shift]))})
        return rec.model_copy(update={"step_times_ms": [19.5 + shift + (i % 2) for i in
                                                        range(20)]})

    w = waterfall([run("fp32", 0.0)], [run("bf16", -5.0)])  # type: ignore[list-item]
    assert w is not None
    k = (1.2533 * 1.4826) ** 2
    per_side = k * 0.5 ** 2 / 20 + k * 1.0 ** 2 / 3
    assert w.unattributed_noise_ms == pytest.approx(2 * (2 * per_side) ** 0.5, rel=1e-6)
    assert w.recipe.plain_step_ms == pytest.approx(14.0)  # the median plain step


def test_missing_baseline_or_profile_is_said() -> None:
    recs = pair()
    recs[2].profiler_results.clear()
    recs[3].profiler_results.clear()
    found, missing = waterfalls(recs)
    assert not found and "tensor_cores" in missing[0].reason
    found, missing = waterfalls(pair()[2:])
    assert not found and "no fp32 runs" in missing[0].reason


def test_explain_prints_every_part(tmp_path: Path) -> None:
    out = write_results(tmp_path / "res", pair())
    result = CliRunner().invoke(cli, ["explain", str(out)])
    assert result.exit_code == 0, result.output
    assert "bf16 vs fp32" in result.output
    for label in ("GEMMs", "casts", "unattributed", "sum = measured difference"):
        assert label in result.output
    assert "-8.000 ms" in result.output and "+2.000 ms" in result.output


def test_explain_without_profiler_data_exits_2_with_the_fix(tmp_path: Path) -> None:
    out = write_results(tmp_path / "res", [record("fp32"), record("bf16")])
    result = CliRunner().invoke(cli, ["explain", str(out)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "tensor_cores" in lines[0] and "profilers:" in lines[0]


def _advice(verified: bool) -> object:
    from mpbench.results.advice import AdviceRecord, LayerAdvice, MeasuredRatio, Verification

    ver = Verification(results_dir="x", repeats=3, measured_all=MeasuredRatio(
        value=0.95, low=0.93, high=0.97, n_base_runs=3, n_new_runs=3, basis="test"),
        measured_advised=MeasuredRatio(value=0.90, low=0.88, high=0.92, n_base_runs=3,
                                       n_new_runs=3, basis="test"),
        error_all=0.70 / 0.95 - 1, error_advised=0.91 / 0.90 - 1, tolerance=0.10,
        miss_all=True, miss_advised=False, verdict_all="miss", verdict_advised="hit") if verified else None
    return AdviceRecord(
        model="gpt-tiny", model_kind="reference", recipe="bf16", baseline="fp32", device="cpu",
        device_name="Test CPU", cpu_isa_flags=["avx512_bf16"], batch_size=8, seq_len=64,
        tokens_per_step=512, layers=[LayerAdvice(
            name="blocks.0.mlp.fc", in_features=64, out_features=256,
            baseline_ms=(1.0, 1.0, 1.0), recipe_ms=(0.5, 0.5, 0.5), gain_ms=1.5, pays=True,
            gain_hw_ms=0.125)],
        baseline_step_ms=20.0, rest_step_ms=21.0, predicted_all=0.70, predicted_advised=0.91,
        step_noise_ms=0.25, uncertainty_ms=0.25, decision="every layer is advised: converting "
        "each saves against keeping it out (uncertainty 0.250 ms per step)",
        advised=["blocks.0.mlp.fc"], filter_option="keep_fp32", filter_value=[],
        filter_yaml="- {name: bf16, options: {keep_fp32: []}}", tolerance=0.02, advisor_s=3.0,
        verification=ver, created_at="2026-12-06T00:00:00+00:00")


def test_report_draws_the_waterfall_and_shows_the_advisor_miss(tmp_path: Path) -> None:
    from mpbench.report import write_report
    from mpbench.results.advice import load_advice, write_advice

    out = write_results(tmp_path / "res", pair())
    write_advice(out, _advice(verified=True))  # type: ignore[arg-type]
    assert load_advice(out)[0].verification.miss_all  # type: ignore[union-attr]
    html = write_report([out], tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Where the time went" in html and "unattributed" in html
    assert "gpt-tiny b8×t64: bf16 vs fp32" in html  # the plot's title
    assert "MISS" in html and "hit" in html and "keep_fp32" in html
    assert "Decision: every layer is advised" in html and "uncertainty 0.250 ms" in html
    assert "0.125" in html  # the gain's half-width in the layer table


def test_corrupt_advice_file_is_one_line_naming_it(tmp_path: Path) -> None:
    out = write_results(tmp_path / "res", pair())
    (out / "advice").mkdir()
    (out / "advice" / "x.json").write_text('{"kind": "advice"}', encoding="utf-8")
    result = CliRunner().invoke(cli, ["report", str(out), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "x.json: corrupt advice file" in result.output


def test_run_summary_names_the_explain_command_or_the_flag_that_adds_its_data() -> None:
    from mpbench.cli.run import explain_hint

    assert "mpbench explain out" in explain_hint(pair(), Path("out"))
    assert "--trace" in explain_hint([record("fp32"), record("bf16")], Path("out"))


EXPLAIN_EXAMPLE = Path(__file__).parents[1] / "reports" / "gpt-cpu-explain-example"


@pytest.mark.integration
def test_the_committed_explain_example_adds_up_and_prints_as_committed() -> None:
    """A real run (reports/README.md): every recipe of the main suite's CPU profile with its
    op buckets and 10 plain steps; the bars sum to the measured difference, and `mpbench
    explain` prints what is committed next to it (regenerate explain.txt if this changes)."""
    from mpbench.results.store import load_records

    found, missing = waterfalls(load_records(EXPLAIN_EXAMPLE))
    assert len(found) == 10 and not missing  # 5 recipes x 2 models against their baselines
    for w in found:
        assert sum(v for _, v in w.bars) == pytest.approx(w.delta_ms, abs=1e-9)
        assert w.unattributed_noise_ms is not None and w.host_ms is not None
        assert w.recipe.runs == w.baseline.runs == 2  # two seeds a side
    fp8 = [w for w in found if w.recipe.precision == "fp8-emulated"]
    assert len(fp8) == 2 and all(w.baseline.precision == "bf16" and w.numerics_only
                                 for w in fp8)
    result = CliRunner().invoke(cli, ["explain", str(EXPLAIN_EXAMPLE)])
    assert result.exit_code == 0, result.output
    committed = (EXPLAIN_EXAMPLE / "explain.txt").read_text(encoding="utf-8")
    assert result.output.replace(str(EXPLAIN_EXAMPLE), "") == committed.replace(
        "reports/gpt-cpu-explain-example", "")
