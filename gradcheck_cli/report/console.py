"""What the human-readable renderers share: the console they print on and how numbers look."""

from __future__ import annotations

import math
import os
import stat
import sys
from typing import TextIO

from rich.console import Console

PLAIN_WIDTH = 120
# Below this the report's panels and tables cut every name to a letter or two (at COLUMNS=10 the
# header read "para…"): a narrower terminal gets lines this long, which it wraps.
MIN_WIDTH = 60


def plain_width(out: TextIO) -> int:
    """The width of plain text: ``COLUMNS`` when set; else the terminal's when ``out`` is one
    (``NO_COLOR`` on a terminal); else, when ``out`` is a pipe (``gradcheck diagnose m.py | less``),
    the width of the terminal the pipe ends in (stderr's, or the controlling terminal's);
    else :data:`PLAIN_WIDTH`, so files, captured output and CI logs are stable."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if out.isatty():
            return os.get_terminal_size(out.fileno()).columns or PLAIN_WIDTH
        if stat.S_ISFIFO(os.fstat(out.fileno()).st_mode):
            return _terminal_columns() or PLAIN_WIDTH
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        pass
    return PLAIN_WIDTH


def _terminal_columns() -> int | None:
    """The columns of the terminal the user is looking at: stderr's, else ``/dev/tty``'s."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return os.get_terminal_size(sys.stderr.fileno()).columns or None
    except (AttributeError, OSError, ValueError):
        pass
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | getattr(os, "O_NOCTTY", 0))
    except OSError:  # no controlling terminal (CI, a daemon), or not a POSIX system
        return None
    try:
        return os.get_terminal_size(fd).columns or None
    except OSError:
        return None
    finally:
        os.close(fd)


class _ReportConsole(Console):
    """A console that reports a closed stdout (``gradcheck diagnose m.py | head``) as the
    ``BrokenPipeError`` it is; rich's default raises ``SystemExit(1)``, which would read as the
    model's code exiting and would replace the verdict's exit code."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def make_console(out: TextIO, *, color: bool, width: int | None = None) -> Console:
    """A console on ``out``: colour only when asked, markup never (user strings such as layer
    names may contain ``[``). ``width`` fixes the width; without it colour takes the terminal's
    (rich reads ``COLUMNS`` and the terminal size) and plain text :func:`plain_width`, never
    narrower than :data:`MIN_WIDTH`."""
    console = _ReportConsole(
        file=out,
        no_color=not color,
        force_terminal=color,
        highlight=False,
        markup=False,
        emoji=False,
        width=width if width is not None else (None if color else plain_width(out)),
        soft_wrap=False,
    )
    if width is None and console.width < MIN_WIDTH:
        console.width = MIN_WIDTH
    return console


def sci(x: float | None, missing: str = "-") -> str:
    """A statistic in 3 significant digits of scientific notation; ``missing`` for None."""
    if x is None:
        return missing
    if not math.isfinite(x):
        return str(x)  # nan, inf, -inf
    return f"{x:.2e}"
