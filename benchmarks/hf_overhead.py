"""Hugging Face overhead: a tiny HF Llama trained by `mpbench run` vs a plain PyTorch loop
over the same Transformers model and the same batches.

Both do the same work per step: forward (HF model, logits), FP32 cross-entropy, backward,
grad-norm clip, AdamW, LR schedule, one loss.item(). Each sample is one fresh process
(steps inside one process are not independent samples), one torch thread, and the two kinds
alternate (plain, mpbench, plain, mpbench, ...). Reported: window tokens/s per process and
the ratio mpbench / plain with a bootstrap interval over processes. Target: >= 0.97.

    python benchmarks/hf_overhead.py [--repeats 5] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """\
name: hf-overhead
models:
  - {{name: hf-llama-bench, hf: llama, hidden_size: 128, intermediate_size: 352,
     num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 256,
     max_position_embeddings: 256}}
precisions: [fp32]
train: {{batch_size: 8, seq_len: 128, steps: {steps}, warmup_steps: 5, eval_batches: 0,
         threads: 1}}
data: {{source: synthetic, vocab_size: 256}}
seeds: [{seed}]
"""


def plain_loop(suite_path: Path) -> float:
    """The same model, optimizer, schedule and batches, trained with nothing but torch."""
    import torch
    import torch.nn.functional as F

    from mpbench.data import make_source
    from mpbench.models.entry import build_entry
    from mpbench.plan.spec import expand
    from mpbench.train.load import load_suite
    from mpbench.train.optim import lr_factor, make_optimizer

    torch.set_num_threads(1)
    suite = load_suite(suite_path, "cpu")
    cfg = suite.train
    (spec,) = expand(suite)
    source = make_source(suite.data)
    torch.manual_seed(spec.seed)
    model = build_entry(spec.model, spec.model_facts(source.vocab_size), spec.seed).hf  # bare HF
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, cfg.warmup_steps + cfg.steps))
    gen = torch.Generator().manual_seed(spec.seed)
    for step in range(cfg.warmup_steps + cfg.steps):
        if step == cfg.warmup_steps:
            start = time.perf_counter()
        x, y = source.batch("train", cfg.batch_size, cfg.seq_len, gen)
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or 1.0)
        opt.step()
        sched.step()
        loss.item()
    return cfg.batch_size * cfg.seq_len * cfg.steps / (time.perf_counter() - start)


def one_process(kind: str, suite_path: Path, work: Path) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if kind == "plain":
        out = subprocess.run([sys.executable, __file__, "--plain", str(suite_path)], env=env,
                             capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    results = work / f"run-{time.monotonic_ns()}"
    subprocess.run([sys.executable, "-m", "mpbench", "run", str(suite_path), "-o", str(results),
                    "--device", "cpu", "-q", "--no-report"], env=env, capture_output=True,
                   text=True, check=True)
    (record,) = (results / "runs").glob("*.json")
    return float(json.loads(record.read_text())["tokens_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--plain", metavar="SUITE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(plain_loop(Path(args.plain)))
        return
    from mpbench.analysis.stats import median_ratio

    plain: list[float] = []
    harness: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for r in range(args.repeats):
            suite = work / f"suite-{r}.yaml"
            suite.write_text(SUITE.format(steps=args.steps, seed=r))
            plain.append(one_process("plain", suite, work))
            harness.append(one_process("mpbench", suite, work))
            print(f"repeat {r}: plain {plain[-1]:,.0f} tokens/s, mpbench {harness[-1]:,.0f} tokens/s",
                  flush=True)
    ratio = median_ratio(plain, harness)
    assert ratio is not None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"tiny HF Llama (4x128, seq 128, batch 8), 1 thread, {args.repeats} processes each, "
          f"{args.steps} steps; load average at the end {load:.1f} on {os.cpu_count()} CPUs")
    print(f"median tokens/s: plain {sorted(plain)[len(plain) // 2]:,.0f}, "
          f"mpbench {sorted(harness)[len(harness) // 2]:,.0f}")
    print(f"mpbench / plain throughput {ratio.value:.3f}x (95% CI over processes "
          f"{ratio.bounds_text(lambda v: f'{v:.3f}')}), target >= 0.97")


if __name__ == "__main__":
    main()
