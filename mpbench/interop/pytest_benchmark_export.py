"""`mpbench export --format pytest-benchmark`: the conversion in pytest_benchmark.py as a file."""

from __future__ import annotations

import json

from mpbench.errors import UserError
from mpbench.interop.base import Exporter, ExportRequest, register
from mpbench.interop.pytest_benchmark import to_pytest_benchmark
from mpbench.results.output import write_output


@register
class PytestBenchmarkExporter(Exporter):
    name = "pytest-benchmark"
    summary = ("JSON to -o FILE.json, one benchmark per run and one round per "
               "measured step (also a `mpbench gate --baseline`)")

    def export(self, request: ExportRequest) -> str:
        request.refuse(self.name, tracking_uri=request.tracking_uri,
                       experiment=request.experiment)
        output = request.output
        if output is None:
            raise UserError("--out: --format pytest-benchmark needs -o FILE.json")
        if output.is_dir():
            raise UserError(f"--out: {output} is a directory; give a file name such as "
                            f"{output / 'baseline.json'}")
        data = to_pytest_benchmark(request.records)
        write_output(output, json.dumps(data, indent=1), "--out")
        timed = len(data["benchmarks"])
        return (f"wrote {output}: {timed} benchmarks ({self.name}), "
                f"{len(request.records) - timed} runs without step times")
