"""Bring your own model: Transformers configs and user factories under every CPU recipe,
their losses against Transformers' own, FLOPs against FlopCounterMode, and the FP8 converter."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded, ever

import pytest
import torch
from click.testing import CliRunner
from fixture_records import stored_results
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mpbench.cli.main import cli
from mpbench.config.model_sizes import MODEL_SIZES
from mpbench.config.schema import (
    DataConfig,
    ModelSpec,
    PrecisionSpec,
    ProfilerSpec,
    Suite,
    TrainConfig,
)
from mpbench.data import make_source
from mpbench.models.entry import build_entry, model_facts
from mpbench.models.flops import flops_for
from mpbench.models.reference import build_model
from mpbench.plan.spec import expand
from mpbench.precision import get_recipe
from mpbench.precision.fp8_emulated import EmulatedFp8Linear
from mpbench.results.env import environment_card
from mpbench.train.loop import train_run

transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parent.parent
TINY: dict[str, dict[str, Any]] = {
    "llama": {"hf": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64,
              "max_position_embeddings": 64},
    "qwen2": {"hf": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64,
              "max_position_embeddings": 64},
    "gpt2": {"hf": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 64,
             "n_positions": 64},
}
FP8_LAYERS = {
    "llama": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
    "gpt2": ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
}
FP8_LAYERS["qwen2"] = FP8_LAYERS["llama"]
ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "gpt2": "GPT2LMHeadModel"}
PREFIX = {"llama": "hf.model.layers", "qwen2": "hf.model.layers", "gpt2": "hf.transformer.h"}


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """The CI machine has 2 shared cores: oversubscribed threads make tiny steps 50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spec_of(name: str, **extra: Any) -> ModelSpec:
    return ModelSpec.model_validate({**TINY[name], **extra})


def hf_model(name: str, seed: int = 0) -> nn.Module:
    spec = spec_of(name)
    return build_entry(spec, model_facts(spec, 16, 64), seed)


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_hf_models_train_under_every_cpu_recipe(name: str) -> None:
    suite = Suite(
        name="hf", models=[spec_of(name)],
        precisions=[PrecisionSpec(name=p) for p in ("fp32", "bf16", "fp16", "fp8-emulated")],
        train=TrainConfig(batch_size=2, seq_len=16, steps=2, warmup_steps=1, lr=3e-3,
                          eval_batches=1, threads=1),
        data=DataConfig(source="synthetic", vocab_size=64),
    )
    source, env = make_source(suite.data), environment_card()
    records = {spec.precision.name: train_run(spec, source, torch.device("cpu"), env)
               for spec in expand(suite)}
    n_params = sum(p.numel() for p in hf_model(name).parameters())
    for precision, rec in records.items():
        assert rec.status == "ok", (precision, rec.reason, rec.traceback)
        assert len(rec.loss_curve) == 3 and all(math.isfinite(v) for _, v in rec.loss_curve)
        assert rec.model_kind == "hf" and rec.attn_implementation == "sdpa"
        assert rec.architecture == ARCH[name]
        assert rec.n_params == n_params and rec.flops_method == "flop_counter"
        assert rec.model_source["config"]["model_type"] == name
        assert rec.tokens_per_s and rec.achieved_tflops
    # the same seed gives every recipe the same weights: the first losses agree closely
    first = {p: r.loss_curve[0][1] for p, r in records.items()}
    assert all(abs(v - first["fp32"]) < 0.02 for v in first.values()), first
    fp8 = records["fp8-emulated"].recipe["fp8"]
    assert fp8["layers_in_fp8"] == [f"{PREFIX[name]}.{i}.{s}" for i in (0, 1) for s in FP8_LAYERS[name]]
    assert fp8["layers_kept_bf16"] == ["hf.lm_head"]
    assert records["fp8-emulated"].loss_curve[0][1] != first["fp32"]  # FP8 really ran


@pytest.mark.integration
def test_profilers_work_unchanged_on_a_hf_model() -> None:
    profilers = [ProfilerSpec(name="memory"), ProfilerSpec(name="numerics"),
                 ProfilerSpec(name="max_batch", options={"memory_budget_mb": 200,
                                                         "max_batch_size": 8})]
    suite = Suite(
        name="hf", models=[spec_of("llama")], precisions=[PrecisionSpec(name="fp16")],
        profilers=profilers, data=DataConfig(source="synthetic", vocab_size=64),
        train=TrainConfig(batch_size=2, seq_len=16, steps=2, warmup_steps=1, eval_batches=1,
                          threads=1, activation_checkpointing=True))
    (spec,) = expand(suite)
    rec = train_run(spec, make_source(suite.data), torch.device("cpu"), environment_card())
    assert rec.status == "ok", rec.reason
    memory, numerics, max_batch = (stored_results(rec)[k] for k in ("memory", "numerics", "max_batch"))
    n = sum(p.numel() for p in hf_model("llama").parameters())
    assert memory["n_params"] == n and memory["params_bytes"] == 4 * n
    assert memory["grads_bytes"] == 4 * n and memory["optimizer_bytes"] >= 8 * n
    assert numerics["loss_scale"][0] == [0, 65536.0]
    assert numerics["underflow"]["reference"].startswith("fp32 reference model")
    assert numerics["underflow"]["fraction"] is not None
    assert max_batch["max_batch_size"] == 8 and [b for b, _ in max_batch["tried"]] == [2, 4, 8]


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(TINY))
def test_loss_equals_the_loss_transformers_computes(name: str) -> None:
    model = hf_model(name, seed=1).eval()  # GPT-2's config has dropout
    seq = torch.randint(0, 64, (3, 17), generator=torch.Generator().manual_seed(0))
    ours = model(seq[:, :-1], seq[:, 1:])  # mpbench's batches: targets = inputs shifted by one
    theirs = model.hf(input_ids=seq, labels=seq).loss  # Transformers shifts the labels itself
    assert ours.dtype == torch.float32
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6), (float(ours), float(theirs))
    assert model(seq[:, :-1]).shape == (3, 16, 64)  # forward(input_ids) -> logits


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(TINY))
def test_flops_agree_with_flop_counter_mode_on_the_real_model(name: str) -> None:
    spec = spec_of(name)
    facts = model_facts(spec, 32, 64)
    flops = flops_for(spec, facts, 32)
    model = build_entry(spec, facts, 0)
    idx = torch.zeros((1, 32), dtype=torch.long)
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(idx, idx).backward()
    assert flops.method == "flop_counter" and flops.per_token == counter.get_total_flops() / 32
    if name != "gpt2":  # 6N + 12*L*H*Q*T, N the matmul weights (Llama / Qwen2 here)
        d, f, kv, L, V = 64, 128, 32, 2, 64
        n = L * (d * d * 2 + 2 * d * kv + 3 * d * f) + d * V
        assert flops.per_token == 6 * n + 12 * L * 4 * 16 * 32
    # the reference models keep the closed formula and say so
    ref = ModelSpec(size="gpt-tiny")
    assert flops_for(ref, model_facts(ref, 32, 64), 32).method == "formula"


def fp8_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, EmulatedFp8Linear)]


@pytest.mark.unit
def test_converter_converts_what_the_filter_allows_and_nothing_else() -> None:
    # intermediate 100 is not divisible by 16: the MLP stays BF16 by default, as does lm_head
    spec = spec_of("llama", intermediate_size=100)
    recipe = get_recipe("fp8-emulated")
    model = recipe.prepare(build_entry(spec, model_facts(spec, 16, 64), 0), torch.device("cpu"))
    attn = [f"hf.model.layers.{i}.self_attn.{p}_proj" for i in (0, 1) for p in "qkvo"]
    assert sorted(fp8_names(model)) == sorted(attn)
    info = recipe.describe()["fp8"]
    assert info["layers_in_fp8"] == fp8_names(model)
    kept = info["kept_bf16_reasons"]
    assert kept["hf.lm_head"].startswith("LM head")
    assert kept["hf.model.layers.0.mlp.up_proj"].startswith("64x100: a dimension is not divisible")
    for name in kept:
        assert type(model.get_submodule(name)) is nn.Linear
    # fp8_filter: globs in, globs out, the LM head allowed (Llama's is untied)
    only = get_recipe("fp8-emulated", {"fp8_filter": {"include": ["*.self_attn.q_proj", "*lm_head"],
                                                      "exclude": ["*.layers.1.*"]}})
    model = only.prepare(hf_model("llama"), torch.device("cpu"))
    assert fp8_names(model) == ["hf.model.layers.0.self_attn.q_proj", "hf.lm_head"]
    assert only.describe()["fp8"]["layers_in_fp8"] == fp8_names(model)
    assert "fp8_filter.include" in only.describe()["fp8"]["kept_bf16_reasons"][
        "hf.model.layers.0.mlp.up_proj"]
    # the reference models take the same path
    ref = get_recipe("fp8-emulated", {"fp8_filter": {"exclude": ["lm_head", "blocks.0.*"]}})
    model = ref.prepare(build_model(MODEL_SIZES["gpt-tiny"].with_overrides(vocab_size=64), 0),
                        torch.device("cpu"))
    assert fp8_names(model) == [f"blocks.1.{s}" for s in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")]


@pytest.mark.unit
def test_gpt2_conv1d_becomes_fp8_with_its_weights_and_ties_hold() -> None:
    plain = hf_model("gpt2")
    conv = plain.hf.transformer.h[0].mlp.c_fc
    x = torch.randn(2, 5, 64)
    recipe = get_recipe("fp8-emulated", {"fp8_filter": {"exclude": []}})
    model = recipe.prepare(hf_model("gpt2"), torch.device("cpu"))
    layer = model.get_submodule("hf.transformer.h.0.mlp.c_fc")
    assert isinstance(layer, EmulatedFp8Linear)
    assert torch.equal(layer.weight, conv.weight.t()) and torch.equal(layer.bias, conv.bias)
    with torch.no_grad():  # the same function up to FP8 rounding
        assert torch.allclose(layer(x), conv(x), atol=0.1)
    # GPT-2's LM head is tied to the token embedding: included, it still stays (the tie holds)
    assert "weight tied to" in recipe.describe()["fp8"]["kept_bf16_reasons"]["hf.lm_head"]
    assert model.hf.lm_head.weight is model.hf.transformer.wte.weight


USER_LOSS_MODULE = '''
import torch.nn.functional as F
from torch import nn


class Bigram(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 64)
        self.proj = nn.Linear(64, 64)
        self.out = nn.Linear(64, vocab)

    def forward(self, idx, targets):
        logits = self.out(F.gelu(self.proj(self.emb(idx))))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def build(vocab: int):
    return Bigram(vocab)
'''


@pytest.mark.integration
def test_user_modules_train_and_report(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "user_model" / "tiny_lm.py", tmp_path / "tiny_lm.py")
    (tmp_path / "bigram_lm.py").write_text(USER_LOSS_MODULE)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: user\nmodels:\n"
        "  - {name: tiny, module: 'tiny_lm:build', args: {vocab_size: 64, dim: 64, layers: 1}}\n"
        "  - {module: 'bigram_lm:build', args: {vocab: 64}, vocab_size: 64, returns: loss}\n"
        "precisions: [fp32, fp8-emulated]\nprofilers: [mfu]\n"
        "train: {batch_size: 2, seq_len: 16, steps: 2, warmup_steps: 1, eval_batches: 1, threads: 1}\n"
        "data: {source: synthetic, vocab_size: 64}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(suite), "-o", str(out), "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    records = {p.name: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    assert len(records) == 4 and all(r["status"] == "ok" for r in records.values())
    tiny = records["tiny__fp8-emulated__b2-t16__seed0.json"]
    assert tiny["model_kind"] == "module" and tiny["architecture"] == "TinyLM"
    assert tiny["model_source"]["factory"] == "tiny_lm:build"
    assert tiny["recipe"]["fp8"]["layers_in_fp8"] == [
        f"user.blocks.0.{s}" for s in ("qkv", "out", "up", "down")]
    assert tiny["flops_method"] == "flop_counter" and tiny["flops_per_token"] > 0
    assert tiny["profiler_results"]["mfu"]["flops_method"] == "flop_counter"
    bigram = records["build__fp32__b2-t16__seed0.json"]
    assert bigram["model_source"]["returns"] == "loss" and bigram["n_params"] == 64 * 64 * 2 + 64 * 64 + 64 + 64
    html = (out / "report.html").read_text()
    assert "tiny" in html and "fp8-emulated" in html


BAD = [
    ("{hf: lama, vocab_size: 64}", "models[0].hf: unknown or non-causal-LM model_type 'lama'; "
     "did you mean 'llama'"),
    ("{hf: llama, hiden_size: 64, vocab_size: 64}",
     "models[0].hiden_size: not a field of LlamaConfig; did you mean 'hidden_size'?"),
    ("{hf_config: missing.json}", "models[0].hf_config: config file not found: missing.json"),
    ("{hf_config: bad.json}", "models[0].hf_config: "),
    ("{module: 'nopkg.mod:build'}", "models[0].module: no module named 'nopkg'"),
    ("{module: 'notmod:build'}", "models[0].module: notmod:build returned dict, not a "
     "torch.nn.Module"),
    ("{module: notmod}", "models[0].module: 'notmod' is not package.module:factory"),
    ("{hf: gpt2, n_embd: 64, n_layer: 1, n_head: 4, vocab_size: 32}",
     "models[0].vocab_size: the model's vocabulary 32 is smaller than the data's 64"),
    ("{hf: gpt2, n_embd: 64, n_layer: 1, n_head: 4, vocab_size: 64, n_positions: 8}",
     "train.seq_len: 16 is over the model's maximum 8"),
    ("{hf: llama, module: 'x:y'}", "models[0]: give one of hf, hf_config or module"),
    ("{hf: llama, size: gpt-tiny}", "models[0]: size, arch, args, max_seq_len and returns do not apply"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("entry", "message"), BAD)
def test_bad_model_entries_exit_2_with_one_line_and_write_nothing(
        tmp_path: Path, entry: str, message: str) -> None:
    (tmp_path / "bad.json").write_text("not json {")
    (tmp_path / "notmod.py").write_text("def build():\n    return {'not': 'a module'}\n")
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: e\nmodels:\n  - {entry}\nprecisions: [fp32]\n"
                     "train: {batch_size: 2, seq_len: 16}\ndata: {source: synthetic, vocab_size: 64}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(suite), "-o", str(out), "-q"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert lines[0].startswith(f"error: {suite}: ") and message in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.unit
def test_hf_config_file_next_to_the_suite_with_overrides(tmp_path: Path) -> None:
    from mpbench.train.load import load_suite

    config = transformers.AutoConfig.for_model(
        "qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=128, max_position_embeddings=64)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(config.to_json_string())
    (tmp_path / "s.yaml").write_text(
        "name: c\nmodels: [{hf_config: ckpt/config.json, intermediate_size: 96}]\n"
        "precisions: [fp32]\ntrain: {seq_len: 32}\ndata: {source: synthetic}\n")
    suite = load_suite(tmp_path / "s.yaml", "cpu")
    facts = model_facts(suite.models[0], 32, 64)  # the path was made absolute at load
    assert facts.architecture == "Qwen2ForCausalLM" and facts.dims["n_layer"] == 3
    assert facts.vocab_size == 128 and facts.max_seq_len == 64 and facts.dims["ffn_dim"] == 96
    assert facts.source["overrides"] == {"intermediate_size": 96}
    assert suite.models[0].label == "hf-ckpt"
    model = build_entry(suite.models[0], facts, 0)
    assert model.hf.model.layers[0].mlp.up_proj.out_features == 96


@pytest.mark.unit
def test_bundled_suites_load_on_both_profiles() -> None:
    from mpbench.train.load import load_suite

    cpu = load_suite(ROOT / "suites" / "hf.yaml", "cpu")
    cuda = load_suite(ROOT / "suites" / "hf.yaml", "cuda")
    assert {m.hf for m in cpu.models} == {"llama", "qwen2", "gpt2"}
    assert [m.label for m in cuda.models] == ["llama-3.2-1b", "qwen2.5-0.5b"]
    llama = model_facts(cuda.models[0], 2048, 256)
    assert llama.architecture == "LlamaForCausalLM" and llama.vocab_size == 128256
    # 1.24B parameters, counted on fake tensors (nothing allocated)
    flops = flops_for(cuda.models[0], llama, 2048)
    assert flops.per_token == pytest.approx(8.2198e9, rel=1e-4)
    user = load_suite(ROOT / "examples" / "user_model" / "suite.yaml", "cpu")
    assert user.models[0].module == "tiny_lm:build"


@pytest.mark.unit
@pytest.mark.parametrize("entry", [
    TINY["llama"],
    {"name": "from-file", "hf_config": "config.json", "hidden_size": 32},
    {"name": "tiny-lm", "module": "tiny_lm:build", "args": {"vocab_size": 256, "dim": 64}},
    {"name": "ref", "size": "gpt-nano"} if "gpt-nano" in MODEL_SIZES else {"size": next(iter(MODEL_SIZES))},
])
def test_every_model_entry_survives_a_json_round_trip(entry: dict[str, Any]) -> None:
    # a fresh-process run (--repeats) rebuilds the suite from its JSON dump: every entry
    # kind must come back equal, with no None-valued key read as an hf override
    spec = ModelSpec.model_validate(entry)
    again = ModelSpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json"))))
    assert again == spec and again.kind == spec.kind


@pytest.mark.integration
def test_a_user_module_trains_in_a_fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --isolate rebuilds the suite in a child process: the factory must import from the
    # suite's folder there too, whatever the working directory
    (tmp_path / "suite").mkdir()
    shutil.copy(ROOT / "examples" / "user_model" / "tiny_lm.py", tmp_path / "suite" / "tiny_lm.py")
    suite = tmp_path / "suite" / "suite.yaml"
    suite.write_text(
        "name: user\nmodels:\n"
        "  - {name: tiny, module: 'tiny_lm:build', args: {vocab_size: 64, dim: 32, layers: 1}}\n"
        "precisions: [fp32]\n"
        "train: {batch_size: 2, seq_len: 16, steps: 2, warmup_steps: 1, eval_batches: 1, threads: 1}\n"
        "data: {source: synthetic, vocab_size: 64}\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(suite), "-o", str(out), "-q", "--isolate",
                                      "--no-report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert record["status"] == "ok", record["reason"]
    assert record["model_kind"] == "module" and record["probe"] is not None


@pytest.mark.unit
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_torchao_converts_the_same_layers_when_installed(name: str) -> None:
    from mpbench.precision import fp8_ao

    if fp8_ao.import_float8()[0] is None:
        pytest.skip("torchao not installed")
    native = get_recipe("fp8-emulated")
    ao = get_recipe("fp8-emulated", {"implementation": "torchao"})
    native.prepare(hf_model(name), torch.device("cpu"))
    model = ao.prepare(hf_model(name), torch.device("cpu"))
    layers = ao.describe()["fp8"]["layers_in_fp8"]
    assert layers == native.describe()["fp8"]["layers_in_fp8"] and layers
    assert all(type(model.get_submodule(n)).__name__ == "Float8Linear" for n in layers)
    assert type(model.get_submodule("hf.lm_head")) is nn.Linear
