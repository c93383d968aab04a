"""NVML: power, SM clock, memory and throttling sampled in a thread; energy per token; GPM.

The window is the measured window: it opens at the end of the last warm-up step (the GPU is
synchronized there) and closes at the end of the last measured step. Energy is the difference
of nvmlDeviceGetTotalEnergyConsumption (mJ, Volta and newer) across the window, which is more
accurate than integrating sampled power. On Hopper and newer, GPM gives the window's SM and
tensor-pipe utilisation from two samples. The sampler's own CPU time is measured and reported
as a fraction of the window (it must stay under 1%).
"""

from __future__ import annotations

import threading
import time
from types import ModuleType
from typing import Any

import torch
from pydantic import Field

from mpbench.profilers.base import (
    Profiler,
    ProfilerOptions,
    RunContext,
    StepInfo,
    register_profiler,
)
from mpbench.profilers.nvml_gpm import GpmWindow
from mpbench.results.env import nvml_handle
from mpbench.results.payloads import NvmlResult

# nvmlClocksEventReason* bits (nvml.h); the older API calls them ClocksThrottleReason*.
THROTTLE_BITS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting", 0x200: "board_limit", 0x400: "reliability",
}


MAX_WINDOW_S = 4 * 3600.0


def throttle_names(mask: int) -> list[str]:
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


class NvmlOptions(ProfilerOptions):
    interval_s: float = Field(0.1, ge=0.01, le=5.0, description="seconds between samples")
    gpm: bool = Field(True, description="read GPM SM / tensor-pipe utilisation where supported")


def load_nvml() -> ModuleType:
    import pynvml  # nvidia-ml-py

    return pynvml


def device_handle(nvml: Any, device: torch.device) -> Any:
    """The NVML handle of a torch device (CUDA_VISIBLE_DEVICES taken into account)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    return nvml_handle(nvml, index)[0]


class Sampler:
    """Reads power, SM clock, memory used and throttle reasons every `interval_s`."""

    def __init__(self, nvml: Any, handle: Any, interval_s: float) -> None:
        self.nvml, self.handle, self.interval_s = nvml, handle, interval_s
        self.samples: list[tuple[float, float, float, int, int]] = []
        """(time, watts, sm_mhz, memory_used_bytes, throttle_mask)"""
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mpbench-nvml", daemon=True)
        reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        self._reasons = reasons or nvml.nvmlDeviceGetCurrentClocksThrottleReasons

    def sample(self) -> None:
        n, h = self.nvml, self.handle
        self.samples.append((time.perf_counter(), n.nvmlDeviceGetPowerUsage(h) / 1000.0,
                             float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
                             int(n.nvmlDeviceGetMemoryInfo(h).used), int(self._reasons(h))))

    def _run(self) -> None:
        t0 = time.thread_time()
        deadline = time.perf_counter() + MAX_WINDOW_S  # a run that died mid-window stops it too
        while not self._stop.is_set() and time.perf_counter() < deadline:
            self.sample()
            self._stop.wait(self.interval_s)
        self.cpu_s = time.thread_time() - t0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def summarize_samples(samples: list[tuple[float, float, float, int, int]]) -> dict[str, Any]:
    if not samples:
        return {"samples": 0}
    watts = [s[1] for s in samples]
    clocks = [s[2] for s in samples]
    masks = [s[4] for s in samples]
    seen: dict[str, int] = {}
    for m in masks:
        for name in throttle_names(m):
            seen[name] = seen.get(name, 0) + 1
    return {
        "samples": len(samples),
        "power_w_mean": sum(watts) / len(watts), "power_w_max": max(watts),
        "sm_clock_mhz_mean": sum(clocks) / len(clocks), "sm_clock_mhz_min": min(clocks),
        "memory_used_bytes_max": max(s[3] for s in samples),
        "throttle_reasons": sorted(seen),
        "throttle_fraction": {k: v / len(samples) for k, v in sorted(seen.items())},
    }


class NvmlWindow:
    """Energy counter, sampler and GPM over one window; usable without a training loop."""

    def __init__(self, nvml: Any, handle: Any, interval_s: float, gpm: bool) -> None:
        self.nvml, self.handle = nvml, handle
        self.sampler = Sampler(nvml, handle, interval_s)
        self.gpm = GpmWindow(nvml, handle) if gpm else None
        self.energy_mj: list[int] = []
        self.energy_error: str | None = None
        self.times: list[float] = []
        self.hook_mj = 0
        self.hook_s = 0.0
        self._hook: tuple[float, int | None] | None = None
        """(start time, energy counter) of the hook work under way inside the window."""

    def _read(self) -> int | None:
        try:
            return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except Exception as exc:  # NotSupported before Volta, or no permission
            self.energy_error = f"{type(exc).__name__}: {exc}"
            return None

    def _energy(self) -> int | None:
        value = self._read()
        if value is not None:
            self.energy_mj.append(value)
        return value

    def open(self, in_hook: bool = False) -> None:
        """Start the window; `in_hook`: it opens inside hook work, which is not training."""
        self.times.append(time.perf_counter())
        value = self._energy()
        if in_hook:
            self._hook = (self.times[-1], value)
        if self.gpm is not None:
            self.gpm.open()
        self.sampler.start()

    def hook_start(self) -> None:
        if self.times and len(self.times) == 1 and self._hook is None:
            self._hook = (time.perf_counter(), self._read())

    def hook_end(self, value: int | None = None) -> None:
        if self._hook is None:
            return
        t0, e0 = self._hook
        e1 = self._read() if value is None else value
        self.hook_s += time.perf_counter() - t0
        if e0 is not None and e1 is not None:
            self.hook_mj += e1 - e0
        self._hook = None

    def close(self, tokens: int) -> dict[str, Any]:
        value = self._energy()
        self.hook_end(value)  # closed inside hook work: count it up to here
        if self.gpm is not None:
            self.gpm.close()
        self.times.append(time.perf_counter())
        self.sampler.stop()
        window = self.times[-1] - self.times[0]
        train_s = window - self.hook_s
        out: dict[str, Any] = {"window_s": window, "hook_s": self.hook_s, "train_s": train_s,
                               "tokens": tokens, **summarize_samples(self.sampler.samples)}
        if len(self.energy_mj) == 2:
            total = (self.energy_mj[1] - self.energy_mj[0]) / 1000.0
            energy = total - self.hook_mj / 1000.0
            out.update(window_energy_j=total, hook_energy_j=self.hook_mj / 1000.0,
                       energy_j=energy, joules_per_token=energy / tokens if tokens else None,
                       energy_source=("nvmlDeviceGetTotalEnergyConsumption over the window, "
                                      "less the energy read across hook work (eval, probes, "
                                      "other profilers)"))
        elif out.get("samples"):  # fall back to mean sampled power x training time
            energy = out["power_w_mean"] * train_s
            out.update(energy_j=energy, joules_per_token=energy / tokens if tokens else None,
                       energy_source=("mean sampled power x (window - hook time) "
                                      f"({self.energy_error})"))
        if self.gpm is not None:
            out.update(self.gpm.result())
        else:
            out["gpm_unsupported"] = "disabled by options.gpm"
        out["sampler_cpu_s"] = self.sampler.cpu_s
        out["overhead_fraction"] = self.sampler.cpu_s / window if window > 0 else None
        return out


@register_profiler
class NvmlProfiler(Profiler):
    summary = "power, SM clock, throttling, energy per token (NVML); GPM tensor-pipe use on Hopper+"
    Options = NvmlOptions
    Result = NvmlResult

    def __init__(self, options: ProfilerOptions | None = None, nvml: Any = None) -> None:
        super().__init__(options)
        self.nvml = nvml
        self.window: NvmlWindow | None = None
        self.found: dict[str, Any] = {}
        self.steps = 0
        self.in_hooks = False

    def check(self, device: torch.device) -> str | None:
        if device.type != "cuda":
            return f"nvml needs a CUDA GPU; this run is on {device.type}"
        try:
            nvml = self.nvml or load_nvml()
            nvml.nvmlInit()
            nvml.nvmlShutdown()
        except ImportError:
            return "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
        except Exception as exc:
            return f"NVML is not usable here: {type(exc).__name__}: {exc}"
        return None

    def on_start(self, ctx: RunContext) -> None:
        self.nvml = self.nvml or load_nvml()
        self.nvml.nvmlInit()
        opts = self.options
        assert isinstance(opts, NvmlOptions)
        self.window = NvmlWindow(self.nvml, device_handle(self.nvml, ctx.device), opts.interval_s,
                                 opts.gpm)
        if ctx.spec.train.warmup_steps == 0:  # no warm-up step to open the window after
            self.found["note"] = "no warm-up: the window opens after measured step 0"

    def on_step_end(self, ctx: RunContext, info: StepInfo) -> None:
        cfg = ctx.spec.train
        assert self.window is not None
        opens = (info.phase == "warmup" and info.step == cfg.warmup_steps - 1) or (
            info.phase == "measure" and info.step == 0 and cfg.warmup_steps == 0)
        if opens:  # the loop synchronizes after every step, so the GPU is idle here
            self.window.open(in_hook=self.in_hooks)
            self.steps = 0
            return
        if info.phase == "measure" and self.window.times:
            self.steps += 1
            if info.step == cfg.steps - 1:
                tokens = self.steps * cfg.batch_size * cfg.seq_len
                self.found.update(self.window.close(tokens))
                self.found["steps"] = self.steps

    def on_hooks(self, ctx: RunContext, edge: str) -> None:
        """Hook work (eval, numerics probes, other profilers) is bracketed by energy reads
        and its energy taken out, as the loop takes its time out of throughput."""
        self.in_hooks = edge == "start"
        if self.window is None:
            return
        if edge == "start":
            self.window.hook_start()
        else:
            self.window.hook_end()

    def result(self, ctx: RunContext) -> NvmlResult:
        if self.window is not None and self.nvml is not None:
            self.window.sampler.stop()  # still open when the run diverged inside the window
            self.nvml.nvmlShutdown()
            self.window = None
        return NvmlResult.model_validate(self.found)
