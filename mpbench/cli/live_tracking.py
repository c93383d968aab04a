"""`mpbench run --mlflow URI --tensorboard DIR`: log each run to tracking tools as it finishes.

The trackers are the exporters' own (mpbench/interop/): each record is logged right after
it is written, and when the suite ends every record goes through `sync`, as
`mpbench export` does, so the live log equals an export after the fact. A bad URI or
directory is refused before training (exit 2); a tracking failure during the suite is one
warning line: the records are written regardless, and that tracker is off for the rest of
the suite (export later).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mpbench.results.schema import RunRecord

F = TypeVar("F", bound=Callable[..., Any])


def tracking_options(f: F) -> F:
    f = click.option("--tensorboard", "tensorboard", type=click.Path(path_type=Path),
                     metavar="DIR", help="Write TensorBoard event files per run under DIR.")(f)
    f = click.option("--mlflow-experiment", metavar="NAME",
                     help="MLflow experiment for --mlflow (default: mpbench-<suite>).")(f)
    f = click.option("--mlflow", "mlflow_uri", metavar="URI",
                     help="Log each run to MLflow as it finishes: sqlite:///PATH.db or "
                          "http(s)://HOST:PORT.")(f)
    return f


class LiveTracking:
    def __init__(self, out: Path, trackers: dict[str, tuple[Any, str]], targets: dict[str, str]):
        self.out = out
        self.trackers = trackers
        """format name -> (tracker, the export options that redo it later)"""
        self.targets = targets

    @classmethod
    def open(cls, out: Path, suite_name: str, mlflow_uri: str | None,
             experiment: str | None, tensorboard: Path | None) -> LiveTracking:
        """Connect before training; a UserError (exit 2) when a target cannot work."""
        trackers: dict[str, tuple[Any, str]] = {}
        targets: dict[str, str] = {}
        if experiment is not None and mlflow_uri is None:
            from mpbench.errors import UserError

            raise UserError("--mlflow-experiment: needs --mlflow URI")
        if mlflow_uri is not None:
            from mpbench.interop.mlflow_tracking import MlflowTracker

            name = experiment or f"mpbench-{suite_name}"
            trackers["mlflow"] = (MlflowTracker(mlflow_uri, name, out, "--mlflow"),
                                  f"--tracking-uri {mlflow_uri} --experiment {name}")
            targets["mlflow"] = f"{mlflow_uri}, experiment '{name}'"
        if tensorboard is not None:
            from mpbench.interop.tensorboard_events import TensorBoardTracker

            trackers["tensorboard"] = (TensorBoardTracker(tensorboard, out, "--tensorboard"),
                                       f"-o {tensorboard}")
            targets["tensorboard"] = f"{tensorboard}; view: tensorboard --logdir {tensorboard}"
        return cls(out, trackers, targets)

    def _guard(self, action: Callable[[Any], None]) -> None:
        for fmt, (tracker, redo) in list(self.trackers.items()):
            try:
                action(tracker)
            except Exception as exc:  # tracking must never cost the suite its results
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                click.echo(f"warning: {fmt} logging failed ({type(exc).__name__}: {first}); "
                           f"the results in {self.out} are kept; {fmt} logging is off for the "
                           f"rest of this suite: `mpbench export {self.out} --format {fmt} "
                           f"{redo}` logs them later", err=True)
                del self.trackers[fmt]

    def log_run(self, record: RunRecord) -> None:
        self._guard(lambda t: t.log_run(record))

    def finish(self, records: list[RunRecord]) -> None:
        from mpbench.interop.tracking import sync

        self._guard(lambda t: sync(t, records))
        for fmt in self.trackers:
            click.echo(f"{fmt}: {len(records)} runs in {self.targets[fmt]}")
