"""benchmarks/gpu_check.sh: the GPU validation run, exercised here through its CPU dry run.

The full dry run (every step, the nested gpu tests and the CPU suite included) takes about
1.5-2 minutes on a contended 2-core machine, too long for CI; run it by hand with
`benchmarks/gpu_check.sh --dry-run --out /tmp/gpu-check` (see README, "GPU validation run").
The test below walks the wheel, card and bench steps and the summary; the summary's GPU side
is tested on synthetic H100 results.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fixture_records import bench_record, gemm_row, gpu_env, record, write_results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_check import slug  # noqa: E402
from gpu_check_summary import write_summary  # noqa: E402


def fake_wheel(directory: Path, name: str = "torchao", version: str = "0.15.0") -> Path:
    """A minimal valid wheel, so pip's --dry-run has a real file to resolve."""
    path = directory / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}/__init__.py", "")
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                      "Tag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    return path


@pytest.mark.unit
def test_report_folder_is_named_after_the_gpu() -> None:
    assert slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    assert slug("NVIDIA H200") == "h200" and slug("AMD Instinct MI300X") == "instinct-mi300x"


@pytest.mark.unit
def test_summary_checks_figures_against_the_peers(tmp_path: Path) -> None:
    env = gpu_env()
    write_results(tmp_path / "runs", [record("bf16", env=env, step_ms=100.0, noise=0.0),
                                      record("fp8-ao-tensorwise", env=env, step_ms=80.0, noise=0.0),
                                      record("fp8-te-current", env=env, status="skipped",
                                             reason="TransformerEngine is not installed")])
    write_results(tmp_path / "bench", [], [bench_record("gemm", [
        gemm_row("bf16", 8192, 780.0), gemm_row("fp8", 8192, 1300.0, variant="exact_accum"),
        gemm_row("fp8", 8192, 1420.0, variant="fast_accum")], env)])
    steps = [{"name": "suite", "status": "timeout", "seconds": 330.0, "note": "time budget"}]
    write_summary(tmp_path, {"gpu": {"name": env["gpu"]["name"]}, "torchao": "0.15.0"}, steps,
                  dry_run=False)
    text = (tmp_path / "SUMMARY.md").read_text()
    assert "| bf16_gemm_tflops | 780 | 795 | 0.98 |" in text
    assert "| fp8_gemm_tflops | 1.42e+03 | 1400 | 1.01 |" in text  # the fast-accum variant
    assert "| ao_tensorwise_speedup | 1.25 | 1.25 | 1.00 |" in text
    missing = json.loads((tmp_path / "not_measured.json").read_text())
    assert "step suite: timeout: time budget" in missing
    assert any("fp8-te-current" in m and "TransformerEngine is not installed" in m for m in missing)
    assert "TransformerEngine is not installed: its recipes were skipped" in missing


@pytest.mark.integration
def test_dry_run_walks_the_steps_on_the_cpu(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake_wheel(wheels)
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run",
                           "--out", str(out), "--wheels", str(wheels), "--skip", "tests",
                           "--skip", "suite", "--skip", "report"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {s["name"]: s for s in json.loads((out / "check.json").read_text())["steps"]}
    assert [steps[n]["status"] for n in ("wheels", "card", "bench")] == ["ok", "ok", "ok"]
    assert "--dry-run" in steps["wheels"]["command"]  # pip resolves the wheel, installs nothing
    assert "Would install torchao-0.15.0" in (out / "check.log").read_text()
    assert "no wheel for transformer_engine" in steps["wheels"]["note"]
    card = json.loads((out / "machine.json").read_text())
    assert card["gpu"] is None and card["torch"]
    summary = (out / "SUMMARY.md").read_text()
    assert "CPU dry run: no GPU figures" in summary and "Not compared (CPU dry run)" in summary
    assert "step suite: skipped: left out with --skip" in summary
    assert (out / "bench" / "bench" / "gemm.json").exists()
