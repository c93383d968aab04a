"""The CLI end to end: run the smoke suite, show it, resume it; user errors exit 2 cleanly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpbench.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "suites" / "smoke.yaml")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("cli") / "smoke"
    code, stdout, stderr = invoke("run", SMOKE, "-o", str(out), "--quiet", "--no-report")
    assert code == 0, stderr
    return out, stdout


@pytest.mark.integration
def test_run_writes_records_and_prints_summary(smoke_results: tuple[Path, str]) -> None:
    out, stdout = smoke_results
    runs = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert runs == [f"gpt-tiny__{p}__b4-t32__seed0.json" for p in ("bf16", "fp16", "fp32")]
    assert (out / "mpbench-results.json").is_file() and (out / "suite.yaml").is_file()
    assert "[1/3] gpt-tiny fp32 seed 0: ok," in stdout
    assert "1.00x (baseline)" in stdout
    assert f"results: {out.resolve()}" in stdout
    record = json.loads((out / "runs" / runs[2]).read_text())
    assert record["status"] == "ok" and record["env"]["cpu"]["isa_flags"] is not None
    assert record["profile"] == "default" and record["suite"] == "smoke"


@pytest.mark.integration
def test_show_prints_the_same_table(smoke_results: tuple[Path, str]) -> None:
    out, _ = smoke_results
    code, stdout, _ = invoke("show", str(out))
    assert code == 0
    assert "fp16" in stdout and "bf16" in stdout and "1.00x (baseline)" in stdout


@pytest.mark.integration
def test_resume_skips_recorded_runs_and_refuses_to_overwrite(smoke_results: tuple[Path, str]) -> None:
    out, _ = smoke_results
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    code, _, stderr = invoke("run", SMOKE, "-o", str(out), "--quiet", "--no-report")
    assert code == 2
    assert stderr.strip() == f"error: --out: {out} already holds results; pass --resume to continue it, or choose another --out"
    code, stdout, _ = invoke("run", SMOKE, "-o", str(out), "--resume", "--quiet", "--no-report")
    assert code == 0 and stdout.count("already recorded, skipped (--resume)") == 3
    assert before == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}


@pytest.mark.integration
def test_only_selects_runs(tmp_path: Path) -> None:
    code, _stdout, _ = invoke("run", SMOKE, "-o", str(tmp_path / "o"), "--only", "bf16", "-q", "--no-report")
    assert code == 0
    assert [p.name for p in (tmp_path / "o" / "runs").iterdir()] == ["gpt-tiny__bf16__b4-t32__seed0.json"]
    code, _, stderr = invoke("run", SMOKE, "-o", str(tmp_path / "p"), "--only", "fp64")
    assert code == 2 and "--only fp64: matches no run" in stderr
    assert not (tmp_path / "p").exists()


@pytest.mark.unit
def test_list_and_env() -> None:
    code, stdout, _ = invoke("list", "--device", "cpu")
    assert code == 0 and "fp16-noscale" in stdout and "gpt2-small" in stdout
    assert "needs a CUDA GPU" in stdout.replace("\n", " ").replace("│", " ") or "no:" in stdout
    code, stdout, _ = invoke("env", "--json")
    card = json.loads(stdout)
    assert code == 0 and card["cpu"]["logical_cores"] >= 1 and card["torch"]
    code, stdout, _ = invoke("--version")
    assert code == 0 and "mpbench, version" in stdout


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope.yaml"], "error: suite file not found: nope.yaml"),
        (["run", SMOKE, "--device", "cuda"], "error: --device cuda: no CUDA GPU is visible"),
        (["show", "/nonexistent/results"], "error: results not found: /nonexistent/results"),
    ],
)
def test_user_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    if "cuda" in args:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    code, stdout, stderr = invoke(*args)
    assert code == 2
    assert stderr.startswith(message) and stderr.count("\n") == 1
    assert "Traceback" not in stderr + stdout


@pytest.mark.unit
def test_bad_suite_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(SMOKE).read_text().replace("steps: 6", "steps: -6"))
    out = tmp_path / "out"
    code, _, stderr = invoke("run", str(bad), "-o", str(out))
    assert code == 2 and "train.steps: input should be greater than 0 (got -6)" in stderr
    assert not out.exists()


@pytest.mark.unit
def test_unwritable_output_is_refused_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = invoke("run", SMOKE, "-o", str(blocker / "sub"))
    assert code == 2 and "is a file, not a directory" in stderr
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, stderr = invoke("run", SMOKE, "-o", str(locked / "sub"))
        assert code == 2 and "is not writable" in stderr


@pytest.mark.integration
def test_a_report_failure_keeps_the_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mpbench.report

    def broken(*args: object, **kwargs: object) -> Path:
        raise RuntimeError("template exploded")

    monkeypatch.setattr(mpbench.report, "write_report", broken)
    out = tmp_path / "o"
    code, _, stderr = invoke("run", SMOKE, "-o", str(out), "--only", "fp32", "-q")
    assert code == 1
    assert "the report could not be written (RuntimeError: template exploded)" in stderr
    assert "Traceback" not in stderr
    assert len(list((out / "runs").glob("*.json"))) == 1


@pytest.mark.unit
def test_resume_with_a_corrupt_manifest_is_a_clean_error(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "mpbench-results.json").write_text("{not json")
    code, stdout, stderr = invoke("run", SMOKE, "-o", str(out), "--resume")
    assert code == 2 and "mpbench-results.json: corrupt JSON at line 1" in stderr
    assert "Traceback" not in stderr + stdout
