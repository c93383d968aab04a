"""Issue 14, Blackwell recipes: TE NVFP4BlockScaling and torchao MXFP8 training skip with
their reason where SM100, TE >= 2.8 or torchao >= 0.14 are missing; `mpbench list` says so."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from mpbench.cli.main import cli
from mpbench.precision import fp8_ao, get_recipe
from mpbench.precision.fp8_ao import AORecipe
from mpbench.precision.fp8_base import Fp8Recipe
from mpbench.precision.fp8_te import TERecipe

pytestmark = pytest.mark.unit
CUDA = torch.device("cuda", 0)


@pytest.fixture
def blackwell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (10, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA B200")


def fake_modules(monkeypatch: pytest.MonkeyPatch, **modules: Any) -> None:
    for name, attrs in modules.items():
        mod = ModuleType(name.replace("__", "."))
        for k, v in attrs.items():
            setattr(mod, k, v)
        monkeypatch.setitem(sys.modules, name.replace("__", "."), mod)


def test_both_are_thin_subclasses_of_the_fp8_bases() -> None:
    assert isinstance(get_recipe("fp4-te-nvfp4"), TERecipe)
    assert isinstance(get_recipe("fp8-ao-mxfp8"), AORecipe)
    assert all(isinstance(get_recipe(n), Fp8Recipe) for n in ("fp4-te-nvfp4", "fp8-ao-mxfp8"))


def test_hopper_is_told_it_needs_sm100(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    for name in ("fp4-te-nvfp4", "fp8-ao-mxfp8"):
        reason = get_recipe(name).check(CUDA)
        assert reason is not None and ">= 10.0" in reason and "9.0" in reason


def test_nvfp4_needs_te_2_8(monkeypatch: pytest.MonkeyPatch, blackwell: None) -> None:
    fake_modules(monkeypatch, transformer_engine={"__version__": "2.7.0"},
                 transformer_engine__pytorch={}, transformer_engine__common={},
                 transformer_engine__common__recipe={"MXFP8BlockScaling": object})
    reason = get_recipe("fp4-te-nvfp4").check(CUDA)
    assert reason is not None and "NVFP4BlockScaling" in reason and ">= 2.8" in reason


def test_nvfp4_asks_te_whether_this_gpu_can(monkeypatch: pytest.MonkeyPatch,
                                            blackwell: None) -> None:
    asked: list[bool] = []

    def is_nvfp4_available(return_reason: bool = False) -> tuple[bool, str]:
        asked.append(return_reason)
        return False, "NVFP4 needs CUDA 12.8"

    fake_modules(monkeypatch, transformer_engine={"__version__": "2.9.0"},
                 transformer_engine__pytorch={"is_nvfp4_available": is_nvfp4_available},
                 transformer_engine__common={},
                 transformer_engine__common__recipe={"NVFP4BlockScaling": object})
    assert get_recipe("fp4-te-nvfp4").check(CUDA) == "TransformerEngine: NVFP4 needs CUDA 12.8"
    assert asked == [True]


def test_mxfp8_needs_torchao_0_14(monkeypatch: pytest.MonkeyPatch, blackwell: None) -> None:
    fake_modules(monkeypatch, torchao={"__version__": "0.13.0"})
    reason = get_recipe("fp8-ao-mxfp8").check(CUDA)
    assert reason is not None and "0.13.0" in reason and ">= 0.14" in reason


def test_mxfp8_uses_the_training_op_config_where_torchao_has_it(
        monkeypatch: pytest.MonkeyPatch, blackwell: None) -> None:
    class Recipe:
        MXFP8_RCEIL = "mxfp8_rceil"

    class OpConfig:
        @classmethod
        def from_recipe(cls, recipe: str) -> SimpleNamespace:
            return SimpleNamespace(recipe=recipe)

    seen: dict[str, Any] = {}

    def quantize_(model: nn.Module, config: Any, filter_fn: Any = None) -> None:
        seen.update(config=config, kept=[n for n, m in model.named_modules() if filter_fn(m, n)])

    fake_modules(monkeypatch, torchao={"__version__": "0.15.0"},
                 torchao__prototype={}, torchao__prototype__moe_training={},
                 torchao__prototype__moe_training__config={"MXFP8TrainingOpConfig": OpConfig,
                                                           "MXFP8TrainingRecipe": Recipe},
                 torchao__quantization={"quantize_": quantize_})
    recipe = get_recipe("fp8-ao-mxfp8")
    assert recipe.check(CUDA) is None
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 10))
    fp8_ao.mx_convert_named(model, fp8_ao.make_mx_config()[0], ["0"])
    assert seen["config"].recipe == "mxfp8_rceil" and seen["kept"] == ["0"]
    # the recipe converts exactly the layers the FP8 filter named, like every FP8 converter
    recipe.convert(nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 10)), ["1"], CUDA)
    assert seen["kept"] == ["1"]
    recipe.prepare(nn.Sequential(nn.Linear(64, 64)), torch.device("cpu"))  # the record after it
    fp8 = recipe.describe()["fp8"]
    assert fp8["torchao_version"] == "0.15.0" and "SimpleNamespace" in fp8["scaling"]
    assert fp8["formats"]["scales"] == "e8m0 per 32"


def test_mpbench_list_says_what_each_needs() -> None:
    result = CliRunner().invoke(cli, ["list", "--device", "cpu"], terminal_width=400,
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0
    lines = {ln.split("│")[1].strip(): ln for ln in result.output.splitlines() if "│" in ln}
    assert "SM100+" in lines["fp4-te-nvfp4"] and ">= 2.8" in lines["fp4-te-nvfp4"]
    assert "SM100" in lines["fp8-ao-mxfp8"] and ">= 0.14" in lines["fp8-ao-mxfp8"]
    assert "needs a CUDA GPU" in lines["fp8-ao-mxfp8"]
