"""What the ``gradcheck`` process owns while it runs the user's code: its stdout and its exit.

Reports go to stdout and must parse (``--format json > r.json``), so whatever the user's code
prints while it is imported, built and run goes to stderr instead, both ``print()`` (Python's
``sys.stdout``) and writes to file descriptor 1 (C extensions, subprocesses). And once the
report is written gradcheck exits, even if the model left a thread running that Python would
otherwise wait for.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout during the block to stderr: ``sys.stdout`` and, where
    the process has them, file descriptor 1 (restored afterwards, with C's buffers flushed
    first so nothing written in the block comes out later on stdout)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    saved = _point_fd1_at_stderr()
    stream = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        sys.stdout = stream
        if saved is not None:
            _flush_c_stdio()
            os.dup2(saved, 1)
            os.close(saved)


def _point_fd1_at_stderr() -> int | None:
    """Duplicate fd 2 onto fd 1 and return a copy of the old fd 1; None without both."""
    try:
        saved = os.dup(1)
    except OSError:
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    return saved


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: C code's ``printf`` output still in its buffer goes where fd 1 points
    now (stderr), not where it points after the block."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def exit_now(code: object) -> NoReturn:
    """End the process with ``code`` (as ``sys.exit`` takes it), without waiting for threads
    the user's code left running: Python joins every non-daemon thread before it exits, and a
    model's background thread would hang gradcheck after its report. Without such threads this
    is a plain ``sys.exit``."""
    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if not others:
        sys.exit(code)  # type: ignore[arg-type]
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = int(code)
    else:
        print(code, file=sys.stderr)
        status = 1
    names = ", ".join(repr(t.name) for t in others[:3])
    print(
        f"gradcheck: note: not waiting for {len(others)} thread(s) the model left running "
        f"({names})",
        file=sys.stderr,
    )
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
