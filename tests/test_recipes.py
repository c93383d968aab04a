"""Precision recipes: availability reasons, what each does to the model and the step."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from mpbench.config.model_sizes import MODEL_SIZES
from mpbench.errors import UserError
from mpbench.models.reference import build_model
from mpbench.precision import RECIPES, get_recipe
from mpbench.precision.fp8_ao import AOOptions, AORecipe
from mpbench.precision.fp8_base import Fp8Recipe, preset
from mpbench.precision.fp8_te import TERecipe
from mpbench.train.load import load_suite

pytestmark = pytest.mark.unit
CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


def test_registry_has_the_standard_recipes() -> None:
    assert {"fp32", "tf32", "fp16", "fp16-noscale", "bf16", "bf16-pure"} <= set(RECIPES)


def test_tf32_is_skipped_on_cpu_with_a_reason() -> None:
    reason = get_recipe("tf32").check(CPU)
    assert reason == "TF32 (an NVIDIA tensor-core mode) needs a CUDA GPU; this run is on cpu"
    assert get_recipe("fp32").check(CPU) is None and get_recipe("bf16").check(CPU) is None


def test_fp32_is_strict_while_active_and_restores() -> None:
    torch.set_float32_matmul_precision("medium")
    with get_recipe("fp32").activated():
        assert torch.get_float32_matmul_precision() == "highest"
    assert torch.get_float32_matmul_precision() == "medium"
    torch.set_float32_matmul_precision("highest")


def test_autocast_dtypes() -> None:
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(2, 8)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        with get_recipe(name).autocast(CPU):
            assert lin(x).dtype == dtype, name


def test_only_fp16_scales_the_loss() -> None:
    scaler = get_recipe("fp16", {"init_scale": 1024.0}).make_scaler(CPU)
    assert scaler is not None and scaler.get_scale() == 1024.0
    for name in ("fp32", "fp16-noscale", "bf16", "bf16-pure"):
        assert get_recipe(name).make_scaler(CPU) is None


def test_bf16_pure_casts_parameters_and_describes_optimizer_state() -> None:
    recipe = get_recipe("bf16-pure")
    model = recipe.prepare(build_model(MODEL_SIZES["gpt-tiny"], 0), CPU)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert recipe.describe()["optimizer_state_dtype"] == "bfloat16"
    autocast_model = get_recipe("bf16").prepare(build_model(MODEL_SIZES["gpt-tiny"], 0), CPU)
    assert {p.dtype for p in autocast_model.parameters()} == {torch.float32}  # fp32 master weights


def test_describe_carries_family_and_options() -> None:
    d = get_recipe("fp16", {"growth_interval": 10}).describe()
    assert d["family"] == "fp16" and d["compute_dtype"] == "float16"
    assert d["options"]["growth_interval"] == 10 and d["numerics_only"] is False


# -- FP8 / FP4: one recipe class per backend, the named recipes are its presets ----------------

PRESETS = {  # name -> (backend class, scaling, the option keys its records hold since before)
    "fp8-te-delayed": (TERecipe, "delayed", ["allow_bf16_fallback", "fp8_filter", "params_dtype",
                                             "fp8_format", "amax_history_len",
                                             "amax_compute_algo", "margin"]),
    "fp8-te-current": (TERecipe, "current", ["allow_bf16_fallback", "fp8_filter", "params_dtype",
                                             "fp8_format"]),
    "fp8-te-block": (TERecipe, "block", ["allow_bf16_fallback", "fp8_filter", "params_dtype"]),
    "fp8-te-mxfp8": (TERecipe, "mxfp8", ["allow_bf16_fallback", "fp8_filter", "params_dtype"]),
    "fp4-te-nvfp4": (TERecipe, "nvfp4", ["allow_bf16_fallback", "fp8_filter", "params_dtype"]),
    "fp8-ao-tensorwise": (AORecipe, "tensorwise", ["allow_bf16_fallback", "fp8_filter"]),
    "fp8-ao-rowwise": (AORecipe, "rowwise", ["allow_bf16_fallback", "fp8_filter"]),
    "fp8-ao-mxfp8": (AORecipe, "mxfp8", ["allow_bf16_fallback", "fp8_filter"]),
}


def test_each_named_fp8_recipe_is_its_backend_at_one_scaling() -> None:
    fp8 = {name for name, cls in RECIPES.items() if issubclass(cls, Fp8Recipe)}
    assert fp8 == {*PRESETS, "fp8-emulated"}
    for name, (backend, scaling, keys) in PRESETS.items():
        recipe = get_recipe(name)
        assert type(recipe).__bases__ == (backend,), name
        assert recipe.options.scaling == scaling and recipe.options.pinned == name
        # a record holds the same options, in the same order, as before the presets
        assert list(recipe.describe()["options"]) == keys, name
    assert list(get_recipe("fp8-emulated").describe()["options"]) == [
        "allow_bf16_fallback", "fp8_filter", "implementation", "scaling", "amax_history_len"]
    assert RECIPES["fp4-te-nvfp4"].gemm_dtype == "fp4" and get_recipe("fp4-te-nvfp4").gemm_key() == "fp4"
    delayed = get_recipe("fp8-te-delayed", {"amax_history_len": 16, "margin": 1})
    assert delayed.describe()["options"]["amax_history_len"] == 16
    assert delayed.describe()["fp8"]["amax_history_len"] == 16
    assert get_recipe("fp8-te-current").describe()["fp8"]["amax_history_len"] is None


SUITE = """\
name: t
models: [gpt-tiny]
precisions: [bf16, {precision}]
train: {{batch_size: 4, seq_len: 32, steps: 2}}
data: {{source: synthetic, vocab_size: 64}}
"""


@pytest.mark.parametrize(("precision", "message"), [
    ("{name: fp8-te-current, options: {scaling: delayed}}",
     "precisions[1].options.scaling: the recipe fp8-te-current is scaling 'current'; for "
     "'delayed' name the recipe fp8-te-delayed"),
    ("{name: fp8-ao-rowwise, options: {scaling: rowwise_with_gw_hp}}",
     "precisions[1].options.scaling: the recipe fp8-ao-rowwise is scaling 'rowwise'; for "
     "'rowwise_with_gw_hp' no recipe has it yet: remove the key"),
    ("{name: fp8-te-block, options: {amax_history_len: 16}}",
     "precisions[1].options: amax_history_len: only scaling 'delayed' (fp8-te-delayed) takes "
     "it, this recipe's scaling is 'block'; remove it"),
    ("{name: fp8-emulated, options: {amax_history_len: 4}}",
     "precisions[1].options: amax_history_len: only scaling 'delayed' takes it, this recipe's "
     "scaling is 'current'; set that scaling or remove it"),
    ("{name: fp8-ao-tensorwise, options: {margin: 1}}",
     "precisions[1].options.margin: unknown key; valid keys: allow_bf16_fallback, fp8_filter"),
    ("{name: fp8-te-current, options: {fp8_fromat: E4M3}}",
     "precisions[1].options.fp8_fromat: unknown key; did you mean 'fp8_format'? valid keys: "
     "allow_bf16_fallback, fp8_filter, fp8_format, params_dtype"),
])
def test_fp8_options_a_scaling_would_ignore_are_refused_at_load(
        tmp_path: Path, precision: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(precision=precision))
    with pytest.raises(UserError) as err:
        load_suite(path, "cpu")
    assert str(err.value) == f"{path}: {message}"
    # the scaling a preset already has, and a default, change nothing and are accepted
    path.write_text(SUITE.format(precision="{name: fp8-te-current, options: {scaling: current, "
                                 "amax_history_len: 1024}}"))
    assert load_suite(path, "cpu").precisions[1].options["scaling"] == "current"


STORED = sorted([*(ROOT / "tests" / "data").glob("*/runs/*.json"),
                 *(ROOT / "reports").glob("*/runs/*.json")])


def test_stored_records_recipe_options_still_load_and_mean_the_same() -> None:
    """Every committed record's recipe options validate against today's recipe of that name,
    and the recipe records each of them with the same value."""
    checked = 0
    for path in STORED:
        rec = json.loads(path.read_text())
        name, options = rec["recipe"]["name"], rec["recipe"].get("options") or {}
        recorded = get_recipe(name, options).describe()["options"]
        assert {k: recorded[k] for k in options} == options, path.name
        checked += name.startswith("fp")
    assert checked >= 40  # the FP8 records among them (te, torchao and emulated, two suites)


def test_a_new_fp8_recipe_on_an_existing_backend_is_one_preset_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchao's rowwise_with_gw_hp (its Float8LinearConfig recipe name) has no preset; the one
    line below makes it a recipe suites can name, with the checks and record of its backend."""
    asked: list[str] = []
    config = SimpleNamespace(
        cast_config_input=SimpleNamespace(target_dtype=torch.float8_e4m3fn,
                                          scaling_granularity=SimpleNamespace(value="axiswise")),
        cast_config_weight=SimpleNamespace(target_dtype=torch.float8_e4m3fn),
        cast_config_grad_output=SimpleNamespace(target_dtype=torch.float8_e4m3fn),
        cast_config_input_for_grad_weight=SimpleNamespace(
            scaling_type=SimpleNamespace(value="disabled")),
        round_scales_to_power_of_2=False)

    class Float8LinearConfig:
        @staticmethod
        def from_recipe_name(name: str) -> SimpleNamespace:
            asked.append(name)
            return config

    converted: list[str] = []

    def convert_to_float8_training(model: nn.Module, module_filter_fn: Any,
                                   config: Any) -> nn.Module:
        converted.extend(n for n, m in model.named_modules() if module_filter_fn(m, n))
        return model

    float8 = ModuleType("torchao.float8")
    float8.Float8LinearConfig = Float8LinearConfig  # type: ignore[attr-defined]
    float8.convert_to_float8_training = convert_to_float8_training  # type: ignore[attr-defined]
    torchao = ModuleType("torchao")
    torchao.__version__ = "0.13.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchao", torchao)
    monkeypatch.setitem(sys.modules, "torchao.float8", float8)
    monkeypatch.setattr(AOOptions, "presets", dict(AOOptions.presets))
    name = "fp8-ao-rowwise-gw-hp"
    try:
        preset(AORecipe, name, "rowwise_with_gw_hp", "torchao float8, 'rowwise_with_gw_hp'")
        path = tmp_path / "s.yaml"
        path.write_text(SUITE.format(precision=name))
        assert load_suite(path, "cpu").precisions[1].name == name
        recipe = get_recipe(name)
        assert recipe.check(CPU) == f"{name} (torchao float8 rowwise_with_gw_hp) needs a CUDA GPU; " \
            "this run is on cpu"
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
        assert recipe.check(torch.device("cuda")) is None and asked == ["rowwise_with_gw_hp"]
        recipe.prepare(build_model(MODEL_SIZES["gpt-tiny"], 0), CPU)
        assert asked[-1] == "rowwise_with_gw_hp" and converted == [
            f"blocks.{i}.{s}" for i in (0, 1) for s in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")]
        record = recipe.describe()
        assert record["family"] == "fp8" and record["options"] == get_recipe(
            "fp8-ao-rowwise").describe()["options"]
        assert record["fp8"]["scaling"] == ("dynamic axiswise (amax of the current tensor per "
                                            "row); the weight-gradient GEMM in high precision")
        assert record["fp8"]["formats"] == {"forward": "e4m3", "weight": "e4m3", "backward": "e4m3"}
        assert record["fp8"]["torchao_version"] == "0.13.0"
    finally:
        RECIPES.pop(name, None)
