"""Run a suite on every rank of a torchrun launch; rank 0 writes the records.

Every rank trains every run on its slice of the same global batch. After each run the
ranks post their reports to the store and rank 0 writes one merged record. When a run
fails on any rank the process group may be left half-way through a collective, so the
attempt ends (exit code 75) after the failed record is written; torchrun's --max-restarts
starts a fresh group, which resumes after the recorded runs. A run during which rank 0
itself died is recorded by the next attempt, from what the other ranks reported.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from mpbench.config.schema import Suite
from mpbench.data import TokenSource, make_source
from mpbench.distributed.faults import FaultInjection, FaultWatch
from mpbench.distributed.gather import (
    FAILED,
    aborted_report,
    collect_reports,
    merge,
    rank_report,
    report_key,
)
from mpbench.distributed.group import RankGroup
from mpbench.distributed.nodes import topology
from mpbench.distributed.session import ParallelSession
from mpbench.plan.spec import RunSpec
from mpbench.results.env_card import EnvCard
from mpbench.results.payloads import NodeCard
from mpbench.results.schema import RunRecord
from mpbench.results.store import ResultsDir
from mpbench.train.loop import ProgressFn, train_run
from mpbench.train.runner import RunEvent, probed_run, run_extra

GRACE_S = 1.5
"""How long rank 0 waits for the other ranks' reports once the run has failed (they
report within ~0.1 s of the failure, or never: killed)."""
EXIT_RESTART = 75
INFLIGHT = "mpbench/inflight"


class AttemptEnded(Exception):
    """The process group cannot be trusted any more; leave so torchrun can restart it."""

    def __init__(self, message: str, exit_code: int = EXIT_RESTART) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ShardedSource(TokenSource):
    """Every rank draws the same global batch and keeps its own rows of it.

    So the data of a run is the same at any world size, and one process with the global
    batch sees exactly what all ranks together see. Validation batches are not split.
    """

    inner: TokenSource | None = None
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:  # the inner source holds the tensors
        pass

    def batch(self, split: str, batch_size: int, seq_len: int,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.inner is not None
        x, y = self.inner.batch(split, batch_size, seq_len, gen)
        if split != "train":
            return x, y
        rows = batch_size // self.world_size
        part = slice(self.rank * rows, (self.rank + 1) * rows)
        return x[part], y[part]

    def describe(self) -> dict[str, Any]:
        assert self.inner is not None
        return self.inner.describe()


def shard(source: TokenSource, rank: int, world_size: int) -> ShardedSource:
    own = {f.name: getattr(source, f.name) for f in fields(TokenSource)}
    return ShardedSource(**own, inner=source, rank=rank, world_size=world_size)


def wait_for(group: RankGroup, key: str, timeout_s: float) -> str | None:
    """The value of `key`, or None after timeout_s (sooner once torchrun asked us to stop)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if group.store.check([key]):
            return group.store.get(key).decode()
        if group.term_requested:
            deadline = min(deadline, time.monotonic() + GRACE_S)
        time.sleep(0.05)
    return None


@dataclass
class ParallelRunner:
    suite: Suite
    group: RankGroup
    env: EnvCard
    results: ResultsDir | None
    """Rank 0's results directory; None on the other ranks."""
    suite_dir: Path | None = None
    out: Path | None = None
    """The results directory (every rank knows it): traces and bench ceilings, as in one process."""
    nodes: list[NodeCard] = field(default_factory=list)
    """Every node's environment card (distributed/nodes.py), stored with each record."""

    def __post_init__(self) -> None:
        self._source: TokenSource | None = None
        self.topology = topology(self.group.device, self.group.world_size,
                                 self.group.env.local_world_size)

    @property
    def source(self) -> TokenSource:
        if self._source is None:  # read the corpus once, and only when a run needs it
            self._source = make_source(self.suite.data, self.suite_dir)
        return self._source

    def facts(self, spec: RunSpec) -> dict[str, Any]:
        assert spec.parallel is not None
        world = self.group.world_size
        return {
            **spec.parallel.model_dump(), "world_size": world, "backend": self.group.backend,
            "nodes": self.group.env.nodes, "processes_per_node": self.group.env.local_world_size,
            "global_batch": spec.train.batch_size, "per_rank_batch": spec.train.batch_size // world,
            "topology": self.topology, "node_cards": self.nodes,
        }

    def session(self, spec: RunSpec, skip_reason: str | None = None) -> ParallelSession:
        assert spec.parallel is not None
        g = self.group
        fault = FaultInjection.from_env(g.rank, spec.run_id, g.env.restart_count)
        return ParallelSession(spec.parallel, g.device, g.world_size, spec.train.warmup_steps,
                               spec.train.steps, fault, skip_reason)

    # -- agreeing on what is left to run -------------------------------------------------
    def recorded(self, specs: list[RunSpec], resume: bool) -> set[str]:
        """Rank 0 decides (after recording a run the last attempt died in); all ranks agree."""
        g = self.group
        key = g.key("recorded")
        if g.rank == 0:
            assert self.results is not None
            done = self.results.recorded_ids() if resume else set()
            done |= self.post_mortem(specs, done)
            g.store.set(key, json.dumps(sorted(done)))
            return done
        value = wait_for(g, key, g.timeout_s)
        if value is None:
            raise AttemptEnded("rank 0 did not say which runs are recorded")
        return set(json.loads(value))

    def post_mortem(self, specs: list[RunSpec], done: set[str]) -> set[str]:
        """Record the run the previous attempt died in, from what its ranks reported."""
        g = self.group
        if g.env.restart_count == 0 or not g.store.check([INFLIGHT]):
            return set()
        info = json.loads(g.store.get(INFLIGHT))
        spec = next((s for s in specs if s.run_id == info["run_id"]), None)
        if spec is None or spec.run_id in done:
            return set()
        reports = collect_reports(g, spec.run_id, 0.0, attempt=info["attempt"])
        placeholder = train_run(spec, self.source, g.device, self.env, None, parallel=self.session(
            spec, skip_reason="the attempt ended during this run"))
        record = merge(placeholder, reports, g.world_size,
                       {**self.facts(spec), "recorded_after_restart": True})
        if record.status not in FAILED:  # every rank reported in time, rank 0 then died
            record = record.model_copy(update={
                "status": "failed", "reason": "rank 0 died after the run, before writing it"})
        assert self.results is not None
        self.results.write(record)
        g.store.delete_key(INFLIGHT)
        return {spec.run_id}

    # -- one run ----------------------------------------------------------------------------
    def train(self, spec: RunSpec, progress: ProgressFn | None) -> tuple[RunRecord, bool]:
        """The run's record (merged on rank 0) and whether this attempt must end."""
        g = self.group
        host = self.topology["hostname"]
        fault_key = g.key("run", spec.run_id, "fault")
        if g.rank == 0:
            g.store.set(INFLIGHT, json.dumps({"run_id": spec.run_id,
                                               "attempt": g.env.restart_count}))
        session = self.session(spec)
        watch = None
        if g.rank != 0:  # rank 0 never leaves early: it writes the record
            watch = FaultWatch(g.second_store(), fault_key, report_key(g, spec.run_id),
                               lambda: aborted_report(g.rank, host, session.step,
                                                      session.in_collective()),
                               EXIT_RESTART).start()
        source = shard(self.source, g.rank, g.world_size)
        try:
            extra = run_extra(self.out) if self.out is not None else {}
            extra["trace_rank"] = g.rank  # every rank's trace, each with its own name
            record = probed_run(spec, source, g.device, self.env, progress, extra, parallel=session)
        finally:
            if watch is not None:
                watch.stop()
        report = rank_report(record, g.rank, host, session.step, session.in_collective())
        failed = record.status in FAILED
        if watch is not None:
            watch.post(report)
        else:
            g.store.set(report_key(g, spec.run_id), report.model_dump_json())
        if failed:
            g.store.set(fault_key, str(g.rank))
            if g.rank != 0:  # exiting closes our sockets: the peers stop waiting on us now
                sys.stdout.flush()
                os._exit(EXIT_RESTART)
        verdict_key = g.key("run", spec.run_id, "verdict")
        if g.rank == 0:
            failing = failed or bool(g.term_requested)
            reports = collect_reports(g, spec.run_id, GRACE_S if failing else g.timeout_s)
            record = merge(record, reports, g.world_size, self.facts(spec))
            assert self.results is not None
            self.results.write(record)
            g.store.delete_key(INFLIGHT)
            g.store.set(verdict_key, record.status)
            verdict: str | None = record.status
        else:
            verdict = wait_for(g, verdict_key, g.timeout_s + GRACE_S)
        return record, verdict is None or verdict in FAILED or failed

    def run(self, specs: list[RunSpec], resume: bool,
            progress_for: Callable[[RunSpec], ProgressFn | None]) -> Iterator[RunEvent]:
        done = self.recorded(specs, resume)
        for i, spec in enumerate(specs):
            if spec.run_id in done:
                yield RunEvent(spec, i, len(specs), resumed=True)
                continue
            yield RunEvent(spec, i, len(specs))
            if self.suite.train.threads:
                torch.set_num_threads(self.suite.train.threads)
            record, fatal = self.train(spec, progress_for(spec) if self.group.rank == 0 else None)
            yield RunEvent(spec, i, len(specs), record=record)
            if fatal:
                raise AttemptEnded(f"run {spec.run_id} ended as {record.status}: {record.reason}")
            if self.group.term_requested:
                raise AttemptEnded("stopped: torchrun asked this worker to terminate", 143)
