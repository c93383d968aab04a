"""Convergence analysis: TOST verdicts, the FP32 band, time to target, and the suite end to end."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from mpbench.analysis.convergence import (
    ConvergenceOptions,
    analyze,
    compare_curve,
    options_from_records,
    reference_band,
)
from mpbench.analysis.equivalence import (
    BETTER,
    EQUIVALENT,
    INCONCLUSIVE,
    WORSE,
    equivalence_test,
    spread_margin,
)
from mpbench.analysis.time_to_target import crossing, time_to_target
from mpbench.cli.main import cli
from mpbench.errors import UserError
from mpbench.results.key import make_key
from mpbench.results.payloads import NumericsResult, NvmlResult
from mpbench.results.schema import RunRecord
from mpbench.results.store import load_records

SUITE = Path(__file__).resolve().parents[1] / "suites" / "convergence.yaml"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared, oversubscribed CPU two spinning threads run 5-10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def record(precision: str, seed: int, evals: list[tuple[int, float]], times: list[float] | None = None,
           status: str = "ok", **extra: Any) -> RunRecord:
    """A minimal RunRecord with the fields the convergence analysis reads."""
    return RunRecord(
        run_id=f"m__{precision}__seed{seed}", suite="t", profile="cpu", model="m", model_dims={},
        config_key=make_key("m", precision, {}, {"batch_size": 2, "seq_len": 8}, [], None, "cpu"),
        precision=precision, recipe={"family": precision[:4], "numerics_only": False}, seed=seed,
        batch_size=2, seq_len=8, train={}, device="cpu", device_name="cpu", status=status,
        tokens_per_step=16, eval_curve=evals, eval_times_s=times or [float(s) for s, _ in evals],
        eval_loss=evals[-1][1] if evals and status == "ok" else None, env={}, started_at="",
        finished_at="", duration_s=1.0, **extra,
    )


# -- the equivalence test on constructed samples ---------------------------------------

@pytest.mark.unit
def test_clearly_equal_samples_are_equivalent() -> None:
    ref = [2.00, 2.10, 1.90, 2.05, 1.95]
    same = [r + d for r, d in zip(ref, [0.001, -0.002, 0.0015, -0.001, 0.0005], strict=True)]
    result = equivalence_test(same, ref, margin=spread_margin(ref), paired=True)
    assert result.verdict == EQUIVALENT
    assert result.p_equivalence is not None and result.p_equivalence < 0.05
    assert result.margin == pytest.approx(np.std(ref, ddof=1))
    margin, low, high = result.margin, result.ci_low, result.ci_high
    assert margin is not None and low is not None and high is not None
    assert -margin < low < high < margin


@pytest.mark.unit
def test_clearly_worse_samples_are_worse() -> None:
    ref = [2.00, 2.10, 1.90, 2.05, 1.95]
    worse = [r + 0.5 + d for r, d in zip(ref, [0.01, -0.02, 0.015, 0.0, -0.01], strict=True)]
    result = equivalence_test(worse, ref, margin=spread_margin(ref), paired=True)
    assert result.verdict == WORSE
    assert result.diff == pytest.approx(0.499, abs=1e-3)
    assert result.ci_low is not None and result.ci_low > 0


@pytest.mark.unit
def test_clearly_better_unpaired_samples_are_better() -> None:
    ref = [2.00, 2.10, 1.90, 2.05, 1.95]
    better = [1.20, 1.25, 1.18, 1.22]
    result = equivalence_test(better, ref, margin=0.05)
    assert result.verdict == BETTER and not result.paired
    assert result.ci_high is not None and result.ci_high < 0


@pytest.mark.unit
def test_too_few_samples_are_inconclusive() -> None:
    one = equivalence_test([2.0], [2.0, 2.1, 1.9], margin=0.1)
    assert one.verdict == INCONCLUSIVE and "2 seeds" in one.note
    no_margin = equivalence_test([2.0, 2.1], [2.0], margin=spread_margin([2.0]))
    assert no_margin.verdict == INCONCLUSIVE and "tolerance" in no_margin.note
    # Enough seeds to compute, too few to decide: the interval straddles the margin.
    wide = equivalence_test([2.0, 2.3, 1.8], [2.1, 1.9, 2.2], margin=0.1)
    assert wide.verdict == INCONCLUSIVE
    assert wide.ci_low is not None and wide.ci_high is not None
    assert wide.ci_low < -0.1 and wide.ci_high > 0.1
    assert wide.seeds_needed is not None and wide.seeds_needed > 3


@pytest.mark.unit
def test_diverged_seeds_make_the_verdict_worse() -> None:
    result = equivalence_test([2.0, 2.0], [2.0, 2.01, 1.99], margin=0.1, diverged=1)
    assert result.verdict == WORSE and "1 of 3 seeds diverged" in result.note


# -- band, curves, time to target ----------------------------------------------------------

@pytest.mark.unit
def test_reference_band_and_curve_comparison() -> None:
    fp32 = [record("fp32", s, [(10, 3.0 + d), (20, 2.0 + d)]) for s, d in enumerate([-0.1, 0.0, 0.1])]
    band = reference_band(fp32, band_k=2.0)
    assert band is not None and band.steps == [10, 20] and band.n == [3, 3]
    assert band.mean == pytest.approx([3.0, 2.0])
    assert band.std[1] == pytest.approx(0.1)
    assert band.low[1] == pytest.approx(1.8) and band.high[1] == pytest.approx(2.2)
    off = [record("bf16", s, [(10, 3.0), (20, 2.5)]) for s in range(3)]
    cmp = compare_curve(off, band)
    assert cmp is not None and cmp.z == pytest.approx([0.0, 5.0])
    assert cmp.inside_fraction == 0.5 and cmp.max_abs_z == pytest.approx(5.0)


@pytest.mark.unit
@pytest.mark.parametrize("band_k", [1.0, 3.0])
def test_the_report_plots_the_band_the_verdict_judges(
        band_k: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """extensions.convergence.band_k moves the report's loss band as it moves the verdict:
    the plot draws the analysis's mean +- band_k stdev, not a min/median/max of its own."""
    from mpbench.report import sections_quality
    from mpbench.report.resultset import ResultSet

    suite = {"extensions": {"convergence": {"band_k": band_k}}}
    offsets = [-0.1, 0.0, 0.1]
    fp32 = [record("fp32", s, [(20, 2.0 + d)], loss_curve=[(10, 3.0 + d), (20, 2.0 + d)],
                   suite_config=suite) for s, d in enumerate(offsets)]
    bf16 = [record("bf16", s, [(20, 2.0 + d)], loss_curve=[(10, 3.2 + d), (20, 2.1 + d)],
                   suite_config=suite) for s, d in enumerate(offsets)]
    drawn: dict[str, Any] = {}

    def capture(band: Any, baseline: str, lines: Any, *rest: Any) -> str:
        drawn.update(band=band, baseline=baseline, lines=lines, label=rest[-1])
        return "<svg></svg>"

    monkeypatch.setattr(sections_quality.plots, "loss_curves", capture)
    sections_quality.loss_blocks(ResultSet("t", Path("."), fp32 + bf16))
    (summary,) = analyze(fp32 + bf16)
    assert summary.band is not None and summary.band.band_k == band_k
    band = drawn["band"]
    assert band.band_k == band_k and band.steps == [10, 20]
    assert band.low == pytest.approx([3.0 - band_k * 0.1, 2.0 - band_k * 0.1])
    assert band.high == pytest.approx([3.0 + band_k * 0.1, 2.0 + band_k * 0.1])
    assert drawn["baseline"] == "fp32"
    assert drawn["lines"] == {"bf16": [(10, pytest.approx(3.2)), (20, pytest.approx(2.1))]}
    assert drawn["label"] == f"fp32 mean ± {band_k:g} stdev (3 seeds)"


@pytest.mark.unit
def test_crossing_interpolates_between_eval_points() -> None:
    points = [(10, 3.0, 1.0), (20, 2.0, 2.0), (30, 1.0, 3.0)]
    assert crossing(points, 1.5) == pytest.approx((2.5, 25.0))
    assert crossing(points, 3.5) == pytest.approx((1.0, 10.0))
    assert crossing(points, 0.5) is None


@pytest.mark.unit
def test_time_to_target_and_cost_ratio() -> None:
    fp32 = [record("fp32", s, [(10, 3.0), (20, 2.0)], [4.0, 8.0]) for s in range(3)]
    fast = [record("bf16", s, [(10, 2.5), (20, 1.5)], [2.0, 4.0]) for s in range(3)]
    base = time_to_target(fp32, {0: 2.0, 1: 2.0, 2: 2.0})
    mine = time_to_target(fast, {0: 2.0, 1: 2.0, 2: 2.0})
    assert base is not None and mine is not None
    assert base.median_time_s == pytest.approx(8.0)
    assert mine.median_time_s == pytest.approx(3.0)  # halfway from 2.5 to 1.5, 2 s to 4 s
    mine.compare_with(base)
    assert mine.time_ratio == pytest.approx(3.0 / 8.0)
    assert mine.saving == pytest.approx(1 - 3.0 / 8.0)


@pytest.mark.unit
def test_energy_to_target_uses_measured_window_power() -> None:
    nvml = {"nvml": NvmlResult(energy_j=100.0).model_dump(mode="json", exclude_unset=True)}
    fp32 = [record("fp32", 0, [(10, 2.0)], [8.0], profiler_results=nvml, window_s=10.0)]
    result = time_to_target(fp32, {0: 2.0})
    assert result is not None and result.median_energy_j == pytest.approx(80.0)


@pytest.mark.unit
def test_analyze_gives_one_verdict_per_recipe() -> None:
    fp32 = [record("fp32", s, [(10, 3.0 + d), (20, 2.0 + d)]) for s, d in enumerate([-0.1, 0.0, 0.1])]
    bf16 = [record("bf16", s, [(10, 3.0 + d), (20, 2.001 + d)]) for s, d in enumerate([-0.1, 0.0, 0.1])]
    bad = [record("fp16-noscale", s, [(10, 4.0 + d), (20, 3.5 + d)]) for s, d in enumerate([-0.1, 0.0, 0.1])]
    gone = [record("tf32", 0, [], status="skipped", reason="needs a GPU")]
    [summary] = analyze(fp32 + bf16 + bad + gone)
    verdicts = {r.precision: r.equivalence.verdict for r in summary.recipes if r.equivalence}
    assert verdicts == {"bf16": EQUIVALENT, "fp16-noscale": WORSE}
    assert summary.not_run == {"tf32": "skipped: needs a GPU"}
    bf = next(r for r in summary.recipes if r.precision == "bf16").time_to_target
    # target: fp32's final loss of the seed + the margin (0.1): both cross it just before step 20
    assert bf is not None and bf.reached == 3 and bf.time_ratio == pytest.approx(1.0, abs=1e-3)
    assert summary.as_dict()["recipes"][0]["precision"] == "fp32"
    [strict] = analyze(fp32 + bf16, ConvergenceOptions(target_slack=0.0))
    bf = next(r for r in strict.recipes if r.precision == "bf16").time_to_target
    assert bf is not None and bf.reached == 0 and bf.time_ratio is None  # 2.001 misses 2.0


@pytest.mark.unit
def test_bad_convergence_options_name_the_field() -> None:
    r = record("fp32", 0, [(10, 2.0)], suite_config={"extensions": {"convergence": {"alpha": 0.9}}})
    with pytest.raises(UserError, match=r"extensions\.convergence\.alpha"):
        options_from_records([r])
    assert ConvergenceOptions().margin_k == 1.0


# -- end to end: the CPU profile of suites/convergence.yaml, shortened -----------------------

def short_suite(tmp_path: Path, steps: int) -> Path:
    raw = yaml.safe_load(SUITE.read_text(encoding="utf-8"))
    cpu = raw["devices"]["cpu"]
    cpu["train"].update(steps=steps, warmup_steps=1, lr_warmup_steps=1, eval_every=2,
                        batch_size=4, seq_len=32, eval_batches=1, threads=1)
    cpu["data"]["max_bytes"] = 300_000
    cpu["profilers"] = [{"name": "numerics", "options": {"every": 100}}]  # probes step 1 only
    cpu.pop("budget")  # a few steps: nothing to fit (tests/test_budget.py covers the budget)
    path = tmp_path / "convergence.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.integration
def test_cpu_profile_end_to_end(tmp_path: Path) -> None:
    suite = short_suite(tmp_path, steps=4)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(suite), "--device", "cpu", "-o", str(out), "-q",
                                      "--no-report"])
    assert result.exit_code == 0, result.output
    records = load_records(out)
    raw = yaml.safe_load(suite.read_text(encoding="utf-8"))
    assert len(records) == len(raw["devices"]["cpu"]["precisions"]) * len(raw["seeds"])
    ok = [r for r in records if r.status == "ok"]
    assert {r.precision for r in ok} >= {"fp32", "bf16", "fp16", "fp16-noscale"}
    for r in ok:
        # warm-up 1 + 4 steps, eval every 2 steps and at the end (step 4 twice, merged later)
        assert [s for s, _ in r.eval_curve] == [2, 4, 5]
        assert len(r.eval_times_s) == 3 and r.eval_times_s == sorted(r.eval_times_s)
        # the clock: every step but the first (the only warm-up step here), no eval time
        assert r.eval_times_s[-1] == pytest.approx(sum(r.step_times_ms) / 1e3, rel=1e-9)
        numerics = r.result(NumericsResult)
        assert numerics is not None and numerics.every == 100
        assert numerics.overhead_s is not None and numerics.overhead_s > 0
    [summary] = analyze(records)
    assert summary.baseline_seeds == len(raw["seeds"]) >= 3
    assert summary.band is not None and all(sd is not None and sd > 0 for sd in summary.band.std)
    # a recipe with options is labelled with their tag (fp16-<6 hex>): the suite sets fp16's
    by_name = {re.sub(r"-[0-9a-f]{6}$", "", r.precision): r for r in summary.recipes}
    for name in ("bf16", "fp16", "fp16-noscale"):
        eq = by_name[name].equivalence
        assert eq is not None and eq.paired and eq.n == 3 and eq.margin is not None
        assert eq.verdict in (EQUIVALENT, WORSE, BETTER, INCONCLUSIVE)
        ttt = by_name[name].time_to_target
        assert ttt is not None and ttt.n == 3
    fp32_ttt = by_name["fp32"].time_to_target
    assert fp32_ttt is not None and fp32_ttt.reached == 3  # every seed reaches its own final loss
    assert all(math.isfinite(s.time_s or math.nan) for s in fp32_ttt.seeds)
    lost = {r.precision: n.underflow.lost_fraction for r in ok
            if r.seed == 0 and r.precision in ("fp16", "fp16-noscale")
            and (n := r.result(NumericsResult)) is not None}
    assert lost["fp16-noscale"] > lost["fp16"]


@pytest.mark.unit
def test_each_summary_holds_only_its_own_comparison_group() -> None:
    """With and without checkpointing are two configurations of one model, batch and length:
    each fp32 baseline is compared with its own setting's recipes, not with the other's."""
    from fixture_records import record as run

    runs = [run(p, s, ckpt=ckpt) for ckpt in (False, True) for s in range(2) for p in ("fp32", "bf16")]
    summaries = analyze(runs)
    assert len(summaries) == 2
    for summary in summaries:
        assert [rc.precision for rc in summary.recipes] == ["fp32", "bf16"]
        assert summary.baseline_seeds == 2
