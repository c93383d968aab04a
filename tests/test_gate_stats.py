"""The gate's statistics and rules on constructed data: calibration, power, each rule's verdict."""

from __future__ import annotations

import math
import re

import click
import numpy as np
import pytest

from mpbench.analysis.compare import Group
from mpbench.cli.gate import Fraction, LossTolerance
from mpbench.gate.matching import ConfigPair, changed_settings, match_runs, platform_mismatch
from mpbench.gate.rules import (
    CPU_RSS_NOISE_BYTES,
    Limits,
    check_loss,
    check_memory,
    check_status,
    check_throughput,
)
from mpbench.interop.pytest_benchmark import RunSummary, benchmark_stats
from mpbench.results.key import ParallelKey, make_key


def run(seed: int = 0, status: str = "ok", times: list[float] | None = None, peak: int | None = 100 * 2**20,
        kind: str = "cuda", loss: float | None = 3.0, reason: str | None = None, **kw: object) -> RunSummary:
    fields: dict[str, object] = dict(
        run_id=f"m__fp32__b4-t32__seed{seed}", model="m", precision="fp32", batch_size=4, seq_len=32,
        seed=seed, profile="default", device="cuda:0", device_name="H100", status=status,
        reason=reason, step_times_ms=times if times is not None else [10.0] * 20,
        peak_bytes=peak, memory_kind=kind, eval_loss=loss)
    fields.update(kw)
    if "config_key" not in fields:  # the key the record carries: written from the settings
        train: dict = dict(fields.get("train") or {})  # type: ignore[call-overload]
        fields["config_key"] = make_key(str(fields["model"]), str(fields["precision"]), {},
                                        {"batch_size": fields["batch_size"],
                                         "seq_len": fields["seq_len"], **train}, list(train),
                                        kw.get("parallel"), str(fields["profile"]))  # type: ignore[arg-type]
        fields.pop("parallel", None)
    source = str(fields.pop("source", ""))
    summary = RunSummary(**fields)  # type: ignore[arg-type]
    summary.source = source
    return summary


def pair(base: list[RunSummary], cur: list[RunSummary]) -> ConfigPair:
    return ConfigPair(base[0].config_id, Group(base[0].config_key, base), Group(cur[0].config_key, cur))


@pytest.mark.unit
def test_config_id_is_the_key_the_record_carries_never_the_run_id_read_back() -> None:
    assert run(seed=3).config_id == "m b4×t32 fp32"
    assert run(run_id="custom").config_id == "m b4×t32 fp32"
    ddp = ParallelKey(strategy="ddp", grad_comm_dtype="bf16", world_size=2)
    matrix = run(run_id="whatever", train={"lr": 0.01}, parallel=ddp)
    assert matrix.config_id == "m b4×t32 lr=0.01 ddp-bf16comm-w2 fp32"


@pytest.mark.unit
def test_memory_growth_rules() -> None:
    lim = Limits()
    grown = check_memory(pair([run()], [run(peak=int(100 * 2**20 * 1.05))]), lim)
    assert grown is not None and grown.verdict == "regression" and "grew by 5.0%" in grown.detail
    small = check_memory(pair([run()], [run(peak=int(100 * 2**20 * 1.02))]), lim)
    assert small is not None and small.verdict == "ok"
    # on a CPU, RSS growth below the noise floor is not a regression even when large in %
    cpu = check_memory(pair([run(kind="cpu-rss", peak=20 * 2**20)],
                            [run(kind="cpu-rss", peak=20 * 2**20 + CPU_RSS_NOISE_BYTES - 1)]), lim)
    assert cpu is not None and cpu.verdict == "ok" and "CPU RSS noise" in cpu.detail
    cpu = check_memory(pair([run(kind="cpu-rss", peak=20 * 2**20)],
                            [run(kind="cpu-rss", peak=40 * 2**20)]), lim)
    assert cpu is not None and cpu.verdict == "regression"
    assert check_memory(pair([run(peak=None)], [run()]), lim) is None


@pytest.mark.unit
def test_loss_rules_one_seed_and_tost_with_seeds() -> None:
    lim = Limits(loss_tolerance=0.02)
    worse = check_loss(pair([run(loss=3.0)], [run(loss=3.05)]), lim)
    assert worse is not None and worse.verdict == "regression" and worse.change == "+0.0500"
    assert check_loss(pair([run(loss=3.0)], [run(loss=3.01)]), lim).verdict == "ok"  # type: ignore[union-attr]
    rel = check_loss(pair([run(loss=3.0)], [run(loss=3.05)]), Limits(loss_tolerance=0.02, loss_relative=True))
    assert rel is not None and rel.verdict == "ok"  # 2% of 3.0 = 0.06 nats
    # seeds: paired TOST decides; tiny consistent shift is equivalent, large shift a regression
    base = [run(seed=s, loss=3.0 + 0.01 * s) for s in range(3)]
    same = check_loss(pair(base, [run(seed=s, loss=3.001 + 0.01 * s) for s in range(3)]), lim)
    assert same is not None and same.verdict == "ok" and "equivalent" in same.detail
    bad = check_loss(pair(base, [run(seed=s, loss=3.1 + 0.01 * s + 0.001 * s * s) for s in range(3)]), lim)
    assert bad is not None and bad.verdict == "regression" and "TOST" in bad.detail
    noisy = check_loss(pair(base, [run(seed=0, loss=3.0), run(seed=1, loss=3.2), run(seed=2, loss=2.9)]), lim)
    assert noisy is not None and noisy.verdict == "inconclusive"


@pytest.mark.unit
def test_status_transitions() -> None:
    def one(old: RunSummary, new: RunSummary) -> str:
        (f,) = check_status(pair([old], [new]))
        return f.verdict

    assert check_status(pair([run()], [run()])) == []
    assert one(run(), run(status="oom", reason="CUDA out of memory")) == "regression"
    assert one(run(), run(status="diverged", reason="loss nan")) == "regression"
    assert one(run(), run(status="skipped", reason="no GPU")) == "regression"
    assert one(run(status="skipped", reason="needs sm_89"), run(status="skipped", reason="TE missing")) == "regression"
    assert one(run(status="skipped", reason="needs sm_89"), run(status="skipped", reason="needs sm_89")) == "ok"
    assert one(run(status="oom", reason="x"), run()) == "improved"
    assert one(run(status="diverged", reason="x"), run(status="failed", reason="y")) == "inconclusive"


@pytest.mark.unit
def test_throughput_rule_names_runs_and_pools_seeds() -> None:
    rng = np.random.default_rng(6)
    base = [run(seed=s, times=list(10 * rng.lognormal(0, 0.03, 20))) for s in range(3)]
    cur = [run(seed=s, times=[t * 1.12 for t in b.step_times_ms]) for s, b in enumerate(base)]
    f = check_throughput(pair(base, cur), Limits())
    assert f is not None and f.verdict == "regression" and f.metric == "step time"
    assert f.runs == [f"m__fp32__b4-t32__seed{s}" for s in range(3)]
    assert "(3 runs, n=60)" in f.current and f.change.startswith("+12.0% [")
    assert f.values["p_slower"] == pytest.approx(1 / 20)  # 3 vs 3, every current run slower
    assert "Mann-Whitney" in f.values["test"]
    # two seeds a side: the exact test's smallest p is 1/6, so no data could decide at 0.05
    two = check_throughput(pair(base[:2], cur[:2]), Limits())
    assert two is not None and two.verdict == "inconclusive"
    assert "needs 3 runs per side for alpha 0.05" in two.detail
    failed = check_throughput(pair(base, [run(status="oom", times=[])]), Limits())
    assert failed is None  # the status rule reports it


@pytest.mark.unit
def test_matching_and_platform_checks() -> None:
    base = [run(seed=0), run(seed=0, run_id="other__fp32__b4-t32__seed0", model="other")]
    cur = [run(seed=0), run(seed=0, run_id="new__bf16__b4-t32__seed0", model="new")]
    m = match_runs(cur, base, ignore_platform=False)
    assert [p.config_id for p in m.pairs] == ["m b4×t32 fp32"]
    assert m.only_current == ["new__bf16__b4-t32__seed0"]
    assert m.only_baseline == ["other__fp32__b4-t32__seed0"]
    assert platform_mismatch([run()], [run()]) is None
    msg = platform_mismatch([run(device_name="A100")], [run()])
    assert msg is not None and "'A100'" in msg and "'H100'" in msg
    assert platform_mismatch([run(profile="cpu")], [run()]) is not None
    changes = changed_settings([run(software={"torch": "2.12"})], [run(software={"torch": "2.13"})], "software")
    assert changes == ["torch: 2.12 -> 2.13"]


@pytest.mark.unit
def test_fraction_and_tolerance_options() -> None:
    f = Fraction()
    assert f.convert("5%", None, None) == pytest.approx(0.05)
    assert f.convert("0.05", None, None) == pytest.approx(0.05)
    assert f.convert("12.5%", None, None) == pytest.approx(0.125)
    with pytest.raises(click.BadParameter, match=re.escape("'fast' is not a fraction; write it as 5% or 0.05")):
        f.convert("fast", None, None)
    with pytest.raises(click.BadParameter, match="'5' is ambiguous; write 5% for percent"):
        f.convert("5", None, None)
    with pytest.raises(click.BadParameter, match="must not be negative"):
        f.convert("-1%", None, None)
    t = LossTolerance()
    assert t.convert("0.02", None, None) == (0.02, False)
    assert t.convert("1%", None, None) == (pytest.approx(0.01), True)
    with pytest.raises(click.BadParameter, match="not a tolerance"):
        t.convert("x", None, None)


@pytest.mark.unit
@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 8, 9, 24])
def test_exported_stats_equal_pytest_benchmarks_own(n: int) -> None:
    from pytest_benchmark.stats import Stats

    data = list(np.random.default_rng(n).lognormal(-4, 0.3, n))
    ref = Stats()
    for t in data:
        ref.update(t)
    ours = benchmark_stats(data)
    for name in Stats.fields:
        expected = getattr(ref, name)
        if isinstance(expected, float):
            assert math.isclose(ours[name], expected, rel_tol=1e-12), name
        else:
            assert ours[name] == expected, name


@pytest.mark.unit
def test_repeats_share_a_configuration_and_one_status_finding() -> None:
    assert run(run_id="m__fp32__b4-t32__seed0-r2").config_id == "m b4×t32 fp32"
    base = [run(run_id=f"m__fp32__b4-t32__seed0{s}") for s in ("", "-r1", "-r2")]
    cur = [run(run_id=f"m__fp32__b4-t32__seed0{s}", status="oom", reason="OOM", times=[])
           for s in ("", "-r1", "-r2")]
    (finding,) = check_status(pair(base, cur))
    assert finding.verdict == "regression" and len(finding.runs) == 3


def _runs(medians: list[float], probe: float | None, source: str = "") -> list[RunSummary]:
    rng = np.random.default_rng(int(sum(medians)))
    return [run(run_id=f"m__fp32__b4-t32__seed0-r{i}", times=list(m * rng.lognormal(0, 0.01, 20)),
                probe_ms=probe, source=source) for i, m in enumerate(medians)]


@pytest.mark.unit
def test_normalize_by_probe_divides_out_a_slower_machine() -> None:
    from mpbench.gate.evaluate import compare_runs

    base = _runs([10.0, 10.1, 9.9], probe=1.0)
    cur = _runs([12.0, 12.1, 11.9], probe=1.2)  # the probe, too, ran 20% slower
    plain = compare_runs(cur, base, Limits())
    step = next(f for f in plain.findings if f.metric == "step time")
    assert step.verdict == "regression"
    assert any("machine drift: the machine itself ran slower" in n and "+20.0%" in n
               for n in plain.notes)
    normal = compare_runs(cur, base, Limits(normalize_by_probe=True))
    step = next(f for f in normal.findings if f.metric == "step time")
    assert step.verdict != "regression" and step.values["normalized_by_probe"]
    assert any("--normalize-by-probe" in n for n in normal.notes)
    assert normal.as_dict()["machine_drift"]["change"] == pytest.approx(0.2)
    from mpbench.errors import UserError

    with pytest.raises(UserError, match="no drift probe"):
        compare_runs(cur, _runs([10.0, 10.1], probe=None), Limits(normalize_by_probe=True))


@pytest.mark.unit
def test_several_baseline_sources_spread_enters_the_throughput_rule() -> None:
    base = _runs([10.0, 10.1, 9.9], 1.0, "a") + _runs([12.0, 12.2, 11.8], 1.0, "b")
    cur = _runs([11.9, 12.0, 12.1], 1.0, "cur")
    f = check_throughput(pair(base, cur), Limits())
    assert f is not None and f.verdict != "regression"
    assert f.values["baseline_spread"] == pytest.approx(0.2, abs=0.02)
