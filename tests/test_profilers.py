"""Profilers: saved-activation counting, max-batch search, NVML logic (against a fake NVML),
a CPU end-to-end run with profilers, and GPU runs (marked gpu)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest
import torch
import yaml
from fixture_records import stored_results
from torch import nn

from mpbench.data import make_source
from mpbench.plan.spec import expand
from mpbench.profilers.max_batch import (
    MaxBatchOptions,
    MaxBatchProfiler,
    oom_safe,
    search_max_batch,
)
from mpbench.profilers.memory import SavedTensorCounter
from mpbench.profilers.nvml import NvmlProfiler, NvmlWindow, throttle_names
from mpbench.profilers.peaks import unique_bytes
from mpbench.results.env import environment_card
from mpbench.results.schema import RunRecord
from mpbench.train.load import load_suite
from mpbench.train.loop import train_run

# -- saved activations: measured vs counted by hand ----------------------------------------

B, T, IN, OUT = 4, 8, 16, 32


def linear_gelu() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN, OUT), nn.GELU(approximate="tanh"))


@pytest.mark.unit
def test_saved_activations_of_linear_gelu_match_a_hand_count() -> None:
    # addmm saves its input x (B*T*IN floats) for the weight gradient; the weight is a
    # parameter (excluded); GELU saves its input, the linear output (B*T*OUT floats).
    model, x = linear_gelu(), torch.randn(B, T, IN)
    counter = SavedTensorCounter(model)
    with counter.counting():
        model(x).sum().backward()
    assert counter.activation_bytes == B * T * IN * 4 + B * T * OUT * 4
    assert counter.weight_copy_bytes == 0


@pytest.mark.unit
def test_autocast_weight_copies_are_counted_apart_from_activations() -> None:
    # Under bf16 autocast with x requiring grad: x's bf16 copy and the bf16 linear output are
    # activations (2 bytes each); the bf16 copy of the weight (saved for dgrad) is a weight copy.
    model, x = linear_gelu(), torch.randn(B, T, IN, requires_grad=True)
    counter = SavedTensorCounter(model)
    with counter.counting(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x).float().sum().backward()
    assert counter.activation_bytes == B * T * IN * 2 + B * T * OUT * 2
    assert counter.weight_copy_bytes == IN * OUT * 2


@pytest.mark.unit
def test_saved_storages_are_counted_once() -> None:
    model, x = linear_gelu(), torch.randn(B, T, IN, requires_grad=True)
    counter = SavedTensorCounter(model)
    with counter.counting():
        (model(x) + model(x)).sum().backward()  # x saved twice, two distinct GELU inputs
    assert counter.activation_bytes == B * T * IN * 4 + 2 * B * T * OUT * 4


@pytest.mark.unit
def test_unique_bytes_counts_tied_weights_once() -> None:
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    assert unique_bytes([emb.weight, head.weight, emb.weight.t()]) == 10 * 4 * 4


# -- max batch search -------------------------------------------------------------------------


@pytest.mark.unit
def test_search_doubles_then_bisects_to_the_fake_limit() -> None:
    search = search_max_batch(lambda b: b <= 37, start=1, cap=4096)
    assert search.max_batch_size == 37 and search.first_failure == 38
    assert search.limit == "memory"
    assert [b for b, _ in search.tried] == [1, 2, 4, 8, 16, 32, 64, 48, 40, 36, 38, 37]
    assert all(ok == (b <= 37) for b, ok in search.tried)


@pytest.mark.unit
@pytest.mark.parametrize("limit", [1, 2, 3, 100, 127, 128, 129, 1000])
def test_search_finds_any_limit_with_few_trials(limit: int) -> None:
    search = search_max_batch(lambda b: b <= limit, start=8, cap=4096)
    assert search.max_batch_size == limit
    assert len(search.tried) <= 2 * math.ceil(math.log2(limit + 8)) + 2
    assert len({b for b, _ in search.tried}) == len(search.tried)  # no size tried twice


@pytest.mark.unit
def test_search_stops_at_the_cap_and_reports_nothing_fits() -> None:
    capped = search_max_batch(lambda b: True, start=3, cap=20)
    assert (capped.max_batch_size, capped.limit, capped.first_failure) == (20, "cap", None)
    none = search_max_batch(lambda b: False, start=4)
    assert none.max_batch_size == 0 and none.limit == "memory"


@pytest.mark.unit
def test_search_stops_when_out_of_time() -> None:
    calls = iter(range(100))
    search = search_max_batch(lambda b: True, start=1, cap=1 << 20, out_of_time=lambda: next(calls) >= 3)
    assert search.limit == "time" and search.max_batch_size == 8


@pytest.mark.unit
def test_oom_safe_turns_out_of_memory_into_false_and_cleans_up() -> None:
    cleaned: list[int] = []

    def step(b: int) -> None:
        if b > 5:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    fits = oom_safe(step, lambda: cleaned.append(1))
    assert fits(5) is True and cleaned == []
    assert fits(6) is False and cleaned == [1]
    assert search_max_batch(fits, start=1).max_batch_size == 5

    def broken(b: int) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):  # a real bug is not an OOM
        oom_safe(broken, lambda: None)(1)


@pytest.mark.unit
def test_max_batch_on_cpu_needs_a_budget() -> None:
    reason = MaxBatchProfiler().check(torch.device("cpu"))
    assert reason is not None and "memory_budget_mb" in reason
    assert MaxBatchProfiler(MaxBatchOptions(memory_budget_mb=64)).check(torch.device("cpu")) is None


# -- NVML logic against a fake NVML ------------------------------------------------------------


class FakeNvml:
    """Power 250 W, SM clock 1980 MHz, an energy counter that advances 5 J per read."""

    NVML_CLOCK_SM = 1
    c_nvmlGpmMetricsGet_t = pynvml.c_nvmlGpmMetricsGet_t
    NVML_GPM_METRICS_GET_VERSION = pynvml.NVML_GPM_METRICS_GET_VERSION

    def __init__(self, gpm: bool) -> None:
        self.energy_mj = 1_000_000
        self.gpm = gpm
        self.inits = 0

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.inits -= 1

    def nvmlDeviceGetHandleByIndex(self, i: int) -> str:
        return f"gpu{i}"

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        return 250_000

    def nvmlDeviceGetClockInfo(self, h: Any, kind: int) -> int:
        assert kind == self.NVML_CLOCK_SM
        return 1980

    def nvmlDeviceGetMemoryInfo(self, h: Any) -> Any:
        return SimpleNamespace(used=3 * 2**30)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Any) -> int:
        return 0x4 | 0x20  # sw power cap, sw thermal slowdown

    def nvmlDeviceGetTotalEnergyConsumption(self, h: Any) -> int:
        self.energy_mj += 5_000
        return self.energy_mj

    def nvmlGpmQueryDeviceSupport(self, h: Any) -> Any:
        return SimpleNamespace(isSupportedDevice=int(self.gpm))

    def nvmlGpmSampleAlloc(self) -> Any:
        return pynvml.c_nvmlGpmSample_t()

    def nvmlGpmSampleGet(self, h: Any, sample: Any) -> Any:
        return sample

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        pass

    def nvmlGpmMetricsGet(self, request: Any) -> Any:
        for i in range(request.numMetrics):
            request.metrics[i].value = 10.0 * request.metrics[i].metricId
            request.metrics[i].nvmlReturn = 0
        return request


@pytest.mark.unit
def test_nvml_window_energy_power_throttling_and_gpm() -> None:
    window = NvmlWindow(FakeNvml(gpm=True), "gpu0", interval_s=0.01, gpm=True)
    window.open()
    torch.randn(256, 256) @ torch.randn(256, 256)  # something to sample over
    out = window.close(tokens=1000)
    assert out["energy_j"] == pytest.approx(5.0)  # one counter step of 5000 mJ
    assert out["joules_per_token"] == pytest.approx(0.005)
    assert out["power_w_mean"] == pytest.approx(250.0) and out["power_w_max"] == pytest.approx(250.0)
    assert out["sm_clock_mhz_mean"] == pytest.approx(1980.0)
    assert out["throttle_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]
    assert out["samples"] >= 1 and out["memory_used_bytes_max"] == 3 * 2**30
    assert out["gpm"] == {"sm_util": 20.0, "any_tensor_util": 50.0, "hmma_tensor_util": 70.0,
                          "dram_bw_util": 100.0, "fp32_util": 120.0}
    assert 0 <= out["overhead_fraction"] < 1


@pytest.mark.unit
def test_nvml_without_gpm_says_so() -> None:
    window = NvmlWindow(FakeNvml(gpm=False), "gpu0", interval_s=0.01, gpm=True)
    window.open()
    out = window.close(tokens=10)
    assert "gpm" not in out and "not supported here" in out["gpm_unsupported"]


@pytest.mark.unit
def test_nvml_window_spans_exactly_the_measured_steps() -> None:
    fake = FakeNvml(gpm=False)
    prof = NvmlProfiler(nvml=fake)
    train = SimpleNamespace(warmup_steps=2, steps=3, batch_size=4, seq_len=8)
    ctx: Any = SimpleNamespace(spec=SimpleNamespace(train=train), device=torch.device("cuda", 0))
    prof.window = NvmlWindow(fake, "gpu0", 0.01, gpm=False)  # what on_start builds on a GPU
    for phase, n in (("warmup", 2), ("measure", 3)):
        for i in range(n):
            prof.on_step_end(ctx, SimpleNamespace(phase=phase, step=i))  # type: ignore[arg-type]
    out = prof.found
    assert out["steps"] == 3 and out["tokens"] == 3 * 4 * 8
    assert out["joules_per_token"] == pytest.approx(5.0 / 96)


@pytest.mark.unit
def test_nvml_check_and_throttle_bits() -> None:
    assert "CUDA" in (NvmlProfiler().check(torch.device("cpu")) or "")
    assert throttle_names(0) == [] and throttle_names(0x1 | 0x40) == ["gpu_idle", "hw_thermal_slowdown"]


# -- end to end on a CPU ------------------------------------------------------------------------


def tiny_suite(tmp_path: Path, profilers: list[Any], precision: str = "fp32") -> Any:
    raw = {
        "name": "prof-e2e", "models": ["gpt-tiny"], "precisions": [precision],
        "train": {"batch_size": 4, "seq_len": 16, "steps": 3, "warmup_steps": 1, "eval_batches": 1},
        "data": {"source": "synthetic", "vocab_size": 64}, "profilers": profilers,
    }
    path = tmp_path / f"suite-{len(profilers)}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_suite(path, "cpu")


def run_once(suite: Any, device: str = "cpu") -> RunRecord:
    (spec,) = expand(suite)
    return train_run(spec, make_source(suite.data), torch.device(device), environment_card())


@pytest.mark.integration
def test_cpu_run_with_profilers(tmp_path: Path) -> None:
    trace_dir = tmp_path / "traces"
    with_profs = run_once(tiny_suite(tmp_path, [
        {"name": "tensor_cores", "options": {"steps": 2, "trace": str(trace_dir)}}, "memory", "mfu",
        {"name": "max_batch", "options": {"memory_budget_mb": 8, "max_batch_size": 32, "start": 8}}]))
    plain = run_once(tiny_suite(tmp_path, []))
    assert with_profs.status == "ok", with_profs.reason
    # the profilers' extra steps come after the measured window and the weights are restored
    assert with_profs.loss_curve == plain.loss_curve
    assert with_profs.eval_loss == pytest.approx(plain.eval_loss, rel=1e-6)

    tc = stored_results(with_profs)["tensor_cores"]
    assert tc["device_kind"] == "cpu" and "no tensor cores" in tc["note"]
    assert tc["tensor_core_share"] is None
    assert sum(tc["buckets"].values()) == pytest.approx(1.0)
    assert tc["buckets"]["matmul"] > 0.0 and tc["buckets"]["optimizer"] > 0.0
    times = [t["time_us"] for t in tc["top_kernels"]]
    assert times == sorted(times, reverse=True)
    assert Path(tc["trace_path"]).is_file() and Path(tc["trace_path"]).stat().st_size > 1000
    # the waterfall's matching steps: 10 plain ones before the profile, then the profiled ones
    assert len(tc["plain_step_us"]) == 10 and all(t > 0 for t in tc["plain_step_us"])
    assert tc["wall_time_us"] > 0

    mem = stored_results(with_profs)["memory"]
    n = with_profs.n_params
    assert n is not None and mem["n_params"] == n  # the tied embedding counts once in both
    assert mem["params_bytes"] == 4 * n and mem["grads_bytes"] == 4 * n
    # AdamW: exp_avg + exp_avg_sq (8 bytes/param) plus one fp32 'step' scalar per tensor
    steps_bytes = mem["optimizer_bytes"] - 8 * n
    assert steps_bytes % 4 == 0 and 0 < steps_bytes <= 4 * 64
    assert mem["model_state_bytes_per_param"] == pytest.approx(16.0, abs=0.05)
    assert mem["activations_bytes"] > 0 and mem["weight_copies_bytes"] == 0
    assert set(mem["phase_peaks"]) >= {"setup", "forward", "backward", "optimizer"}
    assert mem["measured_peak_bytes"] == max(v for k, v in mem["phase_peaks"].items() if k != "setup")
    assert mem["other_bytes"] == mem["measured_peak_bytes"] - mem["resident_at_peak_bytes"]
    assert mem["matches"] == (abs(mem["other_bytes"]) <= mem["tolerance"] * mem["measured_peak_bytes"])

    mfu = stored_results(with_profs)["mfu"]
    assert mfu["flops_per_token"] == with_profs.flops_per_token
    assert 1e-4 < mfu["ceiling_tflops"] < 50  # a CPU core does GFLOP/s to a few TFLOP/s
    ratio = mfu["achieved_tflops"] / mfu["ceiling_tflops"]
    if ratio <= 1.0:
        assert mfu["mfu_vs_ceiling"] == pytest.approx(ratio)
    else:  # the quick GEMM was no ceiling for this model's shapes: no MFU is claimed
        assert mfu["mfu_vs_ceiling"] is None
        assert mfu["ceiling_note"].startswith("no valid ceiling: training reached")
    # the ceiling is the better of the square GEMM and the model's own linears as trained
    assert mfu["ceiling_tflops"] == max(mfu["ceilings_tflops"].values())
    assert mfu["torch_threads"] == torch.get_num_threads()
    assert mfu["mfu_vs_spec"] is None and "warning" not in mfu  # formula and counter agree

    found = stored_results(with_profs)["max_batch"]
    assert "error" not in found, found
    assert found["tried"][0][0] == 8
    for b, ok in found["tried"]:  # a batch fits exactly when its measured peak is in budget
        assert ok == (found["peak_bytes"][str(b)] <= 8 * 2**20)
    best = found["max_batch_size"]
    if found["limit"].startswith("memory"):
        assert found["first_failing_batch"] == best + 1
    else:
        assert best == 32 and found["limit"].startswith("cap")


# -- GPU ------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize(("precision", "tc_expected"), [("bf16", True), ("fp32", False)])
def test_cuda_tensor_core_share(tmp_path: Path, precision: str, tc_expected: bool) -> None:
    suite = tiny_suite(tmp_path, [{"name": "tensor_cores", "options": {"trace": str(tmp_path)}}],
                       precision)
    suite = suite.model_copy(update={"models": [suite.models[0].model_copy(update={"size": "gpt-mini"})]})
    tc = stored_results(run_once(suite, "cuda"))["tensor_cores"]
    assert tc["device_kind"] == "cuda" and tc["total_time_us"] > 0
    assert tc["gpu_busy_fraction"] > 0.0
    if tc_expected:
        assert tc["buckets"]["gemm_bf16"] > 0.0 and tc["tensor_core_share"] > 0.2
    else:  # strict fp32: SIMT GEMMs (ffma) and f32 attention; no tensor-core work at all
        assert tc["buckets"]["gemm_simt"] > 0.0 and tc["buckets"]["gemm_bf16"] == 0.0
        assert tc["tensor_core_share"] < 0.01
    assert tc["buckets"]["optimizer"] > 0.0
    assert Path(tc["trace_path"]).is_file()


@pytest.mark.gpu
def test_cuda_nvml_energy_and_gpm(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path, ["nvml", "memory", {"name": "max_batch", "options": {"max_batch_size": 256}}])
    rec = run_once(suite.model_copy(update={"train": suite.train.model_copy(update={"steps": 300})}),
                   "cuda")
    nv = stored_results(rec)["nvml"]
    assert nv["samples"] >= 1 and 10 < nv["power_w_mean"] < 1500
    assert nv["energy_j"] > 0 and nv["joules_per_token"] == pytest.approx(nv["energy_j"] / nv["tokens"])
    assert nv["overhead_fraction"] < 0.01
    if torch.cuda.get_device_capability() >= (9, 0):
        assert 0.0 <= nv["gpm"]["sm_util"] <= 100.0
    else:
        assert "not supported here" in nv["gpm_unsupported"]
    mem = stored_results(rec)["memory"]
    assert mem["measured_peak_bytes"] > mem["params_bytes"] and mem["alloc_retries"] >= 0
    mb = stored_results(rec)["max_batch"]
    assert mb["max_batch_size"] >= 4 and mb["tried"][0] == [4, True]


@pytest.mark.gpu
def test_cuda_out_of_memory_is_survived() -> None:
    before = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory

    def step(b: int) -> None:
        keep = torch.empty(b * 2**30, dtype=torch.uint8, device="cuda")
        del keep

    fits = oom_safe(step, torch.cuda.empty_cache)
    search = search_max_batch(fits, start=1, cap=4 * total // 2**30)
    assert 1 <= search.max_batch_size < total // 2**30 + 1 and search.limit == "memory"
    assert torch.cuda.memory_allocated() == before


@pytest.mark.unit
def test_plain_steps_are_timed_before_the_profile_and_not_recorded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The waterfall sets the operators against plain steps timed just before the profiler
    starts (after an untimed one; none of their operators recorded), then a warm step, then
    the profiled ones."""
    from types import SimpleNamespace

    from mpbench.profilers import tensor_cores
    from mpbench.profilers.tensor_cores import TensorCoreOptions, TensorCoreProfiler

    a = torch.randn(16, 16)
    model = torch.nn.Linear(4, 4)
    calls = []

    def train_step(x: torch.Tensor, y: torch.Tensor) -> float:
        calls.append(1)
        torch.mm(a, a)
        return 0.0

    ctx = SimpleNamespace(device=torch.device("cpu"), model=model, train_step=train_step,
                          next_batch=lambda: (a, a))
    recorded = []
    real_cpu_ops = tensor_cores.cpu_ops
    monkeypatch.setattr(tensor_cores, "cpu_ops", lambda events: (
        recorded.extend(e.name for e in events), real_cpu_ops(events))[1])
    prof = TensorCoreProfiler(TensorCoreOptions(steps=3, plain_steps=4))
    prof.after_measure(ctx)  # type: ignore[arg-type]
    found = prof.result(ctx)  # type: ignore[arg-type]
    assert len(calls) == 1 + 4 + 1 + 3  # warm, plain, the profile's warm, profiled
    assert recorded.count("aten::mm") == 3  # the profiled steps' only
    assert len(found.plain_step_us) == 4 and all(t > 0 for t in found.plain_step_us)
    assert found.steps == 3 and found.wall_time_us is not None and found.wall_time_us > 0




@pytest.mark.integration
def test_the_op_bucket_profiler_times_its_plain_steps_first_after_the_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listed last, tensor_cores still runs its after-window work first: its plain steps are
    the waterfall's match for the measured window, with no GEMM ceiling benchmark or memory
    probe between them; the others keep the suite's order."""
    from mpbench.profilers.memory import MemoryBreakdownProfiler
    from mpbench.profilers.mfu import MfuProfiler
    from mpbench.profilers.tensor_cores import TensorCoreProfiler

    order: list[str] = []
    for cls in (MemoryBreakdownProfiler, MfuProfiler, TensorCoreProfiler):
        real = cls.after_measure

        def recorded(self: Any, ctx: Any, real: Any = real, name: str = cls.name) -> None:
            order.append(name)
            real(self, ctx)

        monkeypatch.setattr(cls, "after_measure", recorded)
    rec = run_once(tiny_suite(tmp_path, ["memory", "mfu", {"name": "tensor_cores",
                                                           "options": {"plain_steps": 3}}]))
    assert rec.status == "ok", rec.reason
    assert order == ["tensor_cores", "memory", "mfu"]
