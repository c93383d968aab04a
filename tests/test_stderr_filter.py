"""The profiler-chatter filter drops kineto's USDT lines and keeps every other stderr line."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

SCRIPT = """
import os, sys
from mpbench.profilers.stderr_filter import without_profiler_chatter
with without_profiler_chatter():
    os.write(2, b"USDT:2026 profiler_start\\n")
    os.write(2, b"a real warning\\n")
    print("python stderr line", file=sys.stderr)
os.write(2, b"after\\n")
"""


def test_usdt_lines_are_dropped_and_the_rest_kept() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "USDT" not in done.stderr
    assert done.stderr.splitlines() == ["a real warning", "python stderr line", "after"]
