"""A suite's launch as a scheduler's job: an sbatch script (Slurm) or Kubernetes manifests.

Slurm: `srun torchrun` on every node, c10d rendezvous on the first. As torchtitan's
multinode_trainer.slurm does: one task per node runs one torchrun agent, which starts the
node's processes; the rendezvous endpoint is the allocation's first node (`scontrol show
hostnames "$SLURM_JOB_NODELIST" | head -n1`); the job id is the rendezvous id. Results go to
one directory on the shared file system, written by rank 0 only.

Kubernetes: a Kubeflow Trainer TrainJob, or a PyTorchJob. TrainJob
(trainer.kubeflow.org/v1alpha1, Kubeflow Trainer v2): the `torch-distributed` runtime's torch
plugin gives every node PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR and
PET_MASTER_PORT, which torchrun reads, so the command is plain `torchrun -m mpbench run ...`.
The suite travels in a ConfigMap mounted read-only, results go to a ReadWriteMany
PersistentVolumeClaim; both reach the runtime's `node` container through a runtimePatches
entry (the Trainer 2.3 API; checked against the kubeflow-trainer-api models). PyTorchJob
(kubeflow.org/v1, the older training-operator): Master + Worker replicas, each a container
named `pytorch`, nprocPerNode; the operator sets the same PET_* variables (checked against
training-operator v1.9.0's CRD schema in the tests).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from datetime import datetime, timezone
from typing import Any

import mpbench
from mpbench.distributed.launch import DEFAULT_RDZV_PORT, LaunchPlan
from mpbench.errors import UserError

_GRES_GPUS = re.compile(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)")


def gres_gpus(gres: str) -> int:
    """GPUs in one sinfo %G field: 'gpu:8', 'gpu:a100:4(S:0-1)', 'gpu:2,shard:8', '(null)'."""
    return sum(int(n) for n in _GRES_GPUS.findall(gres))


def partition_limits(partition: str | None) -> tuple[str, int, int] | None:
    """(partition, most GPUs on one node, most CPUs on one node) as sinfo reports them;
    None where sinfo is absent or says nothing (not on a Slurm login node)."""
    if shutil.which("sinfo") is None:
        return None
    fmt = ["-h", "-o", "%P|%G|%c"]
    args = ["sinfo", *fmt, *(["-p", partition] if partition else [])]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.split("|") for line in out.stdout.splitlines() if line.count("|") == 2]
    if not partition:  # the default partition carries a '*'
        rows = [r for r in rows if r[0].endswith("*")]
    if out.returncode != 0 or not rows:
        return None
    name = rows[0][0].rstrip("*")
    cpus = max(int(r[2].rstrip("+")) for r in rows if r[2].rstrip("+").isdigit()) if any(
        r[2].rstrip("+").isdigit() for r in rows) else 0
    return name, max(gres_gpus(r[1]) for r in rows), cpus


def check_partition(plan: LaunchPlan, partition: str | None) -> None:
    """More processes per node than the partition's nodes have GPUs (or CPUs): exit code 2."""
    limits = partition_limits(partition)
    if limits is None:
        return
    name, gpus, cpus = limits
    per_node = plan.procs_per_node
    if plan.device == "cuda" and per_node > gpus:
        raise UserError(f"--gpus-per-node {per_node}: partition '{name}' has at most {gpus} "
                        f"GPU(s) per node (sinfo); ask for {gpus or 'a partition with GPUs'}"
                        + (" or another --partition" if gpus else ""))
    if plan.device == "cpu" and cpus and per_node > cpus:
        raise UserError(f"--procs-per-node {per_node}: partition '{name}' has at most {cpus} "
                        f"CPU(s) per node (sinfo); ask for {cpus} or fewer")


def sbatch_script(plan: LaunchPlan, suite_path: str, torchrun: str, job_name: str,
                  log_dir: str, partition: str | None = None, time_limit: str | None = None,
                  port: int = DEFAULT_RDZV_PORT, rdzv_timeout_s: int = 600) -> str:
    q = shlex.quote
    directives = [f"--job-name={job_name}", f"--nodes={plan.nodes}", "--ntasks-per-node=1"]
    if plan.device == "cuda":
        directives.append(f"--gpus-per-node={plan.procs_per_node}")
    else:
        directives.append(f"--cpus-per-task={plan.procs_per_node}")
    if partition:
        directives.append(f"--partition={partition}")
    if time_limit:
        directives.append(f"--time={time_limit}")
    directives.append(f"--output={log_dir}/{job_name}-%j.out")
    flags = plan.torchrun_flags('"$head_node:$RDZV_PORT"', '"$SLURM_JOB_ID"', rdzv_timeout_s)
    module = [q(a) for a in plan.mpbench_args("SUITE")]
    module[3], module[5] = '"$SUITE"', '"$RESULTS"'
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = [
        "#!/bin/bash",
        f"# mpbench {mpbench.__version__}: suite '{plan.suite.name}' on {plan.nodes} node(s) x "
        f"{plan.procs_per_node} {'GPU(s)' if plan.device == 'cuda' else 'process(es)'} per node.",
        f"# Written by `mpbench launch slurm` at {stamp}. Submit with `sbatch` (or --submit);",
        "# resubmitting continues the suite in RESULTS (--resume): recorded runs are kept.",
        *(f"#SBATCH {d}" for d in directives),
        "set -euo pipefail",
        f"SUITE={q(suite_path)}",
        f"RESULTS={q(plan.results)}",
        f"TORCHRUN=${{TORCHRUN:-{q(torchrun)}}}",
        f"RDZV_PORT=${{RDZV_PORT:-{port}}}",
        '# the c10d rendezvous (and torchrun\'s store) lives on the first node of the allocation',
        'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)',
        *(["export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}"] if plan.device == "cpu" else []),
        'echo "mpbench: rendezvous on $head_node:$RDZV_PORT, results in $RESULTS"',
        "srun --ntasks-per-node=1 --kill-on-bad-exit=1 \"$TORCHRUN\" \\",
        "  " + " ".join(flags) + " \\",
        "  " + " ".join(module) + " \\",
        '  || { rc=$?; echo "mpbench: torchrun ended with code $rc; the recorded runs are kept '
        'in $RESULTS: resubmit this script to continue" >&2; exit "$rc"; }',
        "",
    ]
    return "\n".join(lines)


def submit(job_file: str) -> str:
    """`sbatch JOB`; its output ('Submitted batch job N')."""
    if shutil.which("sbatch") is None:
        raise UserError(f"--submit: sbatch is not on PATH here; the job is written: run "
                        f"`sbatch {job_file}` on the cluster's login node")
    done = subprocess.run(["sbatch", job_file], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"--submit: sbatch refused {job_file}: {last}")
    return done.stdout.strip()


# -- Kubernetes ----------------------------------------------------------------------------

SUITE_MOUNT = "/mpbench/suite"
RESULTS_MOUNT = "/mpbench/results"
TRAINER_API = "trainer.kubeflow.org/v1alpha1"
PYTORCHJOB_API = "kubeflow.org/v1"
PATCH_MANAGER = "mpbench"


def k8s_name(text: str) -> str:
    """A DNS-1123 label: lower case, digits and '-', at most 63 characters."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return (name or "mpbench")[:63].rstrip("-")


def configmap(name: str, namespace: str | None, file_name: str, text: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(name, namespace), "data": {file_name: text}}


def _meta(name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/created-by": "mpbench"}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _volumes(suite_cm: str, results_pvc: str) -> list[dict[str, Any]]:
    return [{"name": "mpbench-suite", "configMap": {"name": suite_cm}},
            {"name": "mpbench-results", "persistentVolumeClaim": {"claimName": results_pvc}}]


def _mounts() -> list[dict[str, Any]]:
    return [{"name": "mpbench-suite", "mountPath": SUITE_MOUNT, "readOnly": True},
            {"name": "mpbench-results", "mountPath": RESULTS_MOUNT}]


def _resources(plan: LaunchPlan) -> dict[str, Any]:
    if plan.device == "cuda":
        return {"limits": {"nvidia.com/gpu": str(plan.procs_per_node)}}
    return {"requests": {"cpu": str(plan.procs_per_node)}}


def _env(plan: LaunchPlan) -> list[dict[str, Any]]:
    return [{"name": "OMP_NUM_THREADS", "value": "1"}] if plan.device == "cpu" else []


def trainjob(plan: LaunchPlan, name: str, namespace: str | None, image: str, runtime: str,
             suite_cm: str, suite_file: str, results_pvc: str) -> dict[str, Any]:
    args = [f"--max-restarts={plan.max_restarts}",
            *plan.mpbench_args(f"{SUITE_MOUNT}/{suite_file}")]
    trainer: dict[str, Any] = {
        "image": image, "numNodes": plan.nodes, "numProcPerNode": plan.procs_per_node,
        "resourcesPerNode": _resources(plan), "command": ["torchrun"], "args": args,
    }
    if plan.device == "cpu":
        trainer["env"] = _env(plan)
    node_patch = {"name": "node", "template": {"spec": {"template": {"spec": {
        "volumes": _volumes(suite_cm, results_pvc),
        "containers": [{"name": "node", "volumeMounts": _mounts()}],
    }}}}}
    return {
        "apiVersion": TRAINER_API, "kind": "TrainJob", "metadata": _meta(name, namespace),
        "spec": {
            "runtimeRef": {"name": runtime},
            "trainer": trainer,
            "runtimePatches": [{"manager": PATCH_MANAGER, "trainingRuntimeSpec": {
                "template": {"spec": {"replicatedJobs": [node_patch]}}}}],
        },
    }


def pytorchjob(plan: LaunchPlan, name: str, namespace: str | None, image: str, suite_cm: str,
               suite_file: str, results_pvc: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "pytorch", "image": image, "command": ["torchrun"],
        "args": [f"--max-restarts={plan.max_restarts}",
                 *plan.mpbench_args(f"{SUITE_MOUNT}/{suite_file}")],
        "resources": _resources(plan), "volumeMounts": _mounts(),
    }
    if plan.device == "cpu":
        container["env"] = _env(plan)

    def replica(count: int) -> dict[str, Any]:
        return {"replicas": count, "restartPolicy": "OnFailure", "template": {"spec": {
            "containers": [container], "volumes": _volumes(suite_cm, results_pvc)}}}

    specs = {"Master": replica(1)}
    if plan.nodes > 1:
        specs["Worker"] = replica(plan.nodes - 1)
    return {"apiVersion": PYTORCHJOB_API, "kind": "PyTorchJob", "metadata": _meta(name, namespace),
            "spec": {"nprocPerNode": str(plan.procs_per_node), "pytorchReplicaSpecs": specs}}
