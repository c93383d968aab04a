"""The parts of torch.distributed whose names or abilities differ between torch releases.

pyproject's floor is torch 2.6, the first release with the public
`torch.distributed.fsdp.fully_shard`. Everything newer is looked up here, by name, so a
machine with an older torch runs (or says why it cannot) instead of failing mid-run.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

# torch 2.13 names the single-tensor collectives all_gather_single / reduce_scatter_single
# and marks all_gather_into_tensor deprecated (checked in its distributed_c10d.py); the
# torch most GPU machines have (2.9-2.11) has only the old names. Same signatures.


def all_gather_tensor(output: torch.Tensor, input: torch.Tensor, group: Any = None,
                      async_op: bool = False) -> Any:
    fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    return fn(output, input, group=group, async_op=async_op)


def reduce_scatter_tensor(output: torch.Tensor, input: torch.Tensor, op: Any = None,
                          group: Any = None, async_op: bool = False) -> Any:
    fn = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    return fn(output, input, op=dist.ReduceOp.SUM if op is None else op, group=group,
              async_op=async_op)


def fsdp2_unsupported() -> str | None:
    """Why this torch cannot run mpbench's FSDP2 (None when it can).

    mpbench counts FSDP2's bytes through FSDPModule.set_custom_all_gather /
    set_custom_reduce_scatter (added by pytorch PR #155189, mid-2025).
    """
    try:
        from torch.distributed.fsdp import FSDPModule, fully_shard  # noqa: F401
    except ImportError:
        return (f"torch {torch.__version__} has no torch.distributed.fsdp.fully_shard "
                "(FSDP2 needs torch >= 2.6)")
    missing = [name for name in ("set_custom_all_gather", "set_custom_reduce_scatter")
               if not hasattr(FSDPModule, name)]
    if missing:
        return (f"torch {torch.__version__}'s FSDPModule has no {', '.join(missing)}, which "
                "mpbench counts FSDP2's collective bytes through; upgrade torch or use ddp")
    return None


def dtensor_reduces_found_inf() -> bool:
    """True when DTensor max-reduces GradScaler's found_inf over the shards.

    Checked in torch 2.13's distributed/tensor/_dispatch.py: OpDispatcher maps
    aten._amp_foreach_non_finite_check_and_unscale_ to found_inf_reduce_handler, which
    all-reduces found_inf with Partial("max") over the gradients' mesh. Without it, one
    shard's overflow skips the step on that rank only and the ranks' weights drift apart.
    """
    try:
        from torch.distributed.tensor import DTensor

        handlers = DTensor._op_dispatcher._custom_op_handlers
    except (ImportError, AttributeError):
        return False
    return torch.ops.aten._amp_foreach_non_finite_check_and_unscale_.default in handlers
