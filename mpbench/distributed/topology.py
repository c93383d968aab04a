"""Topology facts for the record: nodes, processes and GPUs per node, NVLink or PCIe (NVML)."""

from __future__ import annotations

import socket
from itertools import combinations
from typing import Any

import torch

from mpbench.results.env import nvml_handle

# nvmlGpuTopologyLevel_t (nvml.h): how far apart two GPUs sit on the PCIe tree.
_LEVELS = {0: "same board", 10: "one PCIe switch", 20: "several PCIe switches",
           30: "PCIe host bridge", 40: "same NUMA node", 50: "across NUMA nodes (SMP link)"}


def _nvml_handles(nvml: Any) -> list[Any]:
    # CUDA_VISIBLE_DEVICES may renumber: match each torch device to its NVML device
    return [nvml_handle(nvml, i)[0] for i in range(torch.cuda.device_count())]


def _active_nvlinks(nvml: Any, handle: Any) -> int | None:
    active, supported = 0, False
    for link in range(nvml.NVML_NVLINK_MAX_LINKS):
        try:
            state = nvml.nvmlDeviceGetNvLinkState(handle, link)
        except nvml.NVMLError:
            continue
        supported = True
        active += int(state == nvml.NVML_FEATURE_ENABLED)
    return active if supported else None


def gpu_links() -> dict[str, Any]:
    """NVLink links per GPU and, for each GPU pair, NVLink P2P or the PCIe distance."""
    try:
        import pynvml as nvml  # nvidia-ml-py

        nvml.nvmlInit()
    except Exception as exc:
        return {"nvml": f"unavailable: {type(exc).__name__}: {exc}"[:200]}
    try:
        handles = _nvml_handles(nvml)
        links = [_active_nvlinks(nvml, h) for h in handles]
        pairs = []
        for (i, a), (j, b) in combinations(enumerate(handles), 2):
            pair: dict[str, Any] = {"gpus": [i, j]}
            try:
                status = nvml.nvmlDeviceGetP2PStatus(a, b, nvml.NVML_P2P_CAPS_INDEX_NVLINK)
                pair["nvlink_p2p"] = status == nvml.NVML_P2P_STATUS_OK
            except nvml.NVMLError as exc:
                pair["nvlink_p2p"] = f"unknown ({exc})"
            try:
                level = nvml.nvmlDeviceGetTopologyCommonAncestor(a, b)
                pair["pcie_path"] = _LEVELS.get(int(level), str(level))
            except nvml.NVMLError as exc:
                pair["pcie_path"] = f"unknown ({exc})"
            pairs.append(pair)
        nvlinked = [p["nvlink_p2p"] is True for p in pairs]
        summary = ("single GPU" if not pairs else "NVLink between all GPU pairs" if all(nvlinked)
                   else "PCIe only (no NVLink P2P)" if not any(nvlinked) else "mixed NVLink / PCIe")
        return {"nvlinks_per_gpu": links, "pairs": pairs, "interconnect": summary}
    finally:
        nvml.nvmlShutdown()


def topology(device: torch.device, world_size: int, local_world_size: int) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "nodes": max(1, world_size // max(1, local_world_size)),
        "processes_per_node": local_world_size,
        "gpus_per_node": torch.cuda.device_count() if device.type == "cuda" else 0,
    }
    if device.type == "cuda":
        facts["gpu_links"] = gpu_links()
    return facts
