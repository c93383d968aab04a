"""`mpbench launch slurm|k8s|torchrun SUITE`: run a suite across nodes with the cluster's tools.

slurm writes an sbatch script (srun torchrun, c10d rendezvous on the allocation's first
node), k8s a Kubeflow TrainJob (or PyTorchJob) with the suite in a ConfigMap, torchrun runs
this node's torchrun agent (start the same command on every node). mpbench manages no
processes: Slurm, the operator and torchrun do.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click
import yaml

from mpbench.errors import UserError

if TYPE_CHECKING:  # the module itself imports torch only when a command runs
    from mpbench.distributed.launch import LaunchPlan


def _node_options(fn: Any) -> Any:
    for option in reversed([
        click.argument("suite_file", metavar="SUITE", type=click.Path(path_type=Path)),
        click.option("--nodes", type=click.IntRange(min=1), required=True, metavar="N",
                     help="Nodes (one torchrun agent each)."),
        click.option("--gpus-per-node", type=click.IntRange(min=1), default=None, metavar="G",
                     help="GPUs per node: one process drives one GPU."),
        click.option("--procs-per-node", type=click.IntRange(min=1), default=None, metavar="P",
                     help="CPU nodes: processes per node (gloo); instead of --gpus-per-node."),
        click.option("--only", multiple=True, metavar="NAME",
                     help="Only runs whose precision, model or run id is NAME (repeatable)."),
        click.option("--trace", is_flag=True,
                     help="Every rank exports a trace (<results>/traces/<run>/rank<r>.trace.json)."),
        click.option("--report/--no-report", default=True, show_default=True,
                     help="Rank 0 writes report.html next to the results at the end."),
        click.option("--repeats", type=click.IntRange(1, 100), default=None, metavar="N",
                     help="Run each configuration N times (overrides the suite's repeats:); "
                          "the report's scaling verdicts need 2 or more."),
    ]):
        fn = option(fn)
    return fn


def _plan(suite_file: Path, nodes: int, gpus: int | None, procs: int | None,
          results: str, only: tuple[str, ...], trace: bool, report: bool,
          repeats: int | None) -> LaunchPlan:
    from mpbench.distributed.launch import LaunchPlan, check_plan, with_world_size
    from mpbench.train.load import load_suite

    if (gpus is None) == (procs is None):
        raise UserError("give --gpus-per-node G (GPU nodes) or --procs-per-node P (CPU nodes)")
    device: Literal["cuda", "cpu"] = "cuda" if gpus is not None else "cpu"
    per_node = gpus if gpus is not None else procs
    assert per_node is not None
    suite = load_suite(suite_file, device)
    check_plan(suite, nodes, per_node, suite_file)
    suite = with_world_size(suite, nodes * per_node)
    if repeats is not None:
        suite = suite.model_copy(update={"repeats": repeats})
    args = (*(f"--only={name}" for name in only), *(["--trace"] if trace else []),
            *([] if report else ["--no-report"]),
            *(["--repeats", str(repeats)] if repeats is not None else []))
    plan = LaunchPlan(suite, nodes, per_node, device, results, tuple(args))
    if only and not set(only) & {n for spec in _specs(plan) for n in spec}:
        raise UserError(f"--only {' '.join(only)}: matches no run of suite '{suite.name}'")
    return plan


def _specs(plan: LaunchPlan) -> list[set[str]]:
    from mpbench.plan.spec import expand

    return [{s.precision.name, s.model_label, s.run_id} for s in expand(plan.suite)]


def _results_for(suite_name: str, job_dir: Path) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in suite_name)
    return job_dir / f"{safe}-results"


@click.group("launch")
def launch() -> None:
    """Run SUITE across nodes: a Slurm job, a Kubernetes TrainJob, or this node's torchrun.

    \b
    Examples:
      mpbench launch slurm suites/parallel.yaml --nodes 2 --gpus-per-node 8 -p gpu -o job.sbatch
      mpbench launch k8s suites/parallel.yaml --nodes 2 --gpus-per-node 8 --image IMG \\
          --results-pvc shared -o trainjob.yaml
      mpbench launch torchrun suites/parallel.yaml --nodes 2 --gpus-per-node 8 \\
          --rdzv-endpoint node0:29500 --results /shared/parallel   # on every node
    """


@launch.command("slurm")
@_node_options
@click.option("--partition", "-p", default=None, help="Slurm partition (sbatch --partition).")
@click.option("--time", "time_limit", default=None, metavar="T",
              help="Wall-clock limit (sbatch --time, e.g. 02:00:00).")
@click.option("--results", type=click.Path(path_type=Path), default=None,
              help="Results directory on the shared file system (default: next to the job file).")
@click.option("--port", type=click.IntRange(1024, 65535), default=29500, show_default=True,
              help="Rendezvous port on the first node.")
@click.option("--rdzv-timeout", type=click.IntRange(min=1), default=600, show_default=True,
              metavar="S", help="Seconds torchrun waits for every node to join.")
@click.option("--out", "-o", "job_file", type=click.Path(path_type=Path), required=True,
              help="The sbatch script to write; the suite is copied next to it.")
@click.option("--submit", is_flag=True, help="Submit it with sbatch.")
def slurm(suite_file: Path, nodes: int, gpus_per_node: int | None, procs_per_node: int | None,
          only: tuple[str, ...], trace: bool, report: bool, repeats: int | None,
          partition: str | None,
          time_limit: str | None, results: Path | None, port: int, rdzv_timeout: int,
          job_file: Path, submit: bool) -> None:
    """Write an sbatch script: srun starts torchrun on every node (c10d rendezvous)."""
    from mpbench.distributed.launch import check_results_dir, ship_suite, torchrun_path
    from mpbench.distributed.schedulers import check_partition, sbatch_script
    from mpbench.distributed.schedulers import submit as sbatch_submit
    from mpbench.results.output import check_writable_dir, write_output

    job_dir = job_file.parent.resolve()
    suite_path = suite_file.resolve()
    out = (results or _results_for(_suite_name(suite_file), job_dir)).resolve()
    plan = _plan(suite_path, nodes, gpus_per_node, procs_per_node, str(out), only, trace, report,
                 repeats)
    check_partition(plan, partition)
    check_results_dir(out)
    check_writable_dir(job_dir, "-o")
    shipped = ship_suite(suite_path, job_dir)
    name = f"mpbench-{plan.suite.name}"[:64]
    text = sbatch_script(plan, str(shipped), torchrun_path(), name, str(job_dir), partition,
                         time_limit, port, rdzv_timeout)
    write_output(job_file, text, "-o")
    job_file.chmod(0o755)
    click.echo(f"wrote {job_file} ({plan.nodes} node(s) x {plan.procs_per_node} "
               f"{'GPU(s)' if plan.device == 'cuda' else 'process(es)'}, {len(plan.run_ids)} runs); "
               f"suite: {shipped}; results: {out}")
    if submit:
        click.echo(sbatch_submit(str(job_file)))
    else:
        click.echo(f"submit with: sbatch {shlex.quote(str(job_file))}")


def _suite_name(suite_file: Path) -> str:
    from mpbench.config.loader import load_suite_schema

    return load_suite_schema(suite_file, "cpu").name


@launch.command("k8s")
@_node_options
@click.option("--image", required=True, help="Container image with mpbench and torch installed.")
@click.option("--results-pvc", required=True, metavar="CLAIM",
              help="A ReadWriteMany PersistentVolumeClaim every node mounts for the results.")
@click.option("--results", "results_dir", default=None, metavar="DIR",
              help="Directory inside that volume (default: <suite>-results).")
@click.option("--namespace", "-n", default=None, help="Kubernetes namespace.")
@click.option("--api", type=click.Choice(["trainjob", "pytorchjob"]), default="trainjob",
              show_default=True,
              help="Kubeflow Trainer v2 TrainJob, or the older training-operator's PyTorchJob.")
@click.option("--runtime", default="torch-distributed", show_default=True,
              help="TrainJob: the (Cluster)TrainingRuntime to use.")
@click.option("--out", "-o", "manifest", type=click.Path(path_type=Path), required=True,
              help="The manifest to write (the suite's ConfigMap, then the job).")
def k8s(suite_file: Path, nodes: int, gpus_per_node: int | None, procs_per_node: int | None,
        only: tuple[str, ...], trace: bool, report: bool, repeats: int | None, image: str,
        results_pvc: str,
        results_dir: str | None, namespace: str | None, api: str, runtime: str,
        manifest: Path) -> None:
    """Write a Kubeflow TrainJob (or PyTorchJob) manifest with the suite in a ConfigMap."""
    from mpbench.distributed.schedulers import (
        RESULTS_MOUNT,
        configmap,
        k8s_name,
        pytorchjob,
        trainjob,
    )
    from mpbench.results.output import write_output

    name = k8s_name(f"mpbench-{_suite_name(suite_file)}")
    sub = (results_dir or f"{name.removeprefix('mpbench-')}-results").strip("/")
    if ".." in Path(sub).parts or not sub:
        raise UserError(f"--results {results_dir}: give a directory inside the volume")
    plan = _plan(suite_file, nodes, gpus_per_node, procs_per_node, f"{RESULTS_MOUNT}/{sub}",
                 only, trace, report, repeats)
    cm = f"{name}-suite"[:63]
    suite_name = suite_file.name
    job = (trainjob(plan, name, namespace, image, runtime, cm, suite_name, results_pvc)
           if api == "trainjob" else
           pytorchjob(plan, name, namespace, image, cm, suite_name, results_pvc))
    docs = [configmap(cm, namespace, suite_name, suite_file.read_text(encoding="utf-8")), job]
    write_output(manifest, yaml.safe_dump_all(docs, sort_keys=False), "-o")
    click.echo(f"wrote {manifest}: ConfigMap {cm} (the suite) and {job['kind']} {name} "
               f"({plan.nodes} node(s) x {plan.procs_per_node}, {len(plan.run_ids)} runs); "
               f"results in volume {results_pvc} at {sub}/; apply with: kubectl apply -f "
               f"{shlex.quote(str(manifest))}")


@launch.command("torchrun")
@_node_options
@click.option("--rdzv-endpoint", required=True, metavar="HOST:PORT",
              help="The c10d rendezvous: the same on every node (one of the nodes).")
@click.option("--rdzv-id", default=None, help="Rendezvous id (default: the suite's name).")
@click.option("--rdzv-timeout", type=click.IntRange(min=1), default=600, show_default=True,
              metavar="S", help="Seconds to wait for every node to join.")
@click.option("--results", type=click.Path(path_type=Path), required=True,
              help="Results directory on storage every node shares.")
@click.option("--print", "print_only", is_flag=True,
              help="Print the torchrun command instead of running it.")
def torchrun_agent(suite_file: Path, nodes: int, gpus_per_node: int | None,
                   procs_per_node: int | None, only: tuple[str, ...], trace: bool, report: bool,
                   repeats: int | None, rdzv_endpoint: str, rdzv_id: str | None, rdzv_timeout: int, results: Path,
                   print_only: bool) -> None:
    """Run this node's torchrun agent for SUITE; start the same command on every node."""
    from mpbench.distributed.launch import check_results_dir, run_agent

    if ":" not in rdzv_endpoint:
        raise UserError(f"--rdzv-endpoint {rdzv_endpoint}: give HOST:PORT")
    plan = _plan(suite_file, nodes, gpus_per_node, procs_per_node, str(results), only, trace,
                 report, repeats)
    check_results_dir(results)
    command = [sys.executable, "-m", "torch.distributed.run",
               *plan.torchrun_flags(rdzv_endpoint, rdzv_id or plan.suite.name, rdzv_timeout),
               *plan.mpbench_args(str(suite_file))]
    if print_only:
        click.echo(shlex.join(command))
        return
    end = run_agent(command)
    if end.rdzv_timed_out:
        raise UserError(f"--rdzv-endpoint {rdzv_endpoint}: not all {plan.nodes} nodes joined "
                        f"the rendezvous within --rdzv-timeout {rdzv_timeout} s; start this "
                        "command on every node, with the same endpoint and id")
    if end.code != 0 and end.error:
        raise UserError(end.error)  # the ranks' own one line (node mismatch, bad input)
    if end.code != 0:
        click.echo(f"error: torchrun exited with code {end.code}; recorded runs are kept in "
                   f"{results}: run the same command again on every node to continue", err=True)
        sys.exit(1)


COMMANDS = [launch]
