"""What the human-readable renderers share: the console they print on and how numbers look."""

from __future__ import annotations

import math
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


def sci(x: float | None, missing: str = "-") -> str:
    """A statistic in 3 significant digits of scientific notation; ``missing`` for None."""
    if x is None:
        return missing
    if not math.isfinite(x):
        return str(x)  # nan, inf, -inf
    return f"{x:.2e}"
