"""Output formats: one renderer module per format behind one small interface.

``RENDERERS`` is the single mapping from :class:`OutputFormat` to renderer; a test checks that it
covers every format, so no command ever needs an ``if format == ...`` chain.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from gradcheck_cli.compare import Comparison
from gradcheck_cli.findings import FailOn, Report
from gradcheck_cli.report import (
    compare_ci,
    compare_data,
    compare_rich,
    github,
    json_format,
    junit,
    markdown,
    rich_text,
    yaml_format,
)

if TYPE_CHECKING:
    from torch import nn

    from gradcheck_cli.fix_result import FixResult


class OutputFormat(str, enum.Enum):
    """What ``--format`` writes to stdout."""

    RICH = "rich"
    YAML = "yaml"
    JSON = "json"
    GITHUB = "github"
    JUNIT = "junit"
    MARKDOWN = "markdown"


class Renderer(Protocol):
    """Writes a report to a text stream; ``color`` is only honoured by terminal formats and
    ``fail_on`` by the CI formats that mark failures."""

    def __call__(
        self, report: Report, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
    ) -> None: ...


RENDERERS: dict[OutputFormat, Renderer] = {
    OutputFormat.RICH: rich_text.render,
    OutputFormat.YAML: yaml_format.render,
    OutputFormat.JSON: json_format.render,
    OutputFormat.GITHUB: github.render,
    OutputFormat.JUNIT: junit.render,
    OutputFormat.MARKDOWN: markdown.render,
}


@dataclass(frozen=True)
class RenderOptions:
    """Layout options of the terminal format (``diagnose --all-layers``). The other formats
    have none: YAML and JSON always hold every layer."""

    all_layers: bool = False  # list every layer instead of folding repeated healthy structure


# The formats that take layout options, each with how it applies them.
_LAYOUTS: dict[OutputFormat, Callable[[RenderOptions], Renderer]] = {
    OutputFormat.RICH: lambda o: functools.partial(rich_text.render, all_layers=o.all_layers),
}


def renderer(fmt: OutputFormat, options: RenderOptions) -> Renderer:
    """``RENDERERS[fmt]``, with ``options`` applied where the format has layout options."""
    apply = _LAYOUTS.get(fmt)
    return RENDERERS[fmt] if apply is None else apply(options)


class FixRenderer(Protocol):
    """Writes a fix result; ``before_model`` lets the terminal format draw the model trees."""

    def __call__(
        self, result: FixResult, out: TextIO, *, color: bool, before_model: nn.Module | None = None
    ) -> None: ...


# What ``fix --format`` offers; ``FIX_RENDERERS`` (imported on first use: fix_rich and fix_data
# import torch) has a renderer for each.
FIX_FORMATS: tuple[OutputFormat, ...] = (OutputFormat.RICH, OutputFormat.YAML, OutputFormat.JSON)


def _fix_renderers() -> dict[OutputFormat, FixRenderer]:
    from gradcheck_cli.report import fix_data, fix_rich

    return {
        OutputFormat.RICH: fix_rich.render,
        OutputFormat.YAML: fix_data.render_yaml,
        OutputFormat.JSON: fix_data.render_json,
    }


def __getattr__(name: str) -> Any:
    if name == "FIX_RENDERERS":  # dict[OutputFormat, FixRenderer]
        return _fix_renderers()
    raise AttributeError(f"module 'gradcheck_cli.report' has no attribute {name!r}")


if TYPE_CHECKING:
    FIX_RENDERERS: dict[OutputFormat, FixRenderer]


class CompareRenderer(Protocol):
    """Writes a comparison with a baseline."""

    def __call__(
        self,
        comparison: Comparison,
        out: TextIO,
        *,
        color: bool = False,
        fail_on: FailOn = FailOn.ERROR,
    ) -> None: ...


COMPARE_RENDERERS: dict[OutputFormat, CompareRenderer] = {
    OutputFormat.RICH: compare_rich.render,
    OutputFormat.YAML: compare_data.render_yaml,
    OutputFormat.JSON: compare_data.render_json,
    OutputFormat.GITHUB: compare_ci.render_github,
    OutputFormat.JUNIT: compare_ci.render_junit,
    OutputFormat.MARKDOWN: compare_ci.render_markdown,
}

# Report files are machine output: their format follows the file's extension.
FILE_FORMATS: dict[str, OutputFormat] = {
    ".yaml": OutputFormat.YAML,
    ".yml": OutputFormat.YAML,
    ".json": OutputFormat.JSON,
    ".xml": OutputFormat.JUNIT,
    ".md": OutputFormat.MARKDOWN,
}

__all__ = [
    "COMPARE_RENDERERS",
    "FILE_FORMATS",
    "FIX_FORMATS",
    "FIX_RENDERERS",
    "CompareRenderer",
    "FixRenderer",
    "OutputFormat",
    "RENDERERS",
    "RenderOptions",
    "Renderer",
    "renderer",
]
