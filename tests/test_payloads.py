"""Every stored profiler result reads back as its typed model (results/payloads/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from fixture_records import write_results

from mpbench.config.parallel import ParallelRun
from mpbench.data import make_source
from mpbench.errors import UserError
from mpbench.plan.spec import expand
from mpbench.profilers import (
    PROFILERS,
    Profiler,
    ProfilerOptions,
    RunContext,
    StepInfo,
    register_profiler,
)
from mpbench.report.sections_quality import gpm_line
from mpbench.results.env import environment_card
from mpbench.results.payloads import (
    GpmMetrics,
    NvmlResult,
    ParallelResult,
    ProfileResult,
    Skipped,
    TensorCoreResult,
)
from mpbench.results.recipe_card import recipe_card
from mpbench.results.store import load_records, read_record
from mpbench.train.load import load_suite
from mpbench.train.loop import train_run

ROOT = Path(__file__).resolve().parent.parent
RECORDED = sorted({p.parent.parent for p in (ROOT / "reports").glob("*/runs/*.json")}
                  | {p.parent.parent for p in (ROOT / "tests/data").glob("*/runs/*.json")})


@pytest.mark.unit
@pytest.mark.parametrize("results_dir", RECORDED, ids=lambda p: p.name)
def test_committed_profiler_results_load_as_their_models_and_store_back_as_they_were(
        results_dir: Path) -> None:
    """Each stored result is typed once, at load, as the model registered under its name, and
    writes back as the same JSON (the fields it had, equal values)."""
    seen = 0
    for path in sorted((results_dir / "runs").glob("*.json")):
        stored = json.loads(path.read_text(encoding="utf-8"))
        raw = stored.get("profiler_results", stored.get("profiles"))
        r = read_record(path)
        assert set(r.profiler_results) == set(raw), path
        for name, found in r.profiler_results.items():
            model = ProfileResult.models[name]
            if "skipped" in raw[name]:  # nvml on a CPU
                assert type(found) is Skipped and r.result(model) is None
                assert r.skip_reason(model) == raw[name]["skipped"] != ""
                continue
            assert type(found) is model and r.result(model) is found, (path, name)
            assert r.skip_reason(model) is None
            seen += 1
        assert json.loads(r.model_dump_json())["profiler_results"] == raw, path
    assert seen > 0


@pytest.mark.unit
def test_every_profiler_binds_a_registered_model_it_is_named_after() -> None:
    for name, cls in PROFILERS.items():
        assert cls.Result is not ProfileResult, name
        assert ProfileResult.models[name] is cls.Result and cls.Result.name == name
        assert cls.Result.suite_line() == f"profilers: [{name}]"


@pytest.mark.unit
def test_parallel_result_names_every_parallel_run_setting() -> None:
    """merge() stores ParallelRun.model_dump() there: a new setting must be a field too."""
    assert set(ParallelRun.model_fields) <= set(ParallelResult.model_fields)


@pytest.mark.unit
def test_a_renamed_kernel_field_is_refused() -> None:
    with pytest.raises(ValueError, match=r"top_kernels\.0\.time_ms"):
        TensorCoreResult.model_validate({"buckets": {"matmul": 1.0}, "top_kernels": [
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


@pytest.mark.integration
def test_a_new_profiler_is_its_result_model_and_its_class_and_reads_back_typed(
        tmp_path: Path) -> None:
    """What adding a profiler takes: a result model (in results/payloads/, where defining it
    registers it under its name) and the profiler bound to it (a module in profilers/, which
    the package imports). The loop stores what `result` returns; the record reads it back as
    the same type, written to disk and loaded again, and a corrupt one is one line."""

    class StepsResult(ProfileResult):
        name = "toy_steps"
        steps: int = 0
        last_loss: float | None = None

    @register_profiler
    class Steps(Profiler):
        summary = "the training steps it saw and the last loss"
        Result = StepsResult

        def __init__(self, options: ProfilerOptions | None = None) -> None:
            super().__init__(options)
            self.losses: list[float] = []

        def on_step_end(self, ctx: RunContext, info: StepInfo) -> None:
            self.losses.append(info.loss)

        def result(self, ctx: RunContext) -> StepsResult:
            return StepsResult(steps=len(self.losses), last_loss=self.losses[-1])

    try:
        assert Steps.name == "toy_steps" and StepsResult.suite_line() == "profilers: [toy_steps]"
        suite = tmp_path / "toy.yaml"
        suite.write_text(yaml.safe_dump({
            "name": "toy", "models": ["gpt-tiny"], "precisions": ["fp32"],
            "train": {"batch_size": 2, "seq_len": 16, "steps": 3, "warmup_steps": 1,
                      "eval_batches": 0},
            "data": {"source": "synthetic", "vocab_size": 32}, "profilers": ["toy_steps"]}))
        (spec,) = expand(load_suite(suite, "cpu"))
        ran = train_run(spec, make_source(spec.suite.data), torch.device("cpu"),
                        environment_card())
        assert ran.status == "ok", ran.reason
        path = write_results(tmp_path / "results", [ran])
        (stored,) = (path / "runs").glob("*.json")
        raw = json.loads(stored.read_text())
        assert raw["profiler_results"] == {"toy_steps": {
            "steps": 4, "last_loss": ran.loss_curve[-1][1]}}  # warm-up + measured steps
        (back,) = load_records(path)
        found = back.result(StepsResult)
        assert type(found) is StepsResult and found == ran.result(StepsResult)
        assert found.steps == 4 and back.skip_reason(StepsResult) is None
        raw["profiler_results"]["toy_steps"]["steps"] = "four"
        stored.write_text(json.dumps(raw))
        with pytest.raises(UserError, match=rf"{stored.name}: corrupt run record: "
                                            r"profiler_results\.toy_steps: steps: "):
            load_records(path)
    finally:
        PROFILERS.pop("toy_steps", None)
        ProfileResult.models.pop("toy_steps", None)
