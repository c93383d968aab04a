"""The import contracts of pyproject.toml ([tool.importlinter]) hold: layers that cover every
package, and no import circle between sibling modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.unit


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"]
                  if c["type"] == "layers"]
    return [name.strip() for layer in contract["layers"]
            for name in layer.replace("|", ":").split(":")]


def test_every_mpbench_package_has_a_layer() -> None:
    here = {f"mpbench.{p.stem if p.is_file() else p.name}" for p in (ROOT / "mpbench").iterdir()
            if (p.is_dir() and (p / "__init__.py").is_file())
            or (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))}
    assert here - set(_layers()) == set(), "add the new package to [tool.importlinter] layers"


def test_no_module_imports_a_higher_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("importlinter")
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    assert lint_imports(no_cache=True) == 0, "run `lint-imports` to see the imports that cross"


def test_the_contract_forbids_circles_inside_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [acyclic] = [c for c in config["tool"]["importlinter"]["contracts"]
                 if c["type"] == "acyclic_siblings"]
    assert acyclic["ancestors"] == ["mpbench"]
