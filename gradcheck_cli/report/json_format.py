"""The JSON renderer: ``Report.to_json()``, the same document as the YAML format."""

from __future__ import annotations

from typing import TextIO

from gradcheck_cli.findings import FailOn, Report


def render(
    report: Report, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write the report as JSON (NaN/Inf as strings, so it is strict JSON)."""
    out.write(report.to_json())
