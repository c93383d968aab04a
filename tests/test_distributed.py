"""Distributed training on 2 CPU processes (gloo, torchrun): DDP and FSDP2, comm bytes by
dtype, loss parity with one process, a killed rank, the collective micro-benchmark, and
bad input (exit 2). Each launch is bounded by a timeout, so a hang fails the test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from mpbench.cli.main import cli
from mpbench.data import make_source
from mpbench.distributed.comm import CommCounter, bus_factor
from mpbench.distributed.faults import compose_reason
from mpbench.distributed.gather import merge
from mpbench.distributed.launch import check_world
from mpbench.distributed.probe import split_exposed, subtract, union
from mpbench.distributed.runner import shard
from mpbench.distributed.scaling import node_scaling, ranking_changes, scaling_rows
from mpbench.errors import UserError
from mpbench.plan.spec import expand
from mpbench.results.env import environment_card
from mpbench.results.key import make_key
from mpbench.results.payloads import CommProbe, ParallelResult, RankReport
from mpbench.results.schema import RunRecord, StepStats
from mpbench.train.load import load_suite
from mpbench.train.loop import train_run

LAUNCH_TIMEOUT_S = 150
FP32_COMM_TOL = 1e-5
"""Max |loss difference| per step, 2 ranks with fp32 gradient comm vs 1 process: the same
global batch and seed, so only summation order differs (seen: <= 5e-7)."""
BF16_COMM_TOL = 2e-3
"""Max |loss difference| per step with bf16 gradient comm (seen: ~4e-5 after 5 steps)."""

SUITE = """
name: {name}
models: [gpt-tiny]
precisions: [fp32]
train: {{batch_size: 4, seq_len: 16, steps: 4, warmup_steps: 1, lr: 1.0e-3, eval_batches: 1}}
data: {{source: synthetic, vocab_size: 64}}
"""


def write_suite(tmp_path: Path, name: str, parallel: str | None) -> Path:
    path = tmp_path / f"{name}.yaml"
    text = SUITE.format(name=name) + (f"parallel: {parallel}\n" if parallel else "")
    path.write_text(text, encoding="utf-8")
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stderr


def launch(args: list[str], extra_env: dict[str, str] | None = None,
           torchrun: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m mpbench ARGS`, or with `torchrun` flags straight under torchrun (the workers'
    path without the --nproc parent, one interpreter start fewer)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", *torchrun] if (
        torchrun) else [sys.executable]
    return subprocess.run([*head, "-m", "mpbench", *args], capture_output=True, text=True, env=env,
                          timeout=LAUNCH_TIMEOUT_S, check=False)


def records(out: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for p in (out / "runs").glob("*.json"):
        r = json.loads(p.read_text())
        par = r["profiler_results"]["parallel"]
        found[f"{par['strategy']}-{par['grad_comm_dtype']}"] = r
    return found


def single_process_losses(suite_file: Path) -> list[float]:
    suite = load_suite(suite_file, "cpu").model_copy(update={"parallel": None})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker runs
    try:
        rec = train_run(expand(suite)[0], make_source(suite.data), torch.device("cpu"),
                        environment_card())
    finally:
        torch.set_num_threads(threads)
    assert rec.status == "ok"
    return [loss for _, loss in rec.loss_curve]


def deviation(record: dict[str, Any], reference: list[float]) -> float:
    losses = [loss for _, loss in record["loss_curve"]]
    assert len(losses) == len(reference)
    return max(abs(a - b) for a, b in zip(losses, reference, strict=True))


def bytes_of(record: dict[str, Any], op: str) -> dict[str, int]:
    return {c["dtype"]: c["bytes"] for c in record["profiler_results"]["parallel"]["comm_per_step"]
            ["collectives"] if c["op"] == op}


# -- two processes, end to end ------------------------------------------------------------
@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("dist")
    suite = write_suite(tmp, "par", "{strategy: [ddp, fsdp2], grad_comm_dtype: [fp32, bf16], "
                                     "probe_steps: 1, timeout_s: 60}")
    out = tmp / "out"
    done = launch(["run", str(suite), "--nproc", "2", "--device", "cpu", "-o", str(out), "-q",
                   "--no-report"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return suite, out


@pytest.mark.integration
def test_two_ranks_train_every_strategy_and_record_ranks(matrix: tuple[Path, Path]) -> None:
    _, out = matrix
    recs = records(out)
    assert sorted(recs) == ["ddp-bf16", "ddp-fp32", "fsdp2-bf16", "fsdp2-fp32"]
    for rec in recs.values():
        assert rec["status"] == "ok", rec["reason"]
        par = rec["profiler_results"]["parallel"]
        assert (par["world_size"], par["backend"], par["per_rank_batch"]) == (2, "gloo", 2)
        assert [r["rank"] for r in par["ranks"]] == [0, 1]
        assert all(r["status"] == "ok" and r["step_stats"]["n"] == 4 for r in par["ranks"])
        spread = par["across_ranks"]["step_median_ms"]
        assert spread["min"] <= spread["median"] <= spread["max"]
        assert par["topology"]["processes_per_node"] == 2
        assert par["probe"]["compute_ms"] > 0 and par["probe"]["comm_alone_ms"]
        assert par["tokens_per_s_per_device"] == pytest.approx(rec["tokens_per_s"] / 2)
        assert f"__{par['strategy']}-{par['grad_comm_dtype']}comm-w2__" in rec["run_id"]
        key = rec["config_key"]  # the torchrun ranks' record carries the same key type
        assert key["parallel"] == {"strategy": par["strategy"], "grad_comm_dtype":
                                   par["grad_comm_dtype"], "param_dtype": None, "world_size": 2}


@pytest.mark.integration
def test_bf16_gradient_comm_halves_the_bytes(matrix: tuple[Path, Path]) -> None:
    recs = records(matrix[1])
    ddp32, ddp16 = bytes_of(recs["ddp-fp32"], "all_reduce"), bytes_of(recs["ddp-bf16"], "all_reduce")
    n_params = recs["ddp-fp32"]["n_params"]
    assert ddp32 == {"float32": 4 * n_params}  # every gradient once, in fp32
    assert ddp16 == {"bfloat16": 2 * n_params}  # the same elements in bf16: half the bytes
    rs32, rs16 = bytes_of(recs["fsdp2-fp32"], "reduce_scatter"), bytes_of(recs["fsdp2-bf16"],
                                                                           "reduce_scatter")
    assert list(rs32) == ["float32"] and list(rs16) == ["bfloat16"]
    assert rs16["bfloat16"] * 2 == rs32["float32"]
    # FSDP2 gathers parameters in their own dtype (no param_dtype set): unchanged by comm dtype
    assert bytes_of(recs["fsdp2-fp32"], "all_gather") == bytes_of(recs["fsdp2-bf16"], "all_gather")
    per_step = recs["ddp-bf16"]["profiler_results"]["parallel"]["comm_per_step"]
    assert per_step["sent_bytes"] == per_step["bytes"]  # ring all-reduce on 2 ranks: 2(n-1)/n = 1


@pytest.mark.integration
def test_two_ranks_match_one_process(matrix: tuple[Path, Path]) -> None:
    suite, out = matrix
    reference = single_process_losses(suite)
    recs = records(out)
    assert deviation(recs["ddp-fp32"], reference) <= FP32_COMM_TOL
    assert deviation(recs["fsdp2-fp32"], reference) <= FP32_COMM_TOL
    bf16 = deviation(recs["ddp-bf16"], reference)
    assert 0 < bf16 <= BF16_COMM_TOL  # rounded gradients: close, but not bit-equal
    assert deviation(recs["fsdp2-bf16"], reference) <= BF16_COMM_TOL


@pytest.mark.integration
def test_ranks_take_the_single_process_run_path(tmp_path: Path) -> None:
    """--nproc ranks get what one process gets: --trace (forwarded to the ranks), traces in
    <out>/traces, the drift probe and the repeat index on the record."""
    suite = write_suite(tmp_path, "path", "{strategy: ddp, probe_steps: 0, timeout_s: 60}")
    out = tmp_path / "out"
    done = launch(["run", str(suite), "--nproc", "2", "--device", "cpu", "-o", str(out), "-q",
                   "--no-report", "--trace"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [rec] = records(out).values()
    assert rec["status"] == "ok", rec["reason"]
    assert (out / "traces" / rec["run_id"] / "rank0.trace.json").is_file()  # a file per rank
    assert rec["probe"]["before"]["matmul_ms"] > 0 and rec["repeat"] == 0


@pytest.mark.integration
def test_killed_rank_gives_a_failed_record_and_the_suite_goes_on(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "kill", "{strategy: ddp, grad_comm_dtype: [fp32, bf16], "
                                          "probe_steps: 0, timeout_s: 60}")
    out = tmp_path / "out"
    done = launch(["run", str(suite), "--device", "cpu", "-o", str(out), "-q", "--no-report"],
                  {"MPBENCH_INJECT_FAULT": "rank=1,step=2,kind=kill,run=fp32comm"},
                  torchrun=["--nproc-per-node=2", "--max-restarts=1"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "torchrun restart 1: resuming" in done.stdout
    recs = records(out)
    failed, after = recs["ddp-fp32"], recs["ddp-bf16"]
    assert failed["status"] == "failed"
    assert failed["reason"].startswith("rank 1 of 2 stopped without a report")
    # rank 0 names the collective it was in: this step's gradient all-reduce, or the previous
    # step's loss average when the kill lands while that is still in flight
    assert re.search(r"; rank 0 stopped in all_reduce \((DDP gradient bucket|loss average)",
                     failed["reason"]), failed["reason"]
    assert [r["status"] for r in failed["profiler_results"]["parallel"]["ranks"]] == ["failed", "missing"]
    assert after["status"] == "ok"  # torchrun restarted the group; the suite went on


@pytest.mark.integration
def test_comm_benchmark_reports_bus_bandwidth(tmp_path: Path) -> None:
    done = launch(["bench-comm", "--device", "cpu", "--op", "all_reduce", "--op", "all_gather",
                   "--dtype", "fp32", "--dtype", "bf16", "--min-bytes", "8K", "--max-bytes", "8K",
                   "--iters", "2", "--warmup", "1", "--reps", "1", "-o", str(tmp_path)],
                  torchrun=["--nproc-per-node=2"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "comm-bench.json").read_text())
    assert result["world_size"] == 2 and result["backend"] == "gloo"
    rows = {(r["op"], r["dtype"]): r for r in result["rows"]}
    assert sorted(rows) == [("all_gather", "bfloat16"), ("all_gather", "float32"),
                            ("all_reduce", "bfloat16"), ("all_reduce", "float32")]
    for (op, dtype), r in rows.items():
        assert r["correct"] and r["size_bytes"] == 8192
        assert r["count"] == 8192 // (4 if dtype == "float32" else 2)
        assert r["algbw_GBps"] == pytest.approx(8192 / (r["time_us"] * 1e-6) / 1e9)
        assert r["busbw_GBps"] == pytest.approx(r["algbw_GBps"] * (1.0 if op == "all_reduce" else 0.5))


@pytest.mark.unit
def test_bench_comm_launches_torchrun_with_the_options(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import mpbench.distributed.launch as launch_mod

    seen: dict[str, Any] = {}

    def fake_launch(nproc: int, max_restarts: int, args: list[str]) -> int:
        seen.update(nproc=nproc, args=args)
        return 3

    monkeypatch.setattr(launch_mod, "launch", fake_launch)
    code, _ = invoke("bench-comm", "--nproc", "2", "--device", "cpu", "--dtype", "bf16",
                     "--max-bytes", "64K", "-o", str(tmp_path))
    assert code == 1 and seen["nproc"] == 2
    assert seen["args"][:5] == ["bench-comm", "--device", "cpu", "--out", str(tmp_path)]
    assert {"--dtype=bf16", "--max-bytes=64K", "--iters=20"} <= set(seen["args"])
    assert invoke("bench-comm", "--device", "cpu")[1].strip() == (
        "error: bench-comm needs several processes: pass --nproc N (or start it under torchrun)")
    assert "--min-bytes 1M is above --max-bytes 4K" in invoke(
        "bench-comm", "--nproc", "2", "--min-bytes", "1M", "--max-bytes", "4K")[1]


# -- bad input: exit 2 before anything launches ------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("parallel, extra, message", [
    ("{strategy: zero}", [], "parallel.strategy: unknown strategy 'zero'; valid: ddp, fsdp2"),
    ("{strategy: ddp, reshard_after_forward: false}", [],
     "parallel: reshard_after_forward is an FSDP2 option but strategy is ddp"),
    ("{strategy: fsdp2, bucket_cap_mb: 10}", [], "parallel: bucket_cap_mb is a DDP option"),
    ("{stratgy: ddp}", [], "parallel.stratgy: unknown key; did you mean 'strategy'?"),
    ("{grad_comm_dtype: fp8}", [], "parallel.grad_comm_dtype: unknown grad_comm_dtype 'fp8'"),
    ("{world_size: 3}", [], "train.batch_size (the global batch): 4 sequences do not split "
                            "over world size 3; use a multiple of 3 (e.g. 3 or 6)"),
    ("{strategy: ddp}", ["--nproc", "3"], "train.batch_size (the global batch): 4 sequences "
                                          "do not split over world size 3"),
    ("{world_size: 2}", ["--nproc", "4"], "--nproc 4: starts 4 processes but the suite sets "
                                          "parallel.world_size 2"),
    ("{strategy: ddp, backend: nccl}", ["--nproc", "2"], "parallel.backend: nccl needs CUDA GPUs"),
    (None, ["--nproc", "2"], "--nproc: suite 'bad' has no parallel: section"),
])
def test_bad_parallel_input_exits_2(tmp_path: Path, parallel: str | None, extra: list[str],
                                    message: str) -> None:
    suite = write_suite(tmp_path, "bad", parallel)
    code, stderr = invoke("run", str(suite), "--device", "cpu", "-o", str(tmp_path / "o"), *extra)
    assert code == 2
    assert message in stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.unit
def test_more_processes_than_gpus_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = load_suite(write_suite(tmp_path, "gpus", "{strategy: ddp}"), "cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match=r"--nproc 2: 2 processes per node but 1 CUDA device"):
        check_world(suite, 2, 2, "cuda", "--nproc 2")


# -- the pieces -----------------------------------------------------------------------------
@pytest.mark.unit
def test_run_ids_carry_the_parallel_combination_only_when_parallel(tmp_path: Path) -> None:
    plain = expand(load_suite(write_suite(tmp_path, "p", None), "cpu"))
    assert [s.run_id for s in plain] == ["gpt-tiny__fp32__b4-t16__seed0"]
    par = load_suite(write_suite(tmp_path, "q", "{strategy: [ddp, fsdp2], grad_comm_dtype: "
                                               "[fp32, bf16], param_dtype: bf16, world_size: 2}"),
                     "cpu")
    assert [s.run_id.split("__")[3] for s in expand(par)] == [
        "ddp-fp32comm-w2", "ddp-bf16comm-w2", "fsdp2-fp32comm-pbf16-w2", "fsdp2-bf16comm-pbf16-w2"]
    first = expand(par)[0].parallel
    assert first is not None and first.param_dtype is None  # FSDP2 options stay with FSDP2 runs


@pytest.mark.unit
def test_ranks_split_the_same_global_batch() -> None:
    from mpbench.config.schema import DataConfig

    source = make_source(DataConfig(source="synthetic", vocab_size=32))
    full = source.batch("train", 4, 8, torch.Generator().manual_seed(3))
    parts = [shard(source, r, 2).batch("train", 4, 8, torch.Generator().manual_seed(3))
             for r in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), full[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), full[1])
    val = shard(source, 1, 2).batch("val", 4, 8, torch.Generator().manual_seed(3))
    assert val[0].shape == (4, 8)  # evaluation is not split
    assert shard(source, 1, 2).describe() == source.describe()


@pytest.mark.unit
def test_bytes_by_dtype_and_bus_factors() -> None:
    assert bus_factor("all_reduce", 2) == 1.0 and bus_factor("all_reduce", 8) == 1.75
    assert bus_factor("all_gather", 4) == 0.75 and bus_factor("reduce_scatter", 1) == 0.0
    counter = CommCounter(world_size=4)
    counter.record("all_reduce", torch.bfloat16, 1000, "grad")
    counter.record("all_gather", torch.float32, 400, "param")
    s = counter.summarize(counter.since(0))
    assert s["bytes_by_dtype"] == {"bfloat16": 2000, "float32": 1600}
    assert s["sent_bytes_by_dtype"] == {"bfloat16": 3000, "float32": 1200}
    assert counter.last is not None and counter.last.describe() == "all_gather (param, 400 x float32)"


@pytest.mark.unit
def test_exposed_communication_is_comm_time_without_compute() -> None:
    assert union([(5, 7), (0, 2), (1, 3)]) == [(0, 3), (5, 7)]
    assert subtract([(0, 10)], [(2, 3), (5, 6)]) == [(0, 2), (3, 5), (6, 10)]
    split = split_exposed(comm=[(0, 4), (8, 12)], compute=[(0, 3), (9, 20)])
    assert split == {"comm": 8, "compute": 14, "exposed_comm": 2}


@pytest.mark.unit
def test_fault_reasons_name_the_rank_and_the_collective() -> None:
    comm_err = RankReport(rank=0, status="failed", reason="RuntimeError: [pair.cc:553] Connection "
                          "closed by peer [127.0.0.1]:5. This is typically caused by ...",
                          in_collective="all_reduce (DDP gradient bucket, 10 x float32)")
    status, reason = compose_reason({0: comm_err, 1: None}, 2)
    assert status == "failed"
    assert reason == ("rank 1 of 2 stopped without a report (killed, crashed or stuck); rank 0 "
                      "stopped in all_reduce (DDP gradient bucket, 10 x float32): RuntimeError: "
                      "Connection closed by peer [127.0.0.1]:5")
    oom = RankReport(rank=1, status="oom", reason="OutOfMemoryError: CUDA out of memory")
    stopped = RankReport(rank=2, status="aborted", step=3,
                         in_collective="all_gather (p, 8 x bfloat16)")
    status, reason = compose_reason({0: comm_err, 1: oom, 2: stopped}, 3)
    assert status == "oom"
    assert reason.startswith("rank 1 of 3 failed: OutOfMemoryError: CUDA out of memory; rank 0 ")
    assert reason.endswith("rank 2 was stopped in step 3, last collective issued: "
                           "all_gather (p, 8 x bfloat16)")


def _record(**fields: Any) -> RunRecord:
    base: dict[str, Any] = dict(
        run_id="r", suite="s", profile="default", model="gpt-tiny", model_dims={}, precision="fp32",
        recipe={}, seed=0, batch_size=8, seq_len=16, train={}, device="cpu", device_name="cpu",
        status="ok", tokens_per_step=128, tokens_per_s=1000.0, env={}, started_at="t",
        finished_at="t", duration_s=1.0,
        config_key=make_key("gpt-tiny", "fp32", {}, {"batch_size": 8, "seq_len": 16}, [], None,
                            "default"))
    return RunRecord(**{**base, **fields})


@pytest.mark.unit
def test_merge_keeps_per_rank_spread_and_fails_on_a_missing_rank() -> None:
    def report(rank: int, median: float) -> RankReport:
        stats = StepStats(n=1, median_ms=median, mean_ms=median, stdev_ms=0.0, p10_ms=median,
                          p90_ms=median, min_ms=median, max_ms=median)
        return RankReport(rank=rank, status="ok", step_stats=stats, tokens_per_s=1000.0,
                          peak_bytes=100 * (rank + 1))

    merged = merge(_record(), {0: report(0, 10.0), 1: report(1, 14.0)}, 2, {"strategy": "ddp"})
    par = merged.result(ParallelResult)
    assert par is not None and par.across_ranks is not None
    assert merged.status == "ok" and par.strategy == "ddp"
    assert par.across_ranks.step_median_ms.model_dump() == {
        "min": 10.0, "median": 12.0, "max": 14.0, "max_rank": 1}
    assert par.tokens_per_s_per_device == 500.0
    broken = merge(_record(), {0: report(0, 10.0), 1: None}, 2, {})
    assert broken.status == "failed" and broken.tokens_per_s is None
    assert broken.reason == "rank 1 of 2 stopped without a report (killed, crashed or stuck)"


@pytest.mark.unit
def test_scaling_efficiency_per_device_against_world_size_one() -> None:
    def rec(world: int, tps: float) -> RunRecord:
        par = ParallelResult(world_size=world, strategy="ddp", grad_comm_dtype="bf16")
        return _record(tokens_per_s=tps, profiler_results={
            "parallel": par.model_dump(mode="json", exclude_unset=True)})

    rows = scaling_rows([rec(1, 1000.0), rec(2, 1800.0), rec(2, 1600.0)])
    assert [(r["world_size"], r["tokens_per_s_per_device"], r["efficiency"]) for r in rows] == [
        (1, 1000.0, 1.0), (2, 850.0, 0.85)]
    single = _record(tokens_per_s=1000.0)  # no parallel section: the one-process baseline
    rows = scaling_rows([single, rec(2, 1800.0)])
    assert rows[0]["efficiency"] == 0.9 and "one process" in rows[0]["note"]


@pytest.mark.unit
def test_node_scaling_against_one_node_with_exposed_comm_and_ranking() -> None:
    def rec(precision: str, nodes: int, world: int, batch: int, tps: float,
            exposed: float = 2.0) -> RunRecord:
        par = ParallelResult(world_size=world, nodes=nodes, strategy="ddp", grad_comm_dtype="bf16",
                             probe=CommProbe(steps=1, fwd_bwd_ms=10.0, compute_ms=10.0 - exposed,
                                             exposed_comm_ms=exposed))
        return _record(precision=precision, batch_size=batch, tokens_per_s=tps,
                       profiler_results={"parallel": par.model_dump(mode="json",
                                                                    exclude_unset=True)})

    records = [rec("fp32", 1, 8, 64, 8000.0), rec("bf16", 1, 8, 64, 12000.0),
               # 2 nodes, the per-device batch kept (weak): bf16 loses more to communication
               rec("fp32", 2, 16, 128, 14400.0, 3.0), rec("bf16", 2, 16, 128, 12800.0, 5.0),
               rec("bf16", 2, 16, 128, 13600.0, 4.0),
               # 2 nodes, the global batch kept (strong)
               rec("fp32", 2, 16, 64, 8000.0)]
    rows = {(r.recipe[1], r.nodes, r.global_batch): r for r in node_scaling(records)}
    weak = rows[("bf16", 2, 128)]
    assert weak.mode == "weak" and weak.runs == 2
    assert weak.tokens_per_s_per_device == pytest.approx(13200.0 / 16)  # median over runs / 16
    assert weak.efficiency == pytest.approx((13200.0 / 16) / (12000.0 / 8))
    assert weak.exposed_comm_share == pytest.approx(0.45)
    strong = rows[("fp32", 2, 64)]
    assert strong.mode == "strong" and strong.efficiency == pytest.approx(0.5)
    assert rows[("fp32", 1, 64)].mode == "baseline" and rows[("fp32", 1, 64)].efficiency == 1.0
    [weak_change] = ranking_changes(node_scaling(records))  # 64 at 2 nodes: fp32 alone
    assert weak_change.global_batch == 128 and weak_change.nodes == 2
    assert weak_change.single_node == ["bf16 (ddp, bf16 comm)", "fp32 (ddp, bf16 comm)"]
    assert weak_change.several == ["fp32 (ddp, bf16 comm)", "bf16 (ddp, bf16 comm)"]
    assert weak_change.min_runs == 1 and weak_change.verdict == "inconclusive"  # 1 run: no claim
    repeated = [*records, rec("fp32", 1, 8, 64, 8100.0), rec("bf16", 1, 8, 64, 11800.0),
                rec("fp32", 2, 16, 128, 14600.0)]
    assert ranking_changes(node_scaling(repeated))[0].verdict == "changes"  # every run apart
    overlapping = [*repeated, rec("bf16", 1, 8, 64, 7000.0)]  # a bf16 run below fp32's runs
    assert ranking_changes(node_scaling(overlapping))[0].verdict == "inconclusive"


# -- GPU (one GPU: NCCL at world size 1; multi-GPU figures need a multi-GPU machine) ------
@pytest.mark.gpu
def test_single_gpu_nccl_run_profiles_kernels(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "gpu", "{strategy: [ddp, fsdp2], grad_comm_dtype: bf16, "
                                         "probe_steps: 2, timeout_s: 120}")
    out = tmp_path / "out"
    done = launch(["run", str(suite), "--nproc", "1", "--device", "cuda", "-o", str(out), "-q",
                   "--no-report"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for rec in records(out).values():
        par = rec["profiler_results"]["parallel"]
        assert rec["status"] == "ok" and par["backend"] == "nccl"
        assert par["topology"]["gpus_per_node"] >= 1 and "gpu_links" in par["topology"]
        kernels = par["gpu_kernels"]
        assert kernels["compute_ms"] > 0 and 0 <= kernels["exposed_comm_ms"] <= kernels["comm_ms"]


@pytest.mark.gpu
def test_comm_benchmark_on_one_gpu(tmp_path: Path) -> None:
    done = launch(["bench-comm", "--nproc", "1", "--device", "cuda", "--max-bytes", "1M",
                   "--iters", "5", "-o", str(tmp_path)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "comm-bench.json").read_text())
    assert result["backend"] == "nccl" and all(r["correct"] for r in result["rows"])
