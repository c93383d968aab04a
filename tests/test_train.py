"""The training loop: real measurements, and failures recorded as results."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from mpbench.data import make_source
from mpbench.plan.spec import expand
from mpbench.precision.base import RECIPES, Recipe
from mpbench.results.env import environment_card
from mpbench.results.env_card import EnvCard, GpuCard
from mpbench.results.store import read_record
from mpbench.train.load import load_suite
from mpbench.train.loop import train_run

SUITE = """\
name: t
models: [gpt-tiny]
precisions: [{precisions}]
train: {{batch_size: 4, seq_len: 16, steps: 4, warmup_steps: 1, lr: 3.0e-3, eval_batches: 2}}
data: {{source: synthetic, vocab_size: 32}}
"""


class Exploding(Recipe):
    name = "test-explode"
    summary = "raises in prepare"

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        raise ValueError("boom")


class OutOfMemory(Recipe):
    name = "test-oom"
    summary = "runs out of memory"

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def run_suite_text(tmp_path: Path, precisions: str) -> list:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(precisions=precisions))
    suite = load_suite(path, "cpu")
    source = make_source(suite.data)
    env = environment_card()
    return [train_run(spec, source, torch.device("cpu"), env) for spec in expand(suite)]


@pytest.mark.integration
def test_a_real_run_is_measured(tmp_path: Path) -> None:
    (rec,) = run_suite_text(tmp_path, "fp32")
    assert rec.status == "ok" and rec.reason is None
    assert len(rec.step_times_ms) == 4 and all(t > 0 for t in rec.step_times_ms)
    assert rec.step_stats is not None and rec.step_stats.n == 4
    window_tps = 4 * 16 * 4 / rec.window_s
    assert rec.tokens_per_s == pytest.approx(window_tps)
    # throughput agrees with the per-step times (hooks add nothing here)
    assert rec.tokens_per_s == pytest.approx(64 / (sum(rec.step_times_ms) / 4 / 1e3), rel=0.25)
    assert [s for s, _ in rec.loss_curve] == [1, 2, 3, 4, 5]
    assert rec.final_train_loss == rec.loss_curve[-1][1]
    assert rec.eval_loss is not None and 0 < rec.eval_loss < 2 * torch.log(torch.tensor(32.0)).item()
    assert rec.entropy_floor is not None and rec.entropy_floor < rec.eval_loss
    assert rec.flops_per_token == rec.flops_per_token_counter
    assert rec.memory is not None and rec.memory.kind == "cpu-rss"
    assert rec.memory.peak_rss_bytes and rec.memory.peak_rss_bytes > 0
    assert rec.env.cpu.torch_cpu_capability in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "NO AVX")
    assert rec.mfu is None  # no known peak for a CPU


@pytest.mark.integration
def test_same_seed_same_data_same_losses(tmp_path: Path) -> None:
    a, b = run_suite_text(tmp_path, "fp32"), run_suite_text(tmp_path, "fp32")
    assert a[0].loss_curve == b[0].loss_curve  # deterministic on CPU


@pytest.mark.integration
def test_failures_are_records_and_the_suite_goes_on(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RECIPES, "test-explode", Exploding)
    monkeypatch.setitem(RECIPES, "test-oom", OutOfMemory)
    records = run_suite_text(tmp_path, "test-explode, test-oom, tf32, bf16")
    by = {r.precision: r for r in records}
    assert by["test-explode"].status == "failed"
    assert by["test-explode"].reason == "ValueError: boom"
    assert "prepare" in (by["test-explode"].traceback or "")
    assert by["test-oom"].status == "oom" and "out of memory" in (by["test-oom"].reason or "")
    assert by["tf32"].status == "skipped" and "needs a CUDA GPU" in (by["tf32"].reason or "")
    assert by["bf16"].status == "ok" and by["bf16"].tokens_per_s


@pytest.mark.integration
def test_huge_learning_rate_diverges(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(precisions="fp32").replace("lr: 3.0e-3", "lr: 1.0e+3, grad_clip: null"))
    suite = load_suite(path, "cpu")
    (spec,) = expand(suite)
    rec = train_run(spec, make_source(suite.data), torch.device("cpu"), environment_card())
    assert rec.status == "diverged"
    assert rec.diverged_step is not None and rec.diverged_step >= 2
    assert rec.last_good_loss is not None and rec.tokens_per_s is None


IDENTITY = ("run_id", "config_key", "suite", "suite_description", "profile", "model",
            "precision", "recipe", "seed", "repeat", "batch_size", "seq_len", "train", "device",
            "device_name", "tokens_per_step", "env", "suite_config")


def crash_in_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spec, device: str,
                    env: EnvCard):
    """run_in_fresh_process with a worker that was killed before it wrote its record."""
    from mpbench.results.store import ResultsDir
    from mpbench.train import runner

    def killed(args, **_kw):  # what subprocess.run returns for a SIGKILLed child
        return subprocess.CompletedProcess(args, -9, "", "Killed\n")

    monkeypatch.setattr(runner.subprocess, "run", killed)
    results = ResultsDir(tmp_path / "res")
    return runner.run_in_fresh_process(spec, results, torch.device(device), env, {},
                                         None), results


@pytest.mark.integration
def test_a_crashed_worker_gets_the_record_a_run_would_have(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One builder: the record of a worker that died carries the same identity, recipe and
    device fields as the record the run writes itself."""
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(precisions="fp32"))
    suite = load_suite(path, "cpu")
    (spec,) = expand(suite)
    env = environment_card()
    trained = train_run(spec, make_source(suite.data), torch.device("cpu"), env)
    crashed, results = crash_in_worker(monkeypatch, tmp_path, spec, "cpu", env)
    assert crashed.status == "failed"
    assert crashed.reason == "worker process exited with code -9: Killed"
    assert results.record_path(spec.run_id).is_file()
    for name in IDENTITY:
        assert getattr(crashed, name) == getattr(trained, name), name


@pytest.mark.unit
def test_a_crashed_gpu_run_names_the_gpu_not_the_cpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's platform check matches (device kind, device_name, profile): a crashed CUDA
    run that named the host CPU would look like a different machine."""
    gpu = "NVIDIA H100 80GB HBM3"  # torch.cuda.get_device_name() on an H100 SXM
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: gpu)
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(precisions="bf16"))
    (spec,) = expand(load_suite(path, "cpu"))
    crashed, _ = crash_in_worker(monkeypatch, tmp_path, spec, "cuda", environment_card())
    assert crashed.device == "cuda" and crashed.device_name == gpu


@pytest.mark.unit
def test_a_crashed_gpu_run_takes_the_gpu_name_from_its_card(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent writes a dead worker's record from the run's environment card: a card that
    holds a GPU names it (hostname, CPU and all else as the card says), with no CUDA call."""
    def no_cuda(device=None):
        raise AssertionError("the card's GPU name was not used")

    monkeypatch.setattr(torch.cuda, "get_device_name", no_cuda)
    gpu = GpuCard(name="NVIDIA H100 80GB HBM3", capability="9.0", driver="570.86.10",
                  torch_index=0)
    card = environment_card().model_copy(update={"gpu": gpu, "hostname": "gpu-07"})
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(precisions="bf16"))
    (spec,) = expand(load_suite(path, "cpu"))
    crashed, results = crash_in_worker(monkeypatch, tmp_path, spec, "cuda", card)
    assert crashed.status == "failed" and crashed.device_name == "NVIDIA H100 80GB HBM3"
    assert crashed.device_name != card.cpu.model
    stored = read_record(results.record_path(spec.run_id))  # as the gate reads it back
    assert stored.device_name == gpu.name and stored.env.gpu == gpu
    assert stored.env.hostname == "gpu-07" and stored.env.cpu == card.cpu


# Messages torch raises when an allocator fails, each from the source that writes it:
REAL_OOM_MESSAGES = [
    # c10/cuda/CUDACachingAllocator.cpp, raised as torch.OutOfMemoryError
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB "
    "of which 1.25 GiB is free.",
    # C10_CUDA_CHECK on cudaErrorMemoryAllocation (c10/cuda/CUDAException.cpp)
    "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported",
    # ATen/cuda/Exceptions.h TORCH_CUDABLAS_CHECK around cublasCreate (CublasHandlePool.cpp)
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    # c10/core/impl/alloc_cpu.cpp, posix_memalign branch (Linux); the Android/MSVC branch
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 1152921504606846976 bytes. Error code 12 (Cannot allocate memory)",
    "DefaultCPUAllocator: not enough memory: you tried to allocate 4096 bytes.",
]


class RaisesInPrepare(Recipe):
    name = "test-raises"
    summary = "raises the error in `message`"
    message = ""

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        raise RuntimeError(self.message)


@pytest.mark.unit
def test_the_cpu_allocator_failure_torch_raises_here_is_oom() -> None:
    from mpbench.profilers.peaks import is_oom

    with pytest.raises(RuntimeError) as caught:
        torch.empty(2**60, dtype=torch.uint8)  # 1 EiB: posix_memalign fails, no pages touched
    assert "DefaultCPUAllocator" in str(caught.value) and is_oom(caught.value)
    assert not is_oom(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_oom(ValueError("out of memory"))  # not an allocator's error type


@pytest.mark.integration
@pytest.mark.parametrize("message", REAL_OOM_MESSAGES[1:], ids=["cuda", "cublas", "cpu", "cpu2"])
def test_an_allocator_failure_is_recorded_as_oom_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    monkeypatch.setitem(RECIPES, "test-raises", RaisesInPrepare)
    monkeypatch.setattr(RaisesInPrepare, "message", message)
    (rec,) = run_suite_text(tmp_path, "test-raises")
    assert rec.status == "oom" and rec.traceback is None
    assert rec.reason == f"RuntimeError: {message.splitlines()[0]}"


@pytest.mark.unit
@pytest.mark.parametrize("message", REAL_OOM_MESSAGES, ids=["caching", "cuda", "cublas", "cpu",
                                                            "cpu2"])
def test_max_batch_stops_at_every_allocator_failure_a_run_records_as_oom(message: str) -> None:
    """One OOM rule for the run record and the batch search (a cuBLAS handle that found no
    memory was an OOM for the search only)."""
    from mpbench.profilers.max_batch import oom_safe, search_max_batch

    def step(b: int) -> None:
        if b > 3:
            raise RuntimeError(message)

    assert search_max_batch(oom_safe(step, lambda: None), start=1).max_batch_size == 3
