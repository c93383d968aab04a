"""CUDA paths of the core loop (skipped without a GPU): timing, memory, MFU, TF32, GradScaler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mpbench.data import make_source
from mpbench.mfu import gpu_peaks
from mpbench.plan.spec import expand
from mpbench.results.env import environment_card
from mpbench.train.load import load_suite
from mpbench.train.loop import train_run

pytestmark = pytest.mark.gpu

SUITE = """\
name: gpu
models: [gpt-mini]
precisions: [fp32, tf32, fp16, bf16, bf16-pure]
train: {batch_size: 8, seq_len: 128, steps: 5, warmup_steps: 2, eval_batches: 1}
data: {source: synthetic}
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("gpu") / "s.yaml"
    path.write_text(SUITE)
    suite = load_suite(path, "cuda")
    source = make_source(suite.data)
    env = environment_card()
    device = torch.device("cuda")
    return {s.precision.name: train_run(s, source, device, env) for s in expand(suite)}


def test_every_standard_recipe_trains_on_cuda(records: dict) -> None:
    for name, rec in records.items():
        assert rec.status == "ok", (name, rec.reason, rec.traceback)
        assert rec.memory.kind == "cuda" and rec.memory.peak_bytes > 0
        assert rec.tokens_per_s > 0 and rec.device.startswith("cuda")


def test_env_card_reports_tensor_cores() -> None:
    gpu = environment_card().gpu
    assert gpu is not None and gpu.capability
    assert set(gpu.tensor_cores.model_dump()) == {"fp16", "tf32", "bf16", "fp8", "mxfp8"}


def test_mfu_is_computed_for_known_gpus(records: dict) -> None:
    rec = records["bf16"]
    name = torch.cuda.get_device_name()
    if gpu_peaks(name) is not None:
        assert rec.peak_tflops and 0 < rec.mfu < 1
    else:
        assert rec.mfu is None and "unknown" in (rec.peak_source or "")


def test_fp32_is_strict_and_tf32_is_not(records: dict) -> None:
    assert records["fp32"].recipe["matmul_precision"] == "highest"
    assert records["tf32"].recipe["matmul_precision"] == "high"


def test_bf16_pure_uses_less_memory_than_fp32(records: dict) -> None:
    assert records["bf16-pure"].memory.peak_bytes < records["fp32"].memory.peak_bytes


def test_cuda_oom_is_a_record(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    free, _ = torch.cuda.mem_get_info()
    # a batch whose logits alone exceed free memory
    batch = int(free / (256 * 4 * 256)) * 4 + 8
    path.write_text(SUITE.replace("batch_size: 8, seq_len: 128", f"batch_size: {batch}, seq_len: 256")
                    .replace("[fp32, tf32, fp16, bf16, bf16-pure]", "[fp32]"))
    suite = load_suite(path, "cuda")
    (spec,) = expand(suite)
    rec = train_run(spec, make_source(suite.data), torch.device("cuda"), environment_card())
    assert rec.status == "oom"
    torch.zeros(1, device="cuda")  # the process survives and can allocate again
