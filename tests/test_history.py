"""`mpbench history`: change points in a series of results directories (ruptures' PELT)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixture_records import record

from mpbench.analysis.history import change_points
from mpbench.cli.main import cli
from mpbench.results.store import ResultsDir

N = 14


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def write_series(root: Path, medians: list[float], suite: str = "fixture",
                 runs: int = 2) -> list[Path]:
    """One results directory per night, each with `runs` repeats of one fp32 configuration."""
    dirs = []
    for night, m in enumerate(medians):
        d = root / f"nightly-{night:02d}"
        results = ResultsDir(d)
        results.create(suite, {}, "")
        for rep in range(runs):
            r = record("fp32", seed=night * 10 + rep, step_ms=m, noise=m * 0.02, suite=suite)
            r = r.model_copy(update={"run_id": f"{r.run_id.rsplit('__', 1)[0]}__seed0-r{rep}",
                                     "repeat": rep,
                                     "started_at": f"2026-11-{night + 1:02d}T00:0{rep}:00"})
            results.write(r)
        dirs.append(d)
    return dirs


def noisy(rng: np.random.Generator, n: int = N, sd: float = 0.04) -> list[float]:
    return list(100 * rng.lognormal(0, sd, n))


@pytest.mark.unit
def test_change_points_find_an_injected_step_and_nothing_in_flat_noise() -> None:
    rng = np.random.default_rng(0)
    found = flat_alarms = 0
    for _ in range(50):
        flat = noisy(rng)
        flat_alarms += any(cp.kind != "change" for cp in change_points(flat, 0.05))
        step = flat[:8] + [v * 1.25 for v in flat[8:]]
        cps = change_points(step, 0.05)
        found += any(abs(cp.index - 8) <= 1 and cp.kind == "regression" for cp in cps)
    assert found >= 45
    assert flat_alarms <= 5


@pytest.mark.integration
def test_history_cli_flags_a_regression_at_the_latest_point_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = [*noisy(rng, N - 1), 130.0]
    dirs = write_series(tmp_path / "a", values)
    code, out, _ = invoke("history", *map(str, dirs), "--json", str(tmp_path / "h.json"))
    assert code == 1, out
    assert "regression change point" in out and "gpt-tiny b8×t64 fp32" in out
    data = json.loads((tmp_path / "h.json").read_text())
    step = next(s for s in data["series"] if s["metric"] == "step time")
    assert step["change_points"][-1]["index"] == N - 1
    assert step["change_points"][-1]["change"] == pytest.approx(0.3, abs=0.06)
    # the directory holding them reads the same; a regression earlier in the series is
    # shown but does not fail tonight's run
    code, out, _ = invoke("history", str(tmp_path / "a"))
    assert code == 1
    earlier = write_series(tmp_path / "b", values[:8] + [v * 1.3 for v in values[8:-1]])
    code, out, _ = invoke("history", *map(str, earlier), "--json", str(tmp_path / "e.json"))
    assert code == 0, out
    step = next(s for s in json.loads((tmp_path / "e.json").read_text())["series"]
                if s["metric"] == "step time")
    assert [(c["index"], c["kind"]) for c in step["change_points"]] == [(8, "regression")]
    code, out, _ = invoke("report", "--history", str(tmp_path / "a"), "-o",
                          str(tmp_path / "h.html"))
    assert code == 0, out
    page = (tmp_path / "h.html").read_text()
    assert page.count("<svg") == 3 and "The latest point is a regression change point" in page
    assert "nightly-13" in page and "<tr class=\"regression\"><td>nightly-13</td>" in page
    flat = write_series(tmp_path / "c", noisy(rng))
    code, out, _ = invoke("history", *map(str, flat))
    assert code == 0 and "no regression change point" in out


@pytest.mark.integration
def test_bad_history_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    def one_line_error(*args: str) -> str:
        code, out, err = invoke("history", *args)
        assert code == 2, out + err
        assert err.count("\n") == 1 and err.startswith("error: ")
        assert "Traceback" not in err
        return err

    assert "no results given" in one_line_error()
    (tmp_path / "empty").mkdir()
    assert "holds no mpbench results" in one_line_error(str(tmp_path / "empty"))
    assert "not found" in one_line_error(str(tmp_path / "missing"))
    a = write_series(tmp_path / "a", [100.0, 101.0])
    b = write_series(tmp_path / "b", [100.0], suite="other")
    assert "mixed suites" in one_line_error(*map(str, a + b))
    assert "a history needs 2+" in one_line_error(str(a[0]))
    blank = tmp_path / "blank"
    ResultsDir(blank).create("fixture", {}, "")
    assert "holds no runs" in one_line_error(str(a[0]), str(blank))
    bad = a[1] / "runs" / next(p.name for p in (a[1] / "runs").glob("*.json"))
    bad.write_text('{"run_id": ')
    assert "corrupt JSON" in one_line_error(*map(str, a))
