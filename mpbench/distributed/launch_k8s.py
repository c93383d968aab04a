"""Kubernetes manifests for a suite: a Kubeflow Trainer TrainJob, or a PyTorchJob.

TrainJob (trainer.kubeflow.org/v1alpha1, Kubeflow Trainer v2): the `torch-distributed`
runtime's torch plugin gives every node PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK,
PET_MASTER_ADDR and PET_MASTER_PORT, which torchrun reads, so the command is plain
`torchrun -m mpbench run ...`. The suite travels in a ConfigMap mounted read-only, results go
to a ReadWriteMany PersistentVolumeClaim; both reach the runtime's `node` container through a
runtimePatches entry (the Trainer 2.3 API; checked against the kubeflow-trainer-api models).
PyTorchJob (kubeflow.org/v1, the older training-operator): Master + Worker replicas, each a
container named `pytorch`, nprocPerNode; the operator sets the same PET_* variables (checked
against training-operator v1.9.0's CRD schema in the tests).
"""

from __future__ import annotations

import re
from typing import Any

from mpbench.distributed.launch_plan import LaunchPlan

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
