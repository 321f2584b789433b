"""Output formats: one renderer module per format behind one small interface.

``RENDERERS`` is the single mapping from :class:`OutputFormat` to renderer; a test checks that it
covers every format, so no command ever needs an ``if format == ...`` chain.
"""

from __future__ import annotations

import enum
from typing import Protocol, TextIO

from torch import nn

from gradcheck_cli.findings import Report
from gradcheck_cli.fix import FixResult
from gradcheck_cli.report import fix_data, fix_rich, json_format, rich_text, yaml_format


class OutputFormat(str, enum.Enum):
    """What ``--format`` writes to stdout."""

    RICH = "rich"
    YAML = "yaml"
    JSON = "json"


class Renderer(Protocol):
    """Writes a report to a text stream; ``color`` is only honoured by terminal formats."""

    def __call__(self, report: Report, out: TextIO, *, color: bool) -> None: ...


RENDERERS: dict[OutputFormat, Renderer] = {
    OutputFormat.RICH: rich_text.render,
    OutputFormat.YAML: yaml_format.render,
    OutputFormat.JSON: json_format.render,
}


class FixRenderer(Protocol):
    """Writes a fix result; ``before_model`` lets the terminal format draw the model trees."""

    def __call__(
        self, result: FixResult, out: TextIO, *, color: bool, before_model: nn.Module | None = None
    ) -> None: ...


FIX_RENDERERS: dict[OutputFormat, FixRenderer] = {
    OutputFormat.RICH: fix_rich.render,
    OutputFormat.YAML: fix_data.render_yaml,
    OutputFormat.JSON: fix_data.render_json,
}

# Report files are machine output: their format follows the file's extension.
FILE_FORMATS: dict[str, OutputFormat] = {
    ".yaml": OutputFormat.YAML,
    ".yml": OutputFormat.YAML,
    ".json": OutputFormat.JSON,
}

__all__ = ["FILE_FORMATS", "FIX_RENDERERS", "FixRenderer", "OutputFormat", "RENDERERS", "Renderer"]
