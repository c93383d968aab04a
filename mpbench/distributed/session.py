"""What the training loop calls for a distributed run: check, wrap model, wrap step, probe.

One session per run; train_run(..., parallel=session) calls these hooks and nothing else.

The model is wrapped for data parallelism, and the step averages the loss. DDP: gradients are
averaged by our comm hook in the run's comm dtype (fp32, bf16, fp16). FSDP2: each transformer
block and the root are `fully_shard`ed with MixedPrecisionPolicy(param_dtype, reduce_dtype=comm
dtype).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mpbench.config.parallel import COMM_DTYPES, ParallelRun
from mpbench.distributed.comm import (
    CommCounter,
    HookState,
    cast_allreduce_hook,
    fsdp_counting_comms,
)
from mpbench.distributed.compat import dtensor_reduces_found_inf, fsdp2_unsupported
from mpbench.distributed.faults import FaultInjection
from mpbench.distributed.probe import ParallelProbe
from mpbench.precision.base import Recipe
from mpbench.profilers.base import Profiler
from mpbench.train.optim import Stepper, StepResult

# -- the model and the step, wrapped for data parallelism ------------------------------------

def wrap_ddp(model: nn.Module, run: ParallelRun, device: torch.device,
             counter: CommCounter) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel as DDP

    kwargs: dict[str, Any] = {}
    if run.bucket_cap_mb is not None:
        kwargs["bucket_cap_mb"] = run.bucket_cap_mb
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None, **kwargs)
    state = HookState(None, dist.get_world_size(), run.comm_dtype, counter)
    ddp.register_comm_hook(state, cast_allreduce_hook)
    return ddp


def wrap_fsdp2(model: nn.Module, run: ParallelRun, device: torch.device,
               counter: CommCounter) -> nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy(
        param_dtype=COMM_DTYPES[run.param_dtype] if run.param_dtype else None,
        reduce_dtype=run.comm_dtype,
    )
    kwargs: dict[str, Any] = {"mesh": mesh, "mp_policy": policy}
    if run.reshard_after_forward is not None:
        kwargs["reshard_after_forward"] = run.reshard_after_forward
    blocks = getattr(model, "blocks", None)
    sharded: list[Any] = []
    for block in blocks if isinstance(blocks, nn.ModuleList) else []:
        sharded.append(fully_shard(block, **kwargs))
    sharded.append(fully_shard(model, **kwargs))
    all_gather, reduce_scatter = fsdp_counting_comms(counter)
    for module in sharded:
        module.set_custom_all_gather(all_gather)
        module.set_custom_reduce_scatter(reduce_scatter)
    return model


class DistributedStepper(Stepper):
    """The usual step on this rank's rows, then the loss averaged over ranks.

    measure() checks the loss for divergence: every rank must see the same number, or one
    rank stops while the others wait in the next all-reduce.
    """

    def __init__(self, inner: Stepper, counter: CommCounter, measured: range,
                 fault: FaultInjection | None = None) -> None:
        super().__init__(inner.model, inner.optimizer, inner.scheduler, inner.scaler,
                         inner.autocast, inner.params, inner.grad_clip)
        self.counter = counter
        self.measured = measured
        self.calls = 0
        self.step_comm: list[list[Any]] = []
        """Collectives of each measured step (a list per step)."""
        self.fault = fault

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        if self.fault is not None:
            self.fault.maybe_fire(self.calls + 1)
        mark = self.counter.mark()
        result = super().__call__(x, y)
        if self.calls in self.measured:
            self.step_comm.append(self.counter.since(mark))
        self.calls += 1
        loss = result.loss.detach().float().clone()
        self.counter.record("all_reduce", loss.dtype, 1, "loss average (not gradient traffic)")
        dist.all_reduce(loss)
        loss /= dist.get_world_size()
        norm = result.grad_norm
        if norm is not None and hasattr(norm, "full_tensor"):  # FSDP2: a replicated DTensor
            norm = norm.full_tensor()
        return StepResult(loss, norm)


class ParallelSession:
    def __init__(self, run: ParallelRun, device: torch.device, world_size: int,
                 warmup_steps: int, steps: int, fault: FaultInjection | None = None,
                 skip_reason: str | None = None) -> None:
        self.run, self.device = run, device
        self.counter = CommCounter(world_size)
        self.measured = range(warmup_steps, warmup_steps + steps)
        self.fault = fault
        self.skip_reason = skip_reason
        self.stepper: DistributedStepper | None = None

    def check(self, recipe: Recipe) -> str | None:
        """Why this recipe cannot run with this strategy, or None."""
        if self.skip_reason:
            return self.skip_reason
        if self.run.strategy != "fsdp2":
            return None
        unsupported = fsdp2_unsupported()
        if unsupported:
            return unsupported
        if recipe.make_scaler(self.device) is not None and not dtensor_reduces_found_inf():
            return (f"{recipe.name} needs a loss scaler, and torch {torch.__version__}'s DTensor "
                    "does not combine GradScaler's found-inf across FSDP2 shards; use ddp, a "
                    "newer torch, or a recipe without loss scaling (bf16)")
        return None

    def wrap(self, model: nn.Module, recipe: Recipe) -> nn.Module:
        if self.run.strategy == "ddp":
            return wrap_ddp(model, self.run, self.device, self.counter)
        return wrap_fsdp2(model, self.run, self.device, self.counter)

    def wrap_stepper(self, stepper: Stepper) -> Stepper:
        self.stepper = DistributedStepper(stepper, self.counter, self.measured, self.fault)
        return self.stepper

    def profiler(self) -> Profiler:
        return ParallelProbe(self.run, self.counter, self.stepper)

    @property
    def step(self) -> int | None:
        """The step this rank is in, counted from 1 as in loss curves (None before training)."""
        return self.stepper.calls + 1 if self.stepper is not None else None

    def in_collective(self) -> str | None:
        """The last collective this rank issued (where it stood when a peer went away)."""
        return self.counter.last.describe() if self.counter.last else None
