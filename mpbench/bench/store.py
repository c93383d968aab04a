"""Bench records: `<dir>/bench/<name>.json` next to the training runs of a results directory.

Format history (bump BENCH_SCHEMA_VERSION and add an upgrader when it changes):
  1  first version.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_validator

if TYPE_CHECKING:
    import pandas as pd

from mpbench.bench.rows import ROW_MODELS, BenchRow
from mpbench.config.errors import first_error
from mpbench.errors import UserError
from mpbench.results.env_card import EnvCard
from mpbench.results.output import write_output
from mpbench.results.store import (
    MANIFEST,
    ResultsDir,
    check_results_dir,
    read_json,
)

if TYPE_CHECKING:
    import pandas as pd

BENCH_SCHEMA_VERSION = 1
BENCH = "bench"
BenchName = Literal["gemm", "alignment", "bandwidth", "prediction"]


class BenchRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_version: int = BENCH_SCHEMA_VERSION
    kind: Literal["bench"] = "bench"
    benchmark: BenchName
    suite: str
    profile: str
    device: str
    device_name: str
    quick: bool = False
    timing: dict[str, Any] = Field(default_factory=dict)
    rows: list[SerializeAsAny[BenchRow]]
    """Typed rows: each is validated as the benchmark's row model (mpbench.bench.rows)."""
    notes: list[str] = Field(default_factory=list)
    env: EnvCard
    started_at: str
    finished_at: str
    duration_s: float

    @model_validator(mode="after")
    def _rows_match_benchmark(self) -> BenchRecord:
        model = ROW_MODELS[self.benchmark]
        self.rows = [r if type(r) is model else model.model_validate(r.model_dump())
                     for r in self.rows]
        return self


def prepare_out(out: Path, suite_name: str, suite_config: dict[str, Any], suite_text: str) -> None:
    """A new directory becomes a results directory; an existing one only gains bench/."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} is a file; give a directory")
    bench_dir = out / BENCH
    if bench_dir.is_dir() and any(bench_dir.glob("*.json")):
        raise UserError(f"--out: {out} already holds bench results; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(f"--out: {out} is not empty and not an mpbench results directory; "
                        "choose a new or empty directory")
    if not (out / MANIFEST).is_file():
        ResultsDir(out).create(suite_name, suite_config, suite_text)
    write_output(bench_dir / "suite.yaml", suite_text, "results")


def write_bench(out: Path, record: BenchRecord) -> Path:
    path = out / BENCH / f"{record.benchmark}.json"
    write_output(path, record.model_dump_json(indent=1), "results")
    return path


def read_bench(path: Path) -> BenchRecord:
    raw = read_json(path, "delete it and re-run `mpbench bench`")
    if not isinstance(raw, dict) or raw.get("kind") != "bench" or "schema_version" not in raw:
        raise UserError(f"{path}: not an mpbench bench record (kind is not 'bench')")
    version = raw["schema_version"]
    if not isinstance(version, int) or version > BENCH_SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {version!r} is newer than this mpbench reads "
                        f"({BENCH_SCHEMA_VERSION}); upgrade mpbench")
    try:
        return BenchRecord.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: corrupt bench record: {first_error(exc, BenchRecord)}") from None


def load_bench(path: str | Path) -> list[BenchRecord]:
    """The bench records of a results directory (none if it has no bench/), or one record file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"results not found: {path}; give a directory written by `mpbench bench`")
    if path.is_file():
        return [read_bench(path)]
    check_results_dir(path, "mpbench bench")
    return [read_bench(p) for p in sorted((path / BENCH).glob("*.json"))]


R = TypeVar("R", bound=BenchRow)


def load_bench_dir(results_dir: Path) -> list[BenchRecord]:
    """The bench records of a results directory; [] when it has none (UserError if corrupt)."""
    if not (results_dir / BENCH).is_dir():
        return []
    return load_bench(results_dir)


def bench_rows(bench: list[BenchRecord], model: type[R], ok_only: bool = True) -> list[R]:
    """The rows of the benchmark whose row model is `model` (GemmRow: the gemm benchmark's),
    ok ones only unless `ok_only` is False."""
    name = next(k for k, v in ROW_MODELS.items() if v is model)
    return [row for b in bench if b.benchmark == name for row in b.rows
            if isinstance(row, model) and (not ok_only or row.status == "ok")]


def bench_frame(records: list[BenchRecord], benchmark: BenchName | None = None) -> pd.DataFrame:
    """One row per measured case, with the record's benchmark, device and device_name."""
    rows = [{"benchmark": r.benchmark, "device": r.device, "device_name": r.device_name,
             "suite": r.suite, **row.model_dump()}
            for r in records if benchmark is None or r.benchmark == benchmark for row in r.rows]
    import pandas as pd  # on first use: pandas costs start-up time

    return pd.DataFrame(rows)


def load_bench_frame(path: str | Path, benchmark: BenchName | None = None) -> pd.DataFrame:
    """Load a results directory's bench rows as a DataFrame; UserError for corrupt files."""
    return bench_frame(load_bench(path), benchmark)
