"""The per-layer advisor: timings, the advised set and filter, predictions, refusals, bad input."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from mpbench.analysis import advice as logic
from mpbench.analysis.stats import Interval
from mpbench.bench.advisor import (
    GemmTimes,
    LayerTiming,
    LinearLayer,
    linear_layers,
    median_halfwidth,
    time_layers,
)
from mpbench.cli.main import cli
from mpbench.precision import get_recipe

SMOKE = "suites/smoke.yaml"


class FakeTimer:
    """Baseline cost grows with the layer's size; the recipe halves it but adds a fixed cast
    cost of 0.5 ms, so it pays exactly where in*out*1e-5/2 > 0.5, i.e. in*out > 100_000.
    `jitter` (ms) is added to each repetition's recipe forward, cycling through -j, 0, +j, so
    the paired gains' median is the exact gain and their MAD is j."""

    def __init__(self, jitter: float = 0.0, reps: int = 3) -> None:
        self.calls: list[tuple[int, int]] = []
        self.jitter, self.reps = jitter, reps
        self._k = 0

    def time(self, layer: LinearLayer, tokens: int) -> list[tuple[GemmTimes, GemmTimes]]:
        self.calls.append(layer.shape)
        base = layer.in_features * layer.out_features * 1e-5 * tokens / 512
        third = base / 3
        new = third / 2 + 0.5 / 3
        out = []
        for _ in range(self.reps):
            j = (self._k % 3 - 1) * self.jitter
            self._k += 1
            out.append((GemmTimes(third, third, third), GemmTimes(new + j, new, new)))
        return out


def layers() -> list[LinearLayer]:
    out = []
    for i in range(3):
        out += [LinearLayer(f"blocks.{i}.attn.proj", 64, 64, True),       # 4096: loses
                LinearLayer(f"blocks.{i}.mlp.fc", 512, 2048, True),       # 1M: pays
                LinearLayer(f"blocks.{i}.mlp.proj", 2048, 512, True)]     # 1M: pays
    return [*out, LinearLayer("lm_head", 64, 256, False)]                # 16k: loses


MLP = [f"blocks.{i}.mlp.{p}" for i in range(3) for p in ("fc", "proj")]


@pytest.mark.unit
def test_fake_timer_the_advised_set_is_the_layers_above_the_size_where_it_pays() -> None:
    timer = FakeTimer()
    timings, rounds = time_layers(layers(), 512, timer)
    assert rounds == 2 and len(timer.calls) == 2 * 4  # each distinct shape once per round
    found = logic.advise(timings, baseline_step_ms=100.0, rest_step_ms=102.0)
    assert found.advised == MLP
    big = 512 * 2048 * 1e-5
    small = [64 * 64 * 1e-5] * 3 + [64 * 256 * 1e-5]
    gain_big = big / 2 - 0.5
    assert timings[1].gain_ms == pytest.approx(gain_big)
    assert all(t.gain_hw_ms == 0.0 for t in timings)  # a noiseless timer: no spread
    # every layer: start from the measured rest (102 ms) and subtract every gain
    all_ms = 102.0 - 6 * gain_big - sum(s / 2 - 0.5 for s in small)
    assert found.predicted_all == pytest.approx(all_ms / 100.0)
    assert found.predicted_advised == pytest.approx((102.0 - 6 * gain_big) / 100.0)
    assert found.predicted_advised < found.predicted_all
    d = found.decision
    assert sorted(d.kept_out) == sorted(["lm_head"] + [f"blocks.{i}.attn.proj" for i in range(3)])
    assert d.saving_ms == pytest.approx(-sum(s / 2 - 0.5 for s in small))
    assert d.keeps_out and d.uncertainty_ms == 0.0
    option, value, yaml = logic.filter_for("bf16", "bf16", [t.layer.name for t in timings],
                                           found.advised, {})
    assert option == "keep_fp32" and value == ["blocks.*.attn.proj", "lm_head"]
    assert yaml == "- {name: bf16, options: {keep_fp32: [blocks.*.attn.proj, lm_head]}}"
    option, value, _ = logic.filter_for("fp8-te-current", "fp8", [t.layer.name for t in timings],
                                        found.advised, {})
    assert option == "fp8_filter" and value == {"include": ["blocks.*.mlp.fc", "blocks.*.mlp.proj"],
                                                "exclude": []}


@pytest.mark.unit
def test_a_subset_is_advised_only_when_its_saving_beats_the_measured_uncertainty() -> None:
    """The losing layers (3 x attn.proj, lm_head) save s ms kept out. Against a whole-step
    noise above s every layer is advised; below it, they are kept out, unless the layers' own
    timing noise (the spread of the paired repetitions) takes the uncertainty above s."""
    small = [64 * 64 * 1e-5] * 3 + [64 * 256 * 1e-5]
    s = -sum(x / 2 - 0.5 for x in small)  # 1.969 ms per step
    timings, _ = time_layers(layers(), 512, FakeTimer())
    noisy = logic.advise(timings, 100.0, 102.0, step_noise_ms=s + 0.01)
    assert noisy.advised == [t.layer.name for t in timings]
    assert noisy.predicted_advised == noisy.predicted_all
    assert not noisy.decision.keeps_out and noisy.decision.saving_ms == pytest.approx(s)
    assert "within it, so every layer is advised" in noisy.decision.text(10)
    quiet = logic.advise(timings, 100.0, 102.0, step_noise_ms=s - 0.01)
    assert quiet.advised == MLP and "kept out" in quiet.decision.text(10)
    # jitter j on each repetition: paired gains -j, 0, +j -> MAD j, half-width known
    j = 0.5
    jittered, _ = time_layers(layers(), 512, FakeTimer(jitter=j))
    hw = 1.96 * 1.2533 * 1.4826 * j / math.sqrt(6)  # 2 rounds x 3 repetitions per shape
    assert all(t.gain_hw_ms == pytest.approx(hw) for t in jittered)
    assert all(t.gain_ms == pytest.approx(u.gain_ms) for t, u in zip(jittered, timings, strict=True))
    d = logic.advise(jittered, 100.0, 102.0, step_noise_ms=s - 0.01).decision
    # whichever candidate is best, the layers' noise adds to the step's and it is not cleared
    assert d.uncertainty_ms == pytest.approx(math.hypot(s - 0.01, d.layer_noise_ms))
    assert d.layer_noise_ms == pytest.approx(hw * len(d.kept_out))
    assert not d.keeps_out


@pytest.mark.unit
def test_gpt_tiny_bf16_keeps_every_layer_when_the_subset_saves_less_than_the_step_noise() -> None:
    """The layer gains and keep costs of gpt-tiny bf16 on the 2-core Xeon (the advisor check
    of 2026-12-06, second pass): keeping both attn.proj out was predicted to save 0.134 ms per
    step of 14 ms; trained, that subset measured slower than every layer (1.556 against 1.514
    of fp32's step). A whole-step difference measured to +-0.2 ms cannot tell 0.134 ms."""
    gains = {"attn.qkv": (64, 192, -0.0494), "attn.proj": (64, 64, -0.0982),
             "mlp.fc": (64, 256, 0.0224), "mlp.proj": (256, 64, -0.0462)}
    timings = []
    for i in range(2):
        for name, (n_in, n_out, gain) in gains.items():
            timings.append(LayerTiming(LinearLayer(f"blocks.{i}.{name}", n_in, n_out, True),
                                       GemmTimes(0.5, 0, 0), GemmTimes(0.5 - gain, 0, 0), 0.005))
    timings.append(LayerTiming(LinearLayer("lm_head", 64, 256, False), GemmTimes(0.5, 0, 0),
                               GemmTimes(0.5 - 0.0324, 0, 0), 0.005))
    found = logic.advise(timings, 9.6172, 14.2571, all_step_ms=13.9900, step_noise_ms=0.2)
    assert found.decision.kept_out == ["blocks.0.attn.proj", "blocks.1.attn.proj"]
    assert found.decision.saving_ms == pytest.approx(0.134, abs=0.002)
    assert len(found.advised) == 9 and found.predicted_advised == found.predicted_all
    assert found.predicted_all == pytest.approx(13.9900 / 9.6172)
    sure = logic.advise(timings, 9.6172, 14.2571, all_step_ms=13.9900, step_noise_ms=0.05)
    assert len(sure.advised) == 7  # the same saving against a quieter step is kept out


@pytest.mark.unit
def test_layer_rounds_stop_once_the_layers_noise_is_within_the_steps() -> None:
    noisy = FakeTimer(jitter=0.5)
    _, rounds = time_layers(layers(), 512, noisy,
                            enough=lambda t: logic.precise_enough(t, step_noise_ms=100.0))
    assert rounds == 2  # asked from min_rounds on: precise enough at once
    _, rounds = time_layers(layers(), 512, FakeTimer(jitter=0.5), max_rounds=4,
                            enough=lambda t: logic.precise_enough(t, step_noise_ms=0.0))
    assert rounds == 4  # never within a noiseless step: stops at max_rounds
    # only the layers that may lose are candidates: where keeping any layer out costs more
    # than its GEMMs lose (+1000 ms over the gains), no round beyond the first two is needed
    timings, _ = time_layers(layers(), 512, FakeTimer(jitter=0.5))
    gains = sum(t.gain_ms for t in timings)
    assert not logic.precise_enough(timings, 0.0, 102.0, 102.0 - gains)
    assert logic.precise_enough(timings, 0.0, 102.0, 102.0 - gains - 1000.0)
    assert median_halfwidth([1, 2, 3, 4, 5]) == pytest.approx(1.96 * 1.2533 * 1.4826 / 5 ** 0.5)
    assert median_halfwidth([1.0, 2.0]) == math.inf
    assert logic.step_noise([10, 11, 12, 13, 14], [9, 9, 9, 9, 9]) == pytest.approx(
        median_halfwidth([1, 2, 3, 4, 5]))


@pytest.mark.unit
def test_more_whole_steps_only_where_a_kept_out_set_could_clear_or_must_be_confirmed() -> None:
    assert logic.first_steps(10) == 5 and logic.first_steps(30) == 15 and logic.first_steps(4) == 4
    none = logic.Decision([], 0.0, 0.5, 0.0)
    assert not logic.needs_more_steps(none, 5, 10)  # no layer loses: nothing to decide
    # 0.134 ms saving against 0.5 ms of step noise on 5 steps: on 10 it would be 0.354, still
    # above the saving, so the first steps decide (every layer)
    hopeless = logic.Decision(["a"], 0.134, 0.5, 0.0)
    assert not logic.needs_more_steps(hopeless, 5, 10)
    near = logic.Decision(["a"], 0.4, 0.5, 0.0)  # 0.4 > 0.354: more steps could clear it
    assert logic.needs_more_steps(near, 5, 10) and not near.keeps_out
    cleared = logic.Decision(["a"], 0.6, 0.5, 0.0)  # kept out on 5 steps: confirmed on 10
    assert cleared.keeps_out and logic.needs_more_steps(cleared, 5, 10)
    assert not logic.needs_more_steps(cleared, 10, 10)
    blind = logic.Decision(["a"], 5.0, math.inf, 0.0)  # --steps 2: no spread to measure
    assert not blind.keeps_out and "too few steps" in blind.text(3)


@pytest.mark.unit
def test_keeping_a_layer_out_costs_its_boundary_casts_and_the_advice_counts_them() -> None:
    """T_rest - T_all beyond the GEMM gains is what keeping layers out costs (casts at their
    boundaries), shared by activation size: every-layer then predicts the measured T_all, and
    a layer that loses a little on its GEMMs is still converted when keeping it out costs more
    (gpt-tiny bf16 on a CPU: the advice kept 8 of 9 layers out and measured slower)."""
    timings, _ = time_layers(layers(), 512, FakeTimer())
    gains = sum(t.gain_ms for t in timings)
    rest, base = 102.0, 100.0
    # no unexplained difference: the keep cost is zero and the advice is the GEMM gains' own
    plain = logic.advise(timings, base, rest, all_step_ms=rest - gains)
    assert all(v == pytest.approx(0.0) for v in plain.keep_ms.values())
    assert plain.advised == MLP
    # keeping layers out costs 60 ms beyond their GEMMs: shared by in + out features
    costly = logic.advise(timings, base, rest, all_step_ms=rest - gains - 60.0)
    size = {t.layer.name: t.layer.in_features + t.layer.out_features for t in timings}
    assert costly.keep_ms["lm_head"] == pytest.approx(60.0 * size["lm_head"] / sum(size.values()))
    assert sum(costly.keep_ms.values()) == pytest.approx(60.0)
    assert costly.predicted_all == pytest.approx((rest - gains - 60.0) / base)  # = T_all / T_base
    # the small layers lose under 0.5 ms on their GEMMs but cost more than that kept out
    assert costly.keep_ms["lm_head"] > -next(t.gain_ms for t in timings if t.layer.name == "lm_head")
    assert "lm_head" in costly.advised and "blocks.0.attn.proj" not in plain.advised
    assert costly.predicted_advised <= costly.predicted_all + 1e-12


@pytest.mark.unit
def test_compress_only_globs_a_layer_family_when_every_member_is_chosen() -> None:
    names = ["blocks.0.mlp.fc", "blocks.1.mlp.fc", "blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    assert logic.compress(["blocks.0.mlp.fc", "blocks.1.mlp.fc", "blocks.0.attn.qkv"], names) == [
        "blocks.*.mlp.fc", "blocks.0.attn.qkv"]


@pytest.mark.unit
def test_real_timer_measures_three_gemms_per_shape_through_the_recipe() -> None:
    from mpbench.bench.advisor import DeviceTimer

    timer = DeviceTimer(get_recipe("fp32"), get_recipe("bf16"), torch.device("cpu"), warmup=1,
                        reps=3)
    pairs = timer.time(LinearLayer("l", 32, 48, True), 64)
    assert len(pairs) == 3
    for t in (x for pair in pairs for x in pair):
        assert all(v > 0 and math.isfinite(v) for v in (t.forward, t.input_grad, t.weight_grad))
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    assert [(x.name, x.in_features, x.out_features) for x in linear_layers(model)] == [
        ("1", 8, 16), ("3", 16, 4)]


@pytest.mark.unit
def test_keep_fp32_runs_named_modules_outside_autocast() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 8))
    recipe = get_recipe("bf16", {"keep_fp32": ["0"]})
    model = recipe.prepare(model, torch.device("cpu"))
    x = torch.randn(4, 8, requires_grad=True)
    with recipe.autocast(torch.device("cpu")):
        assert model[0](x).dtype == torch.float32
        assert model[2](x).dtype == torch.bfloat16
    assert recipe.describe()["kept_fp32"] == ["0"]
    with pytest.raises(ValueError, match="matches no module"):
        get_recipe("bf16", {"keep_fp32": ["nope"]}).prepare(nn.Linear(2, 2), torch.device("cpu"))


@pytest.mark.unit
def test_refusals_name_the_reason() -> None:
    assert "numerics only" in (logic.refusal("fp8-emulated", "fp8", True, True, "bf16", None) or "")
    assert "baseline" in (logic.refusal("fp32", "fp32", False, False, "fp32", None) or "")
    assert "whole model" in (logic.refusal("bf16-pure", "bf16", False, False, "fp32", None) or "")
    assert logic.refusal("bf16", "bf16", False, True, "fp32", None) is None
    assert "needs a CUDA" in (logic.refusal("fp8-te-current", "fp8", False, True, "bf16",
                                            "needs a CUDA GPU") or "")


def _ratio(value: float, low: float, high: float) -> Interval:
    return Interval(value, low, high, 3, 3, False, "test")


@pytest.mark.unit
def test_a_prediction_off_by_more_than_the_tolerance_and_outside_the_interval_is_a_miss() -> None:
    assert logic.Check(0.80, _ratio(0.82, 0.78, 0.86)).error == pytest.approx(0.80 / 0.82 - 1)
    assert not logic.Check(0.80, _ratio(0.82, 0.78, 0.86)).miss()
    assert logic.Check(0.60, _ratio(0.82, 0.78, 0.86)).miss()
    assert not logic.Check(0.60, _ratio(0.82, 0.50, 0.90)).miss()  # inside a wide interval
    assert logic.Check(0.60, _ratio(0.82, 0.50, 0.90)).verdict() == "inconclusive"
    assert logic.Check(0.80, _ratio(0.82, 0.78, 0.86)).verdict() == "hit"
    assert logic.Check(0.60, _ratio(0.82, 0.78, 0.86)).verdict() == "miss"
    assert logic.Check(0.60, None).verdict() == "not measured"
    assert logic.slower_beyond_interval(_ratio(1.2, 1.1, 1.3), _ratio(0.9, 0.85, 0.95))
    assert not logic.slower_beyond_interval(_ratio(0.95, 0.9, 1.0), _ratio(0.9, 0.85, 0.95))


def _one_line_exit_2(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.integration
def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    line = _one_line_exit_2(["advise", SMOKE, "--recipe", "bf61"])
    assert "unknown recipe 'bf61'" in line and "did you mean 'bf16'" in line
    line = _one_line_exit_2(["advise", SMOKE, "--recipe", "fp8-emulated"])
    assert "numerics only" in line and "no speed advice" in line
    line = _one_line_exit_2(["advise", SMOKE, "--recipe", "bf16-pure"])
    assert "no per-layer choice" in line
    line = _one_line_exit_2(["advise", SMOKE, "--recipe", "bf16", "--model", "gpt-huge"])
    assert "--model gpt-huge" in line
    (tmp_path / "nolinear.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class M(nn.Module):\n"
        "    vocab_size = 64\n    max_seq_len = 64\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.emb = nn.Embedding(64, 64)\n"
        "    def forward(self, ids):\n        return self.emb(ids)\n"
        "def build():\n    return M()\n", encoding="utf-8")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: nolinear\nmodels: [{name: bag, module: 'nolinear:build'}]\n"
                     "precisions: [fp32, bf16]\ntrain: {batch_size: 2, seq_len: 16, steps: 2}\n"
                     "data: {source: synthetic, vocab_size: 64}\n", encoding="utf-8")
    line = _one_line_exit_2(["advise", str(suite), "--recipe", "bf16"])
    assert "no linear layers" in line and "bag" in line


@pytest.mark.integration
def test_advise_on_the_smoke_suite_prints_and_stores_the_advice(tmp_path: Path) -> None:
    out = tmp_path / "adv"
    result = CliRunner().invoke(cli, ["advise", SMOKE, "--recipe", "bf16", "--steps", "2",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    stored = json.loads(next((out / "advice").glob("*.json")).read_text())
    # paste the filter where some choice is predicted faster than fp32; else say it does not pay
    pays = min(stored["predicted_all"], stored["predicted_advised"]) < 1
    assert ("paste into the suite's precisions" in result.output) is pays
    assert ("bf16 does not pay here" in result.output) is not pays
    assert stored["recipe"] == "bf16" and stored["baseline"] == "fp32"
    assert len(stored["layers"]) == 9  # gpt-tiny: 2 blocks x 4 linears + lm_head
    assert stored["baseline_step_ms"] > 0 and stored["rest_step_ms"] > 0
    kept = set(stored["filter_value"])  # keep_fp32 globs: exactly the layers that do not pay
    assert all(layer["pays"] != any(fnmatch.fnmatchcase(layer["name"], g) for g in kept)
               for layer in stored["layers"])


@pytest.mark.unit
def test_verification_compares_the_prediction_with_the_trained_runs_and_judges_it() -> None:
    from fixture_records import record

    from mpbench.cli.advise import pick_spec
    from mpbench.cli.advise_verify import verification, verification_suite
    from mpbench.results.advice import AdviceRecord, LayerAdvice
    from mpbench.results.key import options_tag
    from mpbench.train.load import load_suite

    keep = {"keep_fp32": ["lm_head"]}
    layer = LayerAdvice(name="lm_head", in_features=64, out_features=256, baseline_ms=(
        1, 1, 1), recipe_ms=(2, 2, 2), gain_ms=-3.0, pays=False)
    other = layer.model_copy(update={"name": "blocks.0.mlp.fc", "gain_ms": 3.0, "pays": True})
    rec = AdviceRecord(
        model="gpt-tiny", model_kind="reference", recipe="bf16", baseline="fp32", device="cpu",
        device_name="Test CPU", batch_size=8, seq_len=64, tokens_per_step=512,
        layers=[other, layer], baseline_step_ms=100.0, rest_step_ms=100.0, predicted_all=0.80,
        predicted_advised=0.60, advised=["blocks.0.mlp.fc"], filter_option="keep_fp32",
        filter_value=keep["keep_fp32"], filter_yaml="", tolerance=0.02, advisor_s=1.0,
        created_at="2026-12-06T00:00:00+00:00")

    def runs(precision: str, key: str, ms: float) -> list:
        return [r.model_copy(update={"config_key": r.config_key.model_copy(
            update={"recipe_id": key})})
            for r in (record(precision, 0, step_ms=ms, noise=0.5, repeat=i) for i in range(3))]

    recs = (runs("fp32", "fp32", 100.0) + runs("bf16", "bf16", 82.0)
            + runs("bf16", "bf16" + options_tag(keep), 80.0))
    v = verification(recs, rec, {}, {}, 3, "somewhere")
    assert v.measured_all is not None and v.measured_all.value == pytest.approx(0.82, abs=0.01)
    assert v.measured_advised is not None
    assert v.measured_advised.value == pytest.approx(0.80, abs=0.01)
    assert v.verdict_all == "hit" and v.error_all == pytest.approx(0.80 / 0.82 - 1, abs=0.01)
    assert v.verdict_advised == "miss" and v.miss_advised  # 0.60 predicted, 0.80 measured
    smoke = load_suite(SMOKE, "cpu")
    suite = verification_suite(smoke, pick_spec(smoke, None, "fp32"), rec, {}, {}, 3)
    assert [(p.name, p.options) for p in suite.precisions] == [
        ("fp32", {}), ("bf16", {}), ("bf16", keep)]
    assert suite.repeats == 3 and any(p.name == "tensor_cores" for p in suite.profilers)


@pytest.mark.unit
def test_a_converter_recipe_is_timed_through_its_own_module_cpu_stand_in() -> None:
    """The GPU path (TE / torchao FP8 modules) goes through the same recipe.prepare; on a CPU
    fp8-emulated stands in: its layer must be the converted module, fed bf16 gradients."""
    from mpbench.bench.advisor import _Stopwatch, _Variant
    from mpbench.precision.fp8_emulated import EmulatedFp8Linear

    v = _Variant(get_recipe("fp8-emulated"), LinearLayer("l", 32, 48, True), 64,
                 torch.device("cpu"))
    assert isinstance(v.module, EmulatedFp8Linear)
    assert v.grad.dtype == torch.bfloat16  # the FP8 recipes run under BF16 autocast
    assert all(x > 0 for x in v.once(_Stopwatch(torch.device("cpu"))))


@pytest.mark.unit
def test_advice_that_never_beats_the_baseline_says_stay_on_it() -> None:
    """gpt-tiny on a 2-core Xeon (2026-12-06): bf16 predicted x1.553 on every layer and x1.512
    on the one layer that pays at GEMM level, measured x1.514 and x1.600: the advice is to
    stay on fp32, with the least slow filter shown only for who runs bf16 anyway."""
    from mpbench.results.advice import AdviceRecord, LayerAdvice

    layer = LayerAdvice(name="lm_head", in_features=64, out_features=256,
                        baseline_ms=(0.152, 0.175, 0.188), recipe_ms=(0.184, 0.151, 0.160),
                        gain_ms=0.02, pays=True)
    rec = AdviceRecord(
        model="gpt-tiny", model_kind="reference", recipe="bf16", baseline="fp32", device="cpu",
        device_name="Intel(R) Xeon(R) Processor", batch_size=8, seq_len=64, tokens_per_step=512,
        layers=[layer], baseline_step_ms=9.62, rest_step_ms=14.56, predicted_all=1.553,
        predicted_advised=1.512, advised=["lm_head"], filter_option="keep_fp32",
        filter_value=["blocks.*.attn.qkv"], filter_yaml="- {name: bf16, options: {keep_fp32: "
        "[blocks.*.attn.qkv]}}", tolerance=0.02, advisor_s=2.2, created_at="2026-12-06T15:00:00")
    assert not rec.pays
    line = rec.filter_line()
    assert line.startswith("bf16 does not pay here: every choice of layers is predicted slower "
                           "than fp32 (best step ratio x1.512); stay on fp32.")
    assert line.endswith("the least slow layers: - {name: bf16, options: {keep_fp32: "
                         "[blocks.*.attn.qkv]}}")
    faster = rec.model_copy(update={"predicted_all": 0.8, "predicted_advised": 0.75})
    assert faster.pays
    assert faster.filter_line() == ("paste into the suite's precisions: - {name: bf16, options: "
                                    "{keep_fp32: [blocks.*.attn.qkv]}}")


@pytest.mark.unit
def test_a_step_compiles_where_the_suite_asks_unless_the_recipe_refuses() -> None:
    """The one rule runs and the advisor's probe share (train/optim.step_forward)."""
    from mpbench.config.schema import TrainConfig
    from mpbench.train.optim import step_forward

    model = nn.Linear(4, 4)
    forward, refusal = step_forward(model, get_recipe("bf16"), TrainConfig(compile=False))
    assert forward is model and refusal is None
    forward, refusal = step_forward(model, get_recipe("fp8-te-delayed"),
                                    TrainConfig(compile=True))
    assert forward is model and refusal is not None and "DelayedScaling" in refusal
    forward, refusal = step_forward(model, get_recipe("bf16"), TrainConfig(compile=True))
    assert forward is not model and refusal is None


@pytest.mark.unit
def test_step_probe_times_blocks_in_turn_after_an_untimed_step_on_shared_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each round runs every recipe's block in turn (the order rotating), the block's first
    step untimed (the caches still hold the other model's tensors), step i of every recipe on
    the same batch; a short last block takes what is left."""
    from mpbench.cli.advise import pick_spec
    from mpbench.data import make_source
    from mpbench.train import step_probe
    from mpbench.train.load import load_suite

    calls: list[tuple[int, int]] = []

    class FakeStepper:
        def __init__(self, index: int) -> None:
            self.index = index

        def __call__(self, x: torch.Tensor, y: torch.Tensor) -> object:
            calls.append((self.index, int(x.sum())))
            return type("Out", (), {"loss": torch.tensor(1.0)})()

    made: list[int] = []
    checkpointed: list[bool] = []
    forwards: list[object] = []

    def fake_stepper(*args: object) -> FakeStepper:
        made.append(int(args[4]))  # type: ignore[call-overload]  # the schedule's length
        checkpointed.append(bool(args[0].activation_checkpointing))  # type: ignore[attr-defined]
        forwards.append(args[5])
        return FakeStepper(len(made) - 1)

    monkeypatch.setattr(step_probe, "make_stepper", fake_stepper)
    monkeypatch.setattr(torch, "compile", lambda model: ("compiled", model))
    suite = load_suite(SMOKE, "cpu")
    spec = pick_spec(suite, None, "fp32")
    spec = dataclasses.replace(spec, train_config=spec.train.model_copy(
        update={"activation_checkpointing": True, "compile": True}))
    source = make_source(suite.data, Path(SMOKE).parent)
    recipes = [get_recipe("fp32"), get_recipe("bf16")]
    probe = step_probe.StepProbe(spec, recipes, source, torch.device("cpu"), warmup=1,
                                 max_steps=5, block=3)
    assert [k for k, _ in calls] == [1, 0] and calls[0][1] == calls[1][1]  # warm: one each
    del calls[:]
    times = probe.run(5)
    assert [len(t) for t in times] == [5, 5]
    assert made == [1 + 2 + 5] * 2  # warm-up, an untimed first step per block, timed steps
    assert checkpointed == [True, True]  # the suite's settings, as a run's model has them
    assert [f[0] for f in forwards] == ["compiled", "compiled"]  # type: ignore[index]
    # two rounds: blocks of 1 + 3 then 1 + 2 steps; each round starts with the other recipe
    assert [k for k, _ in calls] == [0] * 4 + [1] * 4 + [1] * 3 + [0] * 3
    batches = {k: [b for j, b in calls if j == k] for k in (0, 1)}
    assert batches[0] == batches[1]  # the same batches in the same order for every recipe
