"""Drop the profiler's own chatter from native stderr, keep everything else.

Kineto writes "USDT: ... profiler_start/stop" lines straight to file descriptor 2 around
every torch.profiler window; they would litter users' terminals and CI logs. The window's
stderr goes to a temporary file and every other line is written back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

NOISE_PREFIXES = ("USDT:",)


@contextlib.contextmanager
def without_profiler_chatter() -> Iterator[None]:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real fd (e.g. captured): leave it
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode(errors="replace").splitlines(True)
                    if not line.startswith(NOISE_PREFIXES)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
