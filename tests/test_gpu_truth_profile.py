"""Issue 14, profilers: GPU-side user annotations are not kernels, TE scaling state is
restored, energy per token leaves hook work out, NVML follows CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent

from mpbench.distributed.probe import kernel_overlap
from mpbench.profilers.base import weights_restored
from mpbench.profilers.kernel_rules import GPU_BUCKETS
from mpbench.profilers.nvml import NvmlProfiler, NvmlWindow, device_handle
from mpbench.profilers.profile_summary import summarize
from mpbench.profilers.tensor_cores import busy_time_us, gpu_kernels
from mpbench.results.env import nvml_card, nvml_handle

pytestmark = pytest.mark.unit


def gpu_event(i: int, name: str, start: float, end: float, annotation: bool = False) -> FunctionEvent:
    return FunctionEvent(id=i, name=name, thread=7, start_us=start, end_us=end,
                         device_type=DeviceType.CUDA, is_user_annotation=annotation)


def cpu_event(i: int, name: str, start: float, end: float) -> FunctionEvent:
    return FunctionEvent(id=i, name=name, thread=1, start_us=start, end_us=end)


def profiled_step() -> list[FunctionEvent]:
    """One FSDP2 step as torch >= 2.5 lists it: kernels plus GPU copies of the ranges."""
    return [
        cpu_event(0, "ProfilerStep#1", 0, 400),
        gpu_event(1, "ProfilerStep#1", 0, 300, annotation=True),
        gpu_event(2, "nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NTT", 0, 100),
        gpu_event(3, "vectorized_elementwise_kernel", 100, 150),
        gpu_event(4, "FSDP::all_gather", 150, 250, annotation=True),
        gpu_event(5, "ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgsStorage<4096ul>)", 150, 250),
        gpu_event(6, "Optimizer.step#AdamW.step", 250, 300, annotation=True),
        gpu_event(7, "multi_tensor_apply_kernel", 250, 300),
    ]


def test_user_annotations_are_not_counted_as_kernels() -> None:
    kernels = gpu_kernels(profiled_step())
    assert [t.name.split("(")[0] for t in kernels] == [
        "nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NTT", "vectorized_elementwise_kernel",
        "ncclDevKernel_AllGather_RING_LL", "multi_tensor_apply_kernel"]
    out = summarize(kernels, GPU_BUCKETS)
    assert out.total_time_us == pytest.approx(300.0)  # not 750 with the annotations
    assert out.tensor_core_share == pytest.approx(100 / 300)


def test_gpu_busy_is_the_union_of_kernel_spans() -> None:
    events = [*profiled_step(), gpu_event(8, "vectorized_elementwise_kernel", 50, 120)]
    assert busy_time_us(events) == pytest.approx(300.0)  # never above the wall time


def test_fsdp_annotations_do_not_hide_exposed_communication() -> None:
    out = kernel_overlap(profiled_step(), steps=1)
    assert out["comm_ms"] == pytest.approx(0.1)
    assert out["exposed_comm_ms"] == pytest.approx(0.1)  # nothing computes while it gathers
    assert out["compute_ms"] == pytest.approx(0.2)


class ScalingStateModule(torch.nn.Module):
    """Like a TE module: the FP8 metadata lives outside parameters and buffers, and
    get_extra_state serializes it into a fresh tensor on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.amax_history = torch.zeros(8)
        self.scale = torch.ones(1)

    def get_extra_state(self) -> torch.Tensor:
        return torch.cat([self.amax_history, self.scale]).clone()

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.amax_history.copy_(state[:8])
        self.scale.copy_(state[8:])


def test_weights_restored_puts_te_scaling_state_back() -> None:
    model = torch.nn.Sequential(ScalingStateModule(), ScalingStateModule())
    first = model[0]
    assert isinstance(first, ScalingStateModule)
    first.amax_history[0] = 3.0
    weight = first.linear.weight.detach().clone()
    with weights_restored(model):
        first.amax_history.fill_(1e4)  # what max_batch's huge batches do to the history
        first.scale.fill_(0.01)
        with torch.no_grad():
            first.linear.weight.add_(1.0)
    assert first.amax_history.tolist() == [3.0] + [0.0] * 7
    assert first.scale.item() == 1.0
    assert torch.equal(first.linear.weight, weight)


def test_extra_state_of_the_root_module_is_restored() -> None:
    model = ScalingStateModule()
    with weights_restored(model):
        model.scale.fill_(5.0)
    assert model.scale.item() == 1.0


class FakeNvml:
    """Four GPUs as NVML numbers them; CUDA_VISIBLE_DEVICES=3 shows torch only the last."""

    UUIDS: ClassVar[list[str]] = [f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd" for i in range(4)]

    class NVMLError(Exception):
        pass

    NVML_CLOCK_SM = 1

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:
        if uuid not in self.UUIDS:
            raise self.NVMLError(f"NVML_ERROR_NOT_FOUND {uuid}")
        return self.UUIDS.index(uuid)

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self.UUIDS[h]

    def nvmlDeviceGetName(self, h: int) -> str:
        return f"NVIDIA H100 80GB HBM3 #{h}"

    def nvmlSystemGetDriverVersion(self) -> str:
        return "570.86.15"

    def nvmlDeviceGetPowerManagementLimit(self, h: int) -> int:
        return 700_000

    def nvmlDeviceGetMaxClockInfo(self, h: int, clock: int) -> int:
        return 1980


class _Props:
    def __init__(self, uuid: str) -> None:
        self.uuid = uuid  # torch prints the bare 8-4-4-4-12 form


def test_environment_card_reads_the_runs_gpu_not_nvml_device_0(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: _Props(FakeNvml.UUIDS[3].removeprefix("GPU-")))
    card = nvml_card(0, nvml=FakeNvml())
    assert card["nvml_uuid"] == FakeNvml.UUIDS[3] and card["nvml_matched_by"] == "uuid"
    assert device_handle(FakeNvml(), torch.device("cuda", 0)) == 3


def test_without_a_uuid_match_cuda_visible_devices_is_parsed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_props(i: int) -> _Props:
        raise RuntimeError("no CUDA")

    monkeypatch.setattr(torch.cuda, "get_device_properties", no_props)
    monkeypatch.setattr(torch.cuda, "_get_nvml_device_index", lambda i: 2)
    handle, how = nvml_handle(FakeNvml(), 0)
    assert (handle, how) == (2, "CUDA_VISIBLE_DEVICES")


class EnergyNvml:
    """An energy counter the test moves by hand (mJ); reads do not advance it."""

    NVML_CLOCK_SM = 1

    def __init__(self) -> None:
        self.mj = 0

    def nvmlDeviceGetTotalEnergyConsumption(self, h: object) -> int:
        return self.mj

    def nvmlDeviceGetPowerUsage(self, h: object) -> int:
        return 300_000

    def nvmlDeviceGetClockInfo(self, h: object, kind: int) -> int:
        return 1980

    def nvmlDeviceGetMemoryInfo(self, h: object) -> SimpleNamespace:
        return SimpleNamespace(used=0)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: object) -> int:
        return 0


def test_energy_per_token_leaves_hook_work_out() -> None:
    """Eval and other profilers' hooks inside the window spend energy but train no tokens."""
    fake = EnergyNvml()
    prof = NvmlProfiler(nvml=fake)
    train = SimpleNamespace(warmup_steps=2, steps=2, batch_size=4, seq_len=8)
    ctx: Any = SimpleNamespace(spec=SimpleNamespace(train=train), device=torch.device("cuda", 0))
    prof.window = NvmlWindow(fake, "gpu0", 0.01, gpm=False)  # what on_start builds on a GPU

    def step(phase: str, i: int, train_j: int, before_j: int, after_j: int) -> None:
        fake.mj += train_j * 1000  # the training step itself
        prof.on_hooks(ctx, "start")
        fake.mj += before_j * 1000  # profilers that run before nvml's hook
        prof.on_step_end(ctx, SimpleNamespace(phase=phase, step=i))  # type: ignore[arg-type]
        fake.mj += after_j * 1000  # later profilers, periodic eval with its FP32 reference
        prof.on_hooks(ctx, "end")

    step("warmup", 0, 100, 5, 5)
    step("warmup", 1, 100, 5, 10)  # the window opens inside this step's hooks
    step("measure", 0, 100, 7, 50)
    step("measure", 1, 100, 20, 30)  # ... and closes inside this one's
    out = prof.found
    assert out["window_energy_j"] == pytest.approx(10 + 100 + 57 + 100 + 20)
    assert out["hook_energy_j"] == pytest.approx(10 + 57 + 20)
    assert out["energy_j"] == pytest.approx(200.0)  # the two measured steps' own energy
    assert out["joules_per_token"] == pytest.approx(200.0 / (2 * 4 * 8))
    assert 0 <= out["hook_s"] <= out["window_s"]
