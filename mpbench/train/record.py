"""The one record builder: every way a run ends (trained, skipped, failed, OOM, diverged, or a
worker process that died before writing) becomes a RunRecord here, with the same identity,
device and settings fields."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch

from mpbench.data import TokenSource
from mpbench.mfu import achieved_tflops, mfu_figures
from mpbench.models.entry import ModelFacts
from mpbench.models.flops import Flops
from mpbench.plan.spec import RunSpec
from mpbench.precision import get_recipe
from mpbench.precision.base import Recipe
from mpbench.results.env_card import EnvCard
from mpbench.results.payloads import ProfileResult, Skipped
from mpbench.results.schema import RunRecord, Status
from mpbench.train.measure import Measurement


@dataclass
class RunOutcome:
    """How a run ended and what it measured; the fields a record is built from."""

    status: Status = "ok"
    reason: str | None = None
    diverged_step: int | None = None
    last_good_loss: float | None = None
    traceback: str | None = None
    facts: ModelFacts | None = None
    flops: Flops | None = None
    n_params: int | None = None
    measurement: Measurement | None = None
    profiles: dict[str, ProfileResult | Skipped] = field(default_factory=dict)


def device_name(device: torch.device, env: EnvCard) -> str:
    """The run's device as the gate's platform check matches it: the GPU's name for a CUDA
    run (the card's, which is torch.cuda.get_device_name as mfu.py's peak table keys it;
    asked of torch only where the card holds another GPU or none), else the CPU model."""
    gpu = env.gpu
    if device.type != "cuda" or (gpu is not None and device.index in (None, gpu.torch_index)):
        return env.device_name(device.type)
    return torch.cuda.get_device_name(device)


def _mfu_fields(flops_tok: float | None, tokens_per_s: float | None, recipe: Recipe,
                device: torch.device, env: EnvCard) -> dict[str, Any]:
    """The record's spec-peak MFU fields, computed by mpbench.mfu (the one place)."""
    achieved = achieved_tflops(flops_tok, tokens_per_s)
    if achieved is None:
        return {}
    name = device_name(device, env) if device.type == "cuda" else None
    f = mfu_figures(achieved, recipe.gemm_key(), device.type, name,
                    numerics_only=recipe.numerics_only)
    return {"achieved_tflops": achieved, "peak_tflops": f.spec_peak_tflops,
            "peak_source": f.spec_source or (f.spec_note if device.type == "cuda" else None),
            "mfu": f.mfu_vs_spec}


def _model_fields(facts: ModelFacts | None) -> dict[str, Any]:
    if facts is None:
        return {"model_dims": {}}
    return {"model_dims": facts.dims, "model_kind": facts.kind,
            "architecture": facts.architecture,
            "attn_implementation": facts.attn_implementation, "model_source": facts.source}


def _measured_fields(m: Measurement | None) -> dict[str, Any]:
    if m is None:
        return {}
    losses = m.loss_curve
    return {
        "step_times_ms": m.step_times_ms, "step_stats": m.stats,
        "window_s": m.window_s, "hook_time_s": m.hook_time_s, "first_step_s": m.first_step_s,
        "compile": m.compile, "memory": m.memory, "loss_curve": losses,
        "eval_curve": m.eval_curve, "eval_times_s": m.eval_times_s,
        "final_train_loss": losses[-1][1] if losses else None, "eval_loss": m.eval_loss,
    }


def build_record(spec: RunSpec, device: torch.device, env: EnvCard, out: RunOutcome,
                 started: datetime, t_start: float, source: TokenSource | None = None,
                 recipe: Recipe | None = None) -> RunRecord:
    """The record of `spec` as it ended (`out`); `t_start` is time.perf_counter() at its start.
    `source` is None where the run never read its data (a worker that died)."""
    recipe = recipe or get_recipe(spec.precision.name, spec.precision.options)
    cfg = spec.train
    m = out.measurement
    tokens_per_s = m.tokens_per_s if m is not None and out.status == "ok" else None
    flops = out.flops
    return RunRecord(
        run_id=spec.run_id, config_key=spec.config_key, suite=spec.suite.name,
        suite_description=spec.suite.description, profile=spec.suite.profile,
        model=spec.model_label, **_model_fields(out.facts), n_params=out.n_params,
        precision=spec.precision.name, recipe=recipe.describe(), seed=spec.seed,
        repeat=spec.repeat, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
        train=cfg.model_dump(), data=source.describe() if source else {},
        device=str(device), device_name=device_name(device, env),
        status=out.status, reason=out.reason, diverged_step=out.diverged_step,
        last_good_loss=out.last_good_loss, tokens_per_step=cfg.batch_size * cfg.seq_len,
        tokens_per_s=tokens_per_s, **_measured_fields(m),
        entropy_floor=source.entropy_floor if source else None,
        flops_per_token=flops.per_token if flops else None,
        flops_per_token_counter=flops.counter if flops else None,
        flops_note=flops.note if flops else None, flops_method=flops.method if flops else None,
        **_mfu_fields(flops.per_token if flops else None, tokens_per_s, recipe, device, env),
        profiler_results=out.profiles, env=env,
        suite_config=spec.suite.model_dump(mode="json"),
        started_at=started.isoformat(timespec="milliseconds"),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        duration_s=time.perf_counter() - t_start, traceback=out.traceback,
    )
