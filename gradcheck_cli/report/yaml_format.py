"""The YAML renderer: ``Report.to_yaml()``, the machine-readable contract for CI."""

from __future__ import annotations

from typing import TextIO

from gradcheck_cli.findings import FailOn, Report


def render(
    report: Report, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write the report as YAML."""
    out.write(report.to_yaml())
