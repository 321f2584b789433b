"""The Markdown renderer: a summary for a pull-request comment or a CI job summary."""

from __future__ import annotations

from typing import TextIO

from gradcheck_cli.findings import FailOn, Report, Severity
from gradcheck_cli.remedies import REMEDIES
from gradcheck_cli.report.console import sci
from gradcheck_cli.report.escape import markdown_text
from gradcheck_cli.stats import value

_ICON = {Severity.ERROR: "🔴", Severity.WARNING: "🟡", Severity.INFO: "🔵"}
_STATUS = {"healthy": "✅ healthy", "warning": "🟡 warning", "error": "🔴 error"}
MAX_LAYER_ROWS = 200


def _cell(text: str) -> str:
    """Text from outside (a module name, a message quoting one) safe in a table cell or a
    line: :func:`markdown_text`. Never inside a code span, where references are not read."""
    return markdown_text(text)


def render(
    report: Report, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write the Markdown summary: verdict, findings with remedies, per-layer table."""
    run = report.run
    out.write(f"## gradcheck: {_STATUS[report.status.value]}\n\n")
    out.write(
        f"{_cell(report.model.name)} ({_cell(report.model.type)}, "
        f"{report.model.parameters:,} parameters): {run.steps} steps x batch {run.batch_size} "
        f"on {run.device}, loss {run.loss}, seed {run.seed}; fails on `{fail_on.value}`.\n\n"
    )
    if report.findings:
        out.write("| | finding | layers | message | remedies |\n|---|---|---|---|---|\n")
        for f in sorted(report.findings, key=lambda f: -f.severity.rank):
            layers = ", ".join(f.layers[:6]) + (
                f" (+{len(f.layers) - 6})" if len(f.layers) > 6 else ""
            )
            out.write(
                f"| {_ICON[f.severity]} {f.severity.value} | `{f.id}` | {_cell(layers) or '–'} "
                f"| {_cell(f.message)} | {', '.join(f'`{r}`' for r in f.remedies) or '–'} |\n"
            )
        out.write("\n")
        for remedy in sorted({r for f in report.findings for r in f.remedies}):
            out.write(f"- **{remedy}**: {_cell(REMEDIES.get(remedy, ''))}\n")
        out.write("\nRun `gradcheck explain ID` for the evidence behind a finding.\n\n")
    else:
        out.write("No findings.\n\n")
    out.write("<details><summary>Per-layer gradients</summary>\n\n")
    out.write(
        "| # | layer | type | grad RMS | grad/weight | act RMS |\n|---:|---|---|---:|---:|---:|\n"
    )
    for layer in report.layers[:MAX_LAYER_ROWS]:
        out.write(
            f"| {layer.order} | {_cell(layer.display_name)} | {_cell(layer.type)} "
            f"| {sci(value(layer.grad_rms), '–')} | {sci(value(layer.grad_to_weight), '–')} "
            f"| {sci(value(layer.act_rms), '–')} |\n"
        )
    if len(report.layers) > MAX_LAYER_ROWS:
        out.write(f"\n{len(report.layers) - MAX_LAYER_ROWS} more layers in the YAML report.\n")
    out.write("\n</details>\n")
