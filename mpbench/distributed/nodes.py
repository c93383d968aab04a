"""Every node on record, and the same everywhere, before any rank trains; and the launch's
topology for the record (nodes, processes and GPUs per node, NVLink or PCIe, from NVML).

Each rank posts its environment card, the hash of the suite file it read and any problem it
found (rank 0: an unwritable results directory) to torchrun's store. Rank 0 groups the cards
by host into node cards and compares every rank with itself on what makes a comparison fair
(results/env.fairness_facts, the suite hash). A difference refuses the launch: one line that
names the node and the field, exit code 2 on every rank. The refusal stays in the agent's
store, so the attempts torchrun restarts leave at once instead of training.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from itertools import combinations
from typing import Any, NoReturn

import torch
from pydantic import BaseModel

from mpbench.distributed.group import RankGroup
from mpbench.errors import UserError
from mpbench.results.env import fairness_facts, nvml_handle
from mpbench.results.env_card import EnvCard
from mpbench.results.payloads import NodeCard

REFUSED = "mpbench/refused"
"""Not per attempt: once refused, every later attempt of this torchrun launch stops too."""
FIELD_NAMES = {"torch": "torch", "cuda": "CUDA", "transformer_engine": "TransformerEngine",
               "torchao": "torchao", "mpbench": "mpbench", "gpu": "GPU model",
               "driver": "GPU driver", "cpu": "CPU model", "suite_sha256": "suite file (sha256)"}


class NodesRefused(UserError):
    """The nodes differ (or one cannot run): `loud` on each node's first rank, which prints
    the line (each node's log says why it stopped)."""

    def __init__(self, message: str, loud: bool) -> None:
        super().__init__(message)
        self.loud = loud


class NodePost(BaseModel):
    """What one rank posts to the store: its card, the suite's hash, its problem, its node."""

    card: EnvCard
    suite: str
    problem: str | None = None
    node: int = 0


def _wait(group: RankGroup, key: str, timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if group.store.check([key]):
            return group.store.get(key).decode()
        time.sleep(0.05)
    return None


def _short(value: str | None) -> str:
    return "none" if value is None else value[:12] if len(value) == 64 else value


def where(post: NodePost, rank: int) -> str:
    """'node 1 (host gpu-07, rank 8)': torchrun's node (agent) rank, the host, the rank."""
    return f"node {post.node} (host {post.card.hostname or '?'}, rank {rank})"


def first_difference(posts: dict[int, NodePost], device_kind: str) -> str | None:
    """The first rank whose facts differ from rank 0's, as the line the user reads."""
    base = {**fairness_facts(posts[0].card, device_kind), "suite_sha256": posts[0].suite}
    for rank in sorted(posts):
        post = posts[rank]
        if post.problem:
            return f"{where(post, rank)}: {post.problem}"
        facts = {**fairness_facts(post.card, device_kind), "suite_sha256": post.suite}
        for key, value in facts.items():
            if value != base[key]:
                name = FIELD_NAMES[key]
                fix = ("give every node the same suite file (the job's shipped copy)"
                       if key == "suite_sha256" else f"install the same {name} on every node")
                return (f"{where(post, rank)}: {name} {_short(value)} differs from "
                        f"{where(posts[0], 0)}: {_short(base[key])}; {fix}, or the "
                        "comparison is not fair")
    return None


def node_cards(posts: dict[int, NodePost]) -> list[NodeCard]:
    """One card per torchrun agent (node), in node order."""
    by_node: dict[int, list[int]] = {}
    for rank in sorted(posts):
        by_node.setdefault(posts[rank].node, []).append(rank)
    cards = []
    for node, ranks in sorted(by_node.items()):
        first = posts[ranks[0]]
        gpus = [gpu.name for r in ranks if (gpu := posts[r].card.gpu) is not None]
        cards.append(NodeCard(node=node, host=first.card.hostname or "?", ranks=ranks,
                              gpus=gpus, suite_sha256=first.suite, env=first.card))
    return cards


def agree_on_nodes(group: RankGroup, card: EnvCard, suite_sha256: str,
                   problem: str | None = None) -> list[NodeCard]:
    """Every node's card (all ranks get the same list), or NodesRefused before training."""
    store = group.store
    if store.check([REFUSED]):  # an earlier attempt of this launch refused: leave at once
        raise NodesRefused(store.get(REFUSED).decode(), loud=group.env.local_rank == 0)
    store.set(group.key("node", f"rank{group.rank}"),
              NodePost(card=card, suite=suite_sha256, problem=problem,
                       node=group.env.node_rank).model_dump_json())
    verdict_key = group.key("node", "verdict")
    if group.rank == 0:
        posts: dict[int, NodePost] = {}
        deadline = time.monotonic() + group.timeout_s
        while len(posts) < group.world_size and time.monotonic() < deadline:
            for r in range(group.world_size):
                key = group.key("node", f"rank{r}")
                if r not in posts and store.check([key]):
                    posts[r] = NodePost.model_validate_json(store.get(key))
            time.sleep(0.05)
        missing = [r for r in range(group.world_size) if r not in posts]
        refusal = (f"ranks {missing} posted no environment card within parallel.timeout_s "
                   f"{group.timeout_s:g} s" if missing else
                   first_difference(posts, group.device.type))
        cards = [] if missing else node_cards(posts)
        if refusal:
            store.set(REFUSED, refusal)
        store.set(verdict_key, json.dumps({"refused": refusal,
                                           "nodes": [c.model_dump(mode="json") for c in cards]}))
    raw = _wait(group, verdict_key, group.timeout_s + 5)
    if raw is None:
        raise NodesRefused("rank 0 gave no verdict on the nodes' environment cards", loud=True)
    verdict = json.loads(raw)
    if verdict["refused"]:
        raise NodesRefused(verdict["refused"], loud=group.env.local_rank == 0)
    return [NodeCard.model_validate(c) for c in verdict["nodes"]]


def leave_refused(exc: NodesRefused) -> NoReturn:
    """Each node's first rank prints the one line; every rank exits with code 2."""
    if exc.loud:
        print(f"error: {exc}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    sys.exit(exc.exit_code)


# -- topology facts for the record -----------------------------------------------------------

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
