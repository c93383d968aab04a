"""The records a claim is judged on, grouped once: configurations x precisions, the device."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mpbench.analysis import access
from mpbench.bench.store import BenchRecord
from mpbench.results.env_card import Capabilities
from mpbench.results.key import ComparisonKey
from mpbench.results.schema import RunRecord

BASELINE = "fp32"
MIXED = ("fp16", "bf16")
"""The mixed-precision (autocast, FP32 master weights) recipes the speed and memory claims name."""
NOT_DONE_RIGHT = {
    "fp16-noscale": "FP16 without loss scaling (broken on purpose to show underflow)",
    "bf16-pure": "no FP32 master weights",
}
"""Recipes shown for context in quality claims but not counted as mixed precision done right."""



@dataclass
class Evidence:
    records: list[RunRecord]
    bench: list[BenchRecord] = field(default_factory=list)

    @cached_property
    def ok(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "ok"]

    @cached_property
    def configs(self) -> dict[ComparisonKey, dict[str, list[RunRecord]]]:
        """ok runs by comparison group (the record's ConfigKey without precision), then by
        precision (recipe name plus options tag, as the summary shows it)."""
        out: dict[ComparisonKey, dict[str, list[RunRecord]]] = {}
        for r in self.ok:
            out.setdefault(access.config_key(r), {}).setdefault(r.config_key.precision, []).append(r)
        return out

    @cached_property
    def device(self) -> str:
        """'cuda' or 'cpu' (the device of the first record; a results dir has one device)."""
        return access.device_kind(self.records[0]) if self.records else "cpu"

    @cached_property
    def caps(self) -> Capabilities:
        return access.capabilities(self.records[0]) if self.records else Capabilities()

    @property
    def device_label(self) -> str:
        name = self.caps.name or "unknown device"
        return f"{name} ({'GPU' if self.device == 'cuda' else 'CPU'})"

    @cached_property
    def targeted(self) -> set[str]:
        out: set[str] = set()
        for r in self.records:
            out.update(str(c) for c in r.suite_config.get("claims", []))
        return out

    def precisions_present(self) -> set[str]:
        return {r.precision for r in self.records}

    def not_ok(self, precisions: set[str] | tuple[str, ...]) -> list[RunRecord]:
        return [r for r in self.records if r.precision in precisions and r.status != "ok"]

    def why_missing(self, precisions: tuple[str, ...] | set[str]) -> str:
        """'add X to precisions', or the reason the listed runs did not complete."""
        failed = self.not_ok(precisions)
        if failed:
            r = failed[0]
            return f"{r.precision} runs ended {r.status}: {r.reason or 'no reason recorded'}"
        return f"add {' or '.join(sorted(precisions))} to the suite's precisions"
