"""Train one run and measure it. Failures become records, never exceptions."""

from __future__ import annotations

import math
import statistics
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

import torch
from torch import nn

from mpbench.bench.timing import time_probe
from mpbench.config.schema import TrainConfig
from mpbench.data import TokenSource
from mpbench.errors import ModelEntryError
from mpbench.models.entry import ModelFacts, build_entry, check_fits
from mpbench.models.flops import flops_for
from mpbench.models.reference import count_parameters
from mpbench.plan.spec import RunSpec
from mpbench.precision import get_recipe
from mpbench.precision.base import Recipe
from mpbench.profilers.base import PROFILERS, Profiler, RunContext, StepInfo
from mpbench.profilers.peaks import PeakMemory, is_oom, release_memory
from mpbench.results.env_card import EnvCard
from mpbench.results.payloads import ProfileResult, Skipped
from mpbench.results.schema import CompileInfo, DriftProbe, RunRecord
from mpbench.train.measure import Measurement, ProgressFn, measure, synchronize
from mpbench.train.optim import Stepper, make_stepper, step_forward
from mpbench.train.record import RunOutcome, build_record


class ParallelHooks(Protocol):
    """What the training loop calls for a distributed run, as an interface the loop owns:
    distributed/session.py's ParallelSession implements it; train never imports distributed
    (the layer above it), so one process trains without the torchrun code loaded."""

    def check(self, recipe: Recipe) -> str | None:
        """Why this recipe cannot run with this strategy (the run is skipped), or None."""

    def wrap(self, model: nn.Module, recipe: Recipe) -> nn.Module:
        """The model under DDP or FSDP2, before the optimizer sees its parameters."""

    def wrap_stepper(self, stepper: Stepper) -> Stepper:
        """A stepper that averages the loss over ranks and counts communication per step."""

    def profiler(self) -> Profiler:
        """The probe that stores profiler_results["parallel"]."""


def make_profilers(spec: RunSpec, device: torch.device,
                   ) -> tuple[list[Profiler], dict[str, ProfileResult | Skipped]]:
    active: list[Profiler] = []
    skipped: dict[str, ProfileResult | Skipped] = {}
    for p in spec.suite.profilers:
        cls = PROFILERS[p.name]
        prof = cls(cls.Options(**p.options))
        reason = prof.check(device)
        if reason is None:
            active.append(prof)
        else:
            skipped[p.name] = Skipped(skipped=reason)
    return active, skipped


@torch.no_grad()
def eval_loss(model: Callable[..., torch.Tensor], source: TokenSource, spec: RunSpec,
              recipe: Recipe, device: torch.device) -> float | None:
    cfg = spec.train
    if cfg.eval_batches == 0:
        return None
    gen = torch.Generator().manual_seed(10_000 + spec.seed)  # same batches for every recipe
    losses = []
    for _ in range(cfg.eval_batches):
        x, y = source.batch("val", cfg.batch_size, cfg.seq_len, gen)
        with recipe.autocast(device):
            losses.append(float(model(x.to(device), y.to(device))))
    return sum(losses) / len(losses)


def compile_info(requested: bool, used: bool, refusal: str | None,
                 m: Measurement) -> CompileInfo:
    """Compile time apart from the steps: the first step less the median measured step."""
    cost = None
    if used and m.first_step_s is not None and m.step_times_ms:
        cost = max(0.0, m.first_step_s - statistics.median(m.step_times_ms) / 1e3)
    return CompileInfo(requested=requested, used=used, reason=refusal, compile_s=cost)


def run_skip_reason(recipe: Recipe, cfg: TrainConfig, device: torch.device,
                parallel: ParallelHooks | None = None) -> str | None:
    """Why a run of `recipe` is skipped on `device` (before it trains), or None."""
    return (recipe.check(device) or recipe.check_train(cfg)
            or (parallel.check(recipe) if parallel else None))


def train_run(spec: RunSpec, source: TokenSource, device: torch.device,
              env: EnvCard, progress: ProgressFn | None = None,
              parallel: ParallelHooks | None = None,
              extra: dict[str, Any] | None = None) -> RunRecord:
    """Train and measure one run. `extra` reaches profilers as RunContext.extra
    (results_dir for traces, bench_results for measured GEMM ceilings, trace)."""
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    recipe = get_recipe(spec.precision.name, spec.precision.options)
    cfg = spec.train
    out = RunOutcome()
    try:  # checked at load; here for runs started without the loader (API, tests)
        out.facts = spec.model_facts(source.vocab_size)
        unfit = check_fits(out.facts, cfg.seq_len, source.vocab_size)
    except ModelEntryError as exc:
        unfit = exc
    facts = out.facts
    out.flops = flops_for(spec.model, facts, cfg.seq_len) if facts is not None else None
    reason = run_skip_reason(recipe, cfg, device, parallel)
    if unfit is not None:
        out.status, out.reason = "failed", f"model {spec.model_label}: {unfit}"
    elif reason is not None:
        out.status, out.reason = "skipped", reason
    else:
        assert facts is not None
        release_memory(device)
        try:
            with recipe.activated():
                m, out.n_params, out.profiles = _train(spec, facts, recipe, source, device,
                                                       progress, parallel, extra)
            out.measurement = m
            if m.diverged_step is not None:
                out.status, out.diverged_step = "diverged", m.diverged_step
                out.last_good_loss, out.reason = m.last_good_loss, m.diverged_reason
        except Exception as exc:
            out.status = "oom" if is_oom(exc) else "failed"
            out.reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
            out.traceback = None if out.status == "oom" else traceback.format_exc(limit=8)
        finally:
            release_memory(device)
    return build_record(spec, device, env, out, started, t_start, source, recipe)


def probed_run(spec: RunSpec, source: TokenSource, device: torch.device, env: EnvCard,
               progress: ProgressFn | None, extra: dict[str, Any],
               parallel: ParallelHooks | None = None) -> RunRecord:
    """train_run between two timings of the machine-drift probe; the record carries both.
    The one run path of a single process and of each torchrun rank (`parallel`). A run that
    skips here trains nothing: it is recorded without probing the machine."""
    recipe = get_recipe(spec.precision.name, spec.precision.options)
    if run_skip_reason(recipe, spec.train, device, parallel) is not None:
        record = train_run(spec, source, device, env, progress, parallel=parallel, extra=extra)
        return record.model_copy(update={"repeat": spec.repeat})
    before = time_probe(device)
    record = train_run(spec, source, device, env, progress, parallel=parallel, extra=extra)
    probe = DriftProbe(before=before, after=time_probe(device), device=str(device))
    return record.model_copy(update={"probe": probe, "repeat": spec.repeat})


def _train(spec: RunSpec, facts: ModelFacts, recipe: Recipe, source: TokenSource,
           device: torch.device,
           progress: ProgressFn | None,
           parallel: ParallelHooks | None = None,
           extra: dict[str, Any] | None = None) -> tuple[Measurement, int, dict[str, Any]]:
    cfg = spec.train
    torch.manual_seed(spec.seed)
    peak = PeakMemory(device)  # the CPU baseline RSS is taken before the model exists
    base = build_entry(spec.model, facts, spec.seed)  # plain FP32; the recipe converts it
    n_params = count_parameters(base)
    base.activation_checkpointing = cfg.activation_checkpointing  # type: ignore[assignment]
    model = recipe.prepare(base, device)
    if parallel is not None:  # DDP / FSDP2, before the optimizer sees the parameters
        model = parallel.wrap(model, recipe)
    total = cfg.warmup_steps + cfg.steps
    forward, refusal = step_forward(model, recipe, cfg)
    compiled = forward is not model
    stepper = make_stepper(model, recipe, cfg, device, total, forward)
    optimizer, scaler = stepper.optimizer, stepper.scaler
    if parallel is not None:  # averages the loss over ranks, counts comm per step
        stepper = parallel.wrap_stepper(stepper)
    gen = torch.Generator().manual_seed(spec.seed)  # same batches for every recipe

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = source.batch("train", cfg.batch_size, cfg.seq_len, gen)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def train_step(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(stepper(x, y).loss)

    profilers, profiles = make_profilers(spec, device)
    if parallel is not None:
        profilers.append(parallel.profiler())
    ctx = RunContext(spec, device, recipe, model, optimizer, scaler, source, train_step, next_batch,
                     dict(extra or {}))
    for prof in profilers:
        prof.on_start(ctx)

    def on_step(info: StepInfo) -> None:
        for prof in profilers:
            prof.on_step_end(ctx, info)

    max_loss = cfg.max_loss or 3.0 * math.log(facts.vocab_size)
    def periodic_eval() -> float | None:
        model.eval()
        value = eval_loss(forward, source, spec, recipe, device)
        model.train()
        return value

    def on_hooks(edge: str) -> None:
        for prof in profilers:
            prof.on_hooks(ctx, edge)

    measurement = measure(stepper, next_batch, cfg, device, max_loss, on_step, peak, progress,
                          periodic_eval, on_hooks)
    measurement.compile = compile_info(cfg.compile, compiled, refusal, measurement)
    if measurement.diverged_step is None:
        for prof in sorted(profilers, key=lambda p: not p.first_after_window):
            prof.after_measure(ctx)
        model.eval()
        measurement.eval_loss = eval_loss(forward, source, spec, recipe, device)
        if measurement.eval_loss is not None:
            measurement.eval_curve.append((total, measurement.eval_loss))
            measurement.eval_times_s.append(measurement.train_time_s)
        model.train()
    for prof in profilers:
        profiles[prof.name] = prof.result(ctx)
    synchronize(device)
    return measurement, n_params, profiles
