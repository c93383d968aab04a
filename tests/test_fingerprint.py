"""Numerics fingerprint: the recording (profiler), the comparison and tolerances (analysis),
the gate command (exit codes, Markdown, $GITHUB_STEP_SUMMARY), bad input, the report view.

Synthetic fingerprints have a known first divergence; one integration test trains a tiny
model for a few steps (fp32 and fp8-emulated) to check the recording end to end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from fixture_records import payload, record, write_results

from mpbench.analysis.fingerprint import difference, fingerprint_set, repeat_tolerance
from mpbench.analysis.fingerprint_compare import compare_sets
from mpbench.cli.main import cli
from mpbench.config.schema import DataConfig, ModelSpec, PrecisionSpec, Suite, TrainConfig
from mpbench.data import make_source
from mpbench.errors import UserError
from mpbench.plan.spec import expand
from mpbench.precision.fp8_emulated import DelayedScaling, EmulatedFp8Linear
from mpbench.report import write_report
from mpbench.results.env import environment_card
from mpbench.results.payloads import FingerprintResult
from mpbench.results.schema import RunRecord
from mpbench.results.store import load_records
from mpbench.train.loop import train_run

LAYERS = ["wte", "blocks.0.ln_1", "blocks.0.attn.qkv", "blocks.0.mlp.fc", "lm_head"]
SOFTWARE = {"torch": "2.13.0+cpu", "cuda": None, "transformer_engine": None, "torchao": None,
            "deterministic_algorithms": True}


def fp_payload(seed: int = 0, repeat: int = 0, *, shift: float = 0.0, software: dict[str, Any]
               | None = None, change: tuple[int, str, str, float] | None = None,
               steps: int = 6, reference_seed: int = 0, loss: list[float] | None = None,
               ) -> dict[str, Any]:
    """A fingerprint whose values depend on the seed (`shift` moves every magnitude by that
    relative amount, as another seed would); `change` = (step, layer, tensor, factor)
    multiplies one amax, and every later step's loss and amaxes by a trace of it."""
    points, tensors = [], []
    scale = 1.0 + 0.05 * (seed - reference_seed) + shift
    hit = None
    for step in range(steps):
        later = change is not None and step > change[0]
        drift = 1.0 + (1e-3 if later else 0.0)
        value = (loss[step] if loss else 4.0 - 0.1 * step) * scale * drift
        points.append({"step": step, "loss": value, "grad_norm": 1.5 * scale * drift})
        if step not in (0, 2, 4):
            continue
        for tensor in ("activation", "gradient"):
            order = range(len(LAYERS)) if tensor == "activation" else reversed(range(len(LAYERS)))
            for pos, i in enumerate(order):
                amax = (1.0 + i) * scale * drift * (1 if tensor == "activation" else 1e-3)
                if change is not None and (step, LAYERS[i], tensor) == change[:3]:
                    amax *= change[3]
                    hit = amax
                tensors.append({"step": step, "layer": LAYERS[i], "tensor": tensor,
                                "order": pos, "dtype": "float32", "amax": amax,
                                "elements": 1024, "underflow": {"fp32": 0.0},
                                "overflow": {"fp32": 0.0}})
    assert change is None or hit is not None or change[0] not in (0, 2, 4)
    return payload(FingerprintResult, reference_seed=reference_seed, seed=seed, repeat=repeat,
                   formats=["fp32"], probe_steps=[0, 2, 4], steps=points, tensors=tensors,
                   software={**SOFTWARE, **(software or {})})


def fp_record(precision: str, seed: int = 0, repeat: int = 0, **kw: Any) -> RunRecord:
    r = record(precision, seed, repeat=repeat,
               profiler_results={"fingerprint": fp_payload(seed, repeat, **kw)})
    return r.model_copy(update={"data": {"source": "synthetic", "vocab_size": 64}})


def baseline_set(recipes: tuple[str, ...] = ("fp32", "bf16")) -> list[RunRecord]:
    """Each recipe twice (identical repeats), FP32 at seeds 1 and 2 too."""
    out = [fp_record(p, 0, rep) for p in recipes for rep in (0, 1)]
    return out + [fp_record("fp32", s) for s in (1, 2)]


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


# -- the comparison on synthetic fingerprints ----------------------------------------------
@pytest.mark.unit
def test_same_fingerprints_are_identical() -> None:
    c = compare_sets(baseline_set(), [fp_record("fp32"), fp_record("bf16")], "base", "cur")
    assert [r.level for r in c.recipes] == ["identical", "identical"]
    assert c.exit_code == 0 and c.level == "identical"
    assert c.band_seeds == [0, 1, 2] and c.tolerance.pairs == 2


@pytest.mark.unit
def test_first_divergence_is_named_with_both_values() -> None:
    # step 2, blocks.0.mlp.fc gradient amax x1.01: 1% < the 5%-per-seed FP32 band
    cur = [fp_record("fp32"), fp_record("bf16", change=(2, "blocks.0.mlp.fc", "gradient", 1.01))]
    c = compare_sets(baseline_set(), cur, "base", "cur")
    bf16 = next(r for r in c.recipes if r.recipe == "bf16")
    first = bf16.first_change
    assert first is not None
    assert (first.step, first.layer, first.tensor, first.stat) == (
        2, "blocks.0.mlp.fc", "gradient", "amax")
    assert first.baseline == pytest.approx(4e-3) and first.current == pytest.approx(4.04e-3)
    assert first.difference == pytest.approx(0.01)
    assert bf16.level == "inside-seed-band" and bf16.first_beyond is None
    assert c.exit_code == 0
    assert next(r for r in c.recipes if r.recipe == "fp32").level == "identical"


@pytest.mark.unit
def test_change_beyond_the_seed_band_fails_and_says_where() -> None:
    # x2 on an amax whose FP32 band is (1.10 - 1.00) / 1.05 relative (seeds 0, 1, 2)
    cur = [fp_record("fp32", change=(4, "blocks.0.attn.qkv", "activation", 2.0))]
    c = compare_sets(baseline_set(("fp32",)), cur, "base", "cur")
    (fp32,) = c.recipes
    assert fp32.level == "beyond-seed-band" and c.exit_code == 1
    assert fp32.first_beyond is not None
    assert (fp32.first_beyond.step, fp32.first_beyond.layer) == (4, "blocks.0.attn.qkv")
    assert fp32.first_beyond.band == pytest.approx(0.10 / 1.05)
    assert "beyond the FP32 seed band" in c.headline() and "step 4" in c.headline()


@pytest.mark.unit
def test_activations_come_before_the_loss_and_gradients_within_a_step() -> None:
    """The first departure is the first quantity the step computed: a changed activation of
    the last layer precedes a changed gradient of the first one at the same step."""
    fp = fp_payload(change=(2, "lm_head", "activation", 1.001))
    fp2 = fp_payload(change=(2, "wte", "gradient", 1.001))
    merged = dict(fp)
    merged["tensors"] = [a if (a["layer"], a["tensor"]) != ("wte", "gradient") else b
                         for a, b in zip(fp["tensors"], fp2["tensors"], strict=True)]
    cur = record("fp32", profiler_results={"fingerprint": merged}).model_copy(
        update={"data": {"source": "synthetic", "vocab_size": 64}})
    c = compare_sets(baseline_set(("fp32",)), [cur], "base", "cur")
    first = c.recipes[0].first_change
    assert first is not None and (first.layer, first.tensor) == ("lm_head", "activation")


@pytest.mark.unit
def test_an_fp8_scale_precedes_the_output_it_produced() -> None:
    def with_scales(input_scale: float, qkv_amax: float) -> RunRecord:
        fp = fp_payload()
        fp["scales"] = [{"step": 0, "layer": "blocks.0.attn.qkv", "operand": op, "scale": v}
                        for op, v in (("weight", 5000.0), ("input", input_scale),
                                      ("grad_output", 9.0))]
        for t in fp["tensors"]:
            if (t["step"], t["layer"], t["tensor"]) == (0, "blocks.0.attn.qkv", "activation"):
                t["amax"] = qkv_amax
        return record("fp32", profiler_results={"fingerprint": fp}).model_copy(
            update={"data": {"source": "synthetic", "vocab_size": 64}})

    base = [with_scales(120.0, 3.0), with_scales(120.0, 3.0).model_copy(update={"repeat": 1}),
            fp_record("fp32", 1), fp_record("fp32", 2)]
    first_repeat = base[1].result(FingerprintResult)
    assert first_repeat is not None
    base[1].profiler_results["fingerprint"] = first_repeat.model_copy(update={"repeat": 1})
    c = compare_sets(base, [with_scales(1.0, 3.1)], "b", "c")
    first = c.recipes[0].first_change
    assert first is not None and (first.layer, first.stat) == ("blocks.0.attn.qkv", "scale:input")
    assert first.band == pytest.approx(0.10 / 1.05)  # the layer's activation amax band


@pytest.mark.unit
def test_a_suite_run_with_the_profiler_is_a_fingerprint_set() -> None:
    """`mpbench run` with profilers: [fingerprint] stores each seed as its own reference: the
    smallest seed is the fingerprint, FP32's other seeds its band."""
    runs = [record(p, seed, repeat=rep, profiler_results={"fingerprint": fp_payload(
        seed, rep, reference_seed=seed)}) for p in ("fp32", "bf16") for seed in (3, 4, 5)
        for rep in (0, 1)]
    s = fingerprint_set(runs, "suite-run")
    assert {k: fp.result.seed for k, fp in s.main.items()} == {
        ("gpt-tiny", "fp32"): 3, ("gpt-tiny", "bf16"): 3}
    assert sorted(fp.result.seed for fp in s.band["gpt-tiny"]) == [3, 4, 5]
    assert [fp.result.repeat for fp in s.repeats[("gpt-tiny", "bf16")]] == [1]


@pytest.mark.unit
def test_repeat_differences_set_the_tolerance() -> None:
    base = [fp_record("fp32"), fp_record("fp32", repeat=1, shift=1e-6),
            fp_record("fp32", 1), fp_record("fp32", 2)]
    tol = repeat_tolerance(fingerprint_set(base, "base"))
    assert tol.pairs == 1
    assert tol.by_kind["loss"] == pytest.approx(1e-6, rel=1e-3)
    assert tol.by_kind["amax"] == pytest.approx(1e-6, rel=1e-3)
    c = compare_sets(base, [fp_record("fp32", shift=5e-7)], "base", "cur")
    assert c.recipes[0].level == "within-repeat-tolerance" and c.recipes[0].first_change is None
    c = compare_sets(base, [fp_record("fp32", shift=1e-4)], "base", "cur")
    assert c.recipes[0].level == "inside-seed-band"


@pytest.mark.unit
def test_a_value_that_becomes_not_finite_is_beyond_the_band() -> None:
    assert difference("loss", 2.0, math.nan) == math.inf
    assert difference("underflow:fp16", 0.1, 0.1) == 0.0
    losses = [4.0, 3.9, 3.8, math.inf, 3.6, 3.5]
    c = compare_sets(baseline_set(("fp32",)), [fp_record("fp32", loss=losses)], "b", "c")
    (r,) = c.recipes
    assert r.level == "beyond-seed-band" and r.first_beyond is not None
    assert (r.first_beyond.step, r.first_beyond.stat) == (3, "loss")


@pytest.mark.unit
def test_a_layer_on_one_side_only_is_a_change_inside_the_band() -> None:
    fp = fp_payload()
    fp["tensors"] = [t for t in fp["tensors"] if t["layer"] != "blocks.0.ln_1"]  # fused away
    cur = record("fp32", profiler_results={"fingerprint": fp}).model_copy(
        update={"data": {"source": "synthetic", "vocab_size": 64}})
    (r,) = compare_sets(baseline_set(("fp32",)), [cur], "b", "c").recipes
    assert r.level == "inside-seed-band" and r.one_sided == 3 * 2 * 3  # steps x tensors x stats
    assert r.first_change is not None and r.first_change.layer == "blocks.0.ln_1"
    assert "on one side only" in r.first_change.text() and "layers differ" in r.detail()


@pytest.mark.unit
def test_a_run_that_now_fails_is_beyond_the_band_with_its_reason() -> None:
    failed = record("bf16", status="failed", reason="RuntimeError: NaN in step 3")
    c = compare_sets(baseline_set(), [fp_record("fp32"), failed], "b", "c")
    bf16 = next(r for r in c.recipes if r.recipe == "bf16")
    assert bf16.level == "beyond-seed-band" and "NaN in step 3" in (bf16.reason or "")
    assert c.exit_code == 1


@pytest.mark.unit
def test_software_differences_are_named_with_both_versions() -> None:
    cur = [fp_record("fp32", software={"torch": "2.14.0+cpu", "torchao": "0.15.0"}),
           fp_record("bf16", software={"torch": "2.14.0+cpu", "torchao": "0.15.0"})]
    c = compare_sets(baseline_set(), cur, "b", "c")
    assert ("torch", "2.13.0+cpu", "2.14.0+cpu") in c.software
    assert ("torchao", None, "0.15.0") in c.software
    assert len(c.software) == 2


# -- bad input: one line, exit 2, nothing written lost ---------------------------------------
def _dirs(tmp_path: Path, base: list[RunRecord], cur: list[RunRecord]) -> tuple[str, str]:
    return (str(write_results(tmp_path / "base", base)),
            str(write_results(tmp_path / "cur", cur)))


@pytest.mark.unit
@pytest.mark.parametrize(("current", "named"), [
    (lambda: [fp_record("fp32", reference_seed=1, seed=1)], "differ in seed: baseline 0, current 1"),
    (lambda: [fp_record("fp32").model_copy(update={"data": {"source": "stdlib"}})],
     "differ in data"),
    (lambda: [fp_record("fp32").model_copy(update={"model_dims": {"arch": "gpt", "n_layer": 4}})],
     "differ in model dims"),
    (lambda: [record("fp32")], "no fingerprints"),
])
def test_incomparable_input_exits_2_with_one_line(tmp_path: Path, current: Any,
                                                  named: str) -> None:
    base, cur = _dirs(tmp_path, baseline_set(("fp32",)), current())
    summary = tmp_path / "summary.md"
    summary.write_text("earlier summary\n", encoding="utf-8")
    code, out, err = invoke("fingerprint", "gate", cur, "--baseline", base,
                            "--summary-md", str(summary))
    assert code == 2, out
    assert named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert summary.read_text(encoding="utf-8") == "earlier summary\n"


@pytest.mark.unit
def test_baseline_without_fingerprints_or_band_exits_2(tmp_path: Path) -> None:
    base, cur = _dirs(tmp_path, [record("fp32")], [fp_record("fp32")])
    code, _, err = invoke("fingerprint", "gate", cur, "-b", base)
    assert code == 2 and "no fingerprints" in err and base in err
    nob = str(write_results(tmp_path / "noband", [fp_record("fp32"), fp_record("fp32", 0, 1)]))
    code, _, err = invoke("fingerprint", "gate", cur, "-b", nob)
    assert code == 2 and "no FP32 seed band" in err


@pytest.mark.unit
def test_corrupt_records_exit_2_naming_the_file_or_field(tmp_path: Path) -> None:
    base, cur = _dirs(tmp_path, baseline_set(("fp32",)), [fp_record("fp32")])
    bad = Path(cur) / "runs" / "run0000.json"
    bad.write_text(bad.read_text(encoding="utf-8")[:200], encoding="utf-8")
    code, _, err = invoke("fingerprint", "gate", cur, "-b", base)
    assert code == 2 and "run0000.json" in err and "corrupt JSON" in err
    raw = json.loads((Path(base) / "runs" / "run0000.json").read_text(encoding="utf-8"))
    raw["profiler_results"]["fingerprint"]["steps"] = "lost"
    bad.write_text(json.dumps(raw), encoding="utf-8")
    code, _, err = invoke("fingerprint", "gate", cur, "-b", base)
    assert code == 2 and "profiler_results.fingerprint" in err and "steps" in err


# -- the gate command: Markdown, step summary, exit codes --------------------------------------
@pytest.mark.unit
def test_gate_writes_markdown_and_appends_the_step_summary(tmp_path: Path) -> None:
    cur_records = [fp_record("fp32", change=(2, "blocks.0.ln_1", "activation", 3.0),
                             software={"torch": "2.14.0+cpu"})]
    base, cur = _dirs(tmp_path, baseline_set(("fp32",)), cur_records)
    step = tmp_path / "step.md"
    step.write_text("## earlier step\n", encoding="utf-8")
    md, js = tmp_path / "fp.md", tmp_path / "fp.json"
    code, _, _ = invoke("fingerprint", "gate", cur, "-b", base, "--summary-md", str(md),
                          "--json", str(js), env={"GITHUB_STEP_SUMMARY": str(step)})
    assert code == 1
    text = md.read_text(encoding="utf-8")
    assert "changed beyond the FP32 seed band" in text
    assert "step 2, blocks.0.ln_1 activation amax: 2 → 6" in text
    assert "| torch | 2.13.0+cpu | 2.14.0+cpu |" in text
    assert step.read_text(encoding="utf-8") == "## earlier step\n" + text
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["exit_code"] == 1 and data["recipes"][0]["first_beyond"]["layer"] == "blocks.0.ln_1"
    code, _, _ = invoke("fingerprint", "gate", base, "-b", base)
    assert code == 0


# -- recording -------------------------------------------------------------------------------
@pytest.mark.unit
def test_delayed_scaling_takes_the_scale_from_earlier_steps() -> None:
    delayed = DelayedScaling(history_len=2)
    e4m3_max = 448.0
    first = delayed.scale("input", torch.tensor([2.0, -4.0]), torch.float8_e4m3fn)
    assert float(first) == 1.0  # nothing seen yet, as TE starts
    second = delayed.scale("input", torch.tensor([1.0]), torch.float8_e4m3fn)
    assert float(second) == pytest.approx(e4m3_max / 4.0)
    third = delayed.scale("input", torch.tensor([1.0]), torch.float8_e4m3fn)
    assert float(third) == pytest.approx(e4m3_max / 4.0)  # 4 still in the 2-step history
    fourth = delayed.scale("input", torch.tensor([1.0]), torch.float8_e4m3fn)
    assert float(fourth) == pytest.approx(e4m3_max / 1.0)
    layer = EmulatedFp8Linear(16, 16, delayed=DelayedScaling(16))
    layer(torch.randn(4, 16)).sum().backward()
    assert layer.telemetry()["input_scale"] == 1.0


@pytest.mark.integration
def test_fingerprint_run_records_and_gates_itself(tmp_path: Path) -> None:
    suite = tmp_path / "fp.yaml"
    suite.write_text(
        "name: fp-test\nmodels: [gpt-tiny]\nprecisions: [fp32, fp8-emulated]\n"
        "train: {batch_size: 2, seq_len: 16}\ndata: {source: synthetic, vocab_size: 32}\n",
        encoding="utf-8")
    out = tmp_path / "fp"
    code, stdout, err = invoke("fingerprint", "run", str(suite), "-o", str(out), "--steps", "3",
                               "--probe-steps", "0,2,9", "--band-seeds", "2")
    assert code == 0, err
    records = load_records(out)
    assert sorted((r.precision, r.seed, r.repeat) for r in records) == [
        ("fp32", 0, 0), ("fp32", 0, 1), ("fp32", 1, 0), ("fp8-emulated", 0, 0),
        ("fp8-emulated", 0, 1)]
    fp8 = next(r for r in records if r.precision == "fp8-emulated" and r.repeat == 0)
    fp = fp8.result(FingerprintResult)
    assert fp is not None
    assert fp.probe_steps == [0, 2] and [s.step for s in fp.steps] == [0, 1, 2]
    assert fp.formats == ["e4m3", "e5m2", "bf16"]
    assert fp.software.torch == torch.__version__ and fp.software.deterministic_algorithms
    assert [s.loss for s in fp.steps] == [loss for _, loss in fp8.loss_curve]
    layers = {(t.layer, t.tensor) for t in fp.tensors if t.step == 0}
    assert ("blocks.0.attn.qkv", "activation") in layers
    assert ("blocks.0.attn.qkv", "gradient") in layers
    scales = {(s.layer, s.operand) for s in fp.scales if s.step == 2}
    assert ("blocks.0.mlp.fc", "grad_output") in scales
    qkv = next(s for s in fp.scales if (s.step, s.layer, s.operand) == (
        0, "blocks.0.attn.qkv", "input"))
    qkv_in = next(t for t in fp.tensors if (t.step, t.layer, t.tensor) == (
        0, "blocks.0.ln_1", "activation"))  # qkv's input is ln_1's output (bf16 under autocast)
    assert qkv.scale == pytest.approx(448.0 / float(qkv_in.amax), rel=1e-6)
    code, stdout, _ = invoke("fingerprint", "gate", str(out), "-b", str(out))
    assert code == 0 and "numerics identical to the baseline" in stdout


@pytest.mark.integration
@pytest.mark.parametrize("precision", [
    PrecisionSpec(name="fp16"),
    PrecisionSpec(name="fp8-emulated", options={"scaling": "delayed", "amax_history_len": 4})])
def test_a_fingerprinted_run_trains_bit_for_bit_as_without(precision: PrecisionSpec) -> None:
    suite = Suite(name="bits", models=[ModelSpec(size="gpt-tiny")], precisions=[precision],
                  train=TrainConfig(batch_size=2, seq_len=16, steps=5, warmup_steps=0,
                                    eval_batches=0, threads=1),
                  data=DataConfig(source="synthetic", vocab_size=32))
    watched = suite.model_copy(update={"profilers": [PrecisionSpec(
        name="fingerprint", options={"probe_steps": [0, 1, 2, 3, 4]})]})
    source = make_source(suite.data)
    env = environment_card()
    plain = train_run(expand(suite)[0], source, torch.device("cpu"), env)
    seen = train_run(expand(watched)[0], source, torch.device("cpu"), env)
    assert plain.status == seen.status == "ok"
    assert [v for _, v in seen.loss_curve] == [v for _, v in plain.loss_curve]
    fp = seen.result(FingerprintResult)
    assert fp is not None
    assert fp.probe_steps == [0, 1, 2, 3, 4] and len(fp.tensors) > 0


@pytest.mark.unit
def test_probe_steps_past_the_run_exit_2_before_anything_is_written(tmp_path: Path) -> None:
    suite = tmp_path / "fp.yaml"
    suite.write_text("name: x\nmodels: [gpt-tiny]\nprecisions: [fp32]\n", encoding="utf-8")
    code, _, err = invoke("fingerprint", "run", str(suite), "-o", str(tmp_path / "o"),
                          "--steps", "3", "--probe-steps", "5,6")
    assert code == 2 and "--probe-steps 5,6" in err and not (tmp_path / "o").exists()
    with pytest.raises(UserError):
        fingerprint_set([record("fp32")], "where")


@pytest.mark.unit
def test_report_shows_the_comparison_plot_and_software_table(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base", baseline_set(("fp32",)))
    cur = write_results(tmp_path / "cur", [fp_record(
        "fp32", change=(2, "blocks.0.mlp.fc", "activation", 1.02),
        software={"torch": "2.14.0+cpu"})])
    html = write_report([base, cur], tmp_path / "r.html").read_text(encoding="utf-8")
    section = html[html.index('id="fingerprint"'):]
    section = section[:section.index("</section>")]
    assert "changed, inside the FP32 seed band" in section
    assert "step 2, blocks.0.mlp.fc activation amax: 4 → 4.08" in section
    assert section.count("<svg") == 1 and "<image" not in section
    assert "activation amax" in section and "gradient amax" in section  # the plot's panels
    assert "2.13.0+cpu" in section and "2.14.0+cpu" in section
