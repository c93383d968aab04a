"""Precision recipes: availability reasons, what each does to the model and the step."""

from __future__ import annotations

import pytest
import torch

from mpbench.config.model_sizes import MODEL_SIZES
from mpbench.models.reference import build_model
from mpbench.precision import RECIPES, get_recipe

pytestmark = pytest.mark.unit
CPU = torch.device("cpu")


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
