"""Issue 14, distributed: the collectives on torch without the new names (2.9-2.11), the
torch floor, FSDP2 with fp16 where DTensor reduces GradScaler's found-inf."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from mpbench.config.parallel import ParallelRun
from mpbench.distributed import compat
from mpbench.distributed.comm import (
    Collective,
    CommCounter,
    fsdp_counting_comms,
    make_buffers,
    replay,
)
from mpbench.distributed.comm_bench import issue
from mpbench.distributed.session import ParallelSession
from mpbench.precision import get_recipe

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def old_torch_dist(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """torch.distributed as torch 2.9-2.11 has it: only the old single-tensor names."""
    calls: list[tuple[str, Any]] = []
    for new in ("all_gather_single", "reduce_scatter_single"):
        if hasattr(dist, new):
            monkeypatch.delattr(dist, new)

    def all_gather_into_tensor(out: torch.Tensor, inp: torch.Tensor, group: Any = None,
                               async_op: bool = False) -> None:
        calls.append(("all_gather_into_tensor", out.numel()))
        out.copy_(inp.repeat(out.numel() // inp.numel()))

    def reduce_scatter_tensor(out: torch.Tensor, inp: torch.Tensor, op: Any = None,
                              group: Any = None, async_op: bool = False) -> None:
        calls.append(("reduce_scatter_tensor", inp.numel()))
        out.copy_(inp[: out.numel()] * 2)

    monkeypatch.setattr(dist, "all_gather_into_tensor", all_gather_into_tensor)
    monkeypatch.setattr(dist, "reduce_scatter_tensor", reduce_scatter_tensor)
    monkeypatch.setattr(dist, "all_reduce", lambda t, **kw: calls.append(("all_reduce", 0)))
    return calls


def test_replay_and_bench_use_the_old_names_when_the_new_are_missing(
        old_torch_dist: list[tuple[str, Any]]) -> None:
    calls = [Collective("all_gather", torch.float32, 8, "p"),
             Collective("reduce_scatter", torch.bfloat16, 8, "g")]
    replay(make_buffers(calls, 2, torch.device("cpu")))
    part, full = torch.ones(4), torch.zeros(8)
    issue("all_gather", part, full)
    issue("reduce_scatter", full, part)
    assert [c[0] for c in old_torch_dist] == ["all_gather_into_tensor", "reduce_scatter_tensor",
                                             "all_gather_into_tensor", "reduce_scatter_tensor"]
    assert torch.equal(full, torch.ones(8))


def test_fsdp2_counting_comms_work_without_the_new_names(
        old_torch_dist: list[tuple[str, Any]]) -> None:
    counter = CommCounter(2)
    gather, scatter = fsdp_counting_comms(counter)
    out, inp = torch.zeros(6), torch.full((3,), 2.0)
    gather(out, inp, group=None)
    scatter(torch.zeros(3), torch.ones(6), group=None, op=dist.ReduceOp.SUM)
    assert [c.op for c in counter.calls] == ["all_gather", "reduce_scatter"]
    assert [c[0] for c in old_torch_dist] == ["all_gather_into_tensor", "reduce_scatter_tensor"]
    assert torch.equal(out, torch.full((6,), 2.0))


def test_the_new_names_are_preferred_where_they_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(dist, "all_gather_single", lambda *a, **k: seen.append("new"),
                        raising=False)
    compat.all_gather_tensor(torch.zeros(2), torch.zeros(1))
    assert seen == ["new"]


def test_torch_floor_is_the_first_with_public_fully_shard() -> None:
    floors = re.findall(r'"(torch[<>=!~].*?)"', (ROOT / "pyproject.toml").read_text())
    assert floors == ["torch>=2.6"]
    # the names the floor has and mpbench needs besides the ones looked up in compat.py
    from torch.distributed.device_mesh import init_device_mesh  # noqa: F401
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # noqa: F401
    assert hasattr(dist, "all_gather_into_tensor") and hasattr(dist, "reduce_scatter_tensor")


def test_fsdp2_without_custom_comm_hooks_is_skipped_with_its_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.distributed.fsdp import FSDPModule

    monkeypatch.delattr(FSDPModule, "set_custom_all_gather")
    reason = compat.fsdp2_unsupported()
    assert reason is not None and "set_custom_all_gather" in reason
    session = ParallelSession(ParallelRun(strategy="fsdp2", grad_comm_dtype="fp32"),
                              torch.device("cpu"), 2, 1, 2)
    assert session.check(get_recipe("bf16")) == reason


def _fsdp2(dtype: str = "fp32") -> ParallelSession:
    return ParallelSession(ParallelRun(strategy="fsdp2", grad_comm_dtype=dtype),
                           torch.device("cpu"), 2, 1, 2)


def test_fp16_with_fsdp2_runs_where_dtensor_reduces_found_inf() -> None:
    assert compat.dtensor_reduces_found_inf()  # torch >= 2.5 (this venv: 2.13)
    assert _fsdp2().check(get_recipe("fp16")) is None


def test_fp16_with_fsdp2_is_refused_where_dtensor_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.distributed.tensor import DTensor

    handlers = dict(DTensor._op_dispatcher._custom_op_handlers)
    handlers.pop(torch.ops.aten._amp_foreach_non_finite_check_and_unscale_.default)
    monkeypatch.setattr(DTensor._op_dispatcher, "_custom_op_handlers", handlers)
    reason = _fsdp2().check(get_recipe("fp16"))
    assert reason is not None and "found-inf" in reason
    assert _fsdp2().check(get_recipe("bf16")) is None
