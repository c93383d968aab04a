"""How often does `mpbench gate` cry wolf on a same-code rerun, and what does it catch?

Measured on real runs, each in a fresh process (the product's `--repeats` path,
mpbench.train.runner), interleaved so slow load changes hit every condition alike:

- same code: K runs of one configuration; every ordered pair of runs is a 1-run-per-side
  comparison, disjoint triples are 3-runs-per-side comparisons: every split when there are
  at most --draws of them (K=6: all 20, so the rate is exact), else random ones (false
  alarm = the gate says `regression`);
- injected slowdown: K more runs, interleaved with those, with a busy-wait of --slowdown
  (10%) of each step's own time added after the step. The hook lives only in this file (a
  worker that patches Stepper.__call__ before training); nothing in mpbench reads it.
  Detection rate = share of n-vs-n draws (n = 3, 5; all when few) called `regression`;
- real slowdown: --rounds rounds of 3 runs beside two busy processes (pure-Python spin
  loops) and 3 quiet runs; each round is one 3-vs-3 gate comparison.

Every verdict is the product's (mpbench.analysis.regression.slowdown_test_runs, the gate's
own rule: an exact one-sided rank test on the per-run medians plus the slowdown limit), and
each condition prints the test that decided it.

The comparisons share runs, so they are not independent trials: the rates describe this
machine at this time, with K runs, not a population. Run it on a quiet machine.

    python benchmarks/gate_power.py --quick   # K=6, 1 round: 18 runs, ~3-5 min on a 2-core box
    python benchmarks/gate_power.py           # K=12, 2 rounds: 36 runs, ~6-10 min
    python benchmarks/gate_power.py --save runs.json     # keep the step times
    python benchmarks/gate_power.py --load runs.json     # re-analyse without training
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpbench.analysis.regression import SlowdownTest, slowdown_test_runs
from mpbench.plan.spec import RunSpec, expand
from mpbench.results.env import environment_card
from mpbench.results.env_card import EnvCard
from mpbench.results.schema import RunRecord
from mpbench.results.store import ResultsDir, read_record
from mpbench.train.load import load_suite
from mpbench.train.runner import request, run_in_fresh_process, select

Runs = list[list[float]]


def worker(delay: float) -> int:
    """TEST-ONLY: a fresh-process run whose every step is followed by a busy-wait of
    `delay` times that step's own duration (a real, proportional slowdown of the step)."""
    from mpbench.train import optim
    from mpbench.train.runner import child_main

    original = optim.Stepper.__call__

    def slowed(self: optim.Stepper, x: torch.Tensor, y: torch.Tensor) -> optim.StepResult:
        t0 = time.perf_counter()
        out = original(self, x, y)
        float(out.loss)  # the step is done (CPU: already; CUDA: synchronised here)
        until = time.perf_counter() + delay * (time.perf_counter() - t0)
        while time.perf_counter() < until:
            pass
        return out

    optim.Stepper.__call__ = slowed  # type: ignore[method-assign]
    return child_main()


def run_slowed(spec: RunSpec, results: ResultsDir, env: EnvCard, delay: float) -> RunRecord:
    payload = json.dumps(request(spec, results, torch.device("cpu"), env, {}, None))
    done = subprocess.run([sys.executable, __file__, "--worker", str(delay)], input=payload,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"slowed worker failed: {done.stderr.strip().splitlines()[-1:]}")
    return read_record(results.record_path(spec.run_id))


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def specs(suite_path: Path, only: list[str], count: int) -> list[RunSpec]:
    suite = load_suite(suite_path, "cpu")
    chosen = select(expand(suite.model_copy(update={"repeats": count})), tuple(only))
    configs = {s.config_key.label for s in chosen}
    if len(configs) != 1:
        raise SystemExit(f"--only must pick one configuration; got {sorted(configs)}")
    return chosen


def collect(suite_path: Path, only: list[str], k: int, rounds: int, slowdown: float) -> dict:
    env = environment_card()
    chosen = specs(suite_path, only, 2 * k + 6 * rounds)
    it = iter(chosen)
    out: dict[str, Any] = {"same": [], "slowed": [], "busy": [], "quiet": [], "probe": []}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: ResultsDir(Path(tmp) / name) for name in ("n", "s", "b", "q")}
        for d in dirs.values():
            d.runs_dir.mkdir(parents=True)
        for i in range(k):  # interleaved: N S N S ...
            rec = run_in_fresh_process(next(it), dirs["n"], torch.device("cpu"), env, {}, None)
            out["same"].append(rec.step_times_ms)
            out["probe"].append(rec.probe.score_ms if rec.probe else None)
            out["slowed"].append(run_slowed(next(it), dirs["s"], env, slowdown).step_times_ms)
            print(f"  pair {i + 1}/{k}: {np.median(out['same'][-1]):.1f} ms, slowed "
                  f"{np.median(out['slowed'][-1]):.1f} ms", flush=True)
        for r in range(rounds):
            quiet, loaded = [], []
            for _ in range(3):  # Q B Q B Q B
                quiet.append(run_in_fresh_process(next(it), dirs["q"], torch.device("cpu"),
                                                  env, {}, None).step_times_ms)
                with busy(2):
                    loaded.append(run_in_fresh_process(next(it), dirs["b"], torch.device("cpu"),
                                                       env, {}, None).step_times_ms)
            out["quiet"].append(quiet)
            out["busy"].append(loaded)
            print(f"  busy round {r + 1}/{rounds}: quiet "
                  f"{np.median([np.median(t) for t in quiet]):.1f} ms, beside 2 busy processes "
                  f"{np.median([np.median(t) for t in loaded]):.1f} ms", flush=True)
    out["machine"] = env.cpu.model
    out["threads"] = torch.get_num_threads()
    return out


def shares(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{v} {counts[v]}/{total} ({counts[v] / total:.0%})" for v in
                     ("regression", "inconclusive", "ok", "improved") if counts[v])


def draws(n_runs: int, n: int, disjoint_from: int | None, count: int,
          rng: np.random.Generator) -> list[tuple[list[int], list[int]]]:
    """(baseline, current) index sets of size n; disjoint when from one pool. Every possible
    pair when there are at most `count` of them (6 runs, 3 a side: all 20 splits, so the
    rate is the exact share, not a noisy estimate of it), else `count` random ones."""
    if disjoint_from is None:
        every = [(list(b), list(c)) for b in itertools.combinations(range(n_runs), n)
                 for c in itertools.combinations(sorted(set(range(n_runs)) - set(b)), n)]
    else:
        every = [(list(b), list(c)) for b in itertools.combinations(range(n_runs), n)
                 for c in itertools.combinations(range(disjoint_from), n)]
    if len(every) <= count:
        return every
    out = []
    for _ in range(count):
        if disjoint_from is None:
            idx = rng.permutation(n_runs)
            out.append((list(idx[:n]), list(idx[n:2 * n])))
        else:
            out.append((list(rng.choice(n_runs, n, replace=False)),
                        list(rng.choice(disjoint_from, n, replace=False))))
    return out


def tests_used(tests: list[SlowdownTest]) -> str:
    """The significance test behind a condition's verdicts (the product's, as the gate says)."""
    return "; ".join(f"{name} x{count}" if count < len(tests) else name
                     for name, count in Counter(t.test for t in tests).items())


def analyse(data: dict, alpha: float, max_slowdown: float, n_draws: int) -> None:
    rng = np.random.default_rng(0)
    same: Runs = data["same"]
    slowed: Runs = data["slowed"]

    def condition(pairs: list[tuple[Runs, Runs]]) -> tuple[Counter[str], str]:
        tests = [slowdown_test_runs(b, c, alpha, max_slowdown, n_resamples=200) for b, c in pairs]
        return Counter(t.verdict for t in tests), tests_used(tests)

    medians = sorted(float(np.median(t)) for t in same)
    print(f"same code: {len(same)} runs, run medians {medians[0]:.2f}-{medians[-1]:.2f} ms "
          f"(spread {medians[-1] / medians[0] - 1:.0%}); alpha {alpha:g}")
    one, used = condition([([same[i]], [same[j]])
                           for i, j in itertools.permutations(range(len(same)), 2)])
    print(f"  1 run per side, {sum(one.values())} ordered pairs: {shares(one)}\n    test: {used}")
    if len(same) >= 6:
        picked = draws(len(same), 3, None, n_draws, rng)
        three, used = condition([([same[i] for i in b], [same[i] for i in c])
                                 for b, c in picked])
        how = f"all {len(picked)}" if len(picked) < n_draws else f"{n_draws} random"
        print(f"  3 runs per side, {how} disjoint draws: {shares(three)}\n    test: {used}")
    ratio = np.median([np.median(t) for t in slowed]) / np.median(medians)
    print(f"injected slowdown: {len(slowed)} runs, measured {ratio - 1:+.1%}")
    for n in (3, 5):
        if len(same) >= n and len(slowed) >= n:
            picked = draws(len(same), n, len(slowed), n_draws, rng)
            got, used = condition([([same[i] for i in b], [slowed[i] for i in c])
                                   for b, c in picked])
            how = f"all {len(picked)}" if len(picked) < n_draws else f"{n_draws}"
            print(f"  {n} runs per side, {how} draws: detection {got['regression']}/"
                  f"{len(picked)} ({got['regression'] / len(picked):.0%}); {shares(got)}\n"
                  f"    test: {used}")
    for r, (quiet, loaded) in enumerate(zip(data["quiet"], data["busy"], strict=True)):
        test = slowdown_test_runs(quiet, loaded, alpha, max_slowdown)
        change = test.ratio.value - 1 if test.ratio else float("nan")
        print(f"beside 2 busy processes, round {r + 1}: 3 vs 3 runs, {change:+.0%}: "
              f"{test.verdict} ({test.why})\n    test: {test.test}")
    print(f"machine: {data['machine']}, torch threads {data['threads']}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker(float(sys.argv[2])))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=Path("suites/smoke.yaml"))
    ap.add_argument("--only", nargs="+", default=["fp32"],
                    help="names picking ONE configuration of the suite (run --only)")
    ap.add_argument("--runs", type=int, default=12, help="K: same-code and slowed runs each")
    ap.add_argument("--rounds", type=int, default=2, help="busy-machine rounds (3+3 runs each)")
    ap.add_argument("--quick", action="store_true", help="K=6, 1 busy round")
    ap.add_argument("--slowdown", type=float, default=0.10)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--max-slowdown", type=float, default=0.05)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--load", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.runs, args.rounds = 6, 1
    t0 = time.perf_counter()
    if args.load:
        data = json.loads(args.load.read_text())
    else:
        print(f"{args.suite} {' '.join(args.only)}: {args.runs} same-code + {args.runs} slowed "
              f"runs, {args.rounds} busy round(s), each run in a fresh process", flush=True)
        data = collect(args.suite, args.only, args.runs, args.rounds, args.slowdown)
        if args.save:
            args.save.write_text(json.dumps(data))
    analyse(data, args.alpha, args.max_slowdown, args.draws)
    print(f"took {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
