"""Profiler overhead: window tokens/s with profilers on vs off (target: within 1%).

The timed window is what a profiler must not distort. Runs alternate (off on, on off, ...)
on the same model and data; "on" attaches tensor_cores, memory and mfu (and nvml on a GPU).
tensor_cores and memory do their work after the window (the torch.profiler window and the
counted step are extra steps); mfu and nvml hook every measured step (nvml also runs its
sampler thread through the window). The overhead is the ratio of median window tokens/s and
of median step times: tokens/s is one value per run, and step times are compared run-level
(hierarchical bootstrap over runs, then steps; analysis/stats.py), so each interval rests
on the run-to-run noise, not on steps of one process treated as independent.

    python benchmarks/profiler_overhead.py [--model gpt-mini] [--repeats 6] [--steps 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from mpbench.analysis.stats import median_ratio, step_time_ratio
from mpbench.config.schema import (
    DataConfig,
    ModelSpec,
    PrecisionSpec,
    ProfilerSpec,
    Suite,
    TrainConfig,
)
from mpbench.data import make_source
from mpbench.plan.spec import expand
from mpbench.results.env import environment_card
from mpbench.results.payloads import NvmlResult
from mpbench.train.loop import train_run


def pct(ratio: float) -> str:
    """A ratio as the change it means: 1.012 -> '+1.20%'."""
    return f"{100 * (ratio - 1):+.2f}%"

def suite_for(model: str, precision: str, steps: int, profilers: list[str]) -> Suite:
    return Suite(
        name="profiler-overhead", models=[ModelSpec(size=model)],
        precisions=[PrecisionSpec(name=precision)],
        train=TrainConfig(batch_size=8, seq_len=64, steps=steps, warmup_steps=5, eval_batches=0),
        data=DataConfig(source="synthetic"),
        profilers=[ProfilerSpec(name=p) for p in profilers],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt-mini")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 steadies timings on a shared machine)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    profilers = ["tensor_cores", "memory", "mfu"] + (["nvml"] if device.type == "cuda" else [])
    off = suite_for(args.model, args.precision, args.steps, [])
    on = suite_for(args.model, args.precision, args.steps, profilers)
    source = make_source(off.data)
    env = environment_card()
    tps: dict[str, list[float]] = {"off": [], "on": []}
    steps: dict[str, list[list[float]]] = {"off": [], "on": []}
    hooks: list[float] = []
    for r in range(args.repeats):
        arms = (("off", off), ("on", on))
        for label, suite in arms if r % 2 == 0 else arms[::-1]:  # ABBA: no order bias
            (spec,) = expand(suite)
            record = train_run(spec, source, device, env)
            assert record.status == "ok", record.reason
            tps[label].append(record.tokens_per_s or 0.0)
            steps[label].append(record.step_times_ms)
            if label == "on":
                hooks.append(record.hook_time_s)
                nvml = record.result(NvmlResult)
                overhead = nvml.overhead_fraction if nvml is not None else None
                if overhead is not None:
                    print(f"  nvml sampler CPU time: {100 * overhead:.3f}% of the window")
    throughput = median_ratio(tps["on"], tps["off"])  # off tokens/s over on tokens/s
    step_ratio = step_time_ratio(steps["off"], steps["on"])  # on over off, run-level
    assert throughput is not None and step_ratio is not None
    where = env.device_name(device.type)
    print(f"{args.model} {args.precision} on {device} ({where}, torch threads "
          f"{torch.get_num_threads()}), {args.repeats} x "
          f"{args.steps} steps per arm; profilers on: {', '.join(profilers)}")
    print(f"window tokens/s: off {statistics.median(tps['off']):,.0f}, "
          f"on {statistics.median(tps['on']):,.0f}; throughput cost "
          f"{pct(throughput.value)} (95% CI {throughput.bounds_text(pct)}), target within 1%")
    med = {k: statistics.median(statistics.median(r) for r in v) for k, v in steps.items()}
    print(f"median run median step: off {med['off']:.3f} ms, on {med['on']:.3f} ms; step-time "
          f"cost {100 * (step_ratio.value - 1):+.2f}% (run-level 95% CI "
          f"{step_ratio.bounds_text(pct)}, "
          f"{step_ratio.basis})")
    print(f"hook time taken out of the window: median {1e3 * statistics.median(hooks):.2f} ms per run")


if __name__ == "__main__":
    main()
