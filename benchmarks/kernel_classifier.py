"""The kernel classifier (profilers/kernel_rules.py) on the corpus of real GPU traces.

    python benchmarks/kernel_classifier.py report        # per trace: tensor-core share, bucket error
    python benchmarks/kernel_classifier.py time [--repeats 7]   # classify + summarize the largest trace
    python benchmarks/kernel_classifier.py extract TRACE.json[.gz] > draft.tsv
    python benchmarks/kernel_classifier.py crosscheck TRACE.json[.gz] CORPUS.tsv

`extract` turns a Kineto/Chrome trace into a corpus draft: one row per kernel name (total
time in us, launches), memcpy/memset included; the expected bucket is left as `?` for a
person to write by reading each name (the header lines are to be filled in too).
`crosscheck` is a check of the hand-written buckets that does not read kernel names: the
share of kernel time launched under a matmul, convolution or attention operator (the Kineto
`External id` that links a kernel to its CPU op) beside the share the corpus file's GEMM,
convolution and attention buckets give. They differ where cuDNN runs layout kernels under a
convolution, or where a custom op (vLLM's `moe_forward`) launches the GEMMs.
`time` replays every launch of the largest corpus trace (count rows of total/count us each)
through classify_kernel and summarize, the work the profiler does after each profiled run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mpbench.profilers import kernel_rules as k
from mpbench.profilers.profile_summary import Timed, summarize
from mpbench.results.payloads import KernelSummary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kernel_corpus import Trace, corpus, read_trace

GPU_EVENTS = ("kernel", "gpu_memcpy", "gpu_memset", "memcpy", "memset")
MATH_OPS = (("gemm", re.compile(r"^aten::(mm|addmm|bmm|baddbmm|matmul|linear|_scaled_mm|addmv|mv|"
                                r"dot|_addmm_activation)$")),
            ("conv", re.compile(r"conv", re.I)),
            ("attention", re.compile(r"flash|efficient_attention|scaled_dot_product|attention",
                                     re.I)))


def load_trace(path: Path) -> Any:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return json.load(f)


def crosscheck(trace_path: Path, corpus_path: Path) -> None:
    data = load_trace(trace_path)
    events = [e for e in data.get("traceEvents", []) if isinstance(e, dict)]
    ops: dict[Any, list[str]] = defaultdict(list)
    for e in events:
        if str(e.get("cat", "")).lower() in ("cpu_op", "operator"):
            ops[e.get("args", {}).get("External id")].append(e["name"])
    by_op: dict[str, float] = defaultdict(float)
    linked = total = 0.0
    for e in events:
        if str(e.get("cat", "")).lower() != "kernel":
            continue
        names = ops.get(e.get("args", {}).get("External id"), [])
        total += float(e.get("dur", 0))
        linked += float(e.get("dur", 0)) if names else 0.0
        kind = next((k for k, rx in MATH_OPS if any(rx.search(n) for n in names)), None)
        if kind:
            by_op[kind] += float(e.get("dur", 0))
    trace = read_trace(corpus_path)
    kernel_us = sum(r.time_us for r in trace.rows if r.bucket != k.COPY)
    labels: dict[str, float] = defaultdict(float)
    for r in trace.rows:
        kind = ("gemm" if r.bucket.startswith("gemm") else "conv" if r.bucket.startswith("conv")
                else "attention" if r.bucket == k.ATTENTION else None)
        if kind:
            labels[kind] += r.time_us
    print(f"{corpus_path.stem}: kernel time linked to a CPU op {linked / total:.1%}")
    for kind, _ in MATH_OPS:
        print(f"  {kind:9s} by launching op {by_op[kind] / total:6.1%}   "
              f"by hand-written bucket {labels[kind] / kernel_us:6.1%}")
    print(f"  {'together':9s} by launching op {sum(by_op.values()) / total:6.1%}   "
          f"by hand-written bucket {sum(labels.values()) / kernel_us:6.1%}")


def extract(path: Path) -> str:
    data = load_trace(path)
    events = data.get("traceEvents", []) if isinstance(data, dict) else data
    props = data.get("deviceProperties", []) if isinstance(data, dict) else []
    per_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        if isinstance(e, dict) and str(e.get("cat", "")).lower() in GPU_EVENTS and "dur" in e:
            entry = per_name[e["name"]]
            entry[0] += float(e["dur"])
            entry[1] += 1
    gpu = props[0] if props else {}
    lines = [f"# source: ? ({path.name})", "# commit: ?",
             f"# gpu: {gpu.get('name', '?')}",
             f"# sm: {gpu.get('computeMajor', '')}{gpu.get('computeMinor', '')}",
             "# workload: ?"]
    for name, (t, n) in sorted(per_name.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"?\t{t:.3f}\t{int(n)}\t{' '.join(name.split())}")
    return "\n".join(lines) + "\n"


def measured(trace: Trace) -> KernelSummary:
    items = [Timed(r.name, r.time_us, k.classify_kernel(r.name)) for r in trace.rows]
    return summarize(items, k.GPU_BUCKETS, sm=trace.sm)


def expected(trace: Trace) -> KernelSummary:
    items = [Timed(r.name, r.time_us, r.bucket) for r in trace.rows]
    return summarize(items, k.GPU_BUCKETS, sm=trace.sm)


def report() -> None:
    print(f"{'trace':20s} {'names':>5s} {'TC expected':>11s} {'TC got':>7s} {'diff':>7s} "
          f"{'max bucket err':>22s} {'unclassified':>12s} {'copy us':>10s}")
    for trace in corpus():
        got, want = measured(trace), expected(trace)
        worst = max(k.GPU_BUCKETS, key=lambda b: abs(got.buckets[b] - want.buckets[b]))
        err = got.buckets[worst] - want.buckets[worst]
        where = worst if err else "-"
        print(f"{trace.path.stem[:20]:20s} {len(trace.rows):5d} "
              f"{want.tensor_core_share:11.1%} {got.tensor_core_share:7.1%} "
              f"{(got.tensor_core_share - want.tensor_core_share) * 100:+6.2f}p "
              f"{err * 100:+6.2f}p {where:>14s} {got.unclassified_share:12.1%} "
              f"{got.copy_time_us:10.0f}")


def timing(repeats: int) -> None:
    largest = max(corpus(), key=lambda t: sum(r.count for r in t.rows))
    launches = [(r.name, r.time_us / r.count) for r in largest.rows for _ in range(r.count)]
    runs = []
    for _ in range(repeats):
        k.classify_kernel.cache_clear()  # each repeat starts cold, as a new process would
        t0 = time.perf_counter()
        summarize([Timed(n, t, k.classify_kernel(n)) for n, t in launches], k.GPU_BUCKETS)
        runs.append(time.perf_counter() - t0)
    print(f"{largest.path.stem}: {len(launches)} launches, {len(largest.rows)} distinct names; "
          f"classify + summarize median {statistics.median(runs) * 1e3:.1f} ms "
          f"(min {min(runs) * 1e3:.1f}, max {max(runs) * 1e3:.1f}, {repeats} cold repeats) "
          f"on {platform.processor() or platform.machine()}, Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("report")
    t = sub.add_parser("time")
    t.add_argument("--repeats", type=int, default=7)
    e = sub.add_parser("extract")
    e.add_argument("trace", type=Path)
    c = sub.add_parser("crosscheck")
    c.add_argument("trace", type=Path)
    c.add_argument("corpus_file", type=Path)
    args = parser.parse_args()
    if args.cmd == "report":
        report()
    elif args.cmd == "time":
        timing(args.repeats)
    elif args.cmd == "crosscheck":
        crosscheck(args.trace, args.corpus_file)
    else:
        sys.stdout.write(extract(args.trace))


if __name__ == "__main__":
    main()
