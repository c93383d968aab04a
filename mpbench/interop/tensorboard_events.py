"""TensorBoard: event files with each run's scalars, one TensorBoard run per mpbench run.

Layout: DIR/<suite>-<created>/<run_id>/events.out.tfevents.*, so `tensorboard --logdir DIR`
overlays the precisions' loss curves and step times, and several result sets side by side.
The scalars are those MLflow gets (mpbench.interop.tracking): step series at their global
step, summary metrics and the speedup over fp32 at the run's last step, wall time from the
record. A run's record events and its comparison events are one file each, named by a hash
of their content and written atomically, so exporting again rewrites nothing unchanged and
replaces a changed file instead of adding a second copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mpbench.errors import UserError
from mpbench.interop.base import Exporter, ExportRequest, register
from mpbench.interop.tracking import (
    comparison_time_ms,
    comparisons,
    suite_info,
    sync,
    tracked_run,
)
from mpbench.results.output import check_writable_dir, write_output
from mpbench.results.schema import RunRecord


def _writer_class(option: str) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(f"{option}: TensorBoard is not installed here; "
                        "pip install 'mpbench[tensorboard]'") from None
    return SummaryWriter


class TensorBoardTracker:
    def __init__(self, logdir: Path, results: Path, option: str = "--out"):
        check_writable_dir(logdir, option)  # also refuses a file
        self.writer = _writer_class(option)
        self.logdir, self.results = logdir, results
        self._subdir: str | None = None
        self.written = 0

    def run_dir(self, run_id: str) -> Path:
        if self._subdir is None:
            info = suite_info(self.results)
            stamp = datetime.fromtimestamp(info.created_ms / 1000, timezone.utc)
            self._subdir = re.sub(r"[^\w.-]", "-", f"{info.name}-{stamp:%Y%m%d-%H%M%S}")
        return self.logdir / self._subdir / run_id

    def _write(self, run_dir: Path, kind: str, content: str,
               fill: Callable[[Any], None]) -> None:
        """One event file per (run, kind), named by its content's hash; replaced atomically."""
        suffix = f".mpbench-{kind}-{hashlib.sha256(content.encode()).hexdigest()[:16]}"
        old = list(run_dir.glob(f"events.out.tfevents.*.mpbench-{kind}-*"))
        if any(p.name.endswith(suffix) for p in old):
            return
        write_output(run_dir, None, "--out")
        tmp = Path(tempfile.mkdtemp(dir=self.logdir, prefix=".mpbench-tmp-"))
        try:
            writer = self.writer(log_dir=str(tmp), filename_suffix=suffix)
            fill(writer)
            writer.close()
            (new,) = tmp.glob("events.out.tfevents.*")
            os.replace(new, run_dir / new.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for p in old:
            p.unlink(missing_ok=True)
        self.written += 1

    def log_run(self, record: RunRecord) -> None:
        t = tracked_run(record)
        if not t.series and not t.summary:
            return  # skipped before training: nothing to plot (the reason is in MLflow/report)
        wall = t.end_ms / 1000

        def fill(w: Any) -> None:
            for key, points in t.series.items():
                for step, value in points:
                    w.add_scalar(key, value, step, walltime=wall)
            for key, value in t.summary.items():
                w.add_scalar(key, value, t.step, walltime=wall)
            table = "\n".join(f"| {k} | {v} |" for k, v in sorted(t.params.items()))
            w.add_text("mpbench/params", f"| param | value |\n|---|---|\n{table}", t.step,
                       walltime=wall)

        self._write(self.run_dir(t.run_id), "record", t.digest, fill)

    def finish(self, records: list[RunRecord]) -> None:
        wall = comparison_time_ms(records) / 1000
        by_id = {r.run_id: r for r in records}
        for run_id, values in comparisons(records).items():
            step = tracked_run(by_id[run_id]).step

            def fill(w: Any, values: dict[str, float] = values, step: int = step) -> None:
                for key, value in values.items():
                    w.add_scalar(key, value, step, walltime=wall)

            self._write(self.run_dir(run_id), "compare",
                        json.dumps([values, step, wall], sort_keys=True), fill)


@register
class TensorBoardExporter(Exporter):
    name = "tensorboard"
    summary = "event files per run under -o DIR (tensorboard --logdir DIR)"

    def export(self, request: ExportRequest) -> str:
        request.refuse(self.name, tracking_uri=request.tracking_uri,
                       experiment=request.experiment)
        if request.output is None:
            raise UserError("--out: --format tensorboard needs -o DIR, the directory for the "
                            "event files (then: tensorboard --logdir DIR)")
        suite_info(request.results)  # a results directory, not one record file
        tracker = TensorBoardTracker(request.output, request.results)
        sync(tracker, request.records)
        return (f"wrote TensorBoard events for {len(request.records)} runs under "
                f"{tracker.run_dir('x').parent} ({tracker.written} files new or replaced); "
                f"view: tensorboard --logdir {request.output}")
