"""The base of every typed profiler result: unknown fields are refused, a failure is said."""

from __future__ import annotations

from typing import Any

from mpbench.config.schema import Strict


class ProfileResult(Strict):
    error: str | None = None
    """Set when the profiler failed (the run it observed goes on)."""

    @classmethod
    def stored(cls, found: dict[str, Any]) -> dict[str, Any]:
        """What a profiler's `result` returns: `found` checked against this model (a field it
        lacks is refused), as the JSON dict of the fields that were set."""
        return cls.model_validate(found).model_dump(mode="json", exclude_unset=True)
