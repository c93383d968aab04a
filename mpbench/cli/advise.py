"""`mpbench advise SUITE --recipe R`: which linear layers to run under a recipe, predicted and
(with --verify) checked by training.

The suite gives the model (reference, Hugging Face config or user module), the tokens per step
and the device profile; the advisor measures a few whole steps (train/step_probe.py: their
spread is the noise a decision must clear), times every distinct linear layer shape's three
training GEMMs in the baseline and in the recipe (bench/advisor.py) in rounds until they are
as precise as that decision needs, predicts and decides (analysis/advice.py), prints the
filter to paste, and stores the advice (results/advice.py) where -o points.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.console import Console

from mpbench.analysis import advice as logic
from mpbench.analysis.waterfall import baseline_of
from mpbench.bench.advisor import DeviceTimer, linear_layers, time_layers
from mpbench.config.errors import unknown_name
from mpbench.config.schema import PrecisionSpec, Suite
from mpbench.data import make_source
from mpbench.errors import UserError
from mpbench.models.entry import build_entry
from mpbench.plan.spec import RunSpec, expand
from mpbench.precision import RECIPES, get_recipe
from mpbench.precision.base import Recipe
from mpbench.results.advice import AdviceRecord, LayerAdvice, write_advice
from mpbench.results.env import environment_card
from mpbench.results.output import check_writable_dir
from mpbench.train import resolve_device
from mpbench.train.load import load_suite
from mpbench.train.record import device_name
from mpbench.train.step_probe import StepProbe, median_ms


def pick_spec(suite: Suite, model: str | None, baseline: str) -> RunSpec:
    """The suite's model `model` (default: its first) under the baseline, suite train settings."""
    labels = [m.label for m in suite.models]
    label = model or labels[0]
    if label not in labels:
        raise UserError(f"--model {label}: {unknown_name('model', label, labels)}")
    one = suite.model_copy(update={
        "models": [suite.models[labels.index(label)]], "precisions": [PrecisionSpec(name=baseline)],
        "matrix": {}, "parallel": None, "repeats": 1, "seeds": suite.seeds[:1]})
    return expand(one)[0]


def recipe_options(suite: Suite, name: str) -> dict[str, object]:
    """The suite's own options for the recipe (its first entry of that name), else none."""
    return next((dict(p.options) for p in suite.precisions if p.name == name), {})


def check_candidate(name: str, baseline: str, device_type: str) -> Recipe:
    for which, value in (("--recipe", name), ("--baseline", baseline)):
        if value not in RECIPES:
            raise UserError(f"{which}: {unknown_name('recipe', value, RECIPES)}")
    recipe = get_recipe(name)
    import torch

    reason = logic.refusal(name, recipe.family, recipe.numerics_only,
                           "keep_fp32" in type(recipe).Options.model_fields, baseline,
                           recipe.check(torch.device(device_type)))
    if reason is not None:
        raise UserError(reason)
    return recipe


def finite(x: float) -> float | None:
    """A half-width as stored: None where too few samples gave none (infinite)."""
    return x if math.isfinite(x) else None


def layer_rows(found: logic.Advice) -> list[LayerAdvice]:
    advised = set(found.advised)
    return [LayerAdvice(name=t.layer.name, in_features=t.layer.in_features,
                        out_features=t.layer.out_features,
                        baseline_ms=(t.baseline.forward, t.baseline.input_grad,
                                     t.baseline.weight_grad),
                        recipe_ms=(t.recipe.forward, t.recipe.input_grad, t.recipe.weight_grad),
                        gain_ms=t.gain_ms, pays=t.layer.name in advised,
                        keep_ms=found.keep_ms.get(t.layer.name, 0.0),
                        gain_hw_ms=finite(t.gain_hw_ms)) for t in found.timings]


def _pm(x: float | None) -> str:
    return f"±{x:.3f}" if x is not None else "±?"


def print_advice(console: Console, rec: AdviceRecord) -> None:
    console.print(f"{rec.model} ({rec.model_kind}), {rec.recipe} vs {rec.baseline} on "
                  f"{rec.device_name}, {rec.tokens_per_step} tokens per step", highlight=False)
    console.print(f"{'layer':<34} {'in':>6} {'out':>6} {'base ms (fwd/dx/dw)':>24} "
                  f"{'recipe ms (fwd/dx/dw)':>24} {'gain ms':>15} {'keep ms':>8}  advised",
                  highlight=False)
    for layer in rec.layers:
        b = "/".join(f"{v:.3f}" for v in layer.baseline_ms)
        r = "/".join(f"{v:.3f}" for v in layer.recipe_ms)
        gain = f"{layer.gain_ms:+.3f}{_pm(layer.gain_hw_ms)}"
        console.print(f"{layer.name:<34} {layer.in_features:>6} {layer.out_features:>6} {b:>24} "
                      f"{r:>24} {gain:>15} {layer.keep_ms:>+8.3f}  "
                      f"{'yes' if layer.pays else 'no'}",
                      highlight=False, markup=False)
    rest = (f", under {rec.recipe} with every linear kept out {rec.rest_step_ms:.2f} ms"
            if rec.rest_step_ms is not None else "")
    rest += (f", on every linear {rec.all_step_ms:.2f} ms" if rec.all_step_ms is not None
             else "")
    over = f" over {rec.probe_steps} steps" if rec.probe_steps else ""
    console.print(f"whole step (measured by the advisor{over}): {rec.baseline} "
                  f"{rec.baseline_step_ms:.2f} ms{rest}; step-difference noise "
                  f"{_pm(rec.step_noise_ms)} ms", highlight=False)
    if rec.decision:
        console.print(f"decision: {rec.decision}", highlight=False, markup=False)
    console.print(f"predicted step time {rec.recipe}/{rec.baseline}: every layer "
                  f"x{rec.predicted_all:.3f}, advised set ({len(rec.advised)} of "
                  f"{len(rec.layers)} layers) x{rec.predicted_advised:.3f}", highlight=False)
    console.print(rec.filter_line(), highlight=False, markup=False, soft_wrap=True)
    rounds = f" (layer shapes timed in {rec.layer_rounds} rounds)" if rec.layer_rounds else ""
    console.print(f"advisor's own timings: {rec.advisor_s:.1f} s{rounds}", highlight=False)


@click.command("advise")
@click.argument("suite_file", metavar="SUITE", type=click.Path(path_type=Path))
@click.option("--recipe", "-r", required=True, help="The candidate recipe (bf16, fp16, fp8-...).")
@click.option("--model", "-m", default=None, help="Which of the suite's models (default: first).")
@click.option("--baseline", default=None,
              help="Recipe to compare with (default: fp32; bf16 for FP8/FP4 recipes).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Results directory to store the advice in (and the --verify runs).")
@click.option("--verify", is_flag=True,
              help="Train the baseline, the recipe on every layer and on the advised layers, "
                   "each --repeats times in fresh processes, and compare with the prediction.")
@click.option("--repeats", type=click.IntRange(2, 20), default=3, show_default=True,
              help="Runs per configuration for --verify.")
@click.option("--steps", type=click.IntRange(2, 100), default=10, show_default=True,
              help="Most whole steps the advisor times per recipe (in blocks of 3, each after "
                   "an untimed one; half of them, at least 5, first, the rest only where a "
                   "kept-out set is near its uncertainty); their spread is the noise keeping "
                   "layers out must beat.")
def advise(suite_file: Path, recipe: str, model: str | None, baseline: str | None, device: str,
           out: Path | None, verify: bool, repeats: int, steps: int) -> None:
    """Time each linear layer under a recipe, advise which to convert, optionally verify by training.

    Each linear layer's forward, input-gradient and weight-gradient GEMMs are timed under
    RECIPE and its baseline on this device, at the suite's tokens per step.

    \b
    Examples:
      mpbench advise suites/gpt.yaml --recipe bf16 --model gpt-mini
      mpbench advise suites/gpt.yaml --recipe bf16 --verify -o reports/advice-gpt
    """
    import torch

    dev = resolve_device(device)
    suite = load_suite(suite_file, "cuda" if dev.type == "cuda" else "cpu")
    if recipe not in RECIPES:
        raise UserError(f"--recipe: {unknown_name('recipe', recipe, RECIPES)}")
    base_name = baseline or baseline_of(get_recipe(recipe).family)
    candidate = check_candidate(recipe, base_name, dev.type)
    spec = pick_spec(suite, model, base_name)
    options = recipe_options(suite, recipe)
    candidate = get_recipe(recipe, options)
    console = Console() if Console().is_terminal else Console(width=150)
    if verify:
        from mpbench.cli.advise_verify import prepare_out

        out = prepare_out(out, suite, spec.model_label, recipe)
    elif out is not None:
        check_writable_dir(out)
    source = make_source(suite.data, suite_file.parent)
    if suite.train.threads:  # as the runs do (train/runner.py)
        torch.set_num_threads(suite.train.threads)
    facts = spec.model_facts(source.vocab_size)
    layers = linear_layers(build_entry(spec.model, facts, spec.seed))
    if not layers:
        raise UserError(f"--model {spec.model_label}: the model has no linear layers (nn.Linear "
                        "or Conv1D): the advisor times linear layers' GEMMs; choose a model "
                        "with linear layers")
    names = [layer.name for layer in layers]
    tokens = spec.train.batch_size * spec.train.seq_len
    t0 = time.perf_counter()
    base_recipe = get_recipe(base_name, recipe_options(suite, base_name))
    option, value = logic.nothing_converted(candidate.family, names)
    rest_recipe = get_recipe(recipe, {**options, option: value})
    first = logic.first_steps(steps)
    console.print(f"timing {first} whole steps each of {base_name}, {recipe} with every linear "
                  f"kept out and {recipe} on every linear ...", highlight=False)
    probe = StepProbe(spec, [base_recipe, rest_recipe, candidate], source, dev, max_steps=steps)
    base_times, rest_times, all_times = probe.run(first)
    noise = logic.step_noise(rest_times, all_times)
    rest_step_ms, all_step_ms = median_ms(rest_times), median_ms(all_times)

    def decided() -> logic.Advice:  # on the steps taken so far
        return logic.advise(timings, median_ms(base_times), rest_step_ms,
                            all_step_ms=all_step_ms, step_noise_ms=noise)

    n_shapes = len({layer.shape for layer in layers})
    console.print(f"timing {n_shapes} distinct layer shapes ({len(layers)} layers) in rounds "
                  "until the decision has the precision it needs ...", highlight=False)
    timings, rounds = time_layers(
        layers, tokens, DeviceTimer(base_recipe, candidate, dev),
        enough=lambda t: logic.precise_enough(t, noise, rest_step_ms, all_step_ms))
    found = decided()
    if logic.needs_more_steps(found.decision, first, steps):
        console.print(f"a kept-out set is near its uncertainty: timing {steps - first} more "
                      "steps each ...", highlight=False)
        base_times, rest_times, all_times = probe.run(steps - first)
        noise = logic.step_noise(rest_times, all_times)
        rest_step_ms, all_step_ms = median_ms(rest_times), median_ms(all_times)
        found = decided()
    advisor_s = time.perf_counter() - t0
    d = found.decision
    opt, filt, yaml = logic.filter_for(recipe, candidate.family, names, found.advised, options)
    env = environment_card()
    rec = AdviceRecord(
        model=spec.model_label, model_kind=spec.model.kind, recipe=recipe, baseline=base_name,
        device=str(dev), device_name=device_name(dev, env),
        cpu_isa_flags=list(env.cpu.isa_flags),
        batch_size=spec.train.batch_size, seq_len=spec.train.seq_len, tokens_per_step=tokens,
        layers=layer_rows(found), baseline_step_ms=found.baseline_step_ms,
        rest_step_ms=found.rest_step_ms, all_step_ms=all_step_ms,
        predicted_all=found.predicted_all,
        predicted_advised=found.predicted_advised, advised=found.advised, filter_option=opt,
        filter_value=filt, filter_yaml=yaml, tolerance=logic.PAY_TOLERANCE, advisor_s=advisor_s,
        step_noise_ms=finite(noise), kept_out_saving_ms=d.saving_ms if d.kept_out else None,
        uncertainty_ms=finite(d.uncertainty_ms), decision=d.text(len(layers)),
        layer_rounds=rounds, probe_steps=len(all_times), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    print_advice(console, rec)
    if out is not None:  # stored before any verification run: nothing is lost if it stops
        console.print(f"advice: {write_advice(out, rec).resolve()}", highlight=False)
    if verify:
        from mpbench.cli.advise_verify import run_verification

        assert out is not None
        run_verification(console, suite, suite_file, spec, rec, options, repeats, dev, env, out)


COMMANDS = [advise]
