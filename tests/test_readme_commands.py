"""README's two opening commands are what CI runs: .ci/run reads them out of README with
.ci/readme_command.py and evaluates them as written. These tests keep the two commands one
install path (one venv step, one pip line) and keep .ci/run from running a variant."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    spec = importlib.util.spec_from_file_location("readme_command", ROOT / ".ci" / "readme_command.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commands: list[str] = module.readme_commands(ROOT / "README.md")
    return commands


@pytest.mark.unit
def test_readme_opens_with_the_main_job_and_the_test_command() -> None:
    main_job, tests = readme_commands()
    steps_main, steps_tests = main_job.split(" && "), tests.split(" && ")
    assert steps_main[-1] == "mpbench run suites/gpt.yaml"
    assert steps_tests[-1] == "pytest"  # not `python -m pytest`: that puts the checkout on sys.path
    # one venv step and one pip line; the tests only add the test extras
    assert steps_main[:2] == steps_tests[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"]
    assert steps_main[2] == "pip install -c constraints.txt -e ."
    assert steps_tests[2] == 'pip install -c constraints.txt -e ".[test]"'


@pytest.mark.unit
def test_ci_runs_the_readme_commands_as_written() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 .ci/readme_command.py 1" in ci and "python3 .ci/readme_command.py 2" in ci
    assert 'eval "$main_job"' in ci and 'eval "$tests"' in ci
    # no second way to install or test hidden beside them
    assert not re.search(r"^\s*(python -m )?pytest\b", ci, re.M)
    assert not re.search(r"^\s*pip install", ci, re.M)


@pytest.mark.unit
def test_tests_import_their_helpers_as_plain_pytest_does() -> None:
    """Plain `pytest` puts tests/ (no __init__.py) on sys.path, not the checkout: a
    `from tests.x import` works only under `python -m pytest`."""
    assert not (ROOT / "tests" / "__init__.py").exists()
    offenders = [p.name for p in (ROOT / "tests").glob("*.py")
                 if re.search(r"^\s*(from|import) tests\b", p.read_text(), re.M)]
    assert offenders == []
