"""MLflow: one run per mpbench run, nested under one parent run per results directory.

Params: the run's configuration, recipe options and software versions; step metrics: train
and eval loss, step time, loss scale and gradient norm (with the numerics profiler); summary
metrics at the last step: tokens/s, speedup over fp32 with its interval, peak memory, MFU,
J/token, eval loss. The record is the child's artifact; report.html and the suite files are
the parent's. Runs carry the tag mpbench.run_id (and the parent mpbench.results_id):
exporting again skips a run whose record is unchanged and replaces one whose record changed
(the old MLflow run is deleted), so nothing is duplicated. Timestamps are the record's own
(start, finish), so a live log and a later export are equal.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mpbench.errors import UserError
from mpbench.interop.base import Exporter, ExportRequest, register
from mpbench.interop.tracking import (
    TAG_DIGEST,
    TAG_KIND,
    TAG_RESULTS_ID,
    TAG_RUN_ID,
    SuiteInfo,
    comparison_time_ms,
    comparisons,
    suite_info,
    sync,
    tracked_run,
)
from mpbench.results.output import check_writable_dir, write_output
from mpbench.results.schema import RunRecord
from mpbench.results.store import RUNS

STATUS = {"ok": "FINISHED", "skipped": "FINISHED", "oom": "FAILED", "diverged": "FAILED",
          "failed": "FAILED"}
FIX = "give sqlite:///PATH.db or http(s)://HOST:PORT of a tracking server"


def default_uri(results: Path) -> str:
    """MLFLOW_TRACKING_URI when set, else an SQLite store inside the results directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(results / 'mlflow.db').resolve()}"


def local_store_dir(uri: str) -> Path | None:
    """The directory a local store lives in (sqlite file's folder, or a file store), else None."""
    if uri.startswith("sqlite:"):
        rest = uri.removeprefix("sqlite:///")
        return Path(rest).parent if rest and rest != uri and rest != ":memory:" else None
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri)
    return None


def check_uri(uri: str, option: str) -> None:
    """Refuse a URI that cannot work before anything is written (one line, exit 2)."""
    parsed = urlparse(uri)
    if uri.startswith("sqlite:") and not uri.startswith("sqlite:///"):
        raise UserError(f"{option} {uri}: an SQLite URI is sqlite:///RELATIVE.db or "
                        f"sqlite:////ABSOLUTE.db; {FIX}")
    store = local_store_dir(uri)
    if store is not None:
        check_writable_dir(store, option)
    elif parsed.scheme in ("http", "https"):
        host = parsed.hostname or ""
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            raise UserError(f"{option} {uri}: no tracking server answers at {host}:{port} "
                            f"({exc.strerror or exc}); start it or check the URI") from None


@dataclass
class _Child:
    mlflow_id: str
    digest: str | None
    metrics: dict[str, float] = field(default_factory=dict)


class MlflowTracker:
    """Logs records of one results directory into one experiment of one tracking store."""

    def __init__(self, uri: str, experiment: str, results: Path, option: str = "--tracking-uri"):
        check_uri(uri, option)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UserError(f"{option}: MLflow is not installed here; "
                            "pip install 'mpbench[mlflow]'") from None
        for name in ("mlflow", "alembic"):  # migrations and store notices are not our output
            logging.getLogger(name).setLevel(logging.WARNING)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.uri, self.results = uri, results
        store = local_store_dir(uri)
        if store is not None:
            write_output(store, None, option)
        sqlite_dir = store if uri.startswith("sqlite:") else None
        try:
            self.client = MlflowClient(tracking_uri=uri)
            self.experiment_id = self._experiment(experiment, sqlite_dir)
        except UserError:
            raise
        except Exception as exc:  # the store's own error: a bad URI, a foreign file, a refusal
            first = (str(exc).strip().splitlines() or [""])[0][:500]
            raise UserError(f"{option} {uri}: MLflow cannot use this store "
                            f"({type(exc).__name__}: {first}); {FIX}") from None
        self._parent: str | None = None
        self._suite: SuiteInfo | None = None
        self.children: dict[str, _Child] = {}

    def _experiment(self, name: str, sqlite_dir: Path | None) -> str:
        """The experiment's id, created when new; an SQLite store keeps artifacts next to it
        (MLflow's default would be ./mlruns of whatever directory the command ran in)."""
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            location = (sqlite_dir / "mlartifacts").resolve().as_uri() if sqlite_dir else None
            return str(self.client.create_experiment(name, artifact_location=location))
        if exp.lifecycle_stage == "deleted":
            raise UserError(f"experiment '{name}' is deleted in {self.uri}; restore it "
                            f"(mlflow experiments restore --experiment-id {exp.experiment_id}) "
                            "or choose another experiment name")
        return str(exp.experiment_id)

    def _search(self, filter_string: str) -> list[Any]:
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string,
                                           max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def suite(self) -> SuiteInfo:
        if self._suite is None:
            self._suite = suite_info(self.results)
        return self._suite

    def parent(self) -> str:
        """The suite's parent run: found by its results id, else created (once)."""
        if self._parent is not None:
            return self._parent
        info = self.suite()
        found = self._search(f"tags.`{TAG_RESULTS_ID}` = '{_quote(info.results_id)}' "
                             f"and tags.`{TAG_KIND}` = 'suite'")
        if found:
            self._parent = str(found[0].info.run_id)
            for run in self._search(f"tags.`mlflow.parentRunId` = '{self._parent}'"):
                tags = run.data.tags
                if TAG_RUN_ID in tags:
                    self.children[tags[TAG_RUN_ID]] = _Child(
                        run.info.run_id, tags.get(TAG_DIGEST), dict(run.data.metrics))
            return self._parent
        run = self.client.create_run(
            self.experiment_id, start_time=info.created_ms, run_name=info.results_id,
            tags={TAG_RESULTS_ID: info.results_id, TAG_KIND: "suite"})
        self._parent = str(run.info.run_id)
        self._log_batch(self._parent, params=info.params)
        return self._parent

    def _log_batch(self, run_id: str, metrics: list[tuple[str, float, int, int]] | None = None,
                   params: dict[str, str] | None = None) -> None:
        from mlflow.entities import Metric, Param

        metrics = metrics or []
        items = sorted((params or {}).items())
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in items[i:i + 100]])
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=[Metric(k, v, ts, step)
                                                   for k, v, ts, step in metrics[i:i + 1000]])

    def log_run(self, record: RunRecord) -> None:
        t = tracked_run(record)
        parent = self.parent()
        old = self.children.get(t.run_id)
        if old is not None and old.digest == t.digest:
            return
        if old is not None:  # the record changed (re-run): replace, do not duplicate
            self.client.delete_run(old.mlflow_id)
        run = self.client.create_run(
            self.experiment_id, start_time=t.start_ms, run_name=t.run_id,
            tags={**t.tags, TAG_RESULTS_ID: self.suite().results_id, "mlflow.parentRunId": parent})
        mid = str(run.info.run_id)
        points = [(k, v, t.end_ms, s) for k, pts in t.series.items() for s, v in pts]
        points += [(k, v, t.end_ms, t.step) for k, v in t.summary.items()]
        self._log_batch(mid, points, t.params)
        self._log_record(mid, record)
        self.client.set_terminated(mid, STATUS[t.status], end_time=t.end_ms)
        self.client.set_tag(mid, TAG_DIGEST, t.digest)  # last: a half-logged run is redone
        self.children[t.run_id] = _Child(mid, t.digest, dict(t.summary))

    def _log_record(self, mlflow_id: str, record: RunRecord) -> None:
        """The record file itself; a copy named by the run id where the file is named otherwise."""
        path = self.results / RUNS / f"{record.run_id}.json"
        if path.is_file():
            self.client.log_artifact(mlflow_id, str(path))
            return
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / (re.sub(r"[^\w.-]", "_", record.run_id) + ".json")
            copy.write_text(record.model_dump_json(indent=1), encoding="utf-8")
            self.client.log_artifact(mlflow_id, str(copy))

    def finish(self, records: list[RunRecord]) -> None:
        parent = self.parent()
        when = comparison_time_ms(records)
        for run_id, values in comparisons(records).items():
            child = self.children.get(run_id)
            if child is None:
                continue
            changed = {k: v for k, v in values.items() if child.metrics.get(k) != v}
            if changed:
                step = tracked_run(next(r for r in records if r.run_id == run_id)).step
                self._log_batch(child.mlflow_id, [(k, v, when, step) for k, v in changed.items()])
                child.metrics.update(changed)
        for path in self.suite().files:
            if path.is_file():
                self.client.log_artifact(parent, str(path))
        self.client.set_terminated(parent, "FINISHED", end_time=when or None)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


@register
class MlflowExporter(Exporter):
    name = "mlflow"
    summary = ("one MLflow run per mpbench run under a parent run for the suite "
               "(--tracking-uri, --experiment)")

    def export(self, request: ExportRequest) -> str:
        request.refuse(self.name, out=request.output)
        suite = suite_info(request.results)  # a results directory, not one record file
        uri = request.tracking_uri or default_uri(request.results)
        experiment = request.experiment or f"mpbench-{suite.name}"
        tracker = MlflowTracker(uri, experiment, request.results)
        tracker.parent()
        before = {k: c.digest for k, c in tracker.children.items()}
        sync(tracker, request.records)
        logged = sum(1 for k, c in tracker.children.items() if before.get(k) != c.digest)
        view = (f"view: mlflow ui --backend-store-uri {uri}" if local_store_dir(uri) is not None
                else f"view: {uri}")
        return (f"exported {len(request.records)} runs to MLflow {uri}, experiment "
                f"'{experiment}' ({logged} logged, {len(request.records) - logged} unchanged); "
                f"{view}")
