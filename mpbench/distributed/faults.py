"""When a rank fails: say which rank and why, from what every rank reported.

A rank that raises writes its report to the store, then closes its process group so the
others fail at once instead of waiting out the timeout. A rank that is killed reports
nothing; its peers see the connection close. Rank 0 names the root cause: a rank whose
error is not a communication error, else the ranks that never reported.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from mpbench.results.payloads import RankReport

COMM_ERROR_MARKERS = (
    "Connection closed by peer", "Connection reset by peer", "Broken pipe", "Connection refused",
    "timed out", "Timed out", "Timeout", "NCCL", "ProcessGroup", "Socket", "abort",
)
_SOURCE_PREFIX = re.compile(r"\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*")


def is_comm_error(reason: str | None) -> bool:
    return bool(reason) and any(m in (reason or "") for m in COMM_ERROR_MARKERS)


def short(reason: str | None, limit: int = 160) -> str:
    text = _SOURCE_PREFIX.sub("", reason or "").split(". This is typically")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compose_reason(reports: dict[int, RankReport | None], world_size: int) -> tuple[str, str]:
    """(status, reason) of a distributed run in which some rank failed or went missing."""
    missing = [r for r in range(world_size) if reports.get(r) is None]
    failed = {r: rep for r, rep in reports.items()
              if rep is not None and rep.status in ("failed", "oom")}
    roots = {r: rep for r, rep in failed.items() if not is_comm_error(rep.reason)}
    parts: list[str] = []
    for r, rep in sorted(roots.items()):
        parts.append(f"rank {r} of {world_size} failed: {short(rep.reason, 200)}")
    for r in missing:
        parts.append(f"rank {r} of {world_size} stopped without a report "
                     "(killed, crashed or stuck)")
    for r, rep in sorted(failed.items()):
        if r in roots:
            continue
        where = f" in {rep.in_collective}" if rep.in_collective else ""
        parts.append(f"rank {r} stopped{where}: {short(rep.reason)}")
    for r, maybe in sorted(reports.items()):
        if maybe is not None and maybe.status == "aborted":
            last = maybe.in_collective
            issued = f", last collective issued: {last}" if last else ""
            parts.append(f"rank {r} was stopped in step {maybe.step}{issued}")
    if not parts:  # every rank finished, yet not alike (e.g. one diverged): say how
        statuses = {r: rep.status for r, rep in reports.items() if rep is not None}
        parts.append("ranks ended differently: " + ", ".join(
            f"rank {r} {s}" for r, s in sorted(statuses.items())))
    status = "oom" if any(rep.status == "oom" for rep in roots.values()) else "failed"
    return status, "; ".join(parts)[:900]


class FaultInjection:
    """A test aid: MPBENCH_INJECT_FAULT="rank=1,step=3,kind=kill|raise|hang[,run=TEXT]".

    `step` counts from 1, as loss curves do. Acts in the first attempt of a torchrun launch
    only, so the restarted group goes on with the suite; `run` limits it to run ids
    containing TEXT.
    """

    def __init__(self, rank: int, step: int, kind: str) -> None:
        self.rank, self.step, self.kind = rank, step, kind

    @staticmethod
    def from_env(rank: int, run_id: str, restart_count: int) -> FaultInjection | None:
        spec = os.environ.get("MPBENCH_INJECT_FAULT")
        if not spec or restart_count != 0:
            return None
        fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
        if int(fields.get("rank", "-1")) != rank or fields.get("run", "") not in run_id:
            return None
        return FaultInjection(rank, int(fields.get("step", "0")), fields.get("kind", "raise"))

    def maybe_fire(self, step: int) -> None:
        """Called at the start of training step `step` (from 1)."""
        if step != self.step:
            return
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.kind == "hang":
            while True:
                time.sleep(1)
        raise RuntimeError(f"injected fault on rank {self.rank} at step {step}")


class FaultWatch:
    """A thread that ends this rank (not rank 0) once another rank reports a failure.

    A rank blocked in a collective cannot be interrupted, and gloo's abort() does not
    close its sockets: exiting does. The watch posts this rank's report first (what it
    was doing), then exits, so the peers' collectives fail at once and rank 0, which
    never exits early, can write the failed record.
    """

    def __init__(self, store: Any, fault_key: str, report_key: str,
                 describe: Callable[[], RankReport], exit_code: int) -> None:
        self.store, self.fault_key, self.report_key = store, fault_key, report_key
        self.describe, self.exit_code = describe, exit_code
        self.lock = threading.Lock()
        self.posted = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="mpbench-fault-watch",
                                       daemon=True)

    def start(self) -> FaultWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def post(self, report: RankReport) -> bool:
        """Post this rank's own report; False when the watch already posted one (exiting)."""
        with self.lock:
            if self.posted:
                return False
            self.store.set(self.report_key, report.model_dump_json())
            self.posted = True
            return True

    def _watch(self) -> None:
        while not self.done.wait(0.1):
            if not self.store.check([self.fault_key]):
                continue
            with self.lock:
                if not self.posted:
                    self.store.set(self.report_key, self.describe().model_dump_json())
                    self.posted = True
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(self.exit_code)
