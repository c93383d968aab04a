"""The sbatch script `mpbench launch slurm` writes, run by a real Slurm on this machine.

The test writes a one-node cluster's slurm.conf into a temporary directory (auth/none: one
machine, no munge key), starts slurmctld and slurmd in the foreground and stops them at the
end. The job (2 processes on the node, gloo) must leave the records the plain torchrun
command leaves. Skipped, with the reason, where Slurm's packages are not installed
(.ci/run installs them: slurmctld, slurmd, slurm-client from the distribution).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mpbench.cli.main import cli

DAEMONS = ("slurmctld", "slurmd", "sbatch", "sinfo", "srun", "scontrol")
JOB_TIMEOUT_S = 240
SUITE = """
name: slurm
models: [gpt-tiny]
precisions: [fp32, bf16]
train: {batch_size: 4, seq_len: 16, steps: 4, warmup_steps: 1, lr: 1.0e-3, eval_batches: 1}
data: {source: synthetic, vocab_size: 64}
parallel: {strategy: ddp, probe_steps: 1, timeout_s: 60}
"""

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in DAEMONS),
    reason="Slurm is not installed here (apt-get install slurmctld slurmd slurm-client; "
           ".ci/run installs them)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slurm_conf(root: Path) -> Path:
    host = socket.gethostname()
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(parents=True)
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=mpbenchtest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        "AuthType=auth/none", "CredType=cred/none",
        "SlurmUser=root", "SlurmdUser=root",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "MpiDefault=none", "ReturnToService=2", "SwitchType=switch/none",
        "JobCompType=jobcomp/none", "AccountingStorageType=accounting_storage/none",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    return conf


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_CONF": str(slurm_conf(root))}
    daemons = [subprocess.Popen([d, "-D", *(["-i"] if d == "slurmctld" else [])], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for d in ("slurmctld", "slurmd")]
    try:
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline and state != "idle":
            time.sleep(0.5)
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                                   text=True, check=False).stdout.strip()
        if state != "idle":
            logs = "".join(p.read_text()[-1500:] for p in (root / "log").glob("*.log"))
            pytest.fail(f"the test's Slurm node did not come up (state {state!r}):\n{logs}")
        yield env
    finally:
        for d in daemons:
            d.terminate()
        for d in daemons:
            try:
                d.wait(timeout=20)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()


def mpbench(*args: str, env: dict[str, str]) -> Result:
    """The CLI in this process, with the test cluster's SLURM_CONF (sinfo reads it)."""
    return CliRunner().invoke(cli, list(args), env={"SLURM_CONF": env["SLURM_CONF"]})


def run_job(job: Path, env: dict[str, str]) -> str:
    """Submit and wait for the job's end state (sbatch --wait polls every 2 to 10 s)."""
    sub = subprocess.run(["sbatch", "--parsable", str(job)], env=env, capture_output=True,
                         text=True, timeout=30, check=True)
    job_id = sub.stdout.strip().split(";")[0]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env,
                               capture_output=True, text=True, check=False).stdout
        state = next((f.split("=", 1)[1] for f in shown.split() if f.startswith("JobState=")),
                     "")
        if state and state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state
        time.sleep(0.3)
    subprocess.run(["scancel", job_id], env=env, check=False)
    return "TIMEOUT (the test's)"


def runs(results: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}


@pytest.mark.integration
def test_the_sbatch_script_runs_under_slurm_like_plain_torchrun(
        slurm: dict[str, str], tmp_path: Path) -> None:
    suite = tmp_path / "slurm.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    job = tmp_path / "job" / "job.sbatch"
    made = mpbench("launch", "slurm", str(suite), "--nodes", "1", "--procs-per-node", "2",
                   "--no-report", "-p", "debug", "--port", str(free_port()), "-o", str(job),
                   env=slurm)
    assert made.exit_code == 0, made.output
    plain = tmp_path / "plain"  # the plain torchrun command, beside the job (same 2 cores)
    direct = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "mpbench", "run", str(suite), "--out", str(plain), "--device", "cpu", "--quiet",
         "--no-report"], env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    state = run_job(job, slurm)
    logs = "".join(p.read_text()[-3000:] for p in job.parent.glob("*.out"))
    assert state == "COMPLETED", state + logs
    _, err = direct.communicate(timeout=JOB_TIMEOUT_S)
    assert direct.returncode == 0, err[-3000:]
    under_slurm, by_hand = runs(job.parent / "slurm-results"), runs(plain)
    assert sorted(under_slurm) == sorted(by_hand) and len(by_hand) == 2
    for run_id, rec in under_slurm.items():
        ref = by_hand[run_id]
        assert rec["status"] == ref["status"] == "ok", rec["reason"]
        steps, losses = zip(*rec["loss_curve"], strict=True)  # the same training, step by step
        assert list(steps) == [s for s, _ in ref["loss_curve"]]
        assert list(losses) == pytest.approx([v for _, v in ref["loss_curve"]], abs=1e-6)
        assert rec["config_key"] == ref["config_key"]
        par, ref_par = (r["profiler_results"]["parallel"] for r in (rec, ref))
        for key in ("world_size", "nodes", "processes_per_node", "backend", "per_rank_batch"):
            assert par[key] == ref_par[key], key
        assert [c["ranks"] for c in par["node_cards"]] == [[0, 1]]


@pytest.mark.integration
def test_more_processes_than_the_partition_has_cpus_is_refused(
        slurm: dict[str, str], tmp_path: Path) -> None:
    suite = tmp_path / "slurm.yaml"
    suite.write_text(SUITE.replace("batch_size: 4", "batch_size: 64"), encoding="utf-8")
    too_many = (os.cpu_count() or 1) * 2
    job = tmp_path / "job.sbatch"
    made = mpbench("launch", "slurm", str(suite), "--nodes", "1", "--procs-per-node",
                   str(too_many), "-p", "debug", "-o", str(job), env=slurm)
    assert made.exit_code == 2
    assert made.stderr.strip() == (
        f"error: --procs-per-node {too_many}: partition 'debug' has at most "
        f"{os.cpu_count()} CPU(s) per node (sinfo); ask for {os.cpu_count()} or fewer")
    assert not job.exists()
