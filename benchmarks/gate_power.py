"""How often does `mpbench gate` catch a 10% slowdown, and how often does it cry wolf?

Measured on real step times, not a noise model: the suite's fp32 runs (its device profile's
steps and seeds, e.g. suites/gpt.yaml on a CPU: 20 steps x 2 seeds) are repeated K times in
this process. Every ordered pair of repeats (i, j) is one gate comparison of the slowdown
rule: repeat j against baseline i gives the false-alarm rate (same code, same machine, only
noise and drift differ); repeat j with every step time scaled by 1 + slowdown gives the
detection power.

    python benchmarks/gate_power.py [--suite suites/gpt.yaml] [--repeats 8] [--slowdown 0.10]
        [--pool 1 3] [--threads N] [--save times.json | --load times.json]
    python benchmarks/gate_power.py --resample RESULTS/runs/RUN.json [--steps 40]
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from mpbench.analysis.regression import rejection_rate, slowdown_test_runs
from mpbench.config.loader import load_suite
from mpbench.data import make_source
from mpbench.results.env import environment_card
from mpbench.train.loop import train_run
from mpbench.train.spec import expand

Execution = list[list[float]]
"""Step times of one execution of the configuration: one list per seed."""


def repeat_times(suite_path: Path, model: str, precision: str, repeats: int,
                 threads: int | None) -> list[Execution]:
    """`repeats` executions of one configuration (all its seeds each time)."""
    suite = load_suite(suite_path, "cpu")
    specs = [s for s in expand(suite) if s.model_label == model and s.precision.name == precision]
    if not specs:
        raise SystemExit(f"{suite_path}: no {model} {precision} runs")
    source = make_source(suite.data, suite_path.parent)
    env = environment_card()
    if threads or suite.train.threads:
        torch.set_num_threads(threads or suite.train.threads or 1)
    executions = []
    for _ in range(repeats):
        runs: Execution = []
        for spec in specs:
            record = train_run(spec, source, torch.device("cpu"), env)
            if record.status != "ok":
                raise SystemExit(f"{spec.run_id}: {record.status}: {record.reason}")
            runs.append(record.step_times_ms)
        executions.append(runs)
    return executions


def verdicts(executions: list[Execution], slowdown: float, alpha: float, max_slowdown: float,
             pool: int = 1) -> tuple[Counter[str], Counter[str]]:
    """Gate verdicts for every execution as current against every `pool` others pooled as
    the baseline (`mpbench gate -b ... -b ...`): (same code, current slowed by `slowdown`)."""
    same: Counter[str] = Counter()
    slowed: Counter[str] = Counter()
    for j, cur in enumerate(executions):
        others = [e for i, e in enumerate(executions) if i != j]
        for combo in itertools.combinations(others, pool):
            base = [run for execution in combo for run in execution]
            same[slowdown_test_runs(base, cur, alpha, max_slowdown, 200).verdict] += 1
            scaled = [[t * (1 + slowdown) for t in run] for run in cur]
            slowed[slowdown_test_runs(base, scaled, alpha, max_slowdown, 200).verdict] += 1
    return same, slowed


def jitter_only(executions: list[Execution], slowdown: float, alpha: float, max_slowdown: float,
                draws: int = 50, seed: int = 0) -> tuple[Counter[str], Counter[str]]:
    """The same, had the machine not drifted between runs: both sides are resampled from the
    steps of one execution, so only its step-to-step jitter separates them."""
    rng = np.random.default_rng(seed)
    same: Counter[str] = Counter()
    slowed: Counter[str] = Counter()
    for execution in executions:
        for _ in range(draws):
            base = [list(rng.choice(run, len(run))) for run in execution]
            cur = [list(rng.choice(run, len(run))) for run in execution]
            same[slowdown_test_runs(base, cur, alpha, max_slowdown, 200).verdict] += 1
            scaled = [[t * (1 + slowdown) for t in run] for run in cur]
            slowed[slowdown_test_runs(base, scaled, alpha, max_slowdown, 200).verdict] += 1
    return same, slowed


def resampled(times: list[float], n: int, slowdown: float, alpha: float, max_slowdown: float,
              draws: int = 500, seed: int = 0) -> tuple[float, float]:
    """A quiet machine: both sides drawn (iid) from the steps of one steady run, so only
    step-to-step jitter separates them. Returns (false-alarm rate, power)."""
    rng = np.random.default_rng(seed)
    same = [(rng.choice(times, n), rng.choice(times, n)) for _ in range(draws)]
    slow = [(rng.choice(times, n), rng.choice(times, n) * (1 + slowdown)) for _ in range(draws)]
    return rejection_rate(same, alpha, max_slowdown), rejection_rate(slow, alpha, max_slowdown)


def shares(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{v} {counts[v] / total:.0%}" for v in
                     ("regression", "inconclusive", "ok", "improved") if counts[v])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=Path("suites/gpt.yaml"))
    ap.add_argument("--models", nargs="+", default=["gpt-tiny", "gpt-mini"])
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--slowdown", type=float, default=0.10)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--max-slowdown", type=float, default=0.05)
    ap.add_argument("--pool", type=int, nargs="+", default=[1],
                    help="baselines pooled per comparison (repeatable --baseline), e.g. 1 3")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: the suite's)")
    ap.add_argument("--save", type=Path, help="also write the step times here (JSON)")
    ap.add_argument("--load", type=Path, help="analyse step times saved earlier; no training")
    ap.add_argument("--resample", type=Path, nargs="+", metavar="RUN.json",
                    help="only resample the steps of these run records, n = --steps per side")
    ap.add_argument("--steps", type=int, default=40, help="step times per side for --resample")
    args = ap.parse_args()
    for path in args.resample or []:
        times = json.loads(path.read_text())["step_times_ms"]
        cv = float(np.std(times) / np.mean(times))
        fa, power = resampled(times, args.steps, args.slowdown, args.alpha, args.max_slowdown)
        print(f"{path.name}: {len(times)} steps, spread {cv:.1%} of the mean; {args.steps} per "
              f"side: false alarms {fa:.1%}, power for +{args.slowdown:.0%}: {power:.1%}")
    if args.resample:
        return
    saved = json.loads(args.load.read_text()) if args.load else {}
    measured = {}
    for model in saved or args.models:
        executions = saved.get(model) or repeat_times(args.suite, model, args.precision,
                                                      args.repeats, args.threads)
        measured[model] = executions
        n = sum(len(run) for run in executions[0])
        medians = sorted(float(np.median([t for run in e for t in run])) for e in executions)
        print(f"{model} {args.precision}: {n} step times per execution, {len(executions)} "
              f"executions, medians {medians[0]:.1f}-{medians[-1]:.1f} ms")
        for pool in args.pool:
            same, slowed = verdicts(executions, args.slowdown, args.alpha, args.max_slowdown, pool)
            print(f"  {pool} baseline(s), {sum(same.values())} comparisons:\n"
                  f"  same code:   {shares(same)}  (false alarms = regression)\n"
                  f"  +{args.slowdown:.0%} slower: {shares(slowed)}  (power = regression)")
        same, slowed = jitter_only(executions, args.slowdown, args.alpha, args.max_slowdown)
        print(f"  without drift (steps resampled within one execution):\n"
              f"  same code:   {shares(same)}\n  +{args.slowdown:.0%} slower: {shares(slowed)}")
    if args.save:
        args.save.write_text(json.dumps(measured))
    if not args.load:
        print(f"torch threads {torch.get_num_threads()}, {environment_card()['cpu']['model']}")


if __name__ == "__main__":
    main()
