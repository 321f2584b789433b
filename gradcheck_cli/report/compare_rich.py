"""Terminal rendering of a comparison with a baseline."""

from __future__ import annotations

from typing import TextIO

from rich import box
from rich.table import Table
from rich.text import Text

from gradcheck_cli.compare import Comparison
from gradcheck_cli.findings import FailOn
from gradcheck_cli.report.console import make_console, sci
from gradcheck_cli.report.escape import printable


def render(
    comparison: Comparison, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write the verdict, the finding differences and the per-layer differences."""
    console = make_console(out, color=color)
    verdict = Text(
        "REGRESSION" if comparison.regressed else "NO REGRESSION",
        style="bold red" if comparison.regressed else "bold green",
    )
    head = Text(
        f"gradcheck compare: {printable(comparison.old_model)} ({printable(comparison.old_status)}) -> "
        f"{printable(comparison.new_model)} ({printable(comparison.new_status)}): "
    )
    head.append_text(verdict)
    console.print(head)
    findings = Table(title="Findings", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("finding", "baseline", "now", "change", "regression"):
        findings.add_column(header)
    for f in comparison.findings:
        findings.add_row(
            printable(f.id),
            f.old.value if f.old else "-",
            f.new.value if f.new else "-",
            f.change.value,
            Text("yes", style="bold red") if f.regression else "no",
        )
    if not comparison.findings:
        findings.add_row("(none)", "-", "-", "-", "no")
    console.print(findings)
    layers = Table(
        title=f"Layers (gradient RMS; regression beyond x{comparison.factor:g})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for header, justify in (
        ("layer", "left"),
        ("type", "left"),
        ("baseline", "right"),
        ("now", "right"),
        ("factor", "right"),
        ("change", "left"),
    ):
        layers.add_column(header, justify=justify)  # type: ignore[arg-type]
    for l in comparison.layers:
        factor = l.factor
        change = l.change.value + (f" (was {printable(l.old_name)})" if l.old_name else "")
        layers.add_row(
            Text(printable(l.name)),
            Text(printable(l.type)),
            sci(l.old),
            sci(l.new),
            "-" if factor is None else f"x{factor:.3g}",
            Text(change, style="bold red" if l.regression else ""),
        )
    console.print(layers)
