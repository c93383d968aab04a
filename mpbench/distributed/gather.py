"""Every rank's report of a run, exchanged through the store; rank 0 merges them.

The store (not the process group) carries them, so a broken group still gets its reports
through. The merged record is rank 0's, with per-rank step times, throughput and memory
(min / median / max, and which rank was slowest) under profiles["parallel"].
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from mpbench.distributed.faults import compose_reason, is_comm_error
from mpbench.distributed.group import RankGroup
from mpbench.results.payloads import (
    AcrossRanks,
    ParallelResult,
    RankReport,
    Spread,
)
from mpbench.results.schema import RunRecord

FAILED = ("failed", "oom")


def aborted_report(rank: int, host: str, step: int | None,
                   in_collective: str | None) -> RankReport:
    """What a rank stopped by another rank's failure says about itself."""
    return RankReport(rank=rank, host=host, status="aborted", step=step,
                      reason="stopped because another rank failed", in_collective=in_collective)


def rank_report(record: RunRecord, rank: int, host: str, step: int | None,
                in_collective: str | None) -> RankReport:
    mem = record.memory
    par = record.result(ParallelResult)
    return RankReport(
        rank=rank, host=host, step=step, status=record.status, reason=record.reason,
        in_collective=in_collective if record.status in FAILED else None,
        traceback=(record.traceback or "")[-3000:] or None, step_stats=record.step_stats,
        tokens_per_s=record.tokens_per_s, peak_bytes=mem.peak_bytes if mem else None,
        memory_kind=mem.kind if mem else None, first_step_s=record.first_step_s,
        final_train_loss=record.final_train_loss,
        comm_per_step=par.comm_per_step if par else None)


def report_key(group: RankGroup, run_id: str, rank: int | None = None,
               attempt: int | None = None) -> str:
    return group.key("run", run_id, f"rank{group.rank if rank is None else rank}",
                     attempt=attempt)


def collect_reports(group: RankGroup, run_id: str, wait_s: float,
                    attempt: int | None = None) -> dict[int, RankReport | None]:
    """Each rank's report, or None for a rank that did not report within wait_s."""
    keys = {r: report_key(group, run_id, r, attempt) for r in range(group.world_size)}
    deadline = time.monotonic() + wait_s
    found: dict[int, RankReport | None] = {}
    while True:
        for r, key in keys.items():
            if r not in found and group.store.check([key]):
                found[r] = RankReport.model_validate_json(group.store.get(key))
        if len(found) == len(keys) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return {r: found.get(r) for r in keys}


def spread(values: dict[int, float | int | None]) -> Spread | None:
    known = {r: float(v) for r, v in values.items() if v is not None}
    if not known:
        return None
    worst = max(known, key=lambda r: known[r])
    return Spread(min=min(known.values()), median=statistics.median(known.values()),
                  max=known[worst], max_rank=worst)


def across_ranks(reports: dict[int, RankReport | None]) -> AcrossRanks:
    """A rank stopped by another's failure reports no numbers: it is left out of each spread."""
    ok = {r: rep for r, rep in reports.items() if rep is not None}
    stats = {r: rep.step_stats for r, rep in ok.items()}
    return AcrossRanks(
        step_median_ms=spread({r: s.median_ms if s else None for r, s in stats.items()}),
        step_p90_ms=spread({r: s.p90_ms if s else None for r, s in stats.items()}),
        tokens_per_s=spread({r: rep.tokens_per_s for r, rep in ok.items()}),
        peak_bytes=spread({r: rep.peak_bytes for r, rep in ok.items()}),
    )


def merge(record: RunRecord, reports: dict[int, RankReport | None], world_size: int,
          facts: dict[str, Any]) -> RunRecord:
    """Rank 0's record with every rank's numbers; failed when any rank failed or is missing.

    `facts` are the run's parallel settings and topology (ParallelResult's fields), under
    what the probe found."""
    probe = record.result(ParallelResult)
    par: dict[str, Any] = {**facts, **(probe.model_dump(exclude_unset=True) if probe else {})}
    par["ranks"] = [reports[r] or RankReport(rank=r, status="missing") for r in range(world_size)]
    par["across_ranks"] = across_ranks(reports)
    if record.tokens_per_s is not None:
        par["tokens_per_s_per_device"] = record.tokens_per_s / world_size
    update: dict[str, Any] = {"profiler_results": {**record.profiler_results,
                                                   "parallel": ParallelResult.model_validate(par)}}
    statuses = {rep.status if rep else "missing" for rep in reports.values()}
    if len(statuses) > 1 or statuses & {*FAILED, "missing", "aborted"}:
        status, reason = compose_reason(reports, world_size)
        failed = [rep for rep in reports.values()
                  if rep and rep.status in FAILED and rep.traceback]
        failed.sort(key=lambda rep: is_comm_error(rep.reason))  # the root cause first
        update.update(status=status, reason=reason, tokens_per_s=None, achieved_tflops=None,
                      mfu=None, traceback=failed[0].traceback if failed else record.traceback)
    return record.model_copy(update=update)
