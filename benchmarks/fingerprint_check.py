"""Numerics fingerprint: false alarms, injected changes, and cost, measured on this machine.

1. Baseline: `mpbench fingerprint run suites/fingerprint.yaml` (every CPU recipe, 2 repeats,
   FP32 at 3 seeds), in a fresh process, as CI runs it.
2. Same code: N more fresh processes (`--repeats 1 --band-seeds 1`), each gated against the
   baseline: every recipe must be identical or within the repeat tolerance (a false alarm is
   anything else).
3. Injected changes, each a change a library upgrade could make without the suite saying so,
   gated against the baseline; the gate must name the expected step and layer:
   - fp8-emulated runs delayed scaling (amax history 16) where the record says current
     scaling: first change at step 0 in the first FP8 layer (blocks.0.attn.qkv);
   - fp8-emulated delayed scaling with an amax history of 1 where the record says 16 (located
     where it shows; the step where the history first matters depends on the amaxes);
   - LayerNorm epsilon 1e-5 -> 1e-6 in blocks.1.ln_2 (fp32): step 0, blocks.1.ln_2;
   - blocks.0.mlp.fc's matmul in bf16 (fp32 recipe): step 0, blocks.0.mlp.fc;
   - harmless: blocks.0.mlp.fc's matmul summed in two halves over K (fp32): located at
     step 0, blocks.0.mlp.fc, and reported inside the FP32 seed band (not a regression).
4. Cost (measured first): `mpbench fingerprint run suites/smoke.yaml` (fp32, bf16, fp16),
   wall time with process start and CPU time, a few times, with the load average.

    python benchmarks/fingerprint_check.py [--pairs 10] [--out /tmp/fingerprint-check]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

from mpbench.analysis.fingerprint_compare import FingerprintComparison, compare_sets, place_text
from mpbench.cli.fingerprint import record
from mpbench.plan.fingerprint import FingerprintPlan
from mpbench.precision.fp8_emulated import Fp8Emulated
from mpbench.results.store import load_records
from mpbench.train import loop

SUITE = Path("suites/fingerprint.yaml")
CURRENT = FingerprintPlan(repeats=1, band_seeds=1)


def cli(*args: str) -> tuple[float, float, str]:
    """Run `mpbench ARGS` in a fresh process: wall seconds, CPU seconds, its last line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mpbench", *args], capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"mpbench {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout.strip().splitlines()[-1]


def load() -> str:
    return Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name.split(":")[0]).strip("-")[:40]


@contextlib.contextmanager
def model_patched(change: Callable[[nn.Module], None]) -> Iterator[None]:
    """Every model the loop builds gets `change` (before the recipe converts it)."""
    build = loop.build_entry

    def patched(*args: Any, **kwargs: Any) -> nn.Module:
        model = build(*args, **kwargs)
        change(model)
        return model

    with mock.patch.object(loop, "build_entry", patched):
        yield


def linear_forward(layer: nn.Linear, how: str) -> None:
    def bf16(x: torch.Tensor) -> torch.Tensor:
        bias = layer.bias.bfloat16() if layer.bias is not None else None
        return F.linear(x.bfloat16(), layer.weight.bfloat16(), bias).to(x.dtype)

    def split_k(x: torch.Tensor) -> torch.Tensor:
        k = x.shape[-1] // 2
        w = layer.weight
        y = F.linear(x[..., :k], w[:, :k]) + F.linear(x[..., k:], w[:, k:])
        return y + layer.bias if layer.bias is not None else y

    layer.forward = bf16 if how == "bf16" else split_k  # type: ignore[method-assign]


def norm_eps(model: nn.Module) -> None:
    model.get_submodule("blocks.1.ln_2").eps = 1e-6  # type: ignore[union-attr]


INJECTIONS: dict[str, tuple[Any, str, str, tuple[int, str] | None, bool]] = {
    # name: (context, only, recipe, expected (step, layer) or None, harmless)
    "fp8 delayed (history 16) instead of current": (
        lambda: mock.patch.object(Fp8Emulated, "amax_history_len", lambda self: 16),
        "fp8-emulated", "fp8-emulated", (0, "blocks.0.attn.qkv"), False),
    "fp8 amax history 1 instead of 16": (
        lambda: mock.patch.object(Fp8Emulated, "amax_history_len",
                                  lambda self: 1 if self.delayed else None),
        "fp8-emulated", "fp8-emulated-222abd", None, False),
    "LayerNorm eps 1e-5 -> 1e-6 in blocks.1.ln_2": (
        lambda: model_patched(norm_eps), "fp32", "fp32", (0, "blocks.1.ln_2"), False),
    "bf16 matmul in blocks.0.mlp.fc": (
        lambda: model_patched(lambda m: linear_forward(m.get_submodule("blocks.0.mlp.fc"),
                                                       "bf16")),
        "fp32", "fp32", (0, "blocks.0.mlp.fc"), False),
    "harmless: split-K summation in blocks.0.mlp.fc": (
        lambda: model_patched(lambda m: linear_forward(m.get_submodule("blocks.0.mlp.fc"),
                                                       "split")),
        "fp32", "fp32", (0, "blocks.0.mlp.fc"), True),
}


def gate(base: Path, cur: Path) -> FingerprintComparison:
    return compare_sets(load_records(base), load_records(cur), str(base), str(cur))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--cost-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fingerprint-check"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    # the load average says whether other work shared the machine; the timings carry it
    print(f"machine: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores; "
          f"load average {load()} at the start")
    for i in range(args.cost_repeats):
        smoke = args.out / f"smoke-{i}"
        load_before = load()
        wall, cpu, last = cli("fingerprint", "run", "suites/smoke.yaml", "-o", str(smoke))
        runs = len(list((smoke / "runs").glob("*.json")))
        print(f"cost: smoke suite fingerprint ({runs} runs: fp32, bf16, fp16 x 2 repeats + "
              f"FP32 seed band), {wall:.1f} s wall with process start, {cpu:.1f} s CPU, "
              f"'{last.split(':')[0]}'; load average {load_before}")
    base = args.out / "baseline"
    wall, cpu, _ = cli("fingerprint", "run", str(SUITE), "-o", str(base))
    print(f"baseline ({SUITE}, 2 repeats, FP32 x 3 seeds): {wall:.1f} s wall, {cpu:.1f} s CPU")

    alarms = 0
    for i in range(args.pairs):
        cur = args.out / f"same-{i}"
        cli("fingerprint", "run", str(SUITE), "-o", str(cur), "--repeats", "1",
            "--band-seeds", "1")
        c = gate(base, cur)
        bad = [r for r in c.recipes if r.level not in ("identical", "within-repeat-tolerance")]
        alarms += bool(bad)
        print(f"same code, pair {i + 1}: {c.level}, {len(c.recipes)} recipes"
              + "".join(f"; {r.recipe}: {r.level} at {place_text(r.first_change)}" for r in bad))
    print(f"false alarms: {alarms} of {args.pairs} same-code pairs")
    cur = args.out / "threads-2"
    cli("fingerprint", "run", str(SUITE), "-o", str(cur), "--repeats", "1", "--band-seeds", "1",
        "--threads", "2")
    c = gate(base, cur)
    print(f"same code, 2 threads instead of 1: {c.level}; software differs: {c.software}; "
          + "; ".join(f"{r.recipe}: {r.level}" for r in c.recipes))

    for name, (context, only, recipe, expected, harmless) in INJECTIONS.items():
        cur = args.out / slug(name)
        with context():
            record(SUITE, cur, "cpu", CURRENT, only=(only,))
        c = gate(base, cur)
        r = next(x for x in c.recipes if x.recipe == recipe)
        first = r.first_change
        located = (first is not None and expected is not None
                   and (first.step, first.layer) == expected)
        verdict = ("ok" if (r.level == "inside-seed-band" if harmless
                            else r.level in ("inside-seed-band", "beyond-seed-band"))
                   and (expected is None or located) else "MISSED")
        print(f"{name}: {r.level}; first change {place_text(first)}; first beyond "
              f"{place_text(r.first_beyond)}; band use {r.band_use:.3g}"
              f"; expected {expected or 'any'} -> {verdict}")



if __name__ == "__main__":
    main()
