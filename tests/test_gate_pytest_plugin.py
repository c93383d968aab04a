"""mpbench.pytest_plugin under the real pytest-benchmark: the run's measured steps become the
benchmark's rounds, and `--benchmark-compare-fail` trips against a faster stored baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpbench.cli.main import cli
from mpbench.interop.pytest_benchmark import benchmark_stats

SUITE = Path(__file__).resolve().parent / "data" / "gate_tiny.yaml"
RUN_ID = "gpt-gate__fp32__b8-t32__seed0"

CONFTEST = 'pytest_plugins = ["mpbench.pytest_plugin"]\n'
TEST = f'''
import pytest
from mpbench.pytest_plugin import suite_run_ids

SUITE = {str(SUITE)!r}

@pytest.mark.parametrize("run_id", suite_run_ids(SUITE, "cpu"))
def test_training_speed(mpbench_benchmark, run_id):
    record = mpbench_benchmark(SUITE, run_id)
    assert record.status == "ok"
'''


def pytest_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mpbench-device",
           "cpu", "--benchmark-storage", str(cwd / "store"), *args]
    # a clean session: not an xdist worker of the outer run (pytest-benchmark turns itself
    # off inside one), whatever runs this test
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "XDIST_"))}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def stored_baseline(store: Path, median_s: float) -> None:
    """A saved pytest-benchmark run of the same test whose steps took `median_s`."""
    bench = {"group": None, "name": f"test_training_speed[{RUN_ID}]",
             "fullname": f"test_speed.py::test_training_speed[{RUN_ID}]", "params": None,
             "param": RUN_ID, "extra_info": {}, "options": {},
             "stats": benchmark_stats([median_s] * 24)}
    path = store / "Linux-CPython-3.11-64bit" / "0001_base.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"machine_info": {}, "commit_info": {}, "benchmarks": [bench],
                                "datetime": "2026-01-01T00:00:00+00:00", "version": "5.1.0"}))


@pytest.mark.integration
def test_plugin_feeds_step_times_and_compare_fail_catches_a_slowdown(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_speed.py").write_text(TEST)
    stored_baseline(tmp_path / "store", median_s=1e-6)  # "used to take 1 us per step"
    done = pytest_run(tmp_path, "--benchmark-enable", "--benchmark-json=run.json",
                      "--benchmark-compare=0001", "--benchmark-compare-fail=median:20%",
                      "--mpbench-out", str(tmp_path / "results"))
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Performance has regressed" in output
    assert f"test_training_speed[{RUN_ID}]" in output and "median" in output

    bench = json.loads((tmp_path / "run.json").read_text())["benchmarks"][0]
    record = json.loads((tmp_path / "results" / "gate-tiny" / "runs" / f"{RUN_ID}.json").read_text())
    assert bench["name"] == f"test_training_speed[{RUN_ID}]"
    assert bench["stats"]["rounds"] == len(record["step_times_ms"]) == 24
    assert bench["stats"]["median"] * 1e3 == pytest.approx(record["step_stats"]["median_ms"])
    assert bench["extra_info"]["mpbench"]["run_id"] == RUN_ID

    # the plugin's JSON is a gate baseline as well (it carries the run configuration)
    gate = CliRunner().invoke(cli, ["gate", str(tmp_path / "results" / "gate-tiny"),
                                    "--baseline", str(tmp_path / "run.json")])
    assert gate.exit_code == 0, gate.output
