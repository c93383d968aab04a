"""Read the kernel-name corpus (tests/data/kernel_traces/*.tsv): kernels of public profiler
traces recorded on real GPUs, with the bucket each name belongs in, written by hand.

A file starts with `# key: value` header lines (source, commit, gpu, sm, workload). Rows are
`expected_bucket<TAB>total_us<TAB>count<TAB>kernel name`; a `#` line between rows is a note
on the row below it (why a name is in its bucket).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CORPUS_DIR = Path(__file__).parent / "data" / "kernel_traces"


@dataclass(frozen=True)
class Row:
    bucket: str
    time_us: float
    count: int
    name: str


@dataclass
class Trace:
    path: Path
    header: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    @property
    def sm(self) -> int | None:
        return int(self.header["sm"]) if self.header.get("sm") else None


def read_trace(path: Path) -> Trace:
    trace = Trace(path)
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and not trace.rows and key.strip().isidentifier():
                trace.header[key.strip()] = value.strip()
            continue
        bucket, time_us, count, name = line.split("\t", 3)
        trace.rows.append(Row(bucket, float(time_us), int(count), name))
    return trace


def corpus() -> list[Trace]:
    return [read_trace(p) for p in sorted(CORPUS_DIR.glob("*.tsv"))]
