"""Every command against a missing input, an unwritable output (under /proc, below an existing
file), a corrupt input and an existing output: exit 2, one line, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fixture_records import record, write_results

from mpbench.cli.main import cli

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "suites" / "smoke.yaml")
MICRO = str(ROOT / "suites" / "microbench.yaml")
PROC = "/proc/mpbench-test/out"  # cannot be made, not even by root


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("errors")
    good = write_results(base / "good", [record("fp32"), record("bf16")])
    corrupt = write_results(base / "corrupt", [record("fp32")])
    next(corrupt.glob("runs/*.json")).write_text('{"run_id": "x", "schema', encoding="utf-8")
    bad_yaml = base / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n", encoding="utf-8")
    a_file = base / "a-file.txt"
    a_file.write_text("x", encoding="utf-8")
    a_dir = base / "a-dir"
    a_dir.mkdir()
    comm = base / "comm"
    comm.mkdir()
    (comm / "comm-bench.json").write_text("{}", encoding="utf-8")
    bench_done = write_results(base / "bench-done", [record("fp32")],
                               bench=[{"benchmark": "gemm", "rows": []}])
    return {"good": str(good), "corrupt": str(corrupt), "bad_yaml": str(bad_yaml),
            "below_file": str(a_file / "sub" / "out"), "missing": str(base / "missing"),
            "dir": str(a_dir), "comm": str(comm), "bench_done": str(bench_done),
            "corrupt_record": str(next(corrupt.glob("runs/*.json")))}


CASES = {
    # run
    "run missing suite": ["run", "{missing}.yaml"],
    "run corrupt suite": ["run", "{bad_yaml}"],
    "run out under /proc": ["run", SMOKE, "--out", PROC],
    "run out below a file": ["run", SMOKE, "-o", "{below_file}"],
    "run existing results": ["run", SMOKE, "-o", "{good}"],
    # show
    "show missing": ["show", "{missing}"],
    "show corrupt": ["show", "{corrupt}"],
    "show corrupt record file": ["show", "{corrupt_record}"],
    # report
    "report missing": ["report", "{missing}"],
    "report corrupt": ["report", "{corrupt}"],
    "report out under /proc": ["report", "{good}", "-o", PROC + ".html"],
    "report out below a file": ["report", "{good}", "-o", "{below_file}.html"],
    "report out is a directory": ["report", "{good}", "--out", "{dir}"],
    "report summary-md under /proc": ["report", "{good}", "-o", "{dir}/r.html",
                                      "--summary-md", PROC + ".md"],
    # export
    "export missing": ["export", "{missing}", "-o", "{dir}/x.json"],
    "export corrupt": ["export", "{corrupt}", "-o", "{dir}/x.json"],
    "export out under /proc": ["export", "{good}", "--format", "pytest-benchmark", "-o",
                               PROC + ".json"],
    "export out below a file": ["export", "{good}", "--out", "{below_file}.json"],
    "export out is a directory": ["export", "{good}", "-o", "{dir}"],
    # gate
    "gate missing current": ["gate", "{missing}", "-b", "{good}"],
    "gate corrupt baseline": ["gate", "{good}", "-b", "{corrupt}"],
    "gate json under /proc": ["gate", "{good}", "-b", "{good}", "--json", PROC + ".json"],
    "gate summary below a file": ["gate", "{good}", "-b", "{good}", "--summary-md",
                                  "{below_file}.md"],
    "gate json is a directory": ["gate", "{good}", "-b", "{good}", "--json", "{dir}"],
    # bench
    "bench missing suite": ["bench", "{missing}.yaml", "--device", "cpu"],
    "bench corrupt suite": ["bench", "{bad_yaml}", "--device", "cpu"],
    "bench corrupt runs": ["bench", MICRO, "--device", "cpu", "--runs", "{corrupt}",
                           "-o", "{dir}/b"],
    "bench out under /proc": ["bench", MICRO, "--device", "cpu", "--quick", "--quiet", "-o", PROC],
    "bench out below a file": ["bench", MICRO, "--device", "cpu", "-o", "{below_file}"],
    "bench existing results": ["bench", MICRO, "--device", "cpu", "-o", "{bench_done}"],
    # bench-comm (no input file)
    "bench-comm out under /proc": ["bench-comm", "--device", "cpu", "--nproc", "2", "-o", PROC],
    "bench-comm out below a file": ["bench-comm", "--device", "cpu", "--nproc", "2", "-o",
                                    "{below_file}"],
    "bench-comm existing result": ["bench-comm", "--device", "cpu", "--nproc", "2", "-o",
                                   "{comm}"],
    # scaling
    "scaling missing": ["scaling", "{missing}"],
    "scaling corrupt": ["scaling", "{corrupt}"],
    # env
    "env json under /proc": ["env", "--json", PROC + ".json"],
    "env json below a file": ["env", "--json", "{below_file}.json"],
    "env json is a directory": ["env", "--json", "{dir}"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_is_one_line_and_exit_2(case: str, paths: dict[str, str]) -> None:
    args = [a.format(**paths) for a in CASES[case]]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (case, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    if "/proc" in " ".join(args) or "below a file" in case:
        bad = next(a for a in args if a.startswith("/proc") or "a-file.txt" in a)
        assert bad.split("/sub")[0].split("/mpbench-test")[0] in lines[0]  # names the path


def test_nothing_is_left_behind_by_a_failed_output(paths: dict[str, str]) -> None:
    before = sorted(Path(paths["dir"]).parent.rglob("*"))
    CliRunner().invoke(cli, ["run", SMOKE, "-o", paths["below_file"]])
    CliRunner().invoke(cli, ["export", paths["good"], "-o", paths["below_file"] + ".json"])
    assert sorted(Path(paths["dir"]).parent.rglob("*")) == before


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    from mpbench.errors import UserError
    from mpbench.results.output import write_output

    target = tmp_path / "records.json"
    write_output(target, "old", "--out")

    def half_then_fail(path: Path) -> None:
        path.write_text("half", encoding="utf-8")
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match=r"--out: cannot write .*records.json: No space left"):
        write_output(target, half_then_fail, "--out")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["records.json"]
    assert write_output(tmp_path / "d" / "e", None, "--out").is_dir()
