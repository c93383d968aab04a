"""README's two opening commands are what CI runs: .ci/run holds them word for word (the test
command's `pytest` on a line of its own, to read its exit code). These tests keep the two
commands one install path (one venv step, one pip line) and keep .ci/run from a variant."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


BLOCK = re.compile(r"^```bash\n(.*?)\n```$", re.S | re.M)


def readme_commands() -> list[str]:
    """README's first two fenced bash blocks, one command line each."""
    blocks = [b.strip() for b in BLOCK.findall((ROOT / "README.md").read_text())][:2]
    assert len(blocks) == 2 and not any("\n" in b for b in blocks), blocks
    return blocks


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
    main_job, tests = readme_commands()
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert main_job in lines
    install, _, test = tests.rpartition(" && ")
    assert test == "pytest" and install in lines and "pytest" in lines
    assert lines.index(install) < lines.index("pytest")
    # no second way to install or test hidden beside them
    assert [line for line in lines if re.match(r"(python -m )?pytest\b", line)] == ["pytest"]
    assert [line for line in lines if "pip install" in line] == [main_job, install]


@pytest.mark.unit
def test_tests_import_their_helpers_as_plain_pytest_does() -> None:
    """Plain `pytest` puts tests/ (no __init__.py) on sys.path, not the checkout: a
    `from tests.x import` works only under `python -m pytest`."""
    assert not (ROOT / "tests" / "__init__.py").exists()
    offenders = [p.name for p in (ROOT / "tests").glob("*.py")
                 if re.search(r"^\s*(from|import) tests\b", p.read_text(), re.M)]
    assert offenders == []
