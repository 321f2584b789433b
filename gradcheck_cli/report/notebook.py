"""The reports as values: ``print(report)`` and notebooks (``_repr_html_``, Jupyter).

``str()`` of a :class:`~gradcheck_cli.findings.Report`, a
:class:`~gradcheck_cli.fix_result.FixResult` or a :class:`~gradcheck_cli.compare.Comparison` is its
plain-text terminal report (at the width of the terminal it will be printed on, see
:func:`~gradcheck_cli.report.console.plain_width`); its HTML view is the same layout rendered in
colour and exported by rich with inline styles, so it needs no stylesheet and survives a notebook
exported to HTML. Names are escaped by rich's exporter.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.text import Text

from gradcheck_cli.compare import Comparison
from gradcheck_cli.findings import Report
from gradcheck_cli.fix_result import FixResult
from gradcheck_cli.report import compare_rich, fix_rich, rich_text
from gradcheck_cli.report.console import plain_width
from gradcheck_cli.views import register as register_view

# Wide enough for the full table with long layer names; a notebook cell scrolls sideways.
NOTEBOOK_WIDTH = 140

_PRE = (
    '<pre style="white-space: pre; overflow-x: auto; line-height: 1.25; '
    "font-family: Menlo, 'DejaVu Sans Mono', Consolas, monospace\">{code}</pre>"
)

# Writes a report to a stream: (out, colour, width).
_Write = Callable[[TextIO, bool, int], None]


def _writer(value: Report | FixResult | Comparison) -> _Write:
    """How ``value`` is written by its terminal renderer."""
    if isinstance(value, Report):
        return lambda out, color, width: rich_text.render(value, out, color=color, width=width)
    if isinstance(value, Comparison):
        return lambda out, color, width: compare_rich.render(
            value, out, color=color, fail_on=value.fail_on, width=width
        )
    return lambda out, color, width: fix_rich.render(value, out, color=color, width=width)


@register_view("text")
def to_text(value: Report | FixResult | Comparison) -> str:
    """The plain-text terminal report of ``value``, as ``print`` would show it on stdout."""
    out = io.StringIO()
    _writer(value)(out, False, plain_width(sys.stdout))
    return out.getvalue().rstrip("\n")


@register_view("html")
def to_html(value: Report | FixResult | Comparison) -> str:
    """The terminal report of ``value`` as a self-contained HTML fragment."""
    ansi = io.StringIO()
    _writer(value)(ansi, True, NOTEBOOK_WIDTH)
    console = Console(
        file=io.StringIO(), record=True, width=NOTEBOOK_WIDTH, color_system="truecolor"
    )
    console.print(Text.from_ansi(ansi.getvalue()), soft_wrap=True)
    return console.export_html(inline_styles=True, code_format=_PRE)
