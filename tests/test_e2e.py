"""The three ways teams use mpbench, end to end in real processes: run, report, gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def mpbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpbench", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_run_report_gate(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    run = mpbench("run", str(ROOT / "suites" / "smoke.yaml"), "-o", str(out), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"results: {out.resolve()}" in run.stdout
    assert f"report:  {(out / 'report.html').resolve()}" in run.stdout
    page = (out / "report.html").read_text()
    assert "<html" in page and "speedup-amp" in page and "smoke" in page

    md = mpbench("report", str(out), "--format", "md", "-o", "-", cwd=tmp_path)
    assert md.returncode == 0 and "| `speedup-amp` |" in md.stdout

    summary = tmp_path / "gate.md"
    same = mpbench("gate", str(out), "--baseline", str(out), "--summary-md", str(summary),
                   "--json", str(tmp_path / "gate.json"), cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    verdict = json.loads((tmp_path / "gate.json").read_text())
    assert verdict and summary.read_text().strip()

    # a run that used to succeed and now fails is always a regression
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(out), str(broken)], check=True)
    record_path = next((broken / "runs").glob("*bf16*.json"))
    record = json.loads(record_path.read_text())
    record.update(status="oom", reason="CUDA out of memory", tokens_per_s=None, step_times_ms=[])
    record_path.write_text(json.dumps(record))
    failed = mpbench("gate", str(broken), "--baseline", str(out), cwd=tmp_path)
    assert failed.returncode == 1
    assert "bf16" in failed.stdout

    missing = mpbench("gate", str(tmp_path / "nope"), "--baseline", str(out), cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
