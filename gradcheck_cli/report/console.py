"""The one way the terminal renderers make a rich Console."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console

PLAIN_WIDTH = 120


def make_console(out: TextIO, *, color: bool) -> Console:
    """A console on ``out``: colour only when asked, markup never (user strings such as layer
    names may contain ``[``), and a fixed width for plain text so files and logs are stable."""
    return Console(
        file=out,
        no_color=not color,
        force_terminal=color,
        highlight=False,
        markup=False,
        emoji=False,
        width=PLAIN_WIDTH if not color else None,
        soft_wrap=False,
    )
