"""How the result types print themselves: ``print(report)`` and a notebook's ``_repr_html_``.

The result types (:class:`~gradcheck_cli.findings.Report`, :class:`~gradcheck_cli.fix_result.FixResult`,
:class:`~gradcheck_cli.compare.Comparison`) sit below the renderers that draw them, so they do not
import them: the renderers register their plain-text and HTML views here
(:mod:`gradcheck_cli.report.notebook`), and the first ``print`` loads that module by name — the one
plug-in point of the layering, like the package's own lazy attributes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# The module that registers the views when it is imported.
RENDERERS = "gradcheck_cli.report.notebook"

_VIEWS: dict[str, Callable[[Any], str]] = {}


def register(kind: str) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    """Decorator: ``fn`` is the ``kind`` view (``"text"`` or ``"html"``) of every result type."""

    def add(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        _VIEWS[kind] = fn
        return fn

    return add


def _view(kind: str) -> Callable[[Any], str]:
    if kind not in _VIEWS:
        importlib.import_module(RENDERERS)
    return _VIEWS[kind]


class Printable:
    """A result type whose ``str()`` is its plain-text terminal report and whose notebook view is
    the same report in colour."""

    __slots__ = ()

    def __str__(self) -> str:
        """``print(...)`` prints the plain-text terminal report."""
        return _view("text")(self)

    def _repr_html_(self) -> str:
        """Jupyter shows the terminal report, in colour, instead of the dataclass repr."""
        return _view("html")(self)
