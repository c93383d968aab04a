"""Two torchrun agents on this machine acting as two nodes (c10d rendezvous on 127.0.0.1,
gloo, one process each), started through `mpbench launch torchrun` as a user would start it
on every node: both nodes' cards and every rank's trace in one results directory, read by the
gate and the report; a node with another suite file refused; a rendezvous that never
completes; one agent killed mid-suite and both restarted. Each launch has a timeout."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mpbench.cli.main import cli

AGENT_TIMEOUT_S = 150
SUITE = """
name: nodes
models: [gpt-tiny]
precisions: [fp32, bf16]
train: {{batch_size: 4, seq_len: 16, steps: {steps}, warmup_steps: 1, lr: {lr}, eval_batches: 1}}
data: {{source: synthetic, vocab_size: 64}}
parallel: {{strategy: ddp, grad_comm_dtype: {comm}, probe_steps: 1, timeout_s: 20}}
"""


def write_suite(path: Path, steps: int = 4, lr: str = "1.0e-3", comm: str = "fp32") -> Path:
    path.write_text(SUITE.format(steps=steps, lr=lr, comm=comm), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent(suite: Path, results: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    """One node's agent, in its own session so the test can kill it as a node dies."""
    cmd = [sys.executable, "-m", "mpbench", "launch", "torchrun", str(suite), "--nodes", "2",
           "--procs-per-node", "1", "--rdzv-endpoint", f"127.0.0.1:{port}", "--results",
           str(results), "--no-report", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


def kill_node(proc: subprocess.Popen[str]) -> None:
    """SIGKILL an agent and everything under it, as when its node dies (torchrun starts its
    workers in sessions of their own, so the agent's process group alone would not do)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [proc.pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.kill(pid, signal.SIGKILL)


def finish(*procs: subprocess.Popen[str]) -> list[tuple[int, str, str]]:
    done = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=AGENT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            pytest.fail(f"agent did not finish in {AGENT_TIMEOUT_S} s:\n{out[-2000:]}{err[-2000:]}")
        done.append((p.returncode, out, err))
    return done


def two_nodes(suite: Path, results: Path, *extra: str,
              second: Path | None = None) -> list[tuple[int, str, str]]:
    port = free_port()
    first = agent(suite, results, port, *extra)
    time.sleep(1.0)  # the first agent hosts the rendezvous store
    return finish(first, agent(second or suite, results, port, *extra))


def records(results: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}


@dataclass
class Resumed:
    """One suite on two agents: node 1 killed once a run is recorded, then both restarted."""

    results: Path
    before_kill: dict[str, bytes]
    survivor: tuple[int, str, str]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Resumed:
    tmp = tmp_path_factory.mktemp("nodes")
    results = tmp / "shared" / "results"
    suite = write_suite(tmp / "nodes.yaml", steps=8, comm="[fp32, bf16]")
    port = free_port()
    first = agent(suite, results, port, "--trace", "--rdzv-timeout", "5")
    time.sleep(1.0)  # the first agent hosts the rendezvous store
    second = agent(suite, results, port, "--trace", "--rdzv-timeout", "5")
    deadline = time.monotonic() + AGENT_TIMEOUT_S
    while not list((results / "runs").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    before = {p.name: p.read_bytes() for p in (results / "runs").glob("*.json")}
    assert before, "no run finished before the deadline"
    kill_node(second)  # node 1 dies: agent, rank and all
    [survivor] = finish(first)
    for code, out, err in two_nodes(suite, results, "--trace"):  # the same command again
        assert code == 0, out[-3000:] + err[-3000:]
    return Resumed(results, before, survivor)


@pytest.mark.integration
def test_one_results_directory_holds_both_nodes_cards(run: Resumed) -> None:
    recs = records(run.results)
    assert len(recs) == 4
    for rec in recs.values():  # a run node 1 died in holds the cards too
        par = rec["profiler_results"]["parallel"]
        assert (par["world_size"], par["nodes"], par["processes_per_node"]) == (2, 2, 1)
        cards = par["node_cards"]
        assert [(c["node"], c["ranks"]) for c in cards] == [(0, [0]), (1, [1])]
        for card in cards:  # each node's own card, in full
            assert card["env"]["torch"] and card["env"]["cpu"]["model"]
            assert card["host"] == card["env"]["hostname"]
            assert card["suite_sha256"] == cards[0]["suite_sha256"]
        assert rec["env"]["hostname"] == cards[0]["host"]  # rank 0's card stays the record's


@pytest.mark.integration
def test_every_rank_trace_carries_distributed_info_for_hta(run: Resumed) -> None:
    """Holistic Trace Analysis (hta/common/trace_file.py, create_rank_to_trace_dict) maps the
    .json files of a directory to ranks by data["distributedInfo"]["rank"], an int >= 0,
    unique per file; torch.profiler writes backend, rank and world_size there."""
    for run_id, rec in records(run.results).items():
        if rec["status"] != "ok":
            continue
        files = sorted((run.results / "traces" / run_id).glob("*.json"))
        infos = [json.loads(f.read_text())["distributedInfo"] for f in files]
        assert sorted(i["rank"] for i in infos) == [0, 1]
        assert all(i["world_size"] == 2 and i["backend"] == "gloo" for i in infos)


@pytest.mark.integration
def test_gate_and_report_read_the_two_node_results(run: Resumed, tmp_path: Path) -> None:
    runner = CliRunner()
    gate = runner.invoke(cli, ["gate", str(run.results), "-b", str(run.results)])
    assert gate.exit_code == 0, gate.output[-2000:]
    assert "gate PASSED" in gate.stdout
    report = tmp_path / "report.html"
    done = runner.invoke(cli, ["report", str(run.results), "-o", str(report)])
    assert done.exit_code == 0, done.output[-2000:]
    html = report.read_text()
    assert "Nodes and scaling" in html and "node 1" in html


@pytest.mark.integration
def test_a_node_with_another_suite_file_stops_the_suite_before_training(
        run: Resumed, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(run.results, results)  # a results directory in progress: nothing may be lost
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    (tmp_path / "other").mkdir()
    other = write_suite(tmp_path / "other" / "nodes.yaml", lr="2.0e-3")
    # --only fp32: one run, so torchrun restarts the refused group once (a restart per run)
    ends = two_nodes(write_suite(tmp_path / "nodes.yaml"), results, "--only", "fp32",
                     second=other)
    for code, out, err in ends:
        assert code == 2, out[-2000:] + err[-2000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: node 1 (host ") and ", rank 1): suite file (sha256) " in last
        assert "differs from node 0 (host " in last and err.count("suite file (sha256)") == 1
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before


@pytest.mark.integration
def test_a_rendezvous_that_never_completes_ends_with_one_line(tmp_path: Path) -> None:
    t0 = time.monotonic()
    [(code, _, err)] = finish(agent(write_suite(tmp_path / "nodes.yaml"), tmp_path / "r",
                                    free_port(), "--rdzv-timeout", "3"))
    took = time.monotonic() - t0
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(
        "error: --rdzv-endpoint 127.0.0.1:") and "not all 2 nodes joined the rendezvous within " \
        "--rdzv-timeout 3 s" in err
    assert "Traceback" not in err
    assert took < 60  # the timeout, interpreter starts and a busy machine; never torchrun's 600 s
    assert not (tmp_path / "r").exists()


@pytest.mark.integration
def test_kill_one_agent_mid_suite_then_resume_loses_and_repeats_nothing(run: Resumed) -> None:
    code, _, err = run.survivor  # node 0 waited for node 1 at the rendezvous, then said so
    assert code == 2 and "not all 2 nodes joined the rendezvous" in err.strip().splitlines()[-1]
    recs = records(run.results)
    assert len(recs) == 4  # every run once: a file per run id, each written by one attempt
    for name, data in run.before_kill.items():  # nothing recorded before the kill ran again
        assert (run.results / "runs" / name).read_bytes() == data
    lost = [r for r in recs.values() if r["status"] != "ok"]
    assert len(lost) <= 1  # the run node 1 died in, if it died inside one, named as such
    for r in lost:
        assert r["reason"].startswith("rank 1 of 2 stopped without a report"), r["reason"]
