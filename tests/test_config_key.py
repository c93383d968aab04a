"""One configuration key (results/key.py): every view groups by it and reports one speedup.

One set of records (a matrix suite over two learning rates, and DDP plus FSDP2 runs of one
model) is fed to the summary, the report, the claims, the gate, the history and the
exporters; each must find the same groups and the same speedup for the same group.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixture_records import record, write_results

from mpbench.analysis.claims import evaluate_claims
from mpbench.analysis.compare import Groups, speedup
from mpbench.analysis.history import Point, build_series
from mpbench.cli.summary import summary_table
from mpbench.gate.evaluate import load_runs
from mpbench.gate.matching import match_runs
from mpbench.interop.pytest_benchmark import to_pytest_benchmark
from mpbench.interop.tracking import comparisons
from mpbench.report.blocks import Table
from mpbench.report.resultset import ResultSet
from mpbench.report.sections_perf import throughput_blocks
from mpbench.results.key import ConfigKey, ParallelKey
from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import SCHEMA_VERSION
from mpbench.results.store import load_records
from mpbench.results.upgrade import derive_key, upgrade

SCHEMA_1 = Path(__file__).resolve().parent / "data" / "schema1-gpt-cpu"
DDP = ParallelKey(strategy="ddp", grad_comm_dtype="fp32", world_size=2)
FSDP = ParallelKey(strategy="fsdp2", grad_comm_dtype="bf16", world_size=2)
# (matrix, parallel) -> (fp32 step ms, bf16 step ms): a different speedup in every group
GROUPS = {
    ("lr=0.001", None): (100.0, 50.0),
    ("lr=0.01", None): (100.0, 80.0),
    ("", DDP): (100.0, 40.0),
    ("", FSDP): (100.0, 125.0),
}


def _records() -> list:
    out = []
    for (lr, par), (fp32_ms, bf16_ms) in GROUPS.items():
        matrix = {"lr": float(lr.split("=")[1])} if lr else None
        for seed in (0, 1):
            for repeat in (0, 1):
                for prec, ms in (("fp32", fp32_ms), ("bf16", bf16_ms)):
                    out.append(record(prec, seed, step_ms=ms, matrix=matrix, parallel=par,
                                      repeat=repeat))
    return out


def _label(lr: str, par: ParallelKey | None) -> str:
    return " ".join(p for p in ("gpt-tiny b8×t64", lr, par.tag if par else "") if p)


EXPECTED = {_label(lr, par) for lr, par in GROUPS}


@pytest.mark.unit
def test_every_view_finds_the_same_groups_and_speedups(tmp_path: Path) -> None:
    records = _records()
    groups = Groups(records)
    assert {g.key.comparison.label for g in groups} == EXPECTED
    assert len(groups) == 8 and all(len(g.records) == 4 for g in groups)  # 2 seeds x 2 repeats
    truth = {g.key.comparison.label: speedup(g, groups.baseline(g))
             for g in groups if g.recipe_id == "bf16"}
    assert all(r is not None and r.n_base == r.n_new == 4 for r in truth.values())
    for (lr, par), (fp32_ms, bf16_ms) in GROUPS.items():  # the estimator sees each group alone
        assert truth[_label(lr, par)].value == pytest.approx(fp32_ms / bf16_ms, rel=0.03)  # type: ignore[union-attr]

    # summary: one bf16 row per group, with that group's speedup
    table = summary_table(records)
    cols = {c.header: list(c._cells) for c in table.columns}
    rows = list(zip(cols["model"], cols["precision"], cols["batch x seq"], cols["speedup vs fp32"],
                    strict=True))
    assert len(rows) == 8
    for lr, par in GROUPS:
        label = _label(lr, par)
        prec = f"bf16 ({par.tag})" if par else "bf16"
        setting = "8 x 64" + (f" {lr}" if lr else "")
        (row,) = [r for r in rows if r[1] == prec and r[2] == setting]
        assert row[3].startswith(f"{truth[label].value:.2f}x [")  # type: ignore[union-attr]

    # report: the throughput table has the same rows and speedups
    s = ResultSet("x", tmp_path, records)
    table_block = next(b for b in throughput_blocks(s) if isinstance(b, Table))
    report = {(row[1].text, row[2].text): row[6].sort for row in table_block.rows}
    assert len(report) == 8
    for lr, par in GROUPS:
        setting = " ".join(p for p in ("b8×t64", lr, par.tag if par else "") if p)
        assert report[("bf16", setting)] == pytest.approx(truth[_label(lr, par)].value)  # type: ignore[union-attr]
        assert report[("fp32", setting)] == 1.0

    # claims: one speedup-amp row per group, same value
    amp = next(v for v in evaluate_claims(records) if v.claim_id == "speedup-amp")
    claimed = {row.label.removesuffix(": bf16/fp32"): row.value
               for row in amp.rows if row.label.endswith("bf16/fp32")}
    assert set(claimed) == EXPECTED
    for label, value in claimed.items():
        assert value == pytest.approx(truth[label].value)  # type: ignore[union-attr]

    # exports (MLflow/TensorBoard summary metrics): each run carries its group's speedup
    exported = comparisons(records)
    for r in records:
        if r.precision == "bf16":
            label = r.config_key.comparison.label
            assert exported[r.run_id]["speedup_vs_fp32"] == pytest.approx(truth[label].value)  # type: ignore[union-attr]

    # gate: the same configurations are matched (seeds and repeats pooled in each)
    base_dir = write_results(tmp_path / "base", records)
    cur_dir = write_results(tmp_path / "cur", records)
    m = match_runs(load_runs(cur_dir, "CURRENT"), load_runs(base_dir, "--baseline"), False)
    assert {p.config_id for p in m.pairs} == {f"{e} {p}" for e in EXPECTED for p in ("fp32", "bf16")}
    assert all(len(p.current.records) == len(p.baseline.records) == 4 for p in m.pairs)
    assert not m.only_current and not m.only_baseline

    # history: one series per configuration
    series = build_series([Point("a", "1", records), Point("b", "2", records)])
    assert {x.config for x in series} == {f"{e} {p}" for e in EXPECTED for p in ("fp32", "bf16")}


@pytest.mark.unit
def test_the_key_derived_from_a_run_id_equals_the_written_one() -> None:
    """The upgrader's derivation (schema-1 records, old exports) gives the key a new run
    writes, for matrix tags, options tags, checkpointing and parallel combinations."""
    for r in [*_records(), record("fp16", ckpt=True)]:
        raw = json.loads(r.model_dump_json())
        written = ConfigKey.model_validate(raw.pop("config_key"))
        assert derive_key(raw) == written
        raw.pop("suite_config")  # an export's run summary has no suite: the run-id tags decide
        assert derive_key(raw) == written
    assert derive_key({"run_id": "m__fp16-1a2b3c__b4-t8__seed0", "model": "m",
                       "precision": "fp16", "batch_size": 4, "seq_len": 8,
                       "profile": "cpu"}).recipe_id == "fp16-1a2b3c"


@pytest.mark.unit
def test_the_run_id_is_written_from_the_key_and_the_upgrader_reads_it_back() -> None:
    ddp = ParallelKey(strategy="ddp", grad_comm_dtype="bf16", world_size=2)
    key = ConfigKey(model="gpt-tiny", recipe_id="fp16-1a2b3c", batch_size=4, seq_len=8,
                    settings={"lr": 0.01, "activation_checkpointing": True, "compile": True},
                    parallel=ddp, profile="cpu")
    run_id = "gpt-tiny-lr0.01__fp16-1a2b3c__b4-t8-ckpt-compiled__ddp-bf16comm-w2__seed1-r2"
    assert key.run_id(1, 2) == run_id
    assert key.run_id(0) == run_id.replace("seed1-r2", "seed0")
    old = {"run_id": run_id, "model": "gpt-tiny", "precision": "fp16", "batch_size": 4,
           "seq_len": 8, "profile": "cpu", "suite_config": {"matrix": {"lr": [0.01, 0.1]}},
           "train": {"lr": 0.01, "activation_checkpointing": True, "compile": True}}
    assert derive_key(old) == key


@pytest.mark.unit
def test_schema_4_plain_steps_become_one_entry_their_mean() -> None:
    """Schema 4 summed `steps` plain steps timed between the profiled ones (plain_time_us);
    schema 5 lists plain steps one by one (plain_step_us): the old sum is kept as its mean."""
    from mpbench.results.upgrade import STEPS

    raw = {"schema_version": 4, "profiler_results": {
        "tensor_cores": {"steps": 3, "plain_time_us": 30000.0, "wall_time_us": 33000.0},
        "memory": {"skipped": "x"}}}
    up = STEPS[4](raw)
    assert up["schema_version"] == 5
    assert up["profiler_results"]["tensor_cores"] == {"steps": 3, "plain_step_us": [10000.0],
                                                      "wall_time_us": 33000.0}
    assert up["profiler_results"]["memory"] == {"skipped": "x"}
    assert raw["profiler_results"]["tensor_cores"]["plain_time_us"] == 30000.0  # not mutated
    assert STEPS[4]({"schema_version": 4})["schema_version"] == 5  # nothing to move


@pytest.mark.integration
def test_committed_schema_1_results_load_show_report_and_gate(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mpbench.cli.main import cli

    src = SCHEMA_1  # the gpt-cpu example as committed under schema 1
    raw = json.loads(next((src / "runs").glob("*.json")).read_text())
    assert raw["schema_version"] == 1 and "config_key" not in raw  # committed before the key
    up = upgrade(raw)
    assert up["schema_version"] == SCHEMA_VERSION == 5
    assert "precision" not in up["config_key"] and up["config_key"]["recipe_id"] == raw["precision"]
    # version 3: the recipe's role, as the recipes of that time had it
    assert {up["recipe"]["name"]: up["recipe"]["role"]} == {
        raw["recipe"]["name"]: {"fp32": "baseline", "fp16": "mixed", "bf16": "mixed",
                                "fp16-noscale": "context", "bf16-pure": "context"}.get(
                                    raw["recipe"]["name"], "other")}
    roles = {r.precision: recipe_card(r).role for r in load_records(src)}
    assert roles["fp32"] == "baseline" and roles["bf16"] == roles["fp16"] == "mixed"
    assert roles["fp16-noscale"] == "context" and roles["tf32"] == "other"
    records = load_records(src)
    assert {r.config_key.comparison.label for r in records} == {"gpt-tiny b8×t64",
                                                                "gpt-mini b8×t64"}
    run = shutil.copytree(src, tmp_path / "results")
    for args in (["show", str(run)], ["report", str(run), "-o", str(tmp_path / "r.html")],
                 ["gate", str(run), "--baseline", str(src)]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        if args[0] == "show":
            assert "gpt-mini" in result.output and "1.06x [" in result.output
    assert "gpt-mini b8×t64" in (tmp_path / "r.html").read_text()


@pytest.mark.unit
def test_a_key_stored_before_schema_4_reads_its_precision_as_recipe_id(tmp_path: Path) -> None:
    """Schema 4 renamed config_key.precision (recipe name plus options tag) to recipe_id:
    committed schema-2 records and exports written before still load, with the same run ids."""
    src = Path(__file__).resolve().parent.parent / "reports" / "gpt-cpu-example"
    raw = json.loads(next((src / "runs").glob("*.json")).read_text())
    assert raw["schema_version"] == 2 and "precision" in raw["config_key"]  # as committed
    up = upgrade(raw)
    assert up["config_key"] == {("recipe_id" if k == "precision" else k): v
                                for k, v in raw["config_key"].items()}
    records = load_records(src)
    assert all(r.config_key.run_id(r.seed, r.repeat) == r.run_id for r in records)
    export = to_pytest_benchmark(records)
    export["mpbench"]["version"] = 1
    for bench in export["benchmarks"]:  # as an export written before schema 4 spelt the key
        key = bench["extra_info"]["mpbench"]["config_key"]
        key["precision"] = key.pop("recipe_id")
    old = tmp_path / "old-export.json"
    old.write_text(json.dumps(export))
    runs = load_runs(old, "--baseline")
    by_id = {r.run_id: r.config_key for r in records}
    assert len(runs) == len(records)
    assert all(s.config_key == by_id[s.run_id] for s in runs)


@pytest.mark.unit
def test_typed_payloads_refuse_a_renamed_field(tmp_path: Path) -> None:
    """Fixtures write profiler results through the models, and the analysis reads them as
    fields: a field renamed on one side only fails loudly, never reads as 'not measured'."""
    from fixture_records import memory_profile, payload
    from pydantic import ValidationError

    from mpbench.errors import UserError
    from mpbench.results.payloads import MemoryResult

    with pytest.raises(ValidationError):
        payload(MemoryResult, param_bytes=4)  # the field is params_bytes
    good = record("fp32", profiler_results={"memory": memory_profile(1000, 5000)})
    m = good.result(MemoryResult)
    assert m is not None and m.model_state_bytes == 16 * 1000 and m.activations_bytes == 5000
    with pytest.raises(ValidationError, match=r"profiler_results\.memory"):
        record("fp32", profiler_results={"memory": {"param_bytes": 4000}})
    # a stored record with the renamed field: one line naming the run's file and the field
    path = write_results(tmp_path / "r", [good])
    (stored,) = (path / "runs").glob("*.json")
    raw = json.loads(stored.read_text())
    raw["profiler_results"]["memory"]["param_bytes"] = raw["profiler_results"]["memory"].pop(
        "params_bytes")
    stored.write_text(json.dumps(raw))
    with pytest.raises(UserError, match=rf"{stored.name}: corrupt run record: "
                                        r"profiler_results\.memory: param_bytes: unknown key; "
                                        r"did you mean 'params_bytes'\?") as err:
        load_records(path)
    assert "\n" not in str(err.value)
    assert record("fp32").env.cpu.model == "Test CPU"  # the environment card is typed too
