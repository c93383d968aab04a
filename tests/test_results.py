"""The results store: round trip, atomic writes, loud errors for corrupt or foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpbench.errors import UserError
from mpbench.results import SCHEMA_VERSION, ResultsDir, RunRecord, load_records, load_results
from mpbench.results.key import make_key
from mpbench.results.output import write_output

pytestmark = pytest.mark.unit


def record(run_id: str = "m__fp32__b2-t16__seed0", **kw: object) -> RunRecord:
    base: dict[str, object] = dict(
        run_id=run_id, suite="s", profile="cpu", model="m", model_dims={"n_layer": 1},
        precision="fp32", recipe={"family": "fp32", "numerics_only": False}, seed=0, batch_size=2,
        seq_len=16, train={}, device="cpu", device_name="cpu", status="ok", tokens_per_step=32,
        tokens_per_s=1000.0, step_times_ms=[10.0, 11.0, 12.0], env={"cpu": {"model": "x"}},
        started_at="2026-11-23T10:00:00", finished_at="2026-11-23T10:00:01", duration_s=1.0,
        eval_loss=2.5,
    )
    base.update(kw)
    base.setdefault("config_key", make_key(str(base["model"]), str(base["precision"]), {},
                                           {"batch_size": base["batch_size"],
                                            "seq_len": base["seq_len"]}, [], None,
                                           str(base["profile"])))
    return RunRecord.model_validate(base)


def make_dir(tmp_path: Path, *records: RunRecord) -> Path:
    out = ResultsDir(tmp_path / "res")
    out.create("s", {"name": "s"}, "name: s\n")
    for r in records:
        out.write(r)
    return out.path


def test_round_trip_and_frame(tmp_path: Path) -> None:
    a = record()
    b = record("m__bf16__b2-t16__seed0", precision="bf16", status="skipped", reason="why",
               tokens_per_s=None, started_at="2026-11-23T10:00:02")
    path = make_dir(tmp_path, a, b)
    loaded = load_records(path)
    assert [r.run_id for r in loaded] == [a.run_id, b.run_id]
    assert loaded[0] == a and loaded[0].schema_version == SCHEMA_VERSION
    df = load_results(path)
    assert list(df["precision"]) == ["fp32", "bf16"]
    assert df.loc[0, "tokens_per_s"] == 1000.0 and df.loc[0, "eval_loss"] == 2.5
    assert df.loc[1, "status"] == "skipped" and df.loc[1, "reason"] == "why"
    for column in ("run_id", "suite", "model", "precision", "seed", "device", "status", "reason",
                   "tokens_per_s", "step_time_ms", "peak_memory_bytes", "final_train_loss",
                   "eval_loss", "flops_per_token", "mfu"):
        assert column in df.columns


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_output(target, "1")
    write_output(target, "2")
    assert target.read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_corrupt_json_names_the_file(tmp_path: Path) -> None:
    path = make_dir(tmp_path, record())
    bad = path / "runs" / "broken.json"
    bad.write_text('{"run_id": ')
    with pytest.raises(UserError, match=r"broken.json: corrupt JSON at line 1"):
        load_records(path)


def test_foreign_and_newer_files_are_refused(tmp_path: Path) -> None:
    path = make_dir(tmp_path)
    (path / "runs" / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(UserError, match="not an mpbench run record"):
        load_records(path)
    newer = record().model_dump()
    newer["schema_version"] = SCHEMA_VERSION + 1
    (path / "runs" / "x.json").write_text(json.dumps(newer))
    with pytest.raises(UserError, match="newer than this mpbench reads"):
        load_records(path)
    wrong = record().model_dump()
    wrong["status"] = "exploded"
    (path / "runs" / "x.json").write_text(json.dumps(wrong))
    with pytest.raises(UserError, match=r"corrupt run record: status: "):
        load_records(path)


def test_not_a_results_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an mpbench results directory"):
        load_records(tmp_path)
    with pytest.raises(UserError, match="results not found"):
        load_records(tmp_path / "missing")


@pytest.mark.unit
def test_a_misspelled_field_in_a_stored_record_is_refused_by_name(tmp_path: Path) -> None:
    path = make_dir(tmp_path, record())
    stored = next((path / "runs").glob("*.json"))
    raw = json.loads(stored.read_text())
    raw["tokens_per_sec"] = raw.pop("tokens_per_s")  # a writer's typo
    stored.write_text(json.dumps(raw))
    with pytest.raises(UserError, match="tokens_per_sec"):
        load_records(path)
