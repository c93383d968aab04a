"""MLflow and TensorBoard: export, live logging during `mpbench run`, and their user errors.

One smoke suite (with the numerics profiler, for loss scale and gradient norm) is trained
once per module with --mlflow and --tensorboard, then exported after the fact into a second
store and log directory; the tests read both back with MlflowClient and EventAccumulator.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixture_records import gpu_env, numerics, payload, record, stored_results, write_results

from mpbench.analysis.compare import Groups, speedup
from mpbench.cli.main import cli
from mpbench.interop.tracking import comparisons, tracked_run
from mpbench.results.payloads import MfuResult, NvmlResult
from mpbench.results.store import load_records

mlflow_tracking = pytest.importorskip("mlflow.tracking")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "suites" / "smoke.yaml"
RUN_IDS = [f"gpt-tiny__{p}__b4-t32__seed0" for p in ("fp32", "bf16", "fp16")]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@dataclass
class Logged:
    base: Path
    out: Path
    uri: str
    """One SQLite store (created once: its migrations take seconds), one experiment per use."""
    live_tb: Path
    export_tb: Path


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    base = tmp_path_factory.mktemp("tracking")
    suite = base / "smoke-numerics.yaml"
    suite.write_text(SMOKE.read_text() + "profilers: [numerics]\n")
    out = base / "out"
    live = Logged(base, out, f"sqlite:///{base}/store/mlflow.db", base / "tb-live",
                  base / "tb-export")
    code, stdout, stderr = invoke("run", str(suite), "-o", str(out), "--quiet", "--mlflow",
                                  live.uri, "--mlflow-experiment", "live", "--tensorboard",
                                  str(live.live_tb))
    assert code == 0, stderr
    assert "mlflow: 3 runs in" in stdout and "tensorboard: 3 runs in" in stdout
    assert "warning" not in stderr
    code, stdout, stderr = invoke("export", str(out), "--format", "mlflow", "--tracking-uri",
                                  live.uri)
    assert code == 0, stderr
    assert "(3 logged, 0 unchanged)" in stdout
    code, _, stderr = invoke("export", str(out), "--format", "tensorboard", "-o",
                             str(live.export_tb))
    assert code == 0, stderr
    return live


def mlflow_snapshot(uri: str, dst: Path, experiment: str = "mpbench-smoke") -> dict[str, Any]:
    """Everything an experiment holds for the suite, by mpbench run id ('suite': the parent)."""
    client = mlflow_tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    snap: dict[str, Any] = {}
    parents = {}
    for run in client.search_runs([exp.experiment_id]):
        tags = dict(run.data.tags)
        key = tags.get("mpbench.run_id", "suite")
        parents[key] = (tags.pop("mlflow.parentRunId", None), run.info.run_id)
        history = {k: sorted((m.step, m.value, m.timestamp) for m in
                             client.get_metric_history(run.info.run_id, k))
                   for k in run.data.metrics}
        artifacts = {}
        for f in client.list_artifacts(run.info.run_id):
            local = client.download_artifacts(run.info.run_id, f.path, str(dst))
            artifacts[f.path] = Path(local).read_bytes()
        snap[key] = {"params": dict(run.data.params), "tags": tags, "metrics": history,
                     "artifacts": artifacts, "status": run.info.status,
                     "start": run.info.start_time, "end": run.info.end_time,
                     "name": run.info.run_name}
    suite_id = parents["suite"][1]
    snap["nesting"] = {k: p == suite_id for k, (p, _) in parents.items() if k != "suite"}
    return snap


def tb_snapshot(logdir: Path) -> dict[str, dict[str, list[tuple[int, float, float]]]]:
    runs: dict[str, dict[str, list[tuple[int, float, float]]]] = {}
    for run_dir in sorted(p.parent for p in logdir.rglob("events.out.tfevents.*")):
        acc = event_accumulator.EventAccumulator(str(run_dir))
        acc.Reload()
        runs[str(run_dir.relative_to(logdir))] = {
            tag: [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"]}
    return runs


@pytest.mark.integration
def test_mlflow_export_reads_back(logged: Logged, tmp_path: Path) -> None:
    records = {r.run_id: r for r in load_records(logged.out)}
    snap = mlflow_snapshot(logged.uri, tmp_path)
    assert sorted(k for k in snap if k not in ("suite", "nesting")) == sorted(RUN_IDS)
    assert snap["nesting"] == dict.fromkeys(RUN_IDS, True)
    parent = snap["suite"]
    assert parent["tags"]["mpbench.kind"] == "suite" and parent["status"] == "FINISHED"
    assert parent["params"]["name"] == "smoke" and parent["params"]["train.steps"] == "6"
    assert set(parent["artifacts"]) == {"report.html", "suite.yaml", "suite.resolved.json",
                                        "mpbench-results.json"}
    assert parent["artifacts"]["report.html"] == (logged.out / "report.html").read_bytes()

    fp16 = records[RUN_IDS[2]]
    run = snap[fp16.run_id]
    p = run["params"]
    assert (p["model"], p["precision"], p["batch_size"], p["seq_len"], p["device"]) == (
        "gpt-tiny", "fp16", "4", "32", "cpu")
    assert p["recipe.options.init_scale"] == "65536.0"
    assert p["env.torch"] == fp16.env.torch
    assert run["tags"]["mpbench.status"] == "ok" and run["status"] == "FINISHED"
    assert run["tags"]["mlflow.source.git.commit"] == fp16.env.mpbench_commit
    assert run["artifacts"] == {f"{fp16.run_id}.json":
                                (logged.out / "runs" / f"{fp16.run_id}.json").read_bytes()}
    m = run["metrics"]
    assert [(s, v) for s, v, _ in m["train/loss"]] == [(s, v) for s, v in fp16.loss_curve]
    assert [v for _, v, _ in m["train/step_time_ms"]] == fp16.step_times_ms
    assert [s for s, _, _ in m["train/step_time_ms"]] == list(range(3, 9))  # after 2 warm-up
    assert [(s, v) for s, v, _ in m["eval/loss"]] == [(s, v) for s, v in fp16.eval_curve]
    numerics = stored_results(fp16)["numerics"]
    assert [(s, v) for s, v, _ in m["numerics/loss_scale"]] == [tuple(x) for x in numerics["loss_scale"]]
    assert [(s, v) for s, v, _ in m["numerics/grad_norm"]] == [tuple(x) for x in numerics["grad_norm"]]
    last = fp16.loss_curve[-1][0]
    assert m["tokens_per_s"] == [(last, fp16.tokens_per_s, m["tokens_per_s"][0][2])]
    assert m["eval_loss"][0][1] == fp16.eval_loss
    assert fp16.memory is not None and fp16.memory.peak_bytes is not None
    assert m["peak_memory_mib"][0][1] == fp16.memory.peak_bytes / 2**20
    assert "mfu" not in m  # no spec peak on a CPU: not measured, not logged as 0

    # the speedup is the analysis code's own (summary table), seeds pooled, with its interval
    groups = Groups(list(records.values()))
    for g in groups:
        ratio = speedup(g, groups.baseline(g))
        assert ratio is not None
        rm = snap[g.records[0].run_id]["metrics"]
        if g.recipe_id == "fp32":
            assert rm["speedup_vs_fp32"][0][1] == 1.0 and "speedup_vs_fp32_low" not in rm
        else:
            assert rm["speedup_vs_fp32"][0][1] == ratio.value
            if ratio.low is not None and ratio.high is not None:
                assert (rm["speedup_vs_fp32_low"][0][1], rm["speedup_vs_fp32_high"][0][1]) == (
                    ratio.low, ratio.high)
            else:  # one run a side: the run-level estimator gives no interval, none is logged
                assert "speedup_vs_fp32_low" not in rm and "speedup_vs_fp32_high" not in rm


@pytest.mark.integration
def test_live_mlflow_log_equals_the_export(logged: Logged, tmp_path: Path) -> None:
    live = mlflow_snapshot(logged.uri, tmp_path / "live", "live")
    exported = mlflow_snapshot(logged.uri, tmp_path / "export")
    assert live == exported


@pytest.mark.integration
def test_reexport_skips_unchanged_runs_and_replaces_changed_ones(logged: Logged,
                                                                  tmp_path: Path) -> None:
    uri, again = logged.uri, ("--tracking-uri", logged.uri, "--experiment", "again")
    code, stdout, _ = invoke("export", str(logged.out), "--format", "mlflow", *again)
    assert code == 0 and "(3 logged, 0 unchanged)" in stdout
    first = mlflow_snapshot(uri, tmp_path / "a", "again")
    code, stdout, _ = invoke("export", str(logged.out), "--format", "mlflow", *again)
    assert code == 0 and "(0 logged, 3 unchanged)" in stdout
    assert mlflow_snapshot(uri, tmp_path / "b", "again") == first

    copy = tmp_path / "rerun"  # the same results directory with bf16 re-run
    shutil.copytree(logged.out, copy)
    path = copy / "runs" / f"{RUN_IDS[1]}.json"
    raw = json.loads(path.read_text())
    raw["eval_loss"] = 1.5
    path.write_text(json.dumps(raw))
    code, stdout, _ = invoke("export", str(copy), "--format", "mlflow", *again)
    assert code == 0 and "(1 logged, 2 unchanged)" in stdout
    after = mlflow_snapshot(uri, tmp_path / "c", "again")
    assert len(after) == len(first)  # replaced, not added: the old MLflow run is deleted
    assert after[RUN_IDS[1]]["metrics"]["eval_loss"][0][1] == 1.5
    assert after[RUN_IDS[0]] == first[RUN_IDS[0]]


@pytest.mark.integration
def test_tensorboard_events_read_back_and_equal_the_live_log(logged: Logged) -> None:
    records = {r.run_id: r for r in load_records(logged.out)}
    exported = tb_snapshot(logged.export_tb)
    assert sorted(Path(k).name for k in exported) == sorted(RUN_IDS)
    assert len({Path(k).parent for k in exported}) == 1  # one folder per results directory
    assert re.fullmatch(r"smoke-\d{8}-\d{6}", str(Path(next(iter(exported))).parent))
    fp16 = records[RUN_IDS[2]]
    scalars = next(v for k, v in exported.items() if k.endswith(fp16.run_id))
    assert [(s, v) for s, v, _ in scalars["train/loss"]] == [
        (s, pytest.approx(v, rel=1e-6)) for s, v in fp16.loss_curve]  # TensorBoard keeps float32
    assert [s for s, _, _ in scalars["train/step_time_ms"]] == list(range(3, 9))
    assert "numerics/loss_scale" in scalars and "numerics/grad_norm" in scalars
    expected = comparisons(list(records.values()))[fp16.run_id]["speedup_vs_fp32"]
    assert scalars["speedup_vs_fp32"][0][1] == pytest.approx(expected, rel=1e-6)
    assert scalars["speedup_vs_fp32"][0][0] == tracked_run(fp16).step
    assert tb_snapshot(logged.live_tb) == exported
    assert not [p for p in logged.export_tb.rglob(".mpbench-tmp-*")]  # atomic writes cleaned up

    files = sorted(p.name for p in logged.export_tb.rglob("*") if p.is_file())
    code, stdout, _ = invoke("export", str(logged.out), "--format", "tensorboard", "-o",
                             str(logged.export_tb))
    assert code == 0 and "(0 files new or replaced)" in stdout
    assert sorted(p.name for p in logged.export_tb.rglob("*") if p.is_file()) == files


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def small_results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    write_results(out, [record("fp32"), record("bf16", step_ms=50.0)])
    return out


@pytest.mark.unit
@pytest.mark.parametrize("args, message", [
    (["--format", "mlflow", "--tracking-uri", "foo://bar"],
     "error: --tracking-uri foo://bar: MLflow cannot use this store"),
    (["--format", "mlflow", "--tracking-uri", "sqlite:/relative.db"],
     "error: --tracking-uri sqlite:/relative.db: an SQLite URI is sqlite:///RELATIVE.db"),
    (["--format", "mlflow", "--tracking-uri", "http://127.0.0.1:{port}"],
     "error: --tracking-uri http://127.0.0.1:{port}: no tracking server answers at 127.0.0.1:{port}"),
    (["--format", "mlflow", "--tracking-uri", "sqlite:///{blocker}/sub/m.db"],
     "error: --tracking-uri: {blocker} is a file, not a directory"),
    (["--format", "tensorboard", "-o", "{blocker}/tb"], "error: --out: {blocker} is a file"),
    (["--format", "tensorboard"], "error: --out: --format tensorboard needs -o DIR"),
    (["--format", "mlflow", "-o", "x"], "error: --out: not used by --format mlflow"),
])
def test_export_user_errors_are_one_line_exit_2(small_results: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                args: list[str], message: str) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fill = {"port": str(closed_port()), "blocker": str(blocker)}
    code, _, stderr = invoke("export", str(small_results), *[a.format(**fill) for a in args])
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith(message.format(**fill))


@pytest.mark.unit
def test_run_refuses_bad_tracking_targets_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = tmp_path / "out"
    port = closed_port()
    code, _, stderr = invoke("run", str(SMOKE), "-o", str(out), "--mlflow",
                             f"http://127.0.0.1:{port}")
    assert code == 2 and stderr.startswith(f"error: --mlflow http://127.0.0.1:{port}: no tracking")
    code, _, stderr = invoke("run", str(SMOKE), "-o", str(out), "--tensorboard", str(blocker / "x"))
    assert code == 2 and stderr.startswith(f"error: --tensorboard: {blocker} is a file")
    assert not out.exists()


@pytest.mark.integration
def test_a_tracking_failure_during_run_is_a_warning_and_keeps_the_records(
        logged: Logged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    def outage(*args: Any, **kwargs: Any) -> None:
        raise MlflowException("simulated: the tracking server went away")

    monkeypatch.setattr(mlflow_tracking.MlflowClient, "log_batch", outage)
    suite = tmp_path / "short.yaml"  # one short run: the failure path, not the training, is tested
    suite.write_text(SMOKE.read_text().replace("steps: 6", "steps: 2").replace(
        "warmup_steps: 2", "warmup_steps: 1"))
    out = tmp_path / "out"
    code, stdout, stderr = invoke("run", str(suite), "-o", str(out), "--quiet", "--no-report",
                                  "--only", "fp32", "--mlflow", logged.uri, "--mlflow-experiment",
                                  "outage", "--tensorboard", str(tmp_path / "tb"))
    assert code == 0
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "mlflow logging failed (MlflowException: simulated" in warnings[0]
    assert f"mpbench export {out} --format mlflow --tracking-uri {logged.uri}" in warnings[0]
    assert (out / "runs" / "gpt-tiny__fp32__b4-t32__seed0.json").is_file()
    assert "results:" in stdout
    assert "tensorboard: 1 runs in" in stdout and "mlflow: " not in stdout
    assert len(list((tmp_path / "tb").rglob("events.out.tfevents.*mpbench-record*"))) == 1


@pytest.mark.unit
def test_comparisons_are_the_summary_tables_speedups() -> None:
    records = [record(p, seed, step_ms=ms) for p, ms in (("fp32", 100.0), ("bf16", 50.0))
               for seed in (0, 1)] + [record("fp16", status="skipped", reason="no fp16 here")]
    comp = comparisons(records)
    assert set(comp) == {r.run_id for r in records if r.status == "ok"}
    bf16 = next(v for k, v in comp.items() if "bf16" in k)
    assert bf16["speedup_vs_fp32"] == pytest.approx(2.0, rel=0.05)
    assert bf16["speedup_vs_fp32_low"] < bf16["speedup_vs_fp32"] < bf16["speedup_vs_fp32_high"]
    assert next(v for k, v in comp.items() if "fp32" in k) == {"speedup_vs_fp32": 1.0}
    skipped = tracked_run(records[-1])
    assert skipped.series == {} and skipped.tags["mpbench.reason"] == "no fp16 here"


@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("MPBENCH_TEST_MLFLOW_SERVER"),
                    reason="starts a real `mlflow server` on 127.0.0.1 (20-60 s on a busy 2-core VM); "
                           "set MPBENCH_TEST_MLFLOW_SERVER=1 to run it")
def test_export_to_a_live_mlflow_server_over_http(small_results: Path, tmp_path: Path) -> None:
    port = closed_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.5)
        for expected in ("(2 logged, 0 unchanged)", "(0 logged, 2 unchanged)"):
            code, stdout, stderr = invoke("export", str(small_results), "--format", "mlflow",
                                          "--tracking-uri", uri)
            assert code == 0 and expected in stdout, stderr
        snap = mlflow_snapshot(uri, tmp_path / "dl", "mpbench-fixture")
        assert snap["nesting"] == {"gpt-tiny__fp32__b8-t64__seed0": True,
                                   "gpt-tiny__bf16__b8-t64__seed0": True}
        bf16 = snap["gpt-tiny__bf16__b8-t64__seed0"]
        assert bf16["metrics"]["speedup_vs_fp32"][0][1] == pytest.approx(2.0, rel=0.05)
        assert list(bf16["artifacts"]) == ["gpt-tiny__bf16__b8-t64__seed0.json"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.unit
def test_summary_metrics_carry_mfu_energy_and_leave_out_what_was_not_measured() -> None:
    gpu = record("bf16", env=gpu_env(), profiler_results={
        "mfu": payload(MfuResult, dtype="bf16", mfu_vs_ceiling=0.41),
        "nvml": payload(NvmlResult, joules_per_token=0.0125),
        "numerics": numerics(loss_scale=[], grad_norm=[[1, 0.5], [2, None], [3, 0.25]])},
    ).model_copy(update={"mfu": 0.35})
    t = tracked_run(gpu)
    assert (t.summary["mfu"], t.summary["mfu_vs_measured_ceiling"],
            t.summary["joules_per_token"]) == (0.35, 0.41, 0.0125)
    assert t.series["numerics/grad_norm"] == [(1, 0.5), (3, 0.25)]  # a non-finite norm is left out
    assert "numerics/loss_scale" not in t.series
    assert t.params["gpu.name"] == "NVIDIA H100 80GB HBM3" and t.params["env.cuda"] == "12.8"
    cpu = tracked_run(record("fp32"))
    assert not {"mfu", "mfu_vs_measured_ceiling", "joules_per_token"} & set(cpu.summary)
    assert "env.cuda" not in cpu.params and "gpu.name" not in cpu.params
