"""Progress for long runs: a live bar on a terminal, plain lines otherwise (or with --quiet)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from mpbench.plan.spec import RunSpec
from mpbench.results.schema import RunRecord
from mpbench.train.loop import ProgressFn

if TYPE_CHECKING:
    from mpbench.train.runner import RunEvent


def outcome_line(record: RunRecord) -> str:
    if record.status == "ok":
        tps = f"{record.tokens_per_s:,.0f} tokens/s" if record.tokens_per_s else "no throughput"
        loss = f", eval loss {record.eval_loss:.4f}" if record.eval_loss is not None else ""
        return f"ok, {tps}{loss} ({record.duration_s:.1f} s)"
    return f"{record.status}: {record.reason}"


class RunProgress:
    """`skipped`: run ids named as skipped before the runs; they record silently, and the
    runs that train are numbered among themselves."""

    def __init__(self, console: Console, plain: bool, skipped: set[str] | None = None) -> None:
        self.console, self.plain = console, plain
        self.skipped = skipped or set()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._shown = 0

    @contextmanager
    def live(self) -> Iterator[RunProgress]:
        if self.plain:
            yield self
            return
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=self.console,
            transient=True,
        )
        with self._bar:
            yield self
        self._bar = None

    def start(self, spec: RunSpec, index: int, total: int) -> None:
        label = f"[{index + 1}/{total}] {spec.model_label} {spec.precision.name} seed {spec.seed}"
        if spec.repeat:
            label += f" repeat {spec.repeat}"
        if spec.parallel is not None:  # the strategy x comm-dtype matrix of a parallel suite
            label += f" {spec.parallel.tag}"
        if spec.suite.matrix:  # which combination of the suite's matrix: 'b8×t64 lr=0.01'
            setting = spec.config_key.comparison.setting_label
            label += " " + (setting.removesuffix(f" {spec.parallel.tag}") if spec.parallel
                            else setting)
        self._label = label
        if self._bar is None:
            self.console.print(f"{label}: training", highlight=False)
            return
        steps = spec.train.warmup_steps + spec.train.steps
        self._task = self._bar.add_task(label, total=steps, rate="warm-up")

    def callback(self, spec: RunSpec) -> ProgressFn | None:
        if self._bar is None:
            return None
        bar, task, warm = self._bar, self._task, spec.train.warmup_steps

        def update(phase: str, step: int, total: int, rate: float | None) -> None:
            assert task is not None
            done = step if phase == "warmup" else warm + step
            bar.update(task, completed=done, rate=f"{rate:,.0f} tok/s" if rate else phase)

        return update

    def finish(self, record: RunRecord) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.remove_task(self._task)
            self._task = None
        self.console.print(f"{self._label}: {outcome_line(record)}", highlight=False)

    def resumed(self, spec: RunSpec, index: int, total: int) -> None:
        self.console.print(f"[{index + 1}/{total}] {spec.run_id}: already recorded, skipped (--resume)",
                           highlight=False)

    def follow(self, event: RunEvent) -> RunRecord | None:
        """Show one event of a suite (one process or torchrun); the new record, if any."""
        if event.spec.run_id in self.skipped:
            return None if event.resumed else event.record
        total = event.total - len(self.skipped)
        if event.resumed:
            self.resumed(event.spec, self._shown, total)
            self._shown += 1
        elif event.record is None:
            self.start(event.spec, self._shown, total)
            self._shown += 1
        else:
            self.finish(event.record)
        return None if event.resumed else event.record
