"""`mpbench gate` and `mpbench export` end to end, on records from one real tiny run.

The run is made once per module; each test copies its JSON and changes what it needs
(step times, memory, status, device), then calls the CLI through CliRunner.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

from mpbench.cli.main import cli
from mpbench.results.schema import SCHEMA_VERSION

DATA = Path(__file__).resolve().parent / "data"
SUITE = DATA / "gate_tiny.yaml"
CONFIG = "gpt-gate b8×t32 fp32"
RUN_ID = "gpt-gate__fp32__b8-t32__seed0"
RUN_IDS = [RUN_ID, f"{RUN_ID}-r1", f"{RUN_ID}-r2"]
"""The baseline has 3 repeats: the gate needs 2+ runs per side to call a step-time change."""


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def run_suite(suite: Path, out: Path, *extra: str) -> None:
    threads = torch.get_num_threads()
    try:  # the suite's train.threads is process-wide: hand it back to later tests
        code, _, stderr = invoke("run", str(suite), "-o", str(out), "--quiet", "--no-report",
                                 *extra)
    finally:
        torch.set_num_threads(threads)
    assert code == 0, stderr


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gate") / "baseline"
    run_suite(SUITE, out, "--repeats", "3", "--in-process")  # fresh processes: see test_rerun
    return out


def calm(record: dict[str, Any]) -> None:
    """Every repeat gets repeat 0's step times (+0.5% per repeat): a quiet machine, so a
    constructed slowdown is judged against known, small between-run noise."""
    first = json.loads(Path(record["_first"]).read_text())["step_times_ms"]
    record["step_times_ms"] = [t * (1 + 0.005 * record["repeat"]) for t in first]


def variant(src: Path, dest: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A copy of a results directory with every run record passed through `edit`."""
    shutil.copytree(src, dest)
    for path in (dest / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        if edit is not None:
            record["_first"] = str(src / "runs" / f"{RUN_ID}.json")
            edit(record)
            record.pop("_first", None)
        path.write_text(json.dumps(record))
    return dest


def gate(current: Path, baseline: Path, *extra: str) -> tuple[int, str, str]:
    return invoke("gate", str(current), "--baseline", str(baseline), *extra)


def findings(path: Path) -> dict[str, dict[str, Any]]:
    return {f["metric"]: f for f in json.loads(path.read_text())["findings"]}


@pytest.mark.integration
def test_identical_results_pass(baseline: Path, tmp_path: Path) -> None:
    current = variant(baseline, tmp_path / "current")
    code, out, err = gate(current, baseline, "--json", str(tmp_path / "g.json"))
    assert code == 0, out + err
    assert "gate PASSED" in out
    got = findings(tmp_path / "g.json")
    assert set(got) == {"step time", "peak memory", "eval loss"}
    assert got["step time"]["change"].startswith("+0.0% [")
    assert got["peak memory"]["verdict"] == got["eval loss"]["verdict"] == "ok"
    assert "drift probe" in out  # every record carries the machine-drift probe
    # several baselines pool their runs (runs double) and still pass; so does a directory
    # holding results directories
    code, out, _ = invoke("gate", str(current), "-b", str(baseline), "-b", str(current),
                          "--json", str(tmp_path / "pooled.json"))
    assert code == 0, out
    assert "(6 runs, n=144)" in findings(tmp_path / "pooled.json")["step time"]["baseline"]
    nightly = tmp_path / "nightly"
    variant(baseline, nightly / "a")
    variant(baseline, nightly / "b")
    code, out, _ = gate(current, nightly, "--json", str(tmp_path / "dir.json"))
    assert code == 0, out
    assert "(6 runs, n=144)" in findings(tmp_path / "dir.json")["step time"]["baseline"]


@pytest.mark.integration
def test_injected_ten_percent_slowdown_fails_naming_run_and_metric(baseline: Path, tmp_path: Path) -> None:
    def slow(r: dict[str, Any]) -> None:
        calm(r)
        r["step_times_ms"] = [t * 1.10 for t in r["step_times_ms"]]

    quiet = variant(baseline, tmp_path / "quiet", calm)
    current = variant(baseline, tmp_path / "current", slow)
    md = tmp_path / "gate.md"
    code, out, _ = gate(current, quiet, "--summary-md", str(md), "--json", str(tmp_path / "g.json"))
    assert code == 1
    assert f"gate FAILED: 1 problem(s): {CONFIG} step time (regression: slower by 10.0%" in out
    step = findings(tmp_path / "g.json")["step time"]
    assert step["verdict"] == "regression" and step["runs"] == RUN_IDS
    assert step["values"]["ratio"]["value"] == pytest.approx(1.10)
    # 3 vs 3 runs, every current run slower: the exact rank test's smallest p, 1/20 <= alpha
    assert step["values"]["p_slower"] == pytest.approx(0.05)
    assert step["values"]["test"].startswith("one-sided Mann-Whitney U")
    # one run per side is never enough to call it: inconclusive, with the repeats to run
    one = tmp_path / "one"
    variant(current, one)
    for extra in RUN_IDS[1:]:
        (one / "runs" / f"{extra}.json").unlink()
    code, out, _ = gate(one, one, "--json", str(tmp_path / "one.json"))
    assert code == 0 and "--repeats 3" in findings(tmp_path / "one.json")["step time"]["detail"]
    text = md.read_text()
    assert text.startswith("## mpbench gate") and "❌ regression" in text and CONFIG in text
    # a larger allowance lets the same data pass
    code, out, _ = gate(current, quiet, "--max-slowdown", "15%")
    assert code == 0, out


@pytest.mark.integration
def test_memory_growth_fails(baseline: Path, tmp_path: Path) -> None:
    def bigger(r: dict[str, Any]) -> None:
        r["memory"]["peak_bytes"] = int(r["memory"]["peak_bytes"] * 1.5) + 8 * 2**20

    code, out, _ = gate(variant(baseline, tmp_path / "current", bigger), baseline)
    assert code == 1
    assert f"{CONFIG} peak memory (regression: grew by" in out


@pytest.mark.integration
def test_newly_failing_run_fails(baseline: Path, tmp_path: Path) -> None:
    def oom(r: dict[str, Any]) -> None:
        r.update(status="oom", reason="OutOfMemoryError: CUDA out of memory", step_times_ms=[],
                 step_stats=None, tokens_per_s=None, memory=None, eval_loss=None)

    code, out, _ = gate(variant(baseline, tmp_path / "current", oom), baseline)
    assert code == 1
    assert f"{CONFIG} status (regression: used to succeed, now oom)" in out


@pytest.mark.integration
def test_worse_eval_loss_fails(baseline: Path, tmp_path: Path) -> None:
    def worse(r: dict[str, Any]) -> None:
        r["eval_loss"] += 0.05

    current = variant(baseline, tmp_path / "current", worse)
    code, out, _ = gate(current, baseline)
    assert code == 1 and f"{CONFIG} eval loss (regression: worse by 0.0500 nats" in out
    assert gate(current, baseline, "--loss-tolerance", "0.1")[0] == 0


@pytest.mark.integration
def test_unmatched_runs_are_listed_and_strict_fails_on_them(baseline: Path, tmp_path: Path) -> None:
    def rename(r: dict[str, Any]) -> None:
        r["run_id"] = r["run_id"].replace("gpt-gate", "gpt-other")
        r["model"] = r["config_key"]["model"] = "gpt-other"

    current = variant(baseline, tmp_path / "current", rename)
    code, out, _ = gate(current, baseline)
    assert code == 0
    assert "new runs without a baseline: gpt-other__fp32__b8-t32__seed0" in out
    assert f"baseline runs missing from current: {RUN_ID}" in out
    assert gate(current, baseline, "--strict")[0] == 1


@pytest.mark.integration
def test_device_mismatch_exits_2_unless_allowed(baseline: Path, tmp_path: Path) -> None:
    def other_cpu(r: dict[str, Any]) -> None:
        r["device_name"] = "Intel Xeon"

    current = variant(baseline, tmp_path / "current", other_cpu)
    code, _, err = gate(current, baseline)
    assert code == 2
    assert err.startswith("error: device or profile differs: current ran on cpu 'Intel Xeon', "
                          "profile 'default'; baseline on cpu '")
    assert err.rstrip().endswith("or pass --allow-mismatch to compare anyway")
    code, out, _ = gate(current, baseline, "--allow-mismatch")
    assert code == 0 and "compared despite a mismatch" in out

    def other_profile(r: dict[str, Any]) -> None:
        r["profile"] = "cuda"

    code, _, err = gate(variant(baseline, tmp_path / "profile", other_profile), baseline)
    assert code == 2 and "profile 'cuda'" in err


@pytest.mark.integration
def test_bad_inputs_exit_2_with_a_clear_message(baseline: Path, tmp_path: Path) -> None:
    code, _, err = gate(tmp_path / "nope", baseline)
    assert code == 2
    assert err == (f"error: CURRENT: {tmp_path / 'nope'} not found; give a results directory "
                   "written by `mpbench run` or a file written by `mpbench export`\n")

    corrupt = variant(baseline, tmp_path / "corrupt")
    record = corrupt / "runs" / f"{RUN_ID}.json"
    record.write_text('{"run_id": "x", "schema_version": 1, ')
    code, _, err = gate(baseline, corrupt)
    assert code == 2
    assert err.startswith(f"error: --baseline: {record}: corrupt JSON at line 1")

    def future(r: dict[str, Any]) -> None:
        r["schema_version"] = 99

    code, _, err = gate(variant(baseline, tmp_path / "future", future), baseline)
    assert code == 2 and f"schema_version 99 is newer than this mpbench reads ({SCHEMA_VERSION})" in err

    def broken(r: dict[str, Any]) -> None:
        del r["status"]

    code, _, err = gate(variant(baseline, tmp_path / "broken", broken), baseline)
    assert code == 2 and "corrupt run record" in err and "status" in err

    code, _, err = invoke("gate", str(baseline), "--baseline", str(baseline), "--max-slowdown", "5")
    assert code == 2 and "'5' is ambiguous; write 5% for percent" in err


@pytest.mark.integration
def test_markdown_goes_to_github_step_summary(baseline: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    code, _, _ = invoke("gate", str(baseline), "--baseline", str(baseline),
                        env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert code == 0
    text = summary.read_text()
    assert text.startswith("earlier step\n## mpbench gate\n") and "gate PASSED" in text
    assert "| run | metric | baseline | current | change | verdict |" in text


@pytest.mark.integration
def test_export_is_read_by_real_pytest_benchmark_and_by_the_gate(baseline: Path, tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    code, stdout, _ = invoke("export", str(baseline), "--format", "pytest-benchmark", "-o", str(out))
    assert code == 0 and "3 benchmarks" in stdout
    data = json.loads(out.read_text())
    bench = next(b for b in data["benchmarks"] if b["name"] == RUN_ID)
    record = json.loads((baseline / "runs" / f"{RUN_ID}.json").read_text())
    assert bench["name"] == RUN_ID and bench["stats"]["rounds"] == len(record["step_times_ms"]) == 24
    assert bench["stats"]["median"] * 1e3 == pytest.approx(record["step_stats"]["median_ms"])

    slow = tmp_path / "slow.json"
    data["benchmarks"][0]["stats"]["median"] *= 1.5
    slow.write_text(json.dumps(data))
    cmd = [sys.executable, "-m", "pytest_benchmark", "compare", str(out), str(slow),
           "--columns=median,rounds", "--group-by=name"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Failed to load" not in done.stdout + done.stderr
    assert f"{RUN_ID} (0001_baseline)" in done.stdout or RUN_ID in done.stdout
    assert "24" in done.stdout and "(1.50)" in done.stdout  # median column relative to the best

    # the exported file is a gate baseline too, both ways round
    assert gate(baseline, out)[0] == 0

    def slower(r: dict[str, Any]) -> None:
        calm(r)
        r["step_times_ms"] = [t * 1.10 for t in r["step_times_ms"]]

    quiet = tmp_path / "quiet.json"
    invoke("export", str(variant(baseline, tmp_path / "q", calm)), "--format",
           "pytest-benchmark", "-o", str(quiet))
    code, stdout, _ = gate(variant(baseline, tmp_path / "current", slower), quiet)
    assert code == 1 and f"{CONFIG} step time (regression" in stdout


@pytest.mark.integration
def test_same_code_rerun_in_fresh_processes_passes_and_resume_adds_repeats(
        baseline: Path, tmp_path: Path) -> None:
    """Issue 12's scenario through the CLI: the same code run again, each repeat in a fresh
    process, passes the gate or is inconclusive, never a regression. Four interleaved
    repeats are split into two sides (0, 2 vs 1, 3) so a shared machine's slow load changes
    hit both. 2 vs 2 runs cannot reach alpha 0.05 with the exact rank test (smallest p 1/6),
    so the gate must say inconclusive and name the 3 runs per side it needs, whatever the
    load did to the step times."""
    spec = yaml.safe_load(SUITE.read_text())
    spec["train"].update(steps=12, eval_batches=0)  # the 4 process starts cost most
    short = tmp_path / "gate_tiny_short.yaml"
    short.write_text(yaml.safe_dump(spec))
    both = tmp_path / "both"
    run_suite(short, both, "--repeats", "4")
    ids = sorted(p.stem for p in (both / "runs").glob("*.json"))
    assert ids == sorted([*RUN_IDS, f"{RUN_ID}-r3"])
    records = {i: json.loads((both / "runs" / f"{i}.json").read_text()) for i in ids}
    assert sorted(r["repeat"] for r in records.values()) == [0, 1, 2, 3]
    assert all(r["probe"]["before"]["matmul_ms"] > 0 and r["probe"]["after"]["copy_ms"] > 0
               for r in records.values())
    sides = {}
    for name, keep in (("a", {0, 2}), ("b", {1, 3})):
        sides[name] = variant(both, tmp_path / name)
        for i, r in records.items():
            if r["repeat"] not in keep:
                (sides[name] / "runs" / f"{i}.json").unlink()
    code, out, _ = gate(sides["b"], sides["a"], "--json", str(tmp_path / "g.json"))
    assert code == 0, out
    step = findings(tmp_path / "g.json")["step time"]
    assert step["verdict"] == "inconclusive", step
    assert "needs 3 runs per side for alpha 0.05" in step["detail"], step
    # --resume with more repeats runs only the missing one
    code, out, err = invoke("run", str(short), "-o", str(both), "--quiet", "--no-report",
                            "--resume", "--repeats", "5", "--in-process")
    assert code == 0, err
    assert len(list((both / "runs").glob("*.json"))) == 5
    assert out.count("already recorded, skipped (--resume)") == 4


@pytest.mark.integration
def test_real_thread_count_change_is_caught(baseline: Path, tmp_path: Path) -> None:
    """The same suite with train.threads 2 instead of 1, really run. Which is slower depends on
    the machine: idle, 2 threads win; on a shared 2-core box OpenMP threads spin-wait on a
    descheduled sibling and 2 threads lose badly. Either way the gate must flag the slower
    side as a step-time regression and must not flag the faster side."""
    spec = yaml.safe_load(SUITE.read_text())
    # few steps: under contention a 2-thread step can take a second
    spec["train"].update(threads=2, steps=6, warmup_steps=1, eval_batches=0)
    two_suite = tmp_path / "gate_tiny_2threads.yaml"
    two_suite.write_text(yaml.safe_dump(spec))
    medians: dict[str, list[float]] = {}
    for attempt in range(2):  # a changing load can make both speeds equal: run again
        two = tmp_path / f"two-{attempt}"
        run_suite(two_suite, two, "--repeats", "3", "--in-process")
        for side, path in (("one", baseline), ("two", two)):
            medians[side] = sorted(json.loads((path / "runs" / f"{i}.json").read_text())
                                   ["step_stats"]["median_ms"] for i in RUN_IDS)
        # every run of one side beyond every run of the other: the runs tell them apart
        if (medians["one"][0] > 1.25 * medians["two"][-1]
                or medians["two"][0] > 1.25 * medians["one"][-1]):
            break
    else:
        pytest.skip(f"1 and 2 threads' runs overlap here ({medians}): nothing to detect")
    slow, fast = (two, baseline) if medians["two"][0] > medians["one"][0] else (baseline, two)
    code, out, _ = gate(slow, fast, "--json", str(tmp_path / "slow.json"))
    assert code == 1, out
    step = findings(tmp_path / "slow.json")["step time"]
    assert step["verdict"] == "regression" and step["runs"] == RUN_IDS
    assert "threads: 1 -> 2" in out or "threads: 2 -> 1" in out  # the cause is named
    gate(fast, slow, "--json", str(tmp_path / "fast.json"))
    assert findings(tmp_path / "fast.json")["step time"]["verdict"] in ("improved", "ok")
