"""`mpbench bench-comm`: collective bandwidth per dtype; `mpbench scaling`: efficiency table."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mpbench.errors import UserError

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
RESULT_FILE = "comm-bench.json"


def parse_size(text: str, flag: str) -> int:
    t = text.strip().upper().removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        value = int(float(t[: len(t) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise UserError(f"{flag}: {text!r} is not a size; write e.g. 1K, 256K, 64M") from None
    if value <= 0:
        raise UserError(f"{flag}: {text!r} must be above 0")
    return value


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def print_comm_table(console: Console, result: dict[str, Any]) -> None:
    table = Table(title=f"collectives on {result['world_size']} ranks ({result['backend']}, "
                        f"{result['device']}); busbw as nccl-tests defines it")
    for col in ("op", "dtype", "size", "time (us)", "algbw GB/s", "busbw GB/s", "check"):
        table.add_column(col, justify="left" if col in ("op", "dtype") else "right")
    for row in result["rows"]:
        table.add_row(row["op"], row["dtype"], _human(row["size_bytes"]), f"{row['time_us']:,.1f}",
                      f"{row['algbw_GBps']:.3f}", f"{row['busbw_GBps']:.3f}",
                      "ok" if row["correct"] else "WRONG")
    console.print(table)


@click.command("bench-comm")
@click.option("--nproc", type=click.IntRange(min=1), default=None, metavar="N",
              help="Start N processes with torchrun (or start this command under torchrun).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="GPUs use NCCL, CPUs gloo.")
@click.option("--op", "ops", multiple=True, type=click.Choice(["all_reduce", "reduce_scatter",
              "all_gather"]), help="Collectives to time (repeatable; default: all three).")
@click.option("--dtype", "dtypes", multiple=True, type=click.Choice(["fp32", "bf16", "fp16"]),
              help="Dtypes (repeatable; default: fp32, bf16, fp16).")
@click.option("--min-bytes", default="1K", show_default=True, help="Smallest message (nccl-tests -b).")
@click.option("--max-bytes", default="16M", show_default=True, help="Largest message (nccl-tests -e).")
@click.option("--factor", type=click.IntRange(min=2), default=4, show_default=True,
              help="Size multiplier between steps (nccl-tests -f).")
@click.option("--iters", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--reps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed repeats; the median is kept.")
@click.option("--timeout-s", type=click.FloatRange(min=1), default=300, show_default=True,
              help="A collective waiting longer fails the benchmark (a dead rank).")
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help=f"Directory for {RESULT_FILE} (default: reports/comm-bench-<time>).")
def bench_comm(nproc: int | None, device: str, ops: tuple[str, ...], dtypes: tuple[str, ...],
               min_bytes: str, max_bytes: str, factor: int, iters: int, warmup: int, reps: int,
               timeout_s: float, out: Path | None) -> None:
    """Time all-reduce, reduce-scatter and all-gather per dtype and message size.

    \b
    Examples:
      mpbench bench-comm --nproc 8                  # one node, 8 GPUs
      mpbench bench-comm --nproc 2 --device cpu --max-bytes 4M
      torchrun --nnodes 2 --nproc-per-node 8 ... -m mpbench bench-comm -o reports/comm
    """
    from mpbench.distributed.comm_bench import OPS, sizes_between
    from mpbench.distributed.group import TorchrunEnv
    from mpbench.results.output import check_writable_dir
    from mpbench.train import resolve_device

    dev = resolve_device(device)
    low, high = parse_size(min_bytes, "--min-bytes"), parse_size(max_bytes, "--max-bytes")
    if low > high:
        raise UserError(f"--min-bytes {min_bytes} is above --max-bytes {max_bytes}; swap them")
    sizes = sizes_between(low, high, factor)
    out = out or Path("reports") / f"comm-bench-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if (out / RESULT_FILE).exists() and "TORCHELASTIC_RUN_ID" not in os.environ:
        raise UserError(f"--out: {out} already holds {RESULT_FILE}; choose another --out")
    env = TorchrunEnv.detect()
    if env is None:
        if nproc is None:
            raise UserError("bench-comm needs several processes: pass --nproc N "
                            "(or start it under torchrun)")
        passed = [*(f"--op={o}" for o in ops), *(f"--dtype={d}" for d in dtypes),
                  f"--min-bytes={min_bytes}", f"--max-bytes={max_bytes}", f"--factor={factor}",
                  f"--iters={iters}", f"--warmup={warmup}", f"--reps={reps}",
                  f"--timeout-s={timeout_s}"]
        _launch(nproc, dev.type, out, passed)
        return
    check_writable_dir(out)
    _as_rank(env, dev.type, list(ops or OPS), list(dtypes or ("fp32", "bf16", "fp16")), sizes,
             iters, warmup, reps, timeout_s, out)


def _launch(nproc: int, kind: str, out: Path, passed: list[str]) -> None:
    import torch

    from mpbench.distributed.launch import launch
    from mpbench.results.output import check_writable_dir

    if kind == "cuda" and nproc > torch.cuda.device_count():
        raise UserError(f"--nproc {nproc}: only {torch.cuda.device_count()} CUDA device(s) are "
                        "visible; one process drives one GPU, so lower --nproc")
    check_writable_dir(out)
    code = launch(nproc, 0, ["bench-comm", "--device", kind, "--out", str(out), *passed])
    console = Console() if Console().is_terminal else Console(width=150)
    path = out / RESULT_FILE
    if code != 0 or not path.is_file():
        console.print(f"torchrun exited with code {code}; no result in {path}", highlight=False)
        sys.exit(1)
    from mpbench.results.store import read_json

    print_comm_table(console, read_json(path, "re-run `mpbench bench-comm`"))
    console.print(f"results: {path.resolve()}", highlight=False, soft_wrap=True)


def _as_rank(env: Any, kind: str, ops: list[str], dtypes: list[str], sizes: list[int],
             iters: int, warmup: int, reps: int, timeout_s: float, out: Path) -> None:
    from mpbench.config.parallel import ParallelConfig
    from mpbench.distributed.comm_bench import run_comm_bench
    from mpbench.distributed.group import init_group, rank_device
    from mpbench.distributed.launch import launched_by_parent
    from mpbench.distributed.nodes import topology
    from mpbench.results.env import environment_card
    from mpbench.results.output import write_output

    device = rank_device(kind, env)
    group = init_group(env, device, ParallelConfig(timeout_s=timeout_s))
    try:
        rows = run_comm_bench(device, ops, dtypes, sizes, iters, warmup, reps)
    finally:
        group.destroy()
    if env.rank != 0:
        return
    result = {
        "kind": "comm-bench", "schema_version": 1, "world_size": env.world_size,
        "backend": group.backend, "device": str(device),
        "topology": topology(device, env.world_size, env.local_world_size),
        "settings": {"iters": iters, "warmup": warmup, "reps": reps},
        "definitions": "size: nccl-tests bytes; algbw = size/time; busbw = algbw x 2(n-1)/n "
                       "(all_reduce) or (n-1)/n (reduce_scatter, all_gather); GB = 1e9 B",
        "rows": rows, "env": environment_card().model_dump(mode="json"),
    }
    write_output(out / RESULT_FILE, json.dumps(result, indent=1), "--out")
    if not launched_by_parent():
        console = Console() if Console().is_terminal else Console(width=150)
        print_comm_table(console, result)
        console.print(f"results: {(out / RESULT_FILE).resolve()}", highlight=False, soft_wrap=True)


@click.command("scaling")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--weak", is_flag=True,
              help="Match runs by per-device batch (weak scaling) instead of global batch.")
def scaling(results: tuple[Path, ...], weak: bool) -> None:
    """Tokens/s per device and scaling efficiency across world sizes.

    \b
    Examples:
      mpbench run suites/ddp.yaml --nproc 1 -o reports/w1
      mpbench run suites/ddp.yaml --nproc 2 -o reports/w2
      mpbench scaling reports/w1 reports/w2
    """
    from mpbench.distributed.scaling import scaling_rows
    from mpbench.results.store import load_records

    records = [r for path in results for r in load_records(path)]
    rows = scaling_rows(records, weak)
    if not rows:
        raise UserError("no ok runs with a throughput in " + ", ".join(map(str, results)))
    console = Console() if Console().is_terminal else Console(width=150)
    table = Table(title=f"{'weak' if weak else 'strong'} scaling (efficiency = tokens/s per "
                        "device over the baseline's)")
    for col in ("model", "precision", "strategy", "comm", "world", "tokens/s/device",
                "efficiency", "runs", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["model"], r["precision"], r["strategy"], r["grad_comm_dtype"],
                      str(r["world_size"]), f"{r['tokens_per_s_per_device']:,.0f}",
                      f"{r['efficiency']:.2f}", str(r["runs"]), r["note"])
    console.print(table)


COMMANDS = [bench_comm, scaling]
