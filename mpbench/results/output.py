"""The one way mpbench creates or writes an output: results directories, records, reports,
exports, traces, bench results, summaries, history.

An OSError (no such directory, read-only, /proc, a file where a directory should be, a full
disk) becomes a UserError naming the option, the path and the cause: one line, exit code 2.
Files are written to a temporary file in the target's directory and renamed over the target,
so a failed write leaves the previous file (or none), never half a file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mpbench.errors import UserError

Content = str | bytes | Callable[[Path], object] | None
"""None: the directory `path` itself; text or bytes: the file's content; a callable: writes
the file at the path it is given (a temporary one, renamed over the target on success)."""


def _cause(exc: OSError, path: Path) -> str:
    cause = exc.strerror or type(exc).__name__
    other = exc.filename if exc.filename not in (None, str(path)) else None
    if other is not None and Path(other).name.startswith("."):
        other = str(Path(other).parent)  # our temporary name: say where it was made
    return f"{cause} (in {other})" if other else cause


def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is a file (nothing can go below it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def write_output(path: Path | str, content: Content, what: str = "output") -> Path:
    """Create the directory `path` (content None) or write the file `path`, atomically.

    `what` names the option or output in the error message ('--out', 'report', ...).
    Returns `path`.
    """
    path = Path(path)
    verb = "create the directory" if content is None else "write"
    blocker = _file_above(path)
    if blocker is not None:
        raise UserError(f"{what}: cannot {verb} {path}: {blocker} is a file, not a directory; "
                        "choose another location")
    try:
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            return path
        if path.is_dir():
            raise UserError(f"{what}: {path} is a directory; give a file name inside it")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            if callable(content):
                os.close(fd)
                content(tmp)
            else:
                data = content.encode("utf-8") if isinstance(content, str) else content
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path
    except OSError as exc:
        raise UserError(f"{what}: cannot {verb} {path}: {_cause(exc, path)}; choose a "
                        "writable location") from None


def check_writable_dir(directory: Path, what: str = "--out") -> None:
    """Fail before any work when `directory` cannot be created or written, leaving nothing
    behind: a probe directory is made and removed in its nearest existing ancestor
    (permission bits alone do not tell, e.g. under /proc or for root)."""
    ancestor = directory
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{what}: {ancestor} is a file, not a directory; choose another {what}")
    try:
        os.rmdir(tempfile.mkdtemp(dir=ancestor, prefix=".mpbench-probe-"))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise UserError(f"{what}: {ancestor} is not writable ({exc.strerror}); choose a "
                            f"writable {what} directory") from None
        raise UserError(f"{what}: cannot create {directory}: {exc.strerror or exc} (in "
                        f"{ancestor}); choose a writable {what}") from None
