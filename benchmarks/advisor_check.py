"""Does the advisor predict what training measures, and does the waterfall add up? On this machine.

For gpt-tiny, gpt-mini and a tiny Hugging Face Llama, bf16 against fp32:
`mpbench advise SUITE --recipe bf16 --verify --repeats R` (fresh process per run, interleaved),
then the predicted whole-step ratio against the measured one (median of run medians, run-level
interval) for every layer and for the advised set, the advisor's own cost against one plain
training run in fp32 and in bf16 (each a fresh process, no profilers), and the waterfall of
the verification runs (named parts against the measured difference).
With --main-suite it also runs `mpbench run suites/gpt.yaml --trace` (the main suite's CPU
profile with the op-bucket profiler added) and reports every recipe's waterfall coverage.

    python benchmarks/advisor_check.py --out /tmp/advisor-check [--repeats 3] [--main-suite]

Every figure is printed with the CPU, its 16-bit ISA flags and the load average before and
after: on a shared machine say so next to any number quoted from it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from mpbench.analysis.waterfall import waterfalls
from mpbench.results.advice import load_advice
from mpbench.results.env import environment_card
from mpbench.results.store import load_records

MODELS: dict[str, Any] = {
    "gpt-tiny": "gpt-tiny",
    "gpt-mini": "gpt-mini",
    "hf-llama-tiny": {"name": "hf-llama-tiny", "hf": "llama", "hidden_size": 64,
                      "intermediate_size": 176, "num_hidden_layers": 2,
                      "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
                      "max_position_embeddings": 256},
}


def suite_for(model: str, threads: int, steps: int, plain: str | None = None
              ) -> dict[str, Any]:
    """The check's suite; `plain`: that recipe only and no profilers (a run the advisor's
    cost is set against)."""
    return {"name": f"advisor-check-{model}", "models": [MODELS[model]],
            "precisions": [plain] if plain else ["fp32", "bf16"],
            "train": {"batch_size": 8, "seq_len": 64, "steps": steps, "warmup_steps": 3,
                      "lr": 1.0e-3, "lr_warmup_steps": 2, "eval_batches": 1,
                      "threads": threads},
            "data": {"source": "stdlib", "max_bytes": 2000000},
            "profilers": [] if plain else ["tensor_cores"]}


def one_plain_run_s(model: str, recipe: str, out: Path, threads: int, steps: int) -> float:
    """One training run of the model under `recipe` with no profilers, in a fresh `mpbench
    run` process (it pays torch's one-off imports as the advisor's process does): its
    duration."""
    suite = out / f"{model}-{recipe}-plain.yaml"
    suite.write_text(yaml.safe_dump(suite_for(model, threads, steps, plain=recipe)),
                     encoding="utf-8")
    where = out / f"{model}-{recipe}-plain"
    mpbench("run", str(suite), "-o", str(where), "--no-report", "-q")
    (record,) = load_records(where)
    return record.duration_s


def mpbench(*args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mpbench", *args], text=True,
                          capture_output=True, check=False)
    sys.stdout.write(proc.stdout[-4000:])
    if proc.returncode != 0:
        sys.stdout.write(proc.stderr[-2000:])
        raise SystemExit(f"mpbench {' '.join(args)} exited {proc.returncode}")
    return time.perf_counter() - t0


def check_model(model: str, out: Path, repeats: int, threads: int, steps: int) -> dict[str, Any]:
    suite = out / f"{model}.yaml"
    suite.write_text(yaml.safe_dump(suite_for(model, threads, steps)), encoding="utf-8")
    wall = mpbench("advise", str(suite), "--recipe", "bf16", "--verify", "--repeats",
                   str(repeats), "-o", str(out / model))
    (adv,) = load_advice(out / model)
    v = adv.verification
    assert v is not None
    records = load_records(out / model)
    found, _ = waterfalls(records)
    return {
        "model": model, "layers": len(adv.layers), "advised": len(adv.advised),
        "predicted_all": adv.predicted_all, "predicted_advised": adv.predicted_advised,
        "measured_all": v.measured_all.model_dump() if v.measured_all else None,
        "measured_advised": v.measured_advised.model_dump() if v.measured_advised else None,
        "error_all": v.error_all, "error_advised": v.error_advised, "miss_all": v.miss_all,
        "miss_advised": v.miss_advised, "advised_slower_than_all": v.advised_slower_than_all,
        "advisor_s": adv.advisor_s, "layer_rounds": adv.layer_rounds,
        "step_noise_ms": adv.step_noise_ms, "uncertainty_ms": adv.uncertainty_ms,
        "kept_out_saving_ms": adv.kept_out_saving_ms, "decision": adv.decision,
        "one_run_s": one_plain_run_s(model, "fp32", out, threads, steps),
        "one_recipe_run_s": one_plain_run_s(model, "bf16", out, threads, steps),
        "command_wall_s": wall, "filter": adv.filter_yaml,
        "waterfalls": [{"recipe": w.key.recipe_id, "delta_ms": w.delta_ms,
                        "attributed_fraction": w.attributed_fraction,
                        "unattributed_ms": w.unattributed_ms,
                        "noise_ms": w.unattributed_noise_ms,
                        "within_noise": w.unattributed_within_noise,
                        "bars": dict(w.bars)} for w in found],
    }


def main_suite(out: Path) -> list[dict[str, Any]]:
    where = out / "gpt-main"
    wall = mpbench("run", "suites/gpt.yaml", "--trace", "-o", str(where), "--no-report", "-q")
    found, missing = waterfalls(load_records(where))
    rows = [{"run": w.key.label, "delta_ms": w.delta_ms, "unattributed_ms": w.unattributed_ms,
             "noise_ms": w.unattributed_noise_ms, "within_noise": w.unattributed_within_noise,
             "host_ms": w.host_ms,
             "attributed_fraction": w.attributed_fraction,
             "overhead_ms": [w.baseline.overhead_ms, w.recipe.overhead_ms],
             "numerics_only": w.numerics_only} for w in found]
    print(f"main suite with --trace: {wall:.0f} s wall; {len(found)} waterfalls, "
          f"{len(missing)} without")
    return rows


def ratio_text(m: dict[str, Any] | None) -> str:
    if m is None:
        return "-"
    ci = f" [{m['low']:.3f}, {m['high']:.3f}]" if m.get("low") is not None else ""
    return f"{m['value']:.3f}{ci}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per run (1 on a shared 2-core machine)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--main-suite", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment_card()
    load_before = os.getloadavg()
    results = [check_model(m, args.out, args.repeats, args.threads, args.steps)
               for m in args.models.split(",") if m]
    main_rows = main_suite(args.out) if args.main_suite else []
    load_after = os.getloadavg()
    summary = {"cpu": env.cpu.model, "isa_flags": env.cpu.isa_flags,
               "logical_cores": env.cpu.logical_cores, "threads": args.threads,
               "load_before": load_before, "load_after": load_after, "models": results,
               "main_suite": main_rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"\nmachine: {summary['cpu']}, {summary['logical_cores']} logical cores, ISA flags "
          f"{', '.join(summary['isa_flags'] or [])}; torch threads {args.threads}; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (shared machine)")
    print("| model | layers advised | kept-out saving / uncertainty ms | predicted all | "
          "measured all | error | predicted advised | measured advised | error | advisor s | "
          "fp32 run s | bf16 run s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        saving = r["kept_out_saving_ms"]
        unc = r["uncertainty_ms"]
        rule = (f"{saving:.3f} / {unc:.3f}" if saving is not None and unc is not None
                else f"- / {unc:.3f}" if unc is not None else "-")
        print(f"| {r['model']} | {r['advised']}/{r['layers']} | {rule} | "
              f"{r['predicted_all']:.3f} | "
              f"{ratio_text(r['measured_all'])} | {100 * (r['error_all'] or 0):+.1f}% | "
              f"{r['predicted_advised']:.3f} | {ratio_text(r['measured_advised'])} | "
              f"{100 * (r['error_advised'] or 0):+.1f}% | {r['advisor_s']:.1f} | "
              f"{r['one_run_s']:.1f} | {r['one_recipe_run_s']:.1f} |")
    for r in results:
        cheaper = "below" if r["advisor_s"] < r["one_run_s"] else "NOT below"
        print(f"{r['model']}: advisor's own timings {r['advisor_s']:.1f} s ({r['layer_rounds']} "
              f"layer rounds), {cheaper} one plain fp32 run ({r['one_run_s']:.1f} s: fresh "
              f"process, no profilers; a bf16 one took {r['one_recipe_run_s']:.1f} s); "
              f"{r['decision']}"
              + ("; the advised set measured SLOWER than every layer beyond both intervals"
                 if r["advised_slower_than_all"] else ""))

    def coverage(w: dict[str, Any]) -> str:
        frac, noise = w["attributed_fraction"], w["noise_ms"]
        return (f"difference {w['delta_ms']:+.2f} ms, unattributed {w['unattributed_ms']:+.2f} ms"
                + (f" (noise ±{noise:.2f} ms: {'within' if w['within_noise'] else 'BEYOND'})"
                   if noise is not None else "")
                + (f", named parts {100 * frac:.0f}% of the difference"
                   + (" (within 5%)" if abs(frac - 1) <= 0.05 else "")
                   if frac is not None else ""))

    for r in results:
        for w in r["waterfalls"]:
            print(f"waterfall {r['model']} {w['recipe']}: {coverage(w)}")
    for row in main_rows:
        print(f"main suite {row['run']}: {coverage(row)}"
              + (" (numerics only)" if row["numerics_only"] else ""))
    if main_rows:
        close = sum(abs(row["attributed_fraction"] - 1) <= 0.05 for row in main_rows
                    if row["attributed_fraction"] is not None)
        noise = sum(bool(row["within_noise"]) for row in main_rows)
        print(f"main suite: named parts within 5% of the measured difference for {close} of "
              f"{len(main_rows)} recipes; unattributed within its noise for {noise}")


if __name__ == "__main__":
    main()
