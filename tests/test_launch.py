"""`mpbench launch slurm|k8s|torchrun`: what the job files say, that the manifests are what a
released Kubeflow Trainer API accepts, and the mistakes refused before anything is written
(exit code 2, one line, nothing lost)."""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mpbench.cli.main import cli
from mpbench.distributed.nodes import NodePost, first_difference, node_cards
from mpbench.distributed.schedulers import gres_gpus
from mpbench.results.env import environment_card
from mpbench.results.env_card import EnvCard, GpuCard

SUITE = """
name: {name}
models: [gpt-tiny]
precisions: [fp32, bf16]
train: {{batch_size: 4, seq_len: 16, steps: 4, warmup_steps: 1, lr: 1.0e-3, eval_batches: 1}}
data: {{source: synthetic, vocab_size: 64}}
devices:
  cuda: {{train: {{batch_size: 16}}}}
"""


def write_suite(tmp: Path, name: str = "lnch", parallel: str | None = "{strategy: ddp}") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(SUITE.format(name=name) + (f"parallel: {parallel}\n" if parallel else ""),
                    encoding="utf-8")
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def no_sinfo(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """A PATH without Slurm's tools (the machine may have them: the Slurm test installs them)."""
    empty = tmp / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))


def fake_tool(tmp: Path, name: str, output: str) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(output)}\n", encoding="utf-8")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return bin_dir


# -- Slurm ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_sbatch_script_runs_srun_torchrun_with_c10d_on_the_first_node(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_sinfo(monkeypatch, tmp_path)
    suite = write_suite(tmp_path)
    job = tmp_path / "jobs" / "job.sbatch"
    code, out, err = invoke("launch", "slurm", str(suite), "--nodes", "2", "--gpus-per-node", "8",
                            "-p", "gpu", "--time", "01:00:00", "-o", str(job), "--trace")
    assert code == 0, err
    text = job.read_text()
    assert os.access(job, os.X_OK) and text.startswith("#!/bin/bash\n")
    for directive in ("--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=8",
                      "--partition=gpu", "--time=01:00:00"):
        assert f"#SBATCH {directive}\n" in text
    assert 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)' in text
    srun = text[text.index("srun "):text.index("  || {")].replace("\\\n", " ")
    words = shlex.split(srun)  # as bash reads it, quotes removed
    assert words[:4] == ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "$TORCHRUN"]
    assert {"--nnodes=2", "--nproc-per-node=8", "--max-restarts=2", "--rdzv-backend=c10d",
            "--rdzv-endpoint=$head_node:$RDZV_PORT", "--rdzv-id=$SLURM_JOB_ID"} <= set(words)
    module = words[words.index("-m"):]
    assert module == ["-m", "mpbench", "run", "$SUITE", "--out", "$RESULTS", "--device", "cuda",
                      "--resume", "--quiet", "--trace"]
    shipped = job.parent / suite.name  # the suite travels with the job, byte for byte
    assert shipped.read_bytes() == suite.read_bytes()
    assert f"SUITE={shipped}\n" in text
    assert f"RESULTS={job.parent / 'lnch-results'}\n" in text
    assert "submit with: sbatch" in out


@pytest.mark.unit
def test_submit_without_sbatch_says_so_and_keeps_the_job(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    no_sinfo(monkeypatch, tmp_path)
    job = tmp_path / "job.sbatch"
    code, _, err = invoke("launch", "slurm", str(write_suite(tmp_path)), "--nodes", "2",
                          "--gpus-per-node", "2", "-o", str(job), "--submit")
    assert code == 2
    assert err.strip() == (f"error: --submit: sbatch is not on PATH here; the job is written: "
                           f"run `sbatch {job}` on the cluster's login node")
    assert job.is_file()


@pytest.mark.unit
@pytest.mark.parametrize("gres, gpus", [("gpu:8", 8), ("gpu:a100:4(S:0-1)", 4), ("(null)", 0),
                                        ("gpu:h100:2,shard:8", 2), ("gpu:1,gpu:tesla:2", 3)])
def test_sinfo_gres_fields_count_gpus(gres: str, gpus: int) -> None:
    """The GRES format of Slurm's gres.conf / sinfo %G: name[:type]:count[(S:sockets)]."""
    assert gres_gpus(gres) == gpus


@pytest.mark.unit
def test_more_gpus_per_node_than_the_partition_has_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_tool(tmp_path, "sinfo", "gpu|gpu:a100:4(S:0-1)|64")))
    job = tmp_path / "job.sbatch"
    code, _, err = invoke("launch", "slurm", str(write_suite(tmp_path)), "--nodes", "2",
                          "--gpus-per-node", "8", "-p", "gpu", "-o", str(job))
    assert code == 2
    assert err.strip() == ("error: --gpus-per-node 8: partition 'gpu' has at most 4 GPU(s) per "
                           "node (sinfo); ask for 4 or another --partition")
    assert not job.exists() and not (tmp_path / "lnch-results").exists()


# -- refused before anything is written ------------------------------------------------------
@pytest.mark.unit
def test_a_suite_without_parallel_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_sinfo(monkeypatch, tmp_path)
    suite = write_suite(tmp_path, parallel=None)
    for target in (["slurm"], ["k8s", "--image", "img", "--results-pvc", "shared"]):
        out = tmp_path / "job"
        code, _, err = invoke("launch", *target, str(suite), "--nodes", "2", "--gpus-per-node",
                              "1", "-o", str(out))
        assert code == 2
        assert err.strip() == (f"error: {suite}: suite 'lnch' has no parallel: section, so it "
                               "cannot run across nodes; add one, e.g. `parallel: {strategy: ddp}`")
        assert not out.exists()


@pytest.mark.unit
def test_an_unwritable_shared_results_path_is_refused(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    no_sinfo(monkeypatch, tmp_path)
    job = tmp_path / "job.sbatch"
    code, _, err = invoke("launch", "slurm", str(write_suite(tmp_path)), "--nodes", "2",
                          "--gpus-per-node", "1", "--results", "/proc/mpbench-results", "-o", str(job))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: --results: ") and "/proc" in err
    assert not job.exists()


@pytest.mark.unit
def test_a_job_never_replaces_a_different_suite_file_next_to_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_sinfo(monkeypatch, tmp_path)
    suite = write_suite(tmp_path)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / suite.name).write_text("name: other\n")
    code, _, err = invoke("launch", "slurm", str(suite), "--nodes", "2", "--gpus-per-node", "1",
                          "-o", str(jobs / "job.sbatch"))
    assert code == 2 and "exists and differs from" in err
    assert (jobs / suite.name).read_text() == "name: other\n"


@pytest.mark.unit
@pytest.mark.parametrize("args, message", [
    (["--nodes", "3", "--procs-per-node", "1"],
     "train.batch_size (the global batch): 4 sequences do not split over world size 3"),
    (["--nodes", "2"], "give --gpus-per-node G (GPU nodes) or --procs-per-node P (CPU nodes)"),
])
def test_bad_launch_shapes_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  args: list[str], message: str) -> None:
    no_sinfo(monkeypatch, tmp_path)
    code, _, err = invoke("launch", "slurm", str(write_suite(tmp_path)), *args,
                          "-o", str(tmp_path / "j"))
    assert code == 2 and message in err
    assert not (tmp_path / "j").exists()


# -- Kubernetes: checked against the released Kubeflow Trainer API models ------------------------
def trainer_models() -> Any:
    return pytest.importorskip(
        "kubeflow_trainer_api.models",
        reason="kubeflow-trainer-api (the test extras) is not installed")


def round_trip(model: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """The generated models' from_dict ignores keys they do not know, so a document is valid
    only when to_dict() gives every key back unchanged."""
    parsed = model.from_dict(doc)
    assert parsed is not None
    return parsed.to_dict()


@pytest.mark.unit
def test_trainjob_manifest_validates_against_kubeflow_trainer_api(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = trainer_models()
    no_sinfo(monkeypatch, tmp_path)
    suite = write_suite(tmp_path)
    manifest = tmp_path / "trainjob.yaml"
    code, _, err = invoke("launch", "k8s", str(suite), "--nodes", "2", "--gpus-per-node", "4",
                          "--image", "registry.example/mpbench:1", "--results-pvc", "shared",
                          "-n", "ml", "--repeats", "2", "-o", str(manifest))
    assert code == 0, err
    cm, job = yaml.safe_load_all(manifest.read_text())
    assert round_trip(models.IoK8sApiCoreV1ConfigMap, cm) == cm
    assert round_trip(models.TrainerV1alpha1TrainJob, job) == job
    assert (job["apiVersion"], job["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    assert cm["data"] == {suite.name: suite.read_text()}  # the suite, shipped whole
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 4)
    assert trainer["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": "4"}}
    assert trainer["command"] == ["torchrun"]  # the runtime's PET_* variables do the rendezvous
    assert trainer["args"] == ["--max-restarts=4", "-m", "mpbench", "run",  # a restart per run
                               f"/mpbench/suite/{suite.name}", "--out",
                               "/mpbench/results/lnch-results", "--device", "cuda", "--resume",
                               "--quiet", "--repeats", "2"]
    assert job["spec"]["runtimeRef"] == {"name": "torch-distributed"}
    [patch] = job["spec"]["runtimePatches"]
    [node] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["mpbench-suite"]["configMap"]["name"] == (
        cm["metadata"]["name"])
    assert pod["containers"][0]["name"] == "node"  # the runtime's trainer container


@pytest.mark.unit
def test_pytorchjob_manifest_has_master_and_workers(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    no_sinfo(monkeypatch, tmp_path)
    manifest = tmp_path / "pj.yaml"
    code, _, err = invoke("launch", "k8s", str(write_suite(tmp_path)), "--nodes", "4",
                          "--gpus-per-node", "2", "--image", "img", "--results-pvc", "shared",
                          "--api", "pytorchjob", "-o", str(manifest))
    assert code == 0, err
    _, job = yaml.safe_load_all(manifest.read_text())
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert job["spec"]["nprocPerNode"] == "2"
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert (specs["Master"]["replicas"], specs["Worker"]["replicas"]) == (1, 3)
    container = specs["Worker"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch"  # the name the training-operator looks for
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    fixture = json.loads((Path(__file__).parent / "data" /
                          "pytorchjob-crd-v1.9.0.schema.json").read_text())
    assert "training-operator, tag v1.9.0" in fixture["source"]
    assert crd_problems(job, fixture["schema"]) == []
    bad = json.loads(json.dumps(job))
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = "1"
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["imag"] = "x"
    assert crd_problems(bad, fixture["schema"]) == [  # the check can fail
        "spec.pytorchReplicaSpecs.Master.replicas: expected integer",
        "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].imag: unknown field"]


def crd_problems(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """A CRD's structural schema (OpenAPI v3), read strictly: the API server prunes unknown
    fields silently, which would hide a misspelled key, so here an unknown field is an error."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if "anyOf" in schema or schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(doc, (int, str)) and not isinstance(doc, bool)
        return [] if ok else [f"{path}: expected int or string"]
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind == "integer":
        if not isinstance(doc, int) or isinstance(doc, bool):
            return [f"{path}: expected integer"]
        return []
    if kind in checks and not isinstance(doc, checks[kind]):
        return [f"{path}: expected {kind}"]
    if "enum" in schema and doc not in schema["enum"]:
        return [f"{path}: {doc!r} not one of {schema['enum']}"]
    out: list[str] = []
    if kind == "array":
        for i, item in enumerate(doc):
            out += crd_problems(item, schema.get("items", {}), f"{path}[{i}]")
    if kind == "object":
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        out += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in doc]
        for key, value in doc.items():
            where = f"{path}.{key}" if path else key
            if props and key in props:
                out += crd_problems(value, props[key], where)
            elif isinstance(extra, dict):
                out += crd_problems(value, extra, where)
            elif props:
                out.append(f"{where}: unknown field")
    return out


# -- the node check ----------------------------------------------------------------------------
def _post(card: EnvCard, node: int, suite: str = "a" * 64) -> NodePost:
    return NodePost(card=card, suite=suite, node=node)


@pytest.mark.unit
@pytest.mark.parametrize("field, path, value, name", [
    ("torch", ("torch",), "2.5.1+cu124", "torch"),
    ("driver", ("gpu", "driver"), "550.54.15", "GPU driver"),
    ("gpu", ("gpu", "name"), "NVIDIA A100-SXM4-80GB", "GPU model"),
])
def test_a_node_that_differs_is_named_with_the_field(field: str, path: tuple[str, ...],
                                                     value: str, name: str) -> None:
    card = environment_card().model_copy(update={"gpu": GpuCard(
        name="NVIDIA H100 80GB HBM3", capability="9.0", driver="570.86.10")})
    raw = card.model_dump(mode="json")
    raw["hostname"] = "gpu-07"
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    other = EnvCard.model_validate(raw)
    posts = {0: _post(card, 0), 1: _post(card, 0), 2: _post(other, 1), 3: _post(other, 1)}
    line = first_difference(posts, "cuda")
    assert line is not None and line.startswith(f"node 1 (host gpu-07, rank 2): {name} {value} "
                                                f"differs from node 0 (host {card.hostname}")
    assert first_difference({0: _post(card, 0), 1: _post(card, 1)}, "cuda") is None
    cards = node_cards(posts)
    assert [(c.node, c.ranks, c.host) for c in cards] == [
        (0, [0, 1], card.hostname), (1, [2, 3], "gpu-07")]


@pytest.mark.unit
def test_a_different_suite_file_is_named_by_its_hash() -> None:
    card = environment_card()
    line = first_difference({0: _post(card, 0), 1: _post(card, 1, suite="b" * 64)}, "cpu")
    assert line is not None and "rank 1): suite file (sha256) bbbbbbbbbbbb differs from" in line
