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
    comparison: Comparison,
    out: TextIO,
    *,
    color: bool = False,
    fail_on: FailOn = FailOn.ERROR,
    width: int | None = None,
) -> None:
    """Write the verdict, the finding differences and the per-layer differences."""
    console = make_console(out, color=color, width=width)
    verdict = Text(
        "REGRESSION" if comparison.regressed else "NO REGRESSION",
        style="bold red" if comparison.regressed else "bold green",
    )
    head = Text(
        f"gradcheck compare: {printable(comparison.old_model)} ({printable(comparison.old_status)}) -> "
        f"{printable(comparison.new_model)} ({printable(comparison.new_status)}): "
    )
    head.append_text(verdict)
    if comparison.improvements:
        head.append(f", {comparison.improvements} improvement(s)", style="green")
    console.print(head)
    findings = Table(title="Findings", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("finding", "baseline", "now", "change", "verdict"):
        findings.add_column(header)
    for f in comparison.findings:
        findings.add_row(
            printable(f.id),
            f.old.value if f.old else "-",
            f.new.value if f.new else "-",
            f.change.value,
            _verdict(f.regression, f.improvement),
        )
    if not comparison.findings:
        findings.add_row("(none)", "-", "-", "-", "-")
    console.print(findings)
    layers = Table(
        title=(
            f"Layers (gradient RMS; a move beyond x{comparison.factor:g} away from the healthy "
            "band of gradient-to-weight ratios is a regression)"
        ),
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
        ("verdict", "left"),
    ):
        layers.add_column(header, justify=justify)  # type: ignore[arg-type]
    for l in comparison.layers:
        factor = l.factor
        change = l.change.value + (f" (was {printable(l.old_name)})" if l.old_name else "")
        if l.direction.value:
            change += f", {l.direction.value}"
        layers.add_row(
            Text(printable(l.name)),
            Text(printable(l.type)),
            sci(l.old),
            sci(l.new),
            "-" if factor is None else f"x{factor:.3g}",
            Text(change),
            _verdict(l.regression, l.improvement),
        )
    console.print(layers)


def _verdict(regression: bool, improvement: bool) -> Text:
    if regression:
        return Text("regression", style="bold red")
    if improvement:
        return Text("improvement", style="green")
    return Text("-")
