"""The claims engine: records with known values give the expected verdicts and numbers."""

from __future__ import annotations

import json

import pytest
from fixture_records import (
    CPU_ENV,
    bench_record,
    gemm_row,
    gpu_env,
    memory_profile,
    numerics,
    payload,
    record,
)

from mpbench.analysis.claims import CLAIMS, ClaimVerdict, evaluate_claims
from mpbench.analysis.claims.verdict import Bound, judge
from mpbench.config.claim_ids import CLAIM_IDS
from mpbench.results.payloads import CommStep, MaxBatchResult, ParallelResult

pytestmark = pytest.mark.unit
H100 = gpu_env()
V100 = gpu_env("Tesla V100-SXM2-16GB", "7.0")


def verdicts(records, bench=None) -> dict[str, ClaimVerdict]:
    return {v.claim_id: v for v in evaluate_claims(records, bench)}


def runs(precision: str, seeds=(0,), **kw):
    return [record(precision, s, **kw) for s in seeds]


# -- the engine -----------------------------------------------------------------------------
def test_every_claim_id_has_a_sourced_bound_and_a_verdict() -> None:
    out = evaluate_claims(runs("fp32") + runs("bf16"))
    assert [v.claim_id for v in out] == list(CLAIM_IDS)
    for v in out:
        spec = CLAIMS[v.claim_id]
        assert spec.bound.sources and all(s in ("000", "001", "002", "003", "004")
                                          for s in spec.bound.sources)
        assert spec.bound.figure and spec.bound.reading
        assert v.verdict in ("holds", "fails", "inconclusive", "not applicable", "not measured")
        assert v.reason
    json.dumps([v.as_dict() for v in out])  # plain data for the gate and JSON exports


def test_no_records_means_not_measured_everywhere() -> None:
    assert {v.verdict for v in evaluate_claims([])} == {"not measured"}


@pytest.mark.parametrize(("value", "low", "high", "expected"), [
    (2.5, 2.2, 2.8, "holds"), (1.0, 0.9, 1.1, "fails"), (2.0, 1.8, 2.3, "inconclusive"),
    (3.0, None, None, "holds"), (1.0, None, None, "fails"), (2.05, None, None, "inconclusive"),
])
def test_judge_compares_the_interval_with_the_bound(value, low, high, expected) -> None:
    bound = Bound("at_least", 2.0, None, "×", ("003",), "2-3x", "")
    assert judge(value, low, high, bound)[0] == expected


def test_judge_at_most_and_within() -> None:
    half = Bound("at_most", None, 0.55, "×", ("003",), "", "")
    assert judge(0.45, 0.44, 0.46, half)[0] == "holds"
    assert judge(0.9, 0.85, 0.95, half)[0] == "fails"
    rng = Bound("within", 1.5, 3.0, "×", ("003",), "", "")
    assert judge(2.0, 1.8, 2.2, rng)[0] == "holds"
    assert judge(1.0, 0.9, 1.1, rng)[0] == "fails"
    assert judge(1.5, 1.4, 1.6, rng)[0] == "inconclusive"


# -- speed ----------------------------------------------------------------------------------
def test_speedup_amp_fails_here_on_a_cpu_with_the_measured_ratio() -> None:
    seeds = (0, 1, 2)  # a run-level interval needs 2+ runs per side
    v = verdicts(runs("fp32", seeds, step_ms=100) + runs("bf16", seeds, step_ms=98) +
                 runs("fp16", seeds, step_ms=900, noise=5))["speedup-amp"]
    assert v.verdict == "fails"
    assert v.value == pytest.approx(100 / 98, rel=0.03)  # the faster 16-bit recipe counts
    assert v.high is not None and v.high < 2.0
    assert "CPU" in v.reason and "bf16/fp32" in v.measured
    fp16 = next(r for r in v.rows if "fp16/fp32" in r.label)
    assert not fp16.counted and fp16.value == pytest.approx(100 / 900, rel=0.05)


def test_speedup_amp_holds_on_a_gpu_paired_over_three_seeds() -> None:
    seeds = (0, 1, 2)
    v = verdicts(runs("fp32", seeds, step_ms=100, env=H100) +
                 runs("bf16", seeds, step_ms=40, env=H100) +
                 runs("fp16", seeds, step_ms=42, env=H100))["speedup-amp"]
    assert v.verdict == "holds"
    assert v.value == pytest.approx(2.5, rel=0.03)
    assert not v.paired and v.n == 3  # one run-level estimator: runs resampled, not paired
    assert v.low is not None and v.low >= 2.0
    assert "hierarchical bootstrap over 3 vs 3 runs" in v.rows[0].note


def with_role(records, role: str, note: str = ""):
    return [r.model_copy(update={"recipe": {**r.recipe, "role": role, "role_note": note}})
            for r in records]


def test_the_recipe_says_what_it_is_not_its_name() -> None:
    """Baseline and 'mixed precision done right' come from the recipe's role in the record:
    a recipe that calls itself mixed is compared, one shown for context is not counted."""
    seeds = (0, 1, 2)
    base = runs("fp32", seeds, step_ms=100, env=H100)
    mine = with_role(runs("my-amp", seeds, step_ms=40, env=H100), "mixed")
    ctx = with_role(runs("bf16", seeds, step_ms=20, env=H100), "context", "my reason")
    v = verdicts(base + mine + ctx)["speedup-amp"]
    assert [r.label.split(": ")[1] for r in v.rows] == ["my-amp/fp32"]
    assert v.value == pytest.approx(2.5, rel=0.03)
    demoted = with_role(base, "other")  # no baseline recipe: nothing to compare with
    assert verdicts(demoted + mine)["speedup-amp"].verdict == "not measured"


def test_one_run_per_side_gives_no_interval_only_the_point() -> None:
    v = verdicts(runs("fp32", step_ms=100, env=H100) + runs("bf16", step_ms=40, env=H100))
    amp = v["speedup-amp"]
    assert amp.low is None and amp.high is None and amp.value == pytest.approx(2.5, rel=0.03)
    assert "no run-level interval" in amp.rows[0].note


def test_speedup_amp_inconclusive_when_the_interval_straddles_two() -> None:
    seeds = (0, 1, 2)
    v = verdicts(runs("fp32", seeds, step_ms=100, noise=30, steps=6, env=H100) +
                 runs("bf16", seeds, step_ms=50, noise=15, steps=6, env=H100))["speedup-amp"]
    assert v.low is not None and v.high is not None and v.low < 2.0 < v.high
    assert v.verdict == "inconclusive"


def test_speedup_amp_not_measured_without_a_baseline() -> None:
    v = verdicts(runs("bf16"))["speedup-amp"]
    assert v.verdict == "not measured" and "fp32" in v.reason


def test_speedup_range_needs_two_configurations() -> None:
    one = runs("fp32", step_ms=100, env=H100) + runs("bf16", step_ms=40, env=H100)
    assert verdicts(one)["speedup-range"].verdict == "not measured"
    two = one + runs("fp32", model="gpt-mini", step_ms=200, env=H100) + runs(
        "bf16", model="gpt-mini", step_ms=100, env=H100)
    v = verdicts(two)["speedup-range"]
    assert v.verdict == "holds" and v.measured.endswith("over 2 configurations")
    assert sorted(r.value for r in v.rows) == [pytest.approx(2.0, rel=0.02),
                                               pytest.approx(2.5, rel=0.02)]
    three = two + runs("fp32", model="gpt2-small", step_ms=400, env=H100) + runs(
        "bf16", model="gpt2-small", step_ms=100, env=H100)
    assert verdicts(three)["speedup-range"].verdict == "fails"  # 4x is outside 1.5-3x


def test_fp8_is_not_applicable_on_a_cpu_and_emulation_never_counts() -> None:
    recs = runs("fp32") + runs("bf16", step_ms=100) + runs(
        "fp8-emulated", step_ms=10, numerics_only=True)
    v = verdicts(recs)
    assert v["fp8-2x"].verdict == "not applicable"
    assert "FP8 tensor cores" in v["fp8-2x"].reason
    assert v["speedup-amp"].value == pytest.approx(1.0, abs=0.05)  # the fast emulated run is ignored
    on_gpu = runs("bf16", step_ms=40, env=H100) + runs("fp8-emulated", step_ms=5, env=H100,
                                                          numerics_only=True)
    assert verdicts(on_gpu)["fp8-2x"].verdict == "not measured"


def test_fp8_2x_on_a_gpu_from_training_and_gemm() -> None:
    seeds = (0, 1, 2)
    recs = runs("bf16", seeds, step_ms=40, env=H100) + runs("fp8-te", seeds, step_ms=20.5, env=H100)
    bench = [bench_record("gemm", [gemm_row("bf16", 8192, 700.0), gemm_row("fp8", 8192, 1500.0)],
                          H100)]
    v = verdicts(recs, bench)["fp8-2x"]
    assert v.verdict == "holds"
    assert {r.label.split(": ")[-1] for r in v.rows} >= {"fp8-te/bf16"}
    gemm = next(r for r in v.rows if r.label.startswith("GEMM"))
    assert gemm.value == pytest.approx(1500 / 700)


def test_cost_savings_from_time_to_fp32s_eval_loss() -> None:
    seeds = (0, 1, 2)
    v = verdicts(runs("fp32", seeds, step_ms=100, env=H100) +
                 runs("bf16", seeds, step_ms=50, env=H100))["cost-savings"]
    assert v.verdict == "holds"
    assert v.value == pytest.approx(50.0, abs=2.0)
    worse = verdicts(runs("fp32", seeds, step_ms=100) + runs("bf16", seeds, step_ms=95))
    assert worse["cost-savings"].verdict == "fails"


# -- memory ---------------------------------------------------------------------------------
def test_memory_halving_on_a_gpu_and_noisy_cpu_points() -> None:
    v = verdicts(runs("fp32", peak_bytes=1000, env=H100) + runs("bf16", peak_bytes=450, env=H100))
    assert v["memory-halving"].verdict == "holds"
    assert v["memory-halving"].value == pytest.approx(0.45)
    v = verdicts(runs("fp32", peak_bytes=1000, env=H100) + runs("bf16", peak_bytes=800, env=H100))
    assert v["memory-halving"].verdict == "fails"
    cpu = verdicts(runs("fp32", peak_bytes=1000) + runs("bf16", peak_bytes=450))
    assert cpu["memory-halving"].verdict == "inconclusive"  # one RSS reading each


def test_adam_16_bytes_from_the_memory_breakdown() -> None:
    n = 1_000_000
    good = [record(p, profiler_results={"memory": memory_profile(n, a)}, n_params=n)
            for p, a in (("fp32", 4_000_000), ("bf16", 2_000_000))]
    v = verdicts(good)["adam-16-bytes"]
    assert v.verdict == "holds" and v.value == pytest.approx(16.0)
    assert "0.50× fp32" in v.reason  # where the savings come from
    bad = [record("fp32", profiler_results={"memory": memory_profile(n, 4_000_000)}, n_params=n),
           record("bf16", profiler_results={"memory": memory_profile(n, 2_000_000, 12.0)}, n_params=n)]
    assert verdicts(bad)["adam-16-bytes"].verdict == "fails"
    assert verdicts(runs("fp32"))["adam-16-bytes"].verdict == "not measured"


def test_larger_batch_from_the_max_batch_search() -> None:
    recs = [record("fp32", profiler_results={"max_batch": payload(MaxBatchResult, max_batch_size=8,
                                                          limit="oom")}),
            record("bf16", profiler_results={"max_batch": payload(MaxBatchResult, max_batch_size=16,
                                                          limit="oom")})]
    v = verdicts(recs)["larger-batch"]
    assert v.verdict == "holds" and v.value == pytest.approx(2.0)


def test_checkpointing_tradeoff_compares_the_same_runs() -> None:
    recs = (runs("fp32", step_ms=100, peak_bytes=1000, env=H100) +
            runs("fp32", step_ms=130, peak_bytes=600, env=H100, ckpt=True))
    v = verdicts(recs)["checkpointing-tradeoff"]
    assert v.verdict == "holds"
    values = {r.label.split(" ", 3)[-1]: r.value for r in v.rows}
    assert any(x == pytest.approx(0.6) for x in values.values())
    assert any(x == pytest.approx(1.3, rel=0.03) for x in values.values())
    assert verdicts(runs("fp32"))["checkpointing-tradeoff"].verdict == "not measured"


# -- quality and numerics -------------------------------------------------------------------
def test_quality_parity_equivalent_worse_and_too_few_seeds() -> None:
    fp32 = [record("fp32", s, eval_loss=v) for s, v in enumerate((2.00, 2.02, 1.98, 2.01))]
    same = [record("bf16", s, eval_loss=v) for s, v in enumerate((2.004, 2.017, 1.983, 2.012))]
    worse = [record("bf16", s, eval_loss=v) for s, v in enumerate((2.30, 2.33, 2.27, 2.31))]
    assert verdicts(fp32 + same)["quality-parity"].verdict == "holds"
    v = verdicts(fp32 + worse)["quality-parity"]
    assert v.verdict == "fails" and v.value == pytest.approx(0.3, abs=0.01)
    one = verdicts(runs("fp32") + runs("bf16"))["quality-parity"]
    assert one.verdict == "not measured" and "seeds" in one.reason


def _numerics(frac: float, lost: float | None, ref: float = 0.012, **kw):
    return {"numerics": numerics(underflow={"fraction": frac, "fp32_reference_fraction": ref,
                                            "lost_fraction": lost}, **kw)}


def test_bf16_no_scaling_from_underflow_fractions() -> None:
    # fractions as measured on gpt-tiny (CPU, 3 seeds): fp16-noscale flushes ~3x scaled fp16
    recs = [record("bf16", profiler_results=_numerics(0.0120, 0.0024)),
            record("fp16", profiler_results=_numerics(0.0022, 0.0021)),
            record("fp16-noscale", profiler_results=_numerics(0.0078, 0.0069))]
    v = verdicts(recs)["bf16-no-scaling"]
    assert v.verdict == "holds"
    assert "fp16-noscale lost vs fp16 0.0021: 0.0069" in v.measured
    recs[2] = record("fp16-noscale", profiler_results=_numerics(0.0022, 0.0021))
    assert verdicts(recs)["bf16-no-scaling"].verdict == "fails"
    only_bf16 = verdicts(recs[:1])["bf16-no-scaling"]  # bf16 keeps FP32's tiny values: one half
    assert only_bf16.verdict == "inconclusive" and "one half" in only_bf16.reason


def test_dynamic_scaling_needs_a_back_off_and_a_rise() -> None:
    hist = [[1, 65536.0], [2, 32768.0], [40, 65536.0]]
    v = verdicts([record("fp16", profiler_results={"numerics": numerics(loss_scale=hist, skipped_steps=1)})])
    assert v["dynamic-scaling"].verdict == "holds"
    only_down = [[1, 65536.0], [2, 32768.0]]
    v = verdicts([record("fp16", profiler_results={"numerics": numerics(loss_scale=only_down,
                                                               skipped_steps=1)})])
    assert v["dynamic-scaling"].verdict == "inconclusive"
    assert "growth_interval" in v["dynamic-scaling"].reason
    flat = [[1, 65536.0], [5, 65536.0]]
    v = verdicts([record("fp16", profiler_results={"numerics": numerics(loss_scale=flat, skipped_steps=3)})])
    assert v["dynamic-scaling"].verdict == "fails"


def test_fp16_range_against_65504() -> None:
    above = {"step": 3, "kind": "above-fp16-max-activation"}
    over = numerics(overflow={"act_amax": 70000.0, "grad_amax": 10.0, "events": [above] * 2})
    v = verdicts([record("fp16-noscale", profiler_results={"numerics": over})])["fp16-range"]
    assert v.verdict == "holds" and "70,000" in v.measured
    calm = numerics(overflow={"act_amax": 100.0, "grad_amax": 1.0, "events": []})
    v = verdicts([record("fp16", profiler_results={"numerics": calm})])["fp16-range"]
    assert v.verdict == "inconclusive" and "655" in v.reason  # 65504 / 100 below the limit
    # an inf gradient leaves only finite amaxes below the limit; the event's FP32 reference
    # (x loss scale) shows the value was over 65504, so the claim holds
    inf_event = numerics(overflow={"act_amax": 30.0, "grad_amax": 900.0, "events": [
        {"step": 5, "kind": "inf", "fp32_scaled_amax": 1.2e5}]})
    v = verdicts([record("fp16", profiler_results={"numerics": inf_event})])["fp16-range"]
    assert v.verdict == "holds" and v.value == pytest.approx(1.2e5)
    # fp16-noscale's small values never reach the limit: no evidence either way, so the
    # scaled run that overflowed above 65504 decides
    v = verdicts([record("fp16", profiler_results={"numerics": inf_event}),
                  record("fp16-noscale", profiler_results={"numerics": calm})])["fp16-range"]
    assert v.verdict == "holds" and len(v.rows) == 2


# -- kernels and platform -------------------------------------------------------------------
def test_gemm_claim_from_bench_rows_and_not_applicable_on_cpu() -> None:
    rows = [gemm_row(d, s, t) for s in (1024, 2048, 4096)
            for d, t in (("fp32", 50.0), ("bf16", 400.0), ("fp16", 380.0))]
    v = verdicts(runs("fp32", env=H100), [bench_record("gemm", rows, H100)])["gemm-tensor-core"]
    assert v.verdict == "holds" and v.value == pytest.approx(8.0)
    cpu = verdicts(runs("fp32"), [bench_record("gemm", rows)])["gemm-tensor-core"]
    assert cpu.verdict == "not applicable" and "8.00×" in cpu.measured
    assert verdicts(runs("fp32"))["gemm-tensor-core"].verdict == "not measured"


def test_bandwidth_and_alignment_from_bench_rows() -> None:
    bw = [{"dtype": d, "op": op, "elements": 2**24, "bytes": 3 * 2**24 * b, "bytes_per_element": b,
           "elements_per_s": e} for op in ("add", "mul", "layer_norm")
          for d, b, e in (("fp32", 4, 1e9), ("bf16", 2, 1.9e9))]
    align = [{"dtype": "bf16", "shape": f"align4096{o:+d}", "m": 4096, "n": 4096 + o,
              "k": 4096 + o, "flops": 1, "tflops": t, "base": 4096, "offset": o,
              "multiple_of": m} for o, t, m in ((0, 400.0, 16), (-1, 300.0, 1), (4, 320.0, 4),
                                                (8, 390.0, 8))]
    bench = [bench_record("bandwidth", bw, H100), bench_record("alignment", align, H100)]
    v = verdicts(runs("fp32", env=H100), bench)
    assert v["bandwidth-halving"].verdict == "holds"
    assert v["bandwidth-halving"].value == pytest.approx(1.9)
    assert v["alignment"].verdict == "holds"  # the multiple-of-8 case does not count as misaligned
    assert v["alignment"].value == pytest.approx((400 / 300 + 400 / 320) / 2)


def test_bf16_hardware_from_the_environment_card() -> None:
    assert verdicts(runs("fp32", env=V100))["bf16-hardware"].verdict == "holds"
    h100 = verdicts(runs("fp32", env=H100))["bf16-hardware"]
    assert h100.verdict == "not applicable" and "9.0" in h100.reason
    cpu = verdicts(runs("fp32", env=CPU_ENV))["bf16-hardware"]
    assert cpu.verdict == "not applicable" and "BF16 yes" in cpu.measured


def test_comm_halving_from_communication_bytes() -> None:
    def parallel(dtype: str, nbytes: int) -> dict:
        # built through the model the distributed probe writes (results/payloads/parallel.py)
        return {"parallel": payload(ParallelResult, strategy="ddp", world_size=2,
                                    grad_comm_dtype=dtype, comm_per_step=CommStep(
                                        bytes=nbytes, bytes_by_dtype={dtype: nbytes}))}

    recs = [record("fp32", profiler_results=parallel("fp32", 4000)),
            record("bf16", profiler_results=parallel("bf16", 2000))]
    v = verdicts(recs)["comm-halving"]
    assert v.verdict == "holds" and v.value == pytest.approx(0.5)
    assert verdicts(runs("fp32"))["comm-halving"].verdict == "not measured"
