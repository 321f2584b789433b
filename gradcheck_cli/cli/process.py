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
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn, TextIO

from gradcheck_cli.errors import HardExit, RunTimeout, UsageError

# Run as a program (the ``gradcheck`` command), the process is gradcheck's alone: once the
# user's code has run, stdout stays pointed at stderr for good (a thread the model started, or
# its atexit handlers, may print at any time) and the report goes to a copy of the real stdout.
_program = False
_report: TextIO | None = None


def launched() -> bool:
    """Whether this process is one of several that ``torchrun`` started (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def leader() -> bool:
    """Whether this process prints and writes: always, but under torchrun only rank 0."""
    return not launched() or os.environ.get("RANK", "0").strip() == "0"


def run_as_program() -> None:
    """Called by the command group when it runs as the process's program."""
    global _program
    _program = True


def report_stream() -> TextIO:
    """Where the report goes: the real stdout, wherever ``sys.stdout`` now points."""
    return _report if _report is not None else sys.stdout


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout during the block to stderr: ``sys.stdout`` and, where
    the process has them, file descriptor 1 (with C's buffers flushed first so nothing written
    in the block comes out later on stdout). Restored afterwards, except in a program run,
    where the report goes to :func:`report_stream` and stdout stays on stderr."""
    global _report
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    saved = _point_fd1_at_stderr()
    stream = sys.stdout
    sys.stdout = sys.stderr
    keep = _program and saved is not None and _report is None
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        if keep and saved is not None:
            _flush_c_stdio()
            _report = os.fdopen(saved, "w", encoding=getattr(stream, "encoding", None) or "utf-8")
        else:
            sys.stdout = stream
            if saved is not None:
                _flush_c_stdio()
                os.dup2(saved, 1)
                os.close(saved)


@contextlib.contextmanager
def no_hard_exit() -> Iterator[None]:
    """While the user's code runs, ``os._exit`` in this process raises :class:`HardExit` (a
    ``SystemExit``, which gradcheck reports as the model ending the process) instead of ending
    it without a report: a CI job would count ``os._exit(0)`` in forward as a pass. A process
    forked in the block (a DataLoader worker) exits as usual."""
    real = os._exit
    owner = os.getpid()

    def refused(status: int) -> NoReturn:
        if os.getpid() != owner:
            real(status)
        raise HardExit(status)

    os._exit = refused
    try:
        yield
    finally:
        os._exit = real


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`RunTimeout` in the main thread once the block has run ``seconds`` (None:
    no limit): a real-time timer whose signal interrupts Python code as Ctrl-C does."""
    if seconds is None:
        yield
        return
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        raise UsageError("--timeout needs a POSIX system and gradcheck's main thread")

    def expired(signum: int, frame: object) -> None:
        raise RunTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def running_user_code(timeout: float | None) -> Iterator[None]:
    """What a command owns while the user's code is imported, built and run: its prints go to
    stderr, ``os._exit`` cannot end the process, and ``timeout`` seconds end the run."""
    with stdout_to_stderr(), no_hard_exit(), deadline(timeout):
        yield


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """Write the report in the block; when its reader stops reading (``gradcheck diagnose m.py
    | head``), stop writing without an error message, as other Unix tools do, and let the
    command exit with its verdict. The report stream is then pointed at /dev/null, so that no
    later flush fails again."""
    try:
        yield
        report_stream().flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, report_stream().fileno())
            os.close(devnull)


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
    model's background thread would hang gradcheck after its report. Without such threads, and
    outside torchrun, this is a plain ``sys.exit``; under torchrun the process always ends at
    once (``os._exit``), so the model's ``atexit`` handlers do not run there.

    The report is written by now: whatever is printed later (the model's ``atexit`` handlers,
    its daemon threads) goes to stderr, so a machine-readable stdout stays whole."""
    for stream in (report_stream(), sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _flush_c_stdio()
    with contextlib.suppress(Exception):
        os.dup2(2, 1)
    sys.stdout = sys.stderr
    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    # Under torchrun, interpreter shutdown may tear torch.distributed's objects down in an order
    # that aborts the process (exit -6, torch 2.13 with a DDP wrapper that a failed run left
    # unfreed), and torchrun would report that instead of the verdict: end at once there too.
    if not others and not launched():
        sys.exit(code)  # type: ignore[arg-type]
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = int(code)
    else:
        print(code, file=sys.stderr)
        status = 1
    if others:
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
