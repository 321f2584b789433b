"""Notebook rendering: the terminal report as HTML, for ``Report._repr_html_`` (Jupyter).

The same layout as the terminal (:mod:`gradcheck_cli.report.rich_text`), rendered in colour and
exported by rich as HTML with inline styles, so it needs no stylesheet and survives a notebook
exported to HTML. Layer and model names are escaped by rich's exporter.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from gradcheck_cli.findings import Report
from gradcheck_cli.report import rich_text

# Wide enough for the full table with long layer names; a notebook cell scrolls sideways.
NOTEBOOK_WIDTH = 140

_PRE = (
    '<pre style="white-space: pre; overflow-x: auto; line-height: 1.25; '
    "font-family: Menlo, 'DejaVu Sans Mono', Consolas, monospace\">{code}</pre>"
)


def to_html(report: Report) -> str:
    """The terminal report of ``report`` as a self-contained HTML fragment."""
    ansi = io.StringIO()
    rich_text.render(report, ansi, color=True, width=NOTEBOOK_WIDTH)
    console = Console(
        file=io.StringIO(), record=True, width=NOTEBOOK_WIDTH, color_system="truecolor"
    )
    console.print(Text.from_ansi(ansi.getvalue()), soft_wrap=True)
    return console.export_html(inline_styles=True, code_format=_PRE)
