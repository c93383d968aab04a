"""FP8 recipes: emulated numerics, dimension rules, availability reasons, guarded imports,
and (on a GPU) TransformerEngine and torchao training for real."""

from __future__ import annotations

import contextlib
import enum
import math
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from mpbench.cli.main import cli
from mpbench.config.model_sizes import MODEL_SIZES
from mpbench.config.schema import TrainConfig
from mpbench.data import make_source
from mpbench.errors import UserError
from mpbench.models.reference import GPT, Llama, build_model
from mpbench.plan.spec import expand
from mpbench.precision import RECIPES, fp8_ao, fp8_te, get_recipe
from mpbench.precision.convert import block_linears, nearest_multiple
from mpbench.precision.fp8_emulated import (
    E4M3,
    E5M2,
    EmulatedFp8Linear,
    e4m3_unit_roundoff,
    quantize_dequantize,
    relative_error,
)
from mpbench.precision.fp8_te import TERecipe
from mpbench.results.env import environment_card
from mpbench.train.load import load_suite
from mpbench.train.loop import train_run

TE_RECIPES = ["fp8-te-delayed", "fp8-te-current", "fp8-te-block", "fp8-te-mxfp8"]
# TransformerEngine's own names (transformer_engine.common.recipe; transformer_engine.pytorch
# from 2.9, transformer_engine.pytorch.fp8 before), written out so the stand-in cannot drift
TE_RECIPE_CLASSES = ("DelayedScaling", "Float8CurrentScaling", "Float8BlockScaling",
                     "MXFP8BlockScaling", "NVFP4BlockScaling")
TE_SUPPORT_CHECKS = [("is_fp8_available", "check_fp8_support"),
                     ("is_fp8_block_scaling_available", "check_fp8_block_scaling_support"),
                     ("is_mxfp8_available", "check_mxfp8_support"),
                     ("is_nvfp4_available", "check_nvfp4_support")]
AO_RECIPES = ["fp8-ao-tensorwise", "fp8-ao-rowwise"]
TINY = MODEL_SIZES["gpt-tiny"].with_overrides(vocab_size=64)

SUITE = """\
name: t
models: [{model}]
precisions: [{precisions}]
train: {{batch_size: {batch}, seq_len: {seq}, steps: {steps}, warmup_steps: 1, lr: 3.0e-3,
         eval_batches: 2}}
data: {{source: synthetic, vocab_size: 64}}
"""


def write_suite(tmp_path: Path, precisions: str, model: str = "gpt-tiny", batch: int = 4,
                seq: int = 32, steps: int = 12) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(model=model, precisions=precisions, batch=batch, seq=seq,
                                 steps=steps))
    return path


def train_suite(path: Path, device: str = "cpu") -> list[Any]:
    suite = load_suite(path, "cuda" if device == "cuda" else "cpu")
    source = make_source(suite.data)
    env = environment_card()
    return [train_run(spec, source, torch.device(device), env) for spec in expand(suite)]


# -- emulated numerics ----------------------------------------------------------------------

@pytest.mark.unit
def test_quantize_dequantize_error_is_what_fp8_formats_allow() -> None:
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    e4m3, e5m2 = relative_error(x, E4M3), relative_error(x, E5M2)
    # Per-tensor scaling maps amax to the format's max; rounding error of a normal value is
    # at most 2^-4 (e4m3, 3 mantissa bits) and 2^-3 (e5m2); RMS error lies well below.
    assert 1 / 256 < e4m3 < e4m3_unit_roundoff() == 1 / 16
    assert e4m3 < e5m2 < 1 / 8
    # the largest magnitude survives the round trip (it becomes exactly fp8_max)
    assert quantize_dequantize(x, E4M3).abs().max() == pytest.approx(float(x.abs().max()), rel=1e-6)
    # values far outside the fp8 range are scaled, not saturated or turned into NaN
    big = x * 1e6
    assert torch.isfinite(quantize_dequantize(big, E4M3)).all()
    assert relative_error(big, E4M3) == pytest.approx(e4m3, rel=1e-3)


@pytest.mark.unit
def test_emulated_linear_rounds_operands_and_gradients_like_te_hybrid() -> None:
    gen = torch.Generator().manual_seed(1)
    layer = EmulatedFp8Linear(32, 48)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(48, 32, generator=gen) * 0.1)
        layer.bias.copy_(torch.randn(48, generator=gen))
    x = torch.randn(2, 8, 32, generator=gen, requires_grad=True)
    g = torch.randn(2, 8, 48, generator=gen)
    y = layer(x)
    y.backward(g)

    xq, wq, gq = (quantize_dequantize(t, f) for t, f in
                  ((x.detach().reshape(16, 32), E4M3), (layer.weight.detach(), E4M3),
                   (g.reshape(16, 48), E5M2)))
    torch.testing.assert_close(y.detach().reshape(16, 48), xq @ wq.t() + layer.bias.detach())
    assert x.grad is not None
    torch.testing.assert_close(x.grad.reshape(16, 32), gq @ wq)  # dgrad: E5M2 x E4M3
    torch.testing.assert_close(layer.weight.grad, gq.t() @ xq)  # wgrad: E5M2 x E4M3
    torch.testing.assert_close(layer.bias.grad, g.reshape(16, 48).sum(0))  # unquantized
    # ... which differs from FP32 by FP8-sized, not zero, error
    exact = x.detach() @ layer.weight.detach().t() + layer.bias.detach()
    rel = float((y.detach() - exact).norm() / exact.norm())
    assert 1e-4 < rel < 1 / 16
    stats = layer.telemetry()
    assert stats["input_amax"] == pytest.approx(float(x.detach().abs().max()))
    assert stats["grad_output_scale"] == pytest.approx(57344.0 / float(g.abs().max()))


@pytest.mark.unit
def test_emulated_linear_returns_the_autocast_dtype() -> None:
    layer = EmulatedFp8Linear(16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(4, 16)).dtype == torch.bfloat16
    assert layer(torch.randn(4, 16)).dtype == torch.float32


@pytest.mark.unit
def test_fp8_models_start_from_the_bf16_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = get_recipe("fp8-emulated")
    plain = build_model(TINY, 3)
    fp8 = recipe.prepare(build_model(TINY, 3), torch.device("cpu"))  # built plain, converted
    assert any(isinstance(m, EmulatedFp8Linear) for m in fp8.modules())
    a, b = plain.state_dict(), fp8.state_dict()
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # te.Linear registers `weight` and `bias` the same way: the converter copies the values
    # into a stand-in te.Linear under the same names
    install_fake_te(monkeypatch, fake_te_module())
    te_model = get_recipe("fp8-te-current").prepare(build_model(TINY, 3), torch.device("cpu"))
    assert isinstance(te_model.get_submodule("blocks.0.mlp.fc"), FakeTELinear)
    for name, value in te_model.state_dict().items():
        assert torch.equal(value, a[name]), name


@pytest.mark.integration
def test_fp8_emulated_trains_the_smoke_model_within_band_of_bf16(tmp_path: Path) -> None:
    bf16, fp8 = train_suite(write_suite(tmp_path, "bf16, fp8-emulated"))
    assert bf16.status == fp8.status == "ok"
    assert fp8.recipe["numerics_only"] is True and fp8.recipe["family"] == "fp8"
    # FP8 is really in the forward pass: the very first loss differs from bf16's, slightly
    first_bf16, first_fp8 = bf16.loss_curve[0][1], fp8.loss_curve[0][1]
    assert first_fp8 != first_bf16 and abs(first_fp8 - first_bf16) < 0.01
    # it learns: 12 steps take the loss down by > 0.15 nats (measured: ~0.27)
    assert fp8.final_train_loss < first_fp8 - 0.15
    # Stated band: eval loss within 0.02 nats of bf16 (measured on seeds 0-2: 0.001-0.002)
    assert abs(fp8.eval_loss - bf16.eval_loss) < 0.02
    info = fp8.recipe["fp8"]
    assert info["layers_in_fp8"] == [f"blocks.{i}.{s}" for i in (0, 1)
                                     for s in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")]
    assert info["layers_kept_bf16"] == ["lm_head"]
    assert info["formats"] == {"forward": "e4m3", "backward": "e5m2"}
    assert info["weight_cache_bytes"] == 2 * (64 * 192 + 64 * 64 + 2 * 64 * 256)
    layer = info["telemetry"]["layers"]["blocks.0.mlp.fc"]
    assert layer["input_amax"] > 0 and layer["grad_output_amax"] > 0
    assert layer["input_scale"] == pytest.approx(448.0 / layer["input_amax"])


# -- dimension rules ---------------------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("cfg", [MODEL_SIZES["gpt-mini"], MODEL_SIZES["llama-mini"],
                                 MODEL_SIZES["llama-1b"]])
def test_block_linears_match_the_models_layers(cfg: Any) -> None:
    with torch.device("meta"):
        model = GPT(cfg) if cfg.arch == "gpt" else Llama(cfg)
    shapes = {name.removeprefix("blocks.0."): (m.in_features, m.out_features)
              for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and name.startswith("blocks.0.")}
    assert shapes == {layer.suffix: (layer.in_dim.value, layer.out_dim.value)
                      for layer in block_linears(cfg)}


@pytest.mark.unit
def test_nearest_multiple() -> None:
    assert [nearest_multiple(v) for v in (1, 8, 24, 72, 90, 100, 120)] == [16, 16, 32, 80, 96,
                                                                           96, 128]


FIX = "or set the precision option allow_bf16_fallback: true to keep such layers in BF16"


@pytest.mark.unit
@pytest.mark.parametrize(("model", "batch", "seq", "message"), [
    ("{size: gpt-tiny, n_embd: 72}", 4, 32,
     "FP8 GEMM dimension n_embd = 72 (layer attn.qkv) is not divisible by 16 (nearest valid "
     f"value: 80); change the model's n_embd (keep it divisible by n_head), {FIX}"),
    ("{size: gpt-tiny, ffn_hidden: 200}", 4, 32,
     "FP8 GEMM dimension ffn_dim = 200 (layer mlp.fc) is not divisible by 16 (nearest valid "
     f"value: 208); set the model's ffn_hidden, {FIX}"),
    ("{size: llama-tiny, n_embd: 96, n_head: 8, n_kv_head: 1}", 4, 32,
     "FP8 GEMM dimension 2*n_kv_head*head_dim = 24 (layer attn.kv) is not divisible by 16 "
     f"(nearest valid value: 32); change n_head, n_kv_head or n_embd, {FIX}"),
    ("gpt-tiny", 3, 30,
     "FP8 GEMM dimension batch_size*seq_len = 3*30 = 90 is not divisible by 16 (nearest valid "
     "value: 96, e.g. seq_len 32); change train.batch_size or train.seq_len "
     "(allow_bf16_fallback cannot help: every FP8 GEMM has this dimension)"),
])
def test_fp8_dimension_errors_name_dimension_value_and_fix(
        tmp_path: Path, model: str, batch: int, seq: int, message: str) -> None:
    path = write_suite(tmp_path, "bf16, fp8-emulated", model=model, batch=batch, seq=seq)
    with pytest.raises(UserError) as err:
        load_suite(path, "cpu")
    assert str(err.value) == f"{path}: models[0] with precisions[1] (fp8-emulated): {message}"


@pytest.mark.integration
def test_dimension_error_exits_2_before_training(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "fp8-te-delayed", model="{size: gpt-tiny, n_embd: 72}")
    result = CliRunner().invoke(cli, ["run", str(path), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 2
    assert "FP8 GEMM dimension n_embd = 72" in result.output
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.integration
def test_bf16_fallback_keeps_offending_layers_and_lists_them(tmp_path: Path) -> None:
    model = "{size: llama-tiny, n_embd: 96, n_head: 8, n_kv_head: 1}"
    path = write_suite(tmp_path, "{name: fp8-emulated, options: {allow_bf16_fallback: true}}",
                       model=model, steps=2)
    (rec,) = train_suite(path)
    assert rec.status == "ok"
    info = rec.recipe["fp8"]
    assert info["layers_kept_bf16"] == ["blocks.0.attn.kv", "blocks.1.attn.kv", "lm_head"]
    assert info["kept_bf16_reasons"]["blocks.0.attn.kv"] == (
        "96x24: a dimension is not divisible by 16 (allow_bf16_fallback)")
    assert len(info["layers_in_fp8"]) == 8 and "blocks.1.mlp.gate_up" in info["layers_in_fp8"]
    # the token dimension cannot fall back: every FP8 GEMM has it
    path = write_suite(tmp_path, "{name: fp8-emulated, options: {allow_bf16_fallback: true}}",
                       batch=3, seq=30)
    with pytest.raises(UserError, match=r"batch_size\*seq_len = 3\*30 = 90"):
        load_suite(path, "cpu")


# -- availability --------------------------------------------------------------------------

@pytest.mark.unit
def test_gpu_recipes_say_they_need_cuda_on_a_cpu() -> None:
    cpu = torch.device("cpu")
    reasons = {name: get_recipe(name).check(cpu) for name in TE_RECIPES + AO_RECIPES}
    assert reasons["fp8-te-delayed"] == (
        "fp8-te-delayed (TransformerEngine DelayedScaling) needs a CUDA GPU; this run is on cpu")
    assert reasons["fp8-ao-rowwise"] == (
        "fp8-ao-rowwise (torchao float8 rowwise) needs a CUDA GPU; this run is on cpu")
    assert all(r is not None and r.endswith("needs a CUDA GPU; this run is on cpu")
               for r in reasons.values())
    assert get_recipe("fp8-emulated").check(cpu) is None
    assert {RECIPES[n].family for n in [*TE_RECIPES, *AO_RECIPES, "fp8-emulated"]} == {"fp8"}


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Pretend torch sees a GPU of a chosen compute capability (no CUDA call is made)."""
    state = {"cap": (9, 0), "name": "NVIDIA H100 80GB HBM3"}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: state["cap"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: state["name"])
    yield state


@pytest.mark.unit
def test_capability_reasons(fake_gpu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    fake_gpu.update(cap=(8, 0), name="NVIDIA A100-SXM4-80GB")
    assert get_recipe("fp8-te-delayed").check(cuda) == (
        "fp8-te-delayed (TransformerEngine DelayedScaling) needs compute capability >= 8.9; "
        "NVIDIA A100-SXM4-80GB has 8.0")
    assert get_recipe("fp8-ao-tensorwise").check(cuda) == (
        "fp8-ao-tensorwise (torchao float8 tensorwise) needs compute capability >= 8.9; "
        "NVIDIA A100-SXM4-80GB has 8.0")
    fake_gpu.update(cap=(8, 9), name="NVIDIA L4")
    assert str(get_recipe("fp8-te-block").check(cuda)).endswith(
        "needs compute capability >= 9.0; NVIDIA L4 has 8.9")
    fake_gpu.update(cap=(9, 0), name="NVIDIA H100 80GB HBM3")
    assert str(get_recipe("fp8-te-mxfp8").check(cuda)).endswith(
        "needs compute capability >= 10.0; NVIDIA H100 80GB HBM3 has 9.0")
    # capability fine, libraries missing: the reason names the pip extra
    monkeypatch.setitem(sys.modules, "transformer_engine", None)
    monkeypatch.setitem(sys.modules, "torchao", None)
    monkeypatch.setitem(sys.modules, "torchao.float8", None)
    assert get_recipe("fp8-te-current").check(cuda) == (
        "TransformerEngine is not installed; pip install 'mpbench[te]'")
    assert get_recipe("fp8-ao-rowwise").check(cuda) == (
        "torchao is not installed; pip install 'mpbench[fp8]'")
    assert get_recipe("fp8-emulated", {"implementation": "torchao"}).check(
        torch.device("cpu")) == "torchao is not installed; pip install 'mpbench[fp8]'"


# -- TransformerEngine glue, against a stand-in module ------------------------------------------

class FakeTELinear(nn.Module):
    """Registers parameters the way te.Linear does (weight, then bias)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 params_dtype: torch.dtype | None = None, device: Any = "cuda") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=params_dtype,
                                               device=device))
        self.bias = nn.Parameter(torch.empty(out_features, dtype=params_dtype, device=device)) \
            if bias else torch.Tensor()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias if self.bias.numel() else None)


def fake_te_module(new_api: bool = True, version: str = "2.9.0",
                   recipes: tuple[str, ...] = TE_RECIPE_CLASSES,
                   support: tuple[bool, str] = (True, "")) -> types.ModuleType:
    te = types.ModuleType("transformer_engine.pytorch")
    te.Linear = FakeTELinear  # type: ignore[attr-defined]
    te.entered = []  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def enter(**kwargs: Any) -> Iterator[None]:
        te.entered.append(kwargs)
        yield

    if new_api:
        te.autocast = enter  # type: ignore[attr-defined]
        for new_name, _ in TE_SUPPORT_CHECKS:
            setattr(te, new_name, lambda return_reason=False: support)
    else:
        te.fp8_autocast = enter  # type: ignore[attr-defined]
    te.root_version = version  # type: ignore[attr-defined]
    te.recipes = recipes  # type: ignore[attr-defined]
    return te


def install_fake_te(monkeypatch: pytest.MonkeyPatch, te: types.ModuleType,
                    legacy_support: tuple[bool, str] = (True, "")) -> types.ModuleType:
    root = types.ModuleType("transformer_engine")
    root.__version__ = te.root_version  # type: ignore[attr-defined]
    recipe_mod = types.ModuleType("transformer_engine.common.recipe")
    fmt = enum.Enum("Format", "E4M3 E5M2 HYBRID")  # type: ignore[misc]
    recipe_mod.Format = fmt  # type: ignore[attr-defined]
    for name in te.recipes:
        setattr(recipe_mod, name, type(name, (), {
            "__init__": lambda self, **kw: setattr(self, "kwargs", kw)}))
    legacy = types.ModuleType("transformer_engine.pytorch.fp8")
    for _, old_name in TE_SUPPORT_CHECKS:
        setattr(legacy, old_name, lambda: legacy_support)
    for name, module in [("transformer_engine", root), ("transformer_engine.pytorch", te),
                         ("transformer_engine.common", types.ModuleType("c")),
                         ("transformer_engine.common.recipe", recipe_mod),
                         ("transformer_engine.pytorch.fp8", legacy)]:
        monkeypatch.setitem(sys.modules, name, module)
    return recipe_mod


@pytest.mark.unit
def test_te_too_old_and_te_own_verdict(fake_gpu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    install_fake_te(monkeypatch, fake_te_module(
        version="2.1.0", recipes=("DelayedScaling", "MXFP8BlockScaling")))
    assert get_recipe("fp8-te-block").check(cuda) == (
        "TransformerEngine 2.1.0 is too old for Float8BlockScaling (needs >= 2.3); "
        "pip install -U 'mpbench[te]'")
    assert get_recipe("fp8-te-current").check(cuda) == (
        "TransformerEngine 2.1.0 is too old for Float8CurrentScaling (needs >= 2.2); "
        "pip install -U 'mpbench[te]'")
    install_fake_te(monkeypatch, fake_te_module(support=(False, "CUDA 12.9 required.")))
    assert get_recipe("fp8-te-block").check(cuda) == "TransformerEngine: CUDA 12.9 required."
    # before TE 2.9 the verdict comes from transformer_engine.pytorch.fp8.check_*_support()
    install_fake_te(monkeypatch, fake_te_module(new_api=False), legacy_support=(False, "old"))
    assert get_recipe("fp8-te-delayed").check(cuda) == "TransformerEngine: old"
    install_fake_te(monkeypatch, fake_te_module(new_api=False))
    assert get_recipe("fp8-te-delayed").check(cuda) is None


@pytest.mark.unit
@pytest.mark.parametrize("new_api", [True, False])
def test_te_autocast_by_feature_detection(monkeypatch: pytest.MonkeyPatch, new_api: bool) -> None:
    te = fake_te_module(new_api=new_api)
    fmt = install_fake_te(monkeypatch, te).Format
    recipe = cast(TERecipe, get_recipe("fp8-te-delayed", {"amax_history_len": 16,
                                                           "amax_compute_algo": "most_recent"}))
    te_recipe = recipe.te_recipe()
    assert te_recipe.kwargs == {"fp8_format": fmt.HYBRID, "amax_history_len": 16,
                                "amax_compute_algo": "most_recent", "margin": 0}
    with recipe.autocast(torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    key = "recipe" if new_api else "fp8_recipe"
    assert te.entered == [{"enabled": True, key: te_recipe}]
    assert recipe.te_recipe() is te_recipe  # one recipe object per run


@pytest.mark.unit
def test_te_record_lists_layers_and_weight_copy_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    te = fake_te_module()
    install_fake_te(monkeypatch, te)
    recipe = get_recipe("fp8-te-current")
    model = recipe.prepare(build_model(TINY, 0), torch.device("cpu"))
    info = recipe.describe()["fp8"]
    assert len(info["layers_in_fp8"]) == 8 and info["layers_kept_bf16"] == ["lm_head"]
    weights = 2 * (64 * 192 + 64 * 64 + 2 * 64 * 256)
    assert info["weight_cache_bytes"] == 2 * weights  # FP8 copy + transposed copy, 1 B each
    assert info["formats"] == {"forward": "e4m3", "backward": "e5m2"}
    assert info["fp8_weight_fraction"] == pytest.approx(weights / (weights + 64 * 64))
    assert info["telemetry"]["persistent_fp8_weight_cache_bytes"] == 0
    assert info["te_version"] == "2.9.0" and info["params_dtype"] == "float32"
    # torch.utils.checkpoint would replay te.Linear outside TE's autocast: the run is skipped
    # with the fix; DelayedScaling runs eager under train.compile and says why
    ckpt = TrainConfig(activation_checkpointing=True)
    assert "activation_checkpointing is not supported" in (
        get_recipe("fp8-te-current").check_train(ckpt) or "")
    assert get_recipe("fp8-te-current").check_train(TrainConfig(compile=True)) is None
    delayed = get_recipe("fp8-te-delayed")
    assert delayed.check_train(TrainConfig(compile=True)) is None
    assert "does not run under torch.compile" in (
        delayed.compile_refusal(TrainConfig(compile=True)) or "")
    assert get_recipe("fp8-emulated").check_train(ckpt) is None
    assert math.isclose(fp8_te.weight_copy_bytes([model.get_submodule("blocks.0.mlp.fc")], "mxfp8")[0],
                        2 * 64 * 256 * (1 + 1 / 32))


# -- guarded imports -------------------------------------------------------------------------

@pytest.mark.integration
def test_package_imports_without_te_or_torchao() -> None:
    code = (
        "import sys\n"
        "import mpbench.cli.main, mpbench.precision as p\n"
        "assert 'transformer_engine' not in sys.modules and 'torchao' not in sys.modules\n"
        "sys.modules['transformer_engine'] = None; sys.modules['torchao'] = None\n"
        "import torch\n"
        "assert p.get_recipe('fp8-emulated').check(torch.device('cpu')) is None\n"
        "print(p.fp8_te.import_te()[1]); print(p.fp8_ao.import_float8()[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["TransformerEngine is not installed; pip install 'mpbench[te]'",
                                       "torchao is not installed; pip install 'mpbench[fp8]'"]


@pytest.mark.integration
def test_torchao_emulate_matches_native_emulation_when_installed(tmp_path: Path) -> None:
    if fp8_ao.import_float8()[0] is None:
        pytest.skip("torchao not installed")
    path = write_suite(tmp_path, "fp8-emulated, {name: fp8-emulated, options: "
                       "{implementation: torchao}}", steps=4)
    native, ao = train_suite(path)
    assert native.status == ao.status == "ok"
    assert ao.recipe["fp8"]["layers_in_fp8"] == native.recipe["fp8"]["layers_in_fp8"]
    # same FP8 formats and per-tensor scaling: the losses agree closely, not exactly
    assert abs(ao.loss_curve[0][1] - native.loss_curve[0][1]) < 5e-3
    assert abs(ao.eval_loss - native.eval_loss) < 0.02


# -- the real thing, on a GPU -------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("name", TE_RECIPES + AO_RECIPES)
def test_fp8_recipe_trains_on_cuda_with_fp8_layers(tmp_path: Path, name: str) -> None:
    recipe = get_recipe(name)
    reason = recipe.check(torch.device("cuda"))
    if reason is not None:
        pytest.skip(reason)
    (rec,) = train_suite(write_suite(tmp_path, name, steps=4), device="cuda")
    assert rec.status == "ok", rec.reason
    assert all(math.isfinite(loss) for _, loss in rec.loss_curve)
    info = rec.recipe["fp8"]
    assert len(info["layers_in_fp8"]) == 8 and info["layers_kept_bf16"] == ["lm_head"]
    # the modules are the backend's FP8 modules, not nn.Linear
    model = recipe.prepare(build_model(TINY, 0), torch.device("cuda"))
    fc = model.get_submodule("blocks.0.mlp.fc")
    expected = "Linear" if name in TE_RECIPES else "Float8Linear"
    assert type(fc).__name__ == expected and type(fc) is not nn.Linear
    assert type(fc).__module__.split(".")[0] == ("transformer_engine" if name in TE_RECIPES
                                                 else "torchao")
    if name == "fp8-te-delayed":
        layer = info["telemetry"]["layers"]["blocks.0.mlp.fc"]
        assert layer["input_amax"] > 0 and layer["input_scale"] > 0
