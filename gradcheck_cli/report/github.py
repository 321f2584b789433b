"""The GitHub Actions renderer: one workflow-command annotation per finding.

Annotations are ``::error``/``::warning``/``::notice`` lines that GitHub shows on the job and,
with ``file=``, on the model file in the pull request. Data is escaped as the workflow-command
syntax requires (``%``, CR, LF; and ``:``/``,`` in properties).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from gradcheck_cli.findings import FailOn, Report, Severity
from gradcheck_cli.report.escape import printable

_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    """Escape a workflow command's message (and any terminal control character in it)."""
    return printable(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(
    report: Report, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write one annotation per finding and a closing notice with the verdict."""
    spec = report.model.name.partition(":")[0]
    file_prop = (
        f"file={escape_property(spec)}," if spec.endswith(".py") and Path(spec).is_file() else ""
    )
    for f in sorted(report.findings, key=lambda f: -f.severity.rank):
        layers = ", ".join(f.layers[:5]) + (
            f" and {len(f.layers) - 5} more" if len(f.layers) > 5 else ""
        )
        where = f" [layers: {layers}]" if layers else ""
        remedies = f" Remedies: {', '.join(f.remedies)}." if f.remedies else ""
        title = escape_property(f"gradcheck {f.id}" + (f" in {f.layers[0]}" if f.layers else ""))
        out.write(
            f"::{_COMMAND[f.severity]} {file_prop}title={title}::{escape_data(f.message + where + remedies)}\n"
        )
    counts = ", ".join(
        f"{sum(1 for f in report.findings if f.severity is s)} {s.value}"
        for s in reversed(Severity)
    )
    out.write(
        f"::notice title=gradcheck::{escape_data(f'{report.model.name}: {report.status.value} ({counts}); fails on {fail_on.value}')}\n"
    )
