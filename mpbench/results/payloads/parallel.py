"""What a torchrun launch stores under profiler_results["parallel"]: the run's parallel
settings and topology, the communication probe, and every rank's report with the spread
across ranks (distributed/gather.py merges them on rank 0)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mpbench.results.env_card import EnvCard
from mpbench.results.payloads.base import ProfileResult, StepStats, Strict


class CommCall(Strict):
    """The collectives of one op and dtype in a step."""

    op: str
    dtype: str
    calls: int
    bytes: int
    purpose: str | None = None


class CommStep(Strict):
    """The bytes one step's collectives moved (distributed/comm.py CommCounter.summarize)."""

    bytes: int
    bytes_by_dtype: dict[str, int] = Field(default_factory=dict)
    sent_bytes: int | None = None
    """On the wire, with each op's bus factor (ring all-reduce sends 2(N-1)/N)."""
    sent_bytes_by_dtype: dict[str, int] = Field(default_factory=dict)
    collectives: list[CommCall] = Field(default_factory=list)


class CommProbe(Strict):
    """Forward+backward with gradient sync on and off, and the collectives replayed alone."""

    steps: int
    fwd_bwd_ms: float
    compute_ms: float
    exposed_comm_ms: float
    comm_alone_ms: dict[str, float] = Field(default_factory=dict)
    """Milliseconds per op (all_reduce, reduce_scatter, all_gather) with nothing to overlap."""
    covers: str | None = None
    hidden_fraction: float | None = None
    """How much of the gradient reduction backward hid."""


class KernelOverlap(Strict):
    """NCCL kernels against compute kernels on a GPU, milliseconds per step."""

    comm_ms: float
    compute_ms: float
    exposed_comm_ms: float
    steps: int
    comm_kernels: list[str] = Field(default_factory=list)
    source: str | None = None


class RankReport(Strict):
    """What one rank says about its part of a run (posted through the store)."""

    rank: int
    status: str
    """ok / failed / oom / diverged as in the record; aborted (stopped by another rank's
    failure) or missing (never reported)."""
    host: str | None = None
    step: int | None = None
    reason: str | None = None
    in_collective: str | None = None
    traceback: str | None = None
    step_stats: StepStats | None = None
    tokens_per_s: float | None = None
    peak_bytes: int | None = None
    memory_kind: str | None = None
    first_step_s: float | None = None
    final_train_loss: float | None = None
    comm_per_step: CommStep | None = None


class Spread(Strict):
    """One figure across the ranks that reported it, and the rank with the largest."""

    min: float
    median: float
    max: float
    max_rank: int


class AcrossRanks(Strict):
    step_median_ms: Spread | None = None
    step_p90_ms: Spread | None = None
    tokens_per_s: Spread | None = None
    peak_bytes: Spread | None = None


class NodeCard(Strict):
    """One node of a multi-node launch: its ranks and the environment card of its lowest rank
    (distributed/nodes.py gathers them before training)."""

    node: int = 0
    """torchrun's node (agent) rank."""
    host: str
    ranks: list[int] = Field(default_factory=list)
    gpus: list[str] = Field(default_factory=list)
    """Each rank's GPU model on this node (empty on a CPU)."""
    suite_sha256: str | None = None
    """The suite file this node read."""
    env: EnvCard = Field(default_factory=EnvCard)
    """results/env.environment_card() of the node's lowest rank."""


class ParallelResult(ProfileResult):
    """profiler_results["parallel"]: the ParallelRun fields (config/parallel.py), launch facts,
    the probe's findings and the merged rank reports."""

    name = "parallel"

    strategy: Literal["ddp", "fsdp2"] | None = None
    grad_comm_dtype: str | None = None
    world_size: int | None = None
    param_dtype: str | None = None
    reshard_after_forward: bool | None = None
    bucket_cap_mb: float | None = None
    backend: str | None = None
    timeout_s: float | None = None
    probe_steps: int | None = None
    nodes: int | None = None
    processes_per_node: int | None = None
    global_batch: int | None = None
    per_rank_batch: int | None = None
    topology: dict[str, Any] = Field(default_factory=dict)
    """Host, nodes, GPUs per node and their links (distributed/nodes.topology)."""
    recorded_after_restart: bool = False
    """Written by the next attempt from the ranks' reports: rank 0 died during the run."""
    probe: CommProbe | None = None
    gpu_kernels: KernelOverlap | None = None
    comm_per_step: CommStep | None = None
    """The step with the median bytes."""
    comm_bytes_per_step_range: list[int] = Field(default_factory=list)
    ranks: list[RankReport] = Field(default_factory=list)
    across_ranks: AcrossRanks | None = None
    tokens_per_s_per_device: float | None = None
    node_cards: list[NodeCard] = Field(default_factory=list)
    """Every node's environment card, not only rank 0's (older records: empty)."""

    @property
    def comm_use(self) -> CommUse | None:
        """The gradient communication of a typical step: its dtype, the bytes its collectives
        moved, and the gradient collective's time when replayed alone (None: not probed)."""
        if self.comm_per_step is None or not self.grad_comm_dtype:
            return None
        alone = self.probe.comm_alone_ms if self.probe else {}
        op = "all_reduce" if self.strategy == "ddp" else "reduce_scatter"
        return CommUse(dtype=self.grad_comm_dtype, bytes_per_step=self.comm_per_step.bytes,
                       time_ms=alone.get(op))


class CommUse(Strict):
    """Gradient communication per step of a distributed run (ParallelResult.comm_use)."""

    dtype: str
    bytes_per_step: int
    time_ms: float | None
    """The gradient collective's time when replayed alone (None: not probed)."""
