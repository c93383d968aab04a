"""SUMMARY.md of a GPU check: machine card, steps, figures against the peers', not measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PEERS: dict[str, dict[str, tuple[float, str]]] = {
    # Figures the issue asks the run to be checked against, as cited there (not re-measured
    # or re-verified here): MAMF = maximum achievable matmul FLOPs; torchao tensorwise speed-up.
    "H100": {"bf16_gemm_tflops": (795.0, "MAMF BF16 on H100, as cited in issue 14"),
             "fp8_gemm_tflops": (1400.0, "MAMF FP8 on H100, as cited in issue 14"),
             "ao_tensorwise_speedup": (1.25, "torchao float8 tensorwise vs bf16, issue 14")},
}
PEERS["H200"] = PEERS["H100"]  # the same GH100 compute die; memory differs


def peer_key(gpu_name: str) -> str | None:
    return next((k for k in PEERS if k in gpu_name.upper()), None)


def measured(out: Path, suite: Path | None = None, device_kind: str = "cuda"
             ) -> tuple[dict[str, float | None], list[str]]:
    """The figures the peers publish, from this check's results, and what was missing."""
    from mpbench.bench.ceiling import best_tflops
    from mpbench.bench.store import load_bench
    from mpbench.plan.spec import expand
    from mpbench.results.store import load_records
    from mpbench.train.load import load_suite

    found: dict[str, float | None] = {"bf16_gemm_tflops": None, "fp8_gemm_tflops": None,
                                      "ao_tensorwise_speedup": None}
    missing: list[str] = []
    if (out / "bench").is_dir():
        benches = load_bench(out / "bench")
        found["bf16_gemm_tflops"] = best_tflops(benches, "bf16")
        found["fp8_gemm_tflops"] = best_tflops(benches, "fp8")
    else:
        missing.append("GEMM ceilings: the bench step left no results")
    records = load_records(out / "runs") if (out / "runs").is_dir() else []
    rate = {r.precision: r.tokens_per_s for r in records if r.status == "ok" and r.tokens_per_s}
    if "bf16" in rate and "fp8-ao-tensorwise" in rate:
        found["ao_tensorwise_speedup"] = rate["fp8-ao-tensorwise"] / rate["bf16"]
    if suite is not None:  # runs the suite has but the results lack: the budget ran out first
        done = {r.run_id for r in records}
        missing += [f"run {spec.run_id}: not reached (the suite step stopped first: time budget)"
                    for spec in expand(load_suite(suite, device_kind))  # type: ignore[arg-type]
                    if spec.run_id not in done]
    for r in records:
        if r.status != "ok":
            missing.append(f"run {r.run_id}: {r.status}: {r.reason}")
        for prof, result in (r.profiler_results or {}).items():
            if isinstance(result, dict) and "skipped" in result:
                missing.append(f"run {r.run_id}: profiler {prof}: {result['skipped']}")
    return found, missing


def _card_lines(card: dict[str, Any]) -> list[str]:
    gpu = card.get("gpu") or {}
    rows = [("GPU", gpu.get("name") or "none (CPU)"), ("capability", gpu.get("capability")),
            ("memory GiB", f"{gpu['memory_bytes'] / 2**30:.1f}" if gpu.get("memory_bytes") else None),
            ("driver", gpu.get("driver")), ("CUDA", card.get("cuda")), ("cuDNN", card.get("cudnn")),
            ("torch", card.get("torch")), ("TransformerEngine", card.get("transformer_engine")),
            ("torchao", card.get("torchao")), ("nvidia-ml-py", card.get("nvidia_ml_py")),
            ("CPU", (card.get("cpu") or {}).get("model")), ("python", card.get("python")),
            ("mpbench commit", card.get("mpbench_commit"))]
    return ["| | |", "|---|---|", *(f"| {k} | {v if v is not None else 'not installed / n/a'} |"
                                     for k, v in rows)]


def write_summary(out: Path, card: dict[str, Any], steps: list[dict[str, Any]],
                  dry_run: bool, suite: Path | None = None, device_kind: str = "cuda") -> None:
    gpu_name = str((card.get("gpu") or {}).get("name") or "")
    found, missing = measured(out, suite, device_kind)
    not_measured = [f"step {s['name']}: {s['status']}: {s['note']}" for s in steps
                    if s["status"] != "ok"] + missing
    for pkg, card_key in (("TransformerEngine", "transformer_engine"), ("torchao", "torchao")):
        if card and not card.get(card_key):
            not_measured.append(f"{pkg} is not installed: its recipes were skipped")
    lines = ["# GPU check" + (" (CPU dry run: no GPU figures)" if dry_run else f": {gpu_name}"),
             "", "## Machine card", "", *_card_lines(card), "", "## Steps", "",
             "| step | status | seconds | note |", "|---|---|---|---|",
             *(f"| {s['name']} | {s['status']} | {s['seconds']:.0f} | {s['note']} |" for s in steps),
             "", "## Against the peers' published figures", ""]
    key = peer_key(gpu_name)
    if dry_run or key is None:
        why = "CPU dry run" if dry_run else f"no published figures recorded for {gpu_name or 'this GPU'}"
        lines.append(f"Not compared ({why}).")
    else:
        lines += ["| figure | measured | published | ratio | source |", "|---|---|---|---|---|"]
        for name, (value, source) in PEERS[key].items():
            got = found.get(name)
            lines.append(f"| {name} | {f'{got:.3g}' if got else 'not measured'} | {value:g} | "
                         f"{f'{got / value:.2f}' if got else '-'} | {source} |")
    lines += ["", "## Not measured", ""]
    lines += [f"- {item}" for item in not_measured] or ["- nothing: every step and run measured"]
    (out / "SUMMARY.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "not_measured.json").write_text(json.dumps(not_measured, indent=2))
    (out / "peers.json").write_text(json.dumps({"gpu": gpu_name, "dry_run": dry_run, "measured": found,
                                                "compared_with": key}, indent=2))
