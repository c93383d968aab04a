"""Issue 14, fair GPU baselines: torch.compile in every bundled CUDA profile, compile time
apart, a recipe that cannot compile runs eager and says so in its record."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mpbench.config.schema import TrainConfig
from mpbench.data import make_source
from mpbench.plan.spec import expand
from mpbench.precision import get_recipe
from mpbench.precision.base import RECIPES
from mpbench.precision.standard import FP32
from mpbench.results.env import environment_card
from mpbench.train.load import load_suite
from mpbench.train.loop import compile_info, train_run
from mpbench.train.measure import Measurement

ROOT = Path(__file__).resolve().parent.parent
TRAINING_SUITES = ["gpt", "llama", "memory", "convergence", "convergence-synthetic"]


@pytest.mark.unit
@pytest.mark.parametrize("name", TRAINING_SUITES)
def test_cuda_profiles_compile_every_recipe(name: str) -> None:
    path = ROOT / "suites" / f"{name}.yaml"
    assert load_suite(path, "cuda").train.compile
    assert not load_suite(path, "cpu").train.compile  # inductor on 2 CPU cores: minutes


@pytest.mark.unit
def test_compile_time_is_the_first_step_less_a_measured_step() -> None:
    m = Measurement(step_times_ms=[100.0, 110.0, 90.0], first_step_s=42.1)
    info = compile_info(True, True, None, m)
    assert info.used and info.compile_s == pytest.approx(42.0)
    assert compile_info(False, False, None, m).compile_s is None


@pytest.mark.unit
def test_te_delayed_scaling_runs_eager_instead_of_being_skipped() -> None:
    recipe = get_recipe("fp8-te-delayed")
    cfg = TrainConfig(compile=True)
    assert recipe.check_train(cfg) is None
    assert "torch.compile" in (recipe.compile_refusal(cfg) or "")
    assert get_recipe("fp8-te-current").compile_refusal(cfg) is None


class EagerOnly(FP32):
    name = "test-eager-only"
    summary = "fp32 that cannot be compiled"

    def compile_refusal(self, train: TrainConfig) -> str | None:
        return "test-eager-only: cannot compile"


@pytest.mark.integration
def test_a_recipe_that_cannot_compile_says_so_in_its_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RECIPES, EagerOnly.name, EagerOnly)
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nmodels: [gpt-tiny]\nprecisions: [test-eager-only]\n"
                    "train: {batch_size: 2, seq_len: 16, steps: 2, warmup_steps: 1, "
                    "eval_batches: 1, compile: true}\ndata: {source: synthetic, vocab_size: 32}\n")
    suite = load_suite(path, "cpu")
    (spec,) = expand(suite)
    rec = train_run(spec, make_source(suite.data), torch.device("cpu"), environment_card())
    assert rec.status == "ok", rec.reason
    assert rec.compile is not None
    assert (rec.compile.requested, rec.compile.used) == (True, False)
    assert rec.compile.reason == "test-eager-only: cannot compile"
    assert rec.compile.compile_s is None
