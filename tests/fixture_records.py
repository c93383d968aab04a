"""Run and bench records with known values, for the claims and report tests.

Step times are drawn from a seeded normal distribution around a chosen mean, so every
ratio the tests expect is known up to a small, stated noise.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mpbench.bench.store import BenchRecord
from mpbench.precision import RECIPES
from mpbench.results.key import ParallelKey, make_key
from mpbench.results.payloads import (
    MemoryResult,
    NumericsResult,
    Overflow,
    ProfileResult,
    Underflow,
)
from mpbench.results.schema import SCHEMA_VERSION, MemoryStats, RunRecord
from mpbench.results.store import MANIFEST

CPU_ENV: dict[str, Any] = {
    "hostname": "test", "os": "Linux", "python": "3.11", "mpbench": "0.1.0",
    "mpbench_commit": "abc123", "torch": "2.13.0+cpu", "cuda": None, "cudnn": None,
    "transformer_engine": None, "torchao": None,
    "cpu": {"model": "Test CPU", "arch": "x86_64", "logical_cores": 2, "torch_threads": 2,
            "torch_cpu_capability": "AVX512", "isa_flags": ["avx2", "avx512_bf16", "avx512f"],
            "fast_bf16": True, "fast_fp16": False, "isa_env_overrides": {}},
    "gpu": None,
}


def gpu_env(name: str = "NVIDIA H100 80GB HBM3", capability: str = "9.0") -> dict[str, Any]:
    major, minor = (int(x) for x in capability.split("."))
    env = json.loads(json.dumps(CPU_ENV))
    env.update(torch="2.13.0+cu128", cuda="12.8", cudnn=91000)
    env["gpu"] = {"name": name, "capability": capability, "memory_bytes": 80 * 2**30,
                  "multiprocessors": 132, "count": 1, "driver": "570.00",
                  "tensor_cores": {"fp16": major >= 7, "tf32": major >= 8, "bf16": major >= 8,
                                   "fp8": (major, minor) >= (8, 9), "mxfp8": major >= 10}}
    return env


FAMILY = {"fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "fp16-noscale": "fp16", "bf16": "bf16",
          "bf16-pure": "bf16", "fp8-te": "fp8", "fp8-emulated": "fp8"}
DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp8": "float8_e4m3fn"}


def role_of(precision: str) -> dict[str, str]:
    """The role a registered recipe writes into its card (Recipe.role), 'other' for names
    the fixtures make up."""
    cls = RECIPES.get(precision)
    return {"role": cls.role, "role_note": cls.role_note} if cls else {"role": "other"}


def record(precision: str, seed: int = 0, *, model: str = "gpt-tiny", step_ms: float = 100.0,
           noise: float = 1.0, steps: int = 20, batch: int = 8, seq: int = 64,
           peak_bytes: int | None = 100 * 2**20, eval_loss: float | None = 2.0,
           loss_drop: float = 0.0, env: dict[str, Any] | None = None, status: str = "ok",
           reason: str | None = None, numerics_only: bool = False,
           profiler_results: dict[str, Any] | None = None, ckpt: bool = False,
           suite: str = "fixture", description: str = "fixture suite",
           claims: list[str] | None = None, n_params: int = 1_000_000,
           matrix: dict[str, Any] | None = None, parallel: ParallelKey | None = None,
           repeat: int = 0) -> RunRecord:
    """One run: step times ~ N(step_ms, noise), a loss curve from 4.0 down by 1.0 + loss_drop.

    `matrix` is this run's values of the suite's matrix settings (e.g. {"lr": 0.01}), `parallel`
    its data-parallel combination; the run id and the configuration key say both, as
    the plan writes them (ConfigKey.run_id)."""
    env = env or CPU_ENV
    device = "cuda:0" if env.get("gpu") else "cpu"
    extra = f"|{matrix}|{parallel}|{repeat}" if matrix or parallel or repeat else ""
    rng = np.random.default_rng(zlib.crc32(
        f"{precision}|{seed}|{model}|{batch}|{ckpt}{extra}".encode()))
    ok = status == "ok"
    times = list(np.abs(rng.normal(step_ms, noise, steps))) if ok else []
    tokens = batch * seq
    curve = [(i + 1, 4.0 - (1.0 + loss_drop) * i / (steps - 1) + float(rng.normal(0, 0.002)))
             for i in range(steps)] if ok else []
    fam = FAMILY.get(precision, precision.split("-")[0])
    matrix = matrix or {}
    train = {"batch_size": batch, "seq_len": seq, "steps": steps, "warmup_steps": 2,
             "activation_checkpointing": ckpt, "compile": False, **matrix}
    profile = "cpu" if device == "cpu" else "cuda"
    key = make_key(model, precision, {}, train, list(matrix), parallel, profile)
    return RunRecord(
        schema_version=SCHEMA_VERSION, run_id=key.run_id(seed, repeat), config_key=key,
        repeat=repeat, suite=suite, suite_description=description, profile=profile, model=model,
        model_dims={"arch": "gpt", "n_layer": 2}, n_params=n_params, precision=precision,
        recipe={"name": precision, "family": fam, "summary": "", "compute_dtype":
                DTYPE.get(fam, "float32"), "matmul_precision": "highest",
                "numerics_only": numerics_only, "options": {}, **role_of(precision)},
        seed=seed, batch_size=batch, seq_len=seq,
        train=train,
        device=device, device_name=(env.get("gpu") or {}).get("name") or env["cpu"]["model"],
        status=status, reason=reason, step_times_ms=times,
        step_stats={"n": steps, "median_ms": float(np.median(times)), "mean_ms": float(np.mean(
            times)), "stdev_ms": float(np.std(times)), "p10_ms": float(np.percentile(times, 10)),
            "p90_ms": float(np.percentile(times, 90)), "min_ms": min(times),
            "max_ms": max(times)} if ok else None,
        tokens_per_step=tokens,
        tokens_per_s=tokens / (float(np.median(times)) / 1000) if ok else None,
        memory=MemoryStats(kind="cuda" if device != "cpu" else "cpu-rss", peak_bytes=peak_bytes)
        if ok else None,
        loss_curve=curve, final_train_loss=curve[-1][1] if curve else None,
        eval_loss=eval_loss if ok else None, entropy_floor=2.3,
        eval_curve=[(steps, eval_loss)] if ok and eval_loss is not None else [],
        eval_times_s=[sum(times) / 1000] if ok and eval_loss is not None else [],
        flops_per_token=6e6, flops_per_token_counter=6e6,
        achieved_tflops=6e6 * tokens / (step_ms / 1000) / 1e12 if ok else None,
        profiler_results=profiler_results or {}, env=env,
        suite_config={"name": suite, "claims": claims or ["speedup-amp"],
                      "matrix": {k: [v] for k, v in matrix.items()}},
        started_at=f"2026-01-01T{repeat:02d}:{seed:02d}:00+00:00",
        finished_at=f"2026-01-01T{repeat:02d}:{seed:02d}:30+00:00", duration_s=30.0,
    )


def payload(model: type[ProfileResult], **fields: Any) -> dict[str, Any]:
    """A profiler's stored result, built through its typed model (results/payloads/), so a
    renamed field breaks the test that writes it."""
    return model(**fields).model_dump(mode="json", exclude_unset=True)


def stored_results(r: RunRecord) -> dict[str, Any]:
    """The record's profiler results as its JSON file holds them."""
    return dict(json.loads(r.model_dump_json())["profiler_results"])


def memory_profile(n_params: int, activations: int, state_bytes_per_param: float = 16.0
                   ) -> dict[str, Any]:
    params = 4 * n_params
    grads = 4 * n_params
    opt = int((state_bytes_per_param - 8) * n_params)
    return payload(MemoryResult, params_bytes=params, grads_bytes=grads, optimizer_bytes=opt,
                   activations_bytes=activations, fp8_cache_bytes=0, other_bytes=1000,
                   measured_peak_bytes=params + grads + opt + activations + 1000)


def numerics(**fields: Any) -> dict[str, Any]:
    """The numerics profiler's result (NumericsResult; underflow/overflow as dicts)."""
    if "underflow" in fields:
        fields["underflow"] = Underflow(**fields["underflow"])
    if "overflow" in fields:
        fields["overflow"] = Overflow(**fields["overflow"])
    return payload(NumericsResult, **fields)


def bench_record(benchmark: str, rows: list[dict[str, Any]], env: dict[str, Any] | None = None
                 ) -> BenchRecord:
    """A bench record as `mpbench bench` writes it: the typed model, its rows typed."""
    env = env or CPU_ENV
    gpu = env.get("gpu")
    return BenchRecord.model_validate({"schema_version": 1, "kind": "bench", "benchmark": benchmark, "suite": "microbench",
            "profile": "cuda" if gpu else "cpu", "device": "cuda:0" if gpu else "cpu",
            "device_name": gpu["name"] if gpu else env["cpu"]["model"], "rows": rows, "env": env,
            "started_at": "2026-01-01T01:00:00+00:00", "finished_at": "2026-01-01T01:01:00+00:00",
            "duration_s": 60.0})


def gemm_row(dtype: str, size: int, tflops: float, **extra: Any) -> dict[str, Any]:
    return {"dtype": dtype, "shape": "square", "m": size, "n": size, "k": size,
            "flops": 2 * size**3, "tflops": tflops, "reps": 10, **extra}


def write_results(directory: Path, records: list[RunRecord],
                  bench: list[BenchRecord] | list[dict[str, Any]] | None = None) -> Path:
    """A results directory as `mpbench run` (and `mpbench bench`) leave it."""
    (directory / "runs").mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).write_text(json.dumps({
        "format": "mpbench-results", "schema_version": SCHEMA_VERSION,
        "suite": records[0].suite if records else "fixture"}), encoding="utf-8")
    for i, r in enumerate(records):  # file names need not be run ids (those may hold '/')
        (directory / "runs" / f"run{i:04d}.json").write_text(r.model_dump_json(), "utf-8")
    for b in bench or []:
        (directory / "bench").mkdir(exist_ok=True)
        if isinstance(b, BenchRecord):
            (directory / "bench" / f"{b.benchmark}.json").write_text(b.model_dump_json(), "utf-8")
        else:  # a deliberately incomplete file, as a user might leave one
            (directory / "bench" / f"{b['benchmark']}.json").write_text(json.dumps(b), "utf-8")
    return directory
