"""Reading a stored profiler result back as its typed model (the one place that does)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from mpbench.config.errors import first_error
from mpbench.errors import UserError
from mpbench.results.payloads.base import ProfileResult
from mpbench.results.schema import RunRecord

P = TypeVar("P", bound=ProfileResult)


def skip_reason(r: RunRecord, name: str) -> str | None:
    """Why the profiler `name` did not run ({"skipped": reason}), None when it ran or is absent."""
    p = r.profiler_results.get(name)
    return str(p["skipped"]) if isinstance(p, dict) and "skipped" in p else None


def stored(r: RunRecord, name: str, model: type[P]) -> P | None:
    """The profiler's result as its typed model, None when absent or skipped; a result of
    another shape is a corrupt record (UserError naming the run and the field)."""
    p = r.profiler_results.get(name)
    if not isinstance(p, dict) or "skipped" in p:
        return None
    try:
        return model.model_validate(p)
    except ValidationError as exc:
        raise UserError(f"run {r.run_id}: profiler_results.{name}: {first_error(exc, model)}; "
                        "re-run it with this mpbench") from None
