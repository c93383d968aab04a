"""NVML GPM (GPU performance monitoring, Hopper and newer): SM and tensor-pipe utilisation
averaged over a window, from one sample at each end. Device-wide, like nvidia-smi."""

from __future__ import annotations

import contextlib
from typing import Any

# NVML_GPM_METRIC_* ids (nvml.h / pynvml), percentages 0-100 over the sampled interval.
GPM_METRICS = {
    2: "sm_util",
    5: "any_tensor_util",
    7: "hmma_tensor_util",
    10: "dram_bw_util",
    12: "fp32_util",
}


class GpmWindow:
    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml, self.handle = nvml, handle
        self.samples: list[Any] = []
        self.reason: str | None = self._support()

    def _support(self) -> str | None:
        query = getattr(self.nvml, "nvmlGpmQueryDeviceSupport", None)
        if query is None:
            return "not supported here: this nvidia-ml-py has no GPM functions"
        try:
            supported = bool(query(self.handle).isSupportedDevice)
        except Exception as exc:
            return f"not supported here: {type(exc).__name__}: {exc}"
        return None if supported else "not supported here: GPM needs a Hopper or newer GPU"

    def _take(self) -> None:
        sample = self.nvml.nvmlGpmSampleAlloc()
        self.nvml.nvmlGpmSampleGet(self.handle, sample)
        self.samples.append(sample)

    def open(self) -> None:
        if self.reason is None:
            try:
                self._take()
            except Exception as exc:
                self.reason = f"GPM sample failed: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        if self.reason is None and self.samples:
            try:
                self._take()
            except Exception as exc:
                self.reason = f"GPM sample failed: {type(exc).__name__}: {exc}"

    def result(self) -> dict[str, Any]:
        try:
            if self.reason is not None:
                return {"gpm_unsupported": self.reason}
            if len(self.samples) != 2:
                return {"gpm_unsupported": "the window was never closed"}
            return {"gpm": self._metrics()}
        finally:
            for sample in self.samples:
                with contextlib.suppress(Exception):
                    self.nvml.nvmlGpmSampleFree(sample)
            self.samples = []

    def _metrics(self) -> dict[str, Any]:
        n = self.nvml
        request = n.c_nvmlGpmMetricsGet_t()
        request.version = n.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(GPM_METRICS)
        request.sample1, request.sample2 = self.samples
        for i, metric_id in enumerate(GPM_METRICS):
            request.metrics[i].metricId = metric_id
        n.nvmlGpmMetricsGet(request)
        out: dict[str, Any] = {}
        for i, (metric_id, name) in enumerate(GPM_METRICS.items()):
            m = request.metrics[i]
            if int(m.nvmlReturn) == 0:  # NVML_SUCCESS
                out[name] = float(m.value)
            else:
                out[name] = None
                out.setdefault("errors", {})[name] = f"nvmlReturn {int(m.nvmlReturn)} (metric {metric_id})"
        return out
