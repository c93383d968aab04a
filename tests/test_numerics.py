"""The numerics profiler: underflow vs an FP32 reference, overflow, loss scaling, divergence."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from fixture_records import stored_results
from torch import nn

from mpbench.cli.main import cli
from mpbench.config.schema import DataConfig, Suite
from mpbench.data import TokenSource, make_source
from mpbench.plan.spec import expand
from mpbench.precision import get_recipe
from mpbench.profilers.base import RunContext, StepInfo
from mpbench.profilers.grad_probe import FP16_MAX, probe, underflow
from mpbench.profilers.numerics import Numerics, NumericsOptions
from mpbench.results.env import environment_card
from mpbench.results.schema import RunRecord
from mpbench.results.store import load_records
from mpbench.train.loop import train_run


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared, oversubscribed CPU two spinning threads run 5-10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyRegression(nn.Module):
    """Two linear layers; `loss_factor` shrinks every gradient (1e-7: below FP16's 2^-24)."""

    def __init__(self, loss_factor: float, weight_gain: float = 1.0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 8)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            self.fc1.weight.mul_(weight_gain)
        self.loss_factor = loss_factor

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.fc2(torch.relu(self.fc1(x)))
        return ((out.float() - y) ** 2).mean() * self.loss_factor


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(8, 16, generator=gen), torch.randn(8, 8, generator=gen)


def context(model: nn.Module, recipe: str, scaler: torch.amp.GradScaler | None = None) -> RunContext:
    suite = Suite(name="t", models=[{"size": "gpt-tiny"}], precisions=[{"name": recipe}])
    source: Any = SimpleNamespace(vocab_size=64)
    return RunContext(expand(suite)[0], torch.device("cpu"), get_recipe(recipe), model,
                      torch.optim.SGD(model.parameters(), lr=0.0), scaler, source,
                      lambda x, y: 0.0, batch)


def one_step(prof: Numerics, ctx: RunContext, scale_after: float | None = None) -> dict[str, Any]:
    prof.on_start(ctx)
    prof.on_step_end(ctx, StepInfo(0, "measure", 1.0, None, scale_after, 0.01, batch()))
    return prof.result(ctx).model_dump(mode="json", exclude_unset=True)


# -- underflow ---------------------------------------------------------------------------

@pytest.mark.unit
def test_fp16_without_scaling_flushes_small_gradients_and_scaling_keeps_them() -> None:
    model = TinyRegression(loss_factor=1e-7)
    fp16 = torch.autocast("cpu", dtype=torch.float16)
    reference = probe(model, batch(), torch.autocast("cpu", enabled=False), 1.0, 4096)
    unscaled = underflow(probe(model, batch(), fp16, 1.0, 4096), reference)
    scaled = underflow(probe(model, batch(), torch.autocast("cpu", dtype=torch.float16),
                             2.0**16, 4096), reference)
    assert unscaled.lost_fraction is not None and scaled.lost_fraction is not None
    assert unscaled.lost_fraction > 0.4  # every non-zero gradient of fc2's output is lost
    assert scaled.lost_fraction < 0.01
    assert unscaled.fraction is not None and scaled.fraction is not None
    assert unscaled.fraction > scaled.fraction + 0.4
    # The reference itself has gradients: they are small, not zero (ReLU zeros aside).
    assert reference.taps["fc2"].grad_sample is not None
    assert float((reference.taps["fc2"].grad_sample == 0).float().mean()) == 0.0


@pytest.mark.unit
def test_profiler_reports_underflow_against_the_fp32_reference() -> None:
    results = {}
    for recipe, scale in (("fp16-noscale", None), ("fp16", 2.0**16), ("bf16", None)):
        model = TinyRegression(loss_factor=1e-7)
        scaler = torch.amp.GradScaler("cpu", init_scale=scale) if scale else None
        results[recipe] = one_step(Numerics(NumericsOptions(every=1)), context(model, recipe, scaler),
                                   scale)["underflow"]
    assert results["fp16-noscale"]["lost_fraction"] > 0.4
    assert results["fp16"]["lost_fraction"] < 0.01
    assert results["bf16"]["lost_fraction"] < 0.01  # bf16 has fp32's range: nothing flushed
    for u in results.values():
        assert u["fp32_reference_fraction"] > 0.4  # what fp16 would lose without scaling
        assert u["reference"].startswith("deep copy")  # not a reference architecture
        assert len(u["samples"]) == 1 and u["samples"][0]["step"] == 1


# -- overflow ----------------------------------------------------------------------------

@pytest.mark.unit
def test_activation_above_fp16_max_is_reported_with_its_layer() -> None:
    result = one_step(Numerics(NumericsOptions(every=1)),
                      context(TinyRegression(1.0, weight_gain=1e5), "bf16"))
    over = result["overflow"]
    assert over["act_amax"] > FP16_MAX and over["act_amax_layer"] == "fc2"  # fc2 amplifies fc1
    above = [e["layer"] for e in over["events"] if e["kind"] == "above-fp16-max-activation"]
    assert above == ["fc1", "fc2"]  # in forward order: fc1 is where it starts


@pytest.mark.unit
def test_fp16_overflow_to_inf_is_an_event_at_the_first_layer() -> None:
    result = one_step(Numerics(NumericsOptions(every=1)),
                      context(TinyRegression(1.0, weight_gain=1e5), "fp16-noscale"))
    events = result["overflow"]["events"]
    first = next(e for e in events if e["kind"] == "nonfinite-activation")
    assert (first["step"], first["layer"]) == (1, "fc1")
    assert first["value"] in ("inf", "nan")  # the matmul's sum of +inf and -inf gives nan
    assert first["fp32_scaled_amax"] > FP16_MAX  # what the FP32 reference had there
    assert any(e["kind"] == "nonfinite-loss" for e in events)


@pytest.mark.unit
def test_a_loss_scale_drop_is_a_skipped_step_located_at_its_layer() -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    prof = Numerics(NumericsOptions(every=100))  # step 1 is probed anyway; make it step 2
    ctx = context(TinyRegression(1.0), "fp16", scaler)
    prof.on_start(ctx)
    prof.on_step_end(ctx, StepInfo(0, "measure", 1.0, 0.5, 2.0**40, 0.01, batch()))
    prof.on_step_end(ctx, StepInfo(1, "measure", 1.0, None, 2.0**39, 0.01, batch()))
    result = prof.result(ctx).model_dump(mode="json", exclude_unset=True)
    assert result["skipped_steps"] == [2]
    assert result["loss_scale"] == [[0, 2.0**40], [1, 2.0**40], [2, 2.0**39]]
    [skip] = [e for e in result["overflow"]["events"] if e["kind"] == "skipped-step"]
    assert (skip["step"], skip["layer"], skip["value"]) == (2, "fc2", "inf")
    assert skip["fp32_scaled_amax"] > FP16_MAX  # FP32 gradient amax x 2^40 is out of range
    assert result["grad_norm"] == [[1, 0.5]] and result["probes"] == 2


# -- in the training loop ------------------------------------------------------------------

def tiny_suite(precision: dict[str, Any], steps: int = 6, profilers: Any = None, **train: Any) -> Suite:
    return Suite.model_validate({
        "name": "t", "models": ["gpt-tiny"], "precisions": [precision],
        "train": {"batch_size": 2, "seq_len": 16, "steps": steps, "warmup_steps": 0,
                  "eval_batches": 1, **train},
        "data": {"source": "synthetic", "vocab_size": 32},
        "profilers": profilers if profilers is not None else [{"name": "numerics",
                                                               "options": {"every": 1}}],
    })


@functools.cache
def synthetic() -> TokenSource:
    return make_source(DataConfig(source="synthetic", vocab_size=32), None)


def run(suite: Suite) -> RunRecord:
    return train_run(expand(suite)[0], synthetic(), torch.device("cpu"), environment_card())


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step:UserWarning")  # skipped steps
def test_grad_scaler_backs_off_on_overflow_and_grows_when_stable() -> None:
    rare = [{"name": "numerics", "options": {"every": 100}}]
    high = run(tiny_suite({"name": "fp16", "options": {"init_scale": 2.0**40}}, 3, rare))
    n = stored_results(high)["numerics"]
    assert high.status == "ok" and n["skipped_steps"] == [1, 2, 3]
    assert [s for _, s in n["loss_scale"]] == [2.0**40, 2.0**39, 2.0**38, 2.0**37]
    assert sum(e["kind"] == "skipped-step" for e in n["overflow"]["events"]) == 3
    low = run(tiny_suite({"name": "fp16", "options": {"init_scale": 1.0, "growth_interval": 2}},
                         4, rare))
    n = stored_results(low)["numerics"]
    assert n["skipped_steps"] == []
    # initial scale, step 1 (sampled), then every change: x2 after each 2 clean steps
    assert n["loss_scale"] == [[0, 1.0], [1, 1.0], [2, 2.0], [4, 4.0]]


@pytest.mark.integration
def test_profiler_does_not_change_training() -> None:
    fp16 = {"name": "fp16"}
    every2 = [{"name": "numerics", "options": {"every": 2}}]
    watched, plain = run(tiny_suite(fp16, 4, every2)), run(tiny_suite(fp16, 4, []))
    assert watched.loss_curve == plain.loss_curve and watched.eval_loss == plain.eval_loss
    n = stored_results(watched)["numerics"]
    assert n["probes"] == 3 and n["overhead_s"] > 0 and n["overhead_fraction"] > 0
    assert [s for s, _ in n["grad_norm"]] == [1, 2, 4] and all(v > 0 for _, v in n["grad_norm"])


# -- divergence ------------------------------------------------------------------------------

@pytest.mark.integration
def test_a_blown_up_run_is_recorded_as_diverged_and_the_suite_goes_on(tmp_path: Path) -> None:
    suite = tmp_path / "blowup.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "blowup", "models": ["gpt-tiny"], "precisions": ["fp32", "bf16"],
        "train": {"batch_size": 2, "seq_len": 16, "steps": 8, "warmup_steps": 0, "lr": 1000.0,
                  "grad_clip": None, "eval_batches": 1},
        "data": {"source": "synthetic", "vocab_size": 32},
        "profilers": ["numerics"],
    }), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(suite), "--device", "cpu", "-o", str(out), "-q",
                                      "--no-report"])
    assert result.exit_code == 0, result.output
    records = {r.precision: r for r in load_records(out)}
    assert set(records) == {"fp32", "bf16"}  # the second run ran after the first blew up
    for r in records.values():
        assert r.status == "diverged" and r.diverged_step is not None and 1 < r.diverged_step <= 8
        assert r.last_good_loss is not None and r.last_good_loss < 3 * 3.47  # 3 x ln(32)
        assert r.reason is not None and f"at step {r.diverged_step}" in r.reason
        assert r.eval_loss is None and r.tokens_per_s is None
        assert "numerics" in r.profiler_results
    assert "diverged" in result.output


# -- GPU ---------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_underflow_on_cuda_fp16_noscale_vs_fp16() -> None:
    source = synthetic()
    lost = {}
    for name in ("fp16-noscale", "fp16"):
        spec = expand(tiny_suite({"name": name}, steps=3))[0]
        record = train_run(spec, source, torch.device("cuda"), environment_card())
        assert record.status == "ok"
        lost[name] = stored_results(record)["numerics"]["underflow"]["lost_fraction"]
    assert lost["fp16-noscale"] > lost["fp16"]
