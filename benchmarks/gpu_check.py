"""The GPU validation run behind benchmarks/gpu_check.sh: every step, its time, what it missed.

Steps, in order, each a subprocess with its own time limit cut to what the budget has left:
  wheels   install torchao / TransformerEngine from wheel files brought along (no network)
  card     the machine card: GPU, driver, CUDA, torch, TE, torchao (machine.json, machine.md)
  tests    the gpu-marked tests (pytest -m gpu)
  bench    `mpbench bench --quick` on benchmarks/gpu_check/bench.yaml
  suite    `mpbench run` on benchmarks/gpu_check/suite.yaml (gpt2-small, every recipe)
  report   `mpbench report` of the suite's results
Then SUMMARY.md: the card, each step's status and time, measured figures against the peers'
published ones, and everything that was not measured, with its reason.

--dry-run walks every step on the CPU with its stand-ins: `pip install --dry-run` of the
wheels, the card of this machine, the gpu tests (which skip without CUDA), the bench and suite
on their `devices.cpu` profiles. Nothing it writes is a GPU figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gpu_check_summary import write_summary

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "gpu_check"
WHEEL_NAMES = {"torchao": "torchao-*.whl", "transformer_engine": "transformer_engine*.whl"}
STEP_CAPS_S = {"wheels": 60, "card": 45, "tests": 100, "bench": 75, "suite": 330, "report": 45}
"""Upper limits per step on a GPU; together above the budget, which cuts the last ones."""


@dataclass
class Step:
    name: str
    status: str = "not run"
    """ok, failed, timeout, skipped or not run."""
    seconds: float = 0.0
    command: list[str] = field(default_factory=list)
    note: str = ""


class Check:
    def __init__(self, out: Path, budget_s: float, dry_run: bool, wheels: Path) -> None:
        self.out, self.budget_s, self.dry_run, self.wheels = out, budget_s, dry_run, wheels
        self.t0 = time.monotonic()
        self.steps: list[Step] = []
        self.device = "cpu" if dry_run else "cuda"
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = (out / "check.log").open("a", encoding="utf-8")

    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def run(self, name: str, command: list[str], reserve_s: float = 0.0,
            env: dict[str, str] | None = None) -> Step:
        """Run one step with min(its cap, budget left - reserve) seconds; log its output."""
        step = Step(name, command=command)
        self.steps.append(step)
        limit = min(STEP_CAPS_S[name] * (3 if self.dry_run else 1), self.left_s() - reserve_s)
        if limit < 5:
            step.status, step.note = "skipped", "time budget spent before this step"
            return step
        self.log.write(f"\n=== {name}: {' '.join(command)} (limit {limit:.0f} s)\n")
        self.log.flush()
        start = time.monotonic()
        try:
            done = subprocess.run(command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                  timeout=limit, env={**os.environ, **(env or {})}, check=False)
            step.status = "ok" if done.returncode == 0 else "failed"
            if done.returncode:
                step.note = f"exit code {done.returncode} (see check.log)"
        except subprocess.TimeoutExpired:
            step.status, step.note = "timeout", f"stopped after {limit:.0f} s (time budget)"
        step.seconds = time.monotonic() - start
        print(f"[gpu_check] {name}: {step.status} in {step.seconds:.0f} s {step.note}", flush=True)
        return step

    # -- the steps -----------------------------------------------------------------
    def install_wheels(self) -> None:
        found = {pkg: sorted(self.wheels.glob(pattern)) for pkg, pattern in WHEEL_NAMES.items()}
        # torchao: the newest file; TransformerEngine ships several (core, _cu12, _torch): all
        wheels = [str(p) for pkg, paths in found.items()
                  for p in (paths[-1:] if pkg == "torchao" else paths)]
        missing = [pkg for pkg, paths in found.items() if not paths]
        if not wheels:
            self.steps.append(Step("wheels", "skipped", note=f"no wheel files in {self.wheels}"))
            return
        pip = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps"]
        if self.dry_run:
            pip.append("--dry-run")  # pip resolves and checks the files, installs nothing
        step = self.run("wheels", [*pip, *wheels])
        if missing:
            step.note = (step.note + f"; no wheel for {', '.join(missing)}").lstrip("; ")

    def card(self) -> dict:
        path = self.out / "machine.json"
        code = ("import json; from mpbench.results.env import environment_card; "
                f"open({str(path)!r}, 'w').write(json.dumps(environment_card().model_dump(mode='json'), indent=2))")
        step = self.run("card", [sys.executable, "-c", code])
        return json.loads(path.read_text()) if step.status == "ok" and path.exists() else {}

    def tests(self) -> None:
        # one process on one GPU (the ini's xdist workers would share it, and xdist may be
        # missing on the GPU image): the ini's addopts replaced
        self.run("tests", [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                           "-o", "addopts=-ra --strict-markers",
                           f"--junitxml={self.out / 'gpu-tests.xml'}", "tests"], reserve_s=150)

    def bench(self) -> None:
        self.run("bench", [sys.executable, "-m", "mpbench", "bench", str(HERE / "bench.yaml"),
                           "--quick", "--device", self.device, "-o", str(self.out / "bench")],
                 reserve_s=120)

    def suite(self) -> None:
        self.run("suite", [sys.executable, "-m", "mpbench", "run", str(HERE / "suite.yaml"),
                           "--device", self.device, "-o", str(self.out / "runs"), "-q",
                           "--no-report"], reserve_s=25)

    def report(self) -> None:
        if not (self.out / "runs").is_dir():
            self.steps.append(Step("report", "skipped", note="no training results to report"))
            return
        self.run("report", [sys.executable, "-m", "mpbench", "report", str(self.out / "runs"),
                            "-o", str(self.out / "report.html")])


def slug(name: str) -> str:
    text = re.sub(r"^(nvidia|amd)\s+", "", name.strip(), flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "gpu"


def gpu_name() -> str | None:
    """The GPU's name from nvidia-smi (no CUDA context in this process), or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="walk every step on the CPU with its stand-ins (no GPU figures)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: reports/<gpu>-example)")
    parser.add_argument("--wheels", type=Path, default=Path(os.environ.get(
        "MPBENCH_WHEELS", ROOT / "wheels")), help="where wheel files brought along lie")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="total seconds for all steps (default 450: under 8 min with start-up)")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(STEP_CAPS_S),
                        help="leave a step out (repeatable); it is listed as not measured")
    args = parser.parse_args(argv)
    name = None if args.dry_run else gpu_name()
    if name is None and not args.dry_run:
        print("gpu_check: no NVIDIA GPU visible (nvidia-smi); use --dry-run on a CPU", file=sys.stderr)
        return 2
    out = args.out or ROOT / "reports" / f"{slug(name) if name else 'dryrun-cpu'}-example"
    check = Check(out.resolve(), args.budget_s, args.dry_run, args.wheels)
    card: dict = {}
    for step_name in ("wheels", "card", "tests", "bench", "suite", "report"):
        if step_name in args.skip:
            check.steps.append(Step(step_name, "skipped", note="left out with --skip"))
            continue
        if step_name == "wheels":
            check.install_wheels()
        elif step_name == "card":
            card = check.card()
        else:
            getattr(check, step_name)()
    steps = [asdict(s) for s in check.steps]
    (check.out / "check.json").write_text(json.dumps(
        {"dry_run": args.dry_run, "budget_s": args.budget_s,
         "elapsed_s": time.monotonic() - check.t0, "steps": steps}, indent=2))
    write_summary(check.out, card, steps, args.dry_run, HERE / "suite.yaml", check.device)
    print(f"[gpu_check] wrote {check.out / 'SUMMARY.md'}", flush=True)
    return 0 if all(s["status"] in ("ok", "skipped") for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
