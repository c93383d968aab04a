"""Start-up: `mpbench --help` imports no torch; list/env no pandas, scipy or training loop;
the lazy command table matches the commands the modules define."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mpbench.cli.main import COMMANDS, cli

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def imported_after(args: list[str]) -> set[str]:
    code = ("import sys\nfrom mpbench.cli.main import main\nsys.argv = ['mpbench', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    return set(done.stderr.split())


def test_help_imports_no_torch() -> None:
    modules = imported_after(["--help"])
    assert "mpbench.cli.main" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "pandas", "numpy", "scipy")}


def test_env_imports_no_pandas_scipy_or_training() -> None:
    modules = imported_after(["env", "--json"])
    assert "torch" in modules  # the card reports torch, CUDA, the CPU capability
    heavy = {"pandas", "scipy", "matplotlib", "torchao", "transformer_engine"}
    assert not {m for m in modules if m.split(".")[0] in heavy}
    assert "mpbench.train.loop" not in modules and "mpbench.report" not in modules


def test_the_table_matches_the_commands() -> None:
    ctx = click.Context(cli)
    for name, (module_name, short) in COMMANDS.items():
        module = importlib.import_module(module_name)
        [command] = [c for c in module.COMMANDS if c.name == name]
        assert command.get_short_help_str(limit=300) == short, name
        assert cli.get_command(ctx, name) is command
    defined = {c.name for m in {mod for mod, _ in COMMANDS.values()}
               for c in importlib.import_module(m).COMMANDS}
    assert defined == set(COMMANDS)  # a module's new command needs its line in the table
