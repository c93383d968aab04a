"""Run mpbench suites inside pytest: one test per run, its measured steps fed to pytest-benchmark.

For teams that already gate with pytest-benchmark (`--benchmark-compare-fail`). Each measured
training step of the run becomes one pytest-benchmark round, timed by mpbench's own loop
(warm-up excluded, one host sync per step, CUDA synchronized), so pytest-benchmark's
statistics describe training steps, not pytest-benchmark's calibration loop.

Enable it in your conftest.py and write one parametrized test:

    # conftest.py
    pytest_plugins = ["mpbench.pytest_plugin"]

    # test_training_speed.py
    import pytest
    from mpbench.pytest_plugin import suite_run_ids

    SUITE = "suites/gpt.yaml"

    @pytest.mark.parametrize("run_id", suite_run_ids(SUITE))
    def test_training_speed(mpbench_benchmark, run_id):
        record = mpbench_benchmark(SUITE, run_id)
        assert record.tokens_per_s

Then:

    pytest test_training_speed.py --benchmark-enable --benchmark-autosave       # a baseline
    pytest test_training_speed.py --benchmark-enable --benchmark-compare \\
        --benchmark-compare-fail=median:5%

A run that is skipped on this machine (e.g. FP8 without a GPU) skips its test with the reason;
an OOM, divergence or crash fails it. `--mpbench-out DIR` keeps the run records as a results
directory (for `mpbench gate` or `mpbench report`); `--mpbench-device` picks the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from mpbench.config.schema import DeviceKind
from mpbench.interop.pytest_benchmark import run_summary
from mpbench.results.env import environment_card
from mpbench.results.schema import RunRecord
from mpbench.results.store import ResultsDir
from mpbench.train.load import load_suite
from mpbench.train.runner import expand, resolve_device, run_suite


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mpbench")
    group.addoption("--mpbench-device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="Device for mpbench runs (default: cuda when visible).")
    group.addoption("--mpbench-out", default=None, metavar="DIR",
                    help="Keep the run records here, one results directory per suite.")


def device_kind(device: torch.device) -> DeviceKind:
    return "cuda" if device.type == "cuda" else "cpu"


def suite_run_ids(suite_path: str | Path, device: str = "auto") -> list[str]:
    """The run ids of a suite on this machine's device profile, for @pytest.mark.parametrize."""
    suite = load_suite(Path(suite_path), device_kind(resolve_device(device)))
    return [spec.run_id for spec in expand(suite)]


class SuiteSession:
    """Trains runs on demand; records go to one results directory per suite."""

    def __init__(self, out: Path, device: torch.device) -> None:
        self.out = out
        self.device = device
        self.env = environment_card()

    def run(self, suite_path: str | Path, run_id: str) -> RunRecord:
        path = Path(suite_path)
        suite = load_suite(path, device_kind(self.device))
        specs = [s for s in expand(suite) if s.run_id == run_id]
        if not specs:
            known = ", ".join(s.run_id for s in expand(suite))
            raise pytest.UsageError(f"{path}: no run '{run_id}'; runs here: {known}")
        results = ResultsDir(self.out / suite.name)
        results.create(suite.name, suite.model_dump(mode="json"), path.read_text(encoding="utf-8"))
        threads = torch.get_num_threads()
        try:  # train.threads is process-wide in torch: give it back after the run
            events = run_suite(suite, results, self.device, self.env, specs, False,
                               lambda spec: None, path.parent)
            records = [e.record for e in events if e.record is not None]
        finally:
            torch.set_num_threads(threads)
        return records[0]


def record_step_times(benchmark: Any, record: RunRecord) -> None:
    """Hand the run's measured steps to a pytest-benchmark fixture as its rounds.

    pytest-benchmark has no public call for timings measured elsewhere; this uses the
    documented workaround (_mode + _make_stats, pytest-benchmark issue #52), checked here.
    """
    if getattr(benchmark, "disabled", False):
        return  # --benchmark-disable: pytest-benchmark keeps nothing, nor do we
    make_stats: Callable[[int], Any] | None = getattr(benchmark, "_make_stats", None)
    if make_stats is None or not hasattr(benchmark, "_mode"):
        raise RuntimeError("this pytest-benchmark version lacks _make_stats/_mode; "
                           "use `mpbench export --format pytest-benchmark` instead")
    benchmark.group = f"{record.suite} {record.model} b{record.batch_size} t{record.seq_len}"
    benchmark.extra_info["mpbench"] = run_summary(record)
    benchmark.extra_info["tokens_per_s"] = record.tokens_per_s
    benchmark._mode = "mpbench (measured training steps)"
    stats = make_stats(1)
    for ms in record.step_times_ms:
        stats.update(ms / 1e3)


@pytest.fixture(scope="session")
def mpbench_session(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> SuiteSession:
    out = request.config.getoption("--mpbench-out")
    device = resolve_device(request.config.getoption("--mpbench-device"))
    return SuiteSession(Path(out) if out else tmp_path_factory.mktemp("mpbench"), device)


@pytest.fixture
def mpbench_benchmark(benchmark: Any, mpbench_session: SuiteSession
                      ) -> Iterator[Callable[[str | Path, str], RunRecord]]:
    """`mpbench_benchmark(suite_path, run_id)`: train that run, record its steps, return it."""

    def run(suite_path: str | Path, run_id: str) -> RunRecord:
        record = mpbench_session.run(suite_path, run_id)
        if record.status == "skipped":
            pytest.skip(f"{run_id}: {record.reason}")
        if record.status != "ok":
            pytest.fail(f"{run_id}: {record.status}: {record.reason}", pytrace=False)
        record_step_times(benchmark, record)
        return record

    yield run
