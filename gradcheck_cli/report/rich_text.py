"""The terminal renderer: a summary panel, a per-layer table with log-scale bars, the findings.

User-supplied strings (layer and model names can contain ``[``) are always wrapped in
:class:`rich.text.Text`, never parsed as markup. Without colour (not a TTY, or ``NO_COLOR``) the
same layout is written as plain text.
"""

from __future__ import annotations

import math
import re
from typing import TextIO

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gradcheck_cli.findings import FailOn, Finding, Report, Severity, Status
from gradcheck_cli.remedies import REMEDIES
from gradcheck_cli.report.console import make_console, sci
from gradcheck_cli.report.escape import printable
from gradcheck_cli.stats import LayerStats, TemporalProfile, value
from gradcheck_cli.training import Training

BAR_WIDTH = 12
_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_STATUS_STYLE = {
    Status.ERROR: "bold white on red",
    Status.WARNING: "bold black on yellow",
    Status.HEALTHY: "bold white on green",
}


def render(
    report: Report, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write the human-readable report to ``out``."""
    console = make_console(out, color=color)
    console.print(_summary(report))
    console.print(_layer_table(report))
    if report.temporal:
        console.print(_temporal(report.temporal))
    if report.training is not None:
        console.print(_training(report.training))
    if report.findings:
        console.print(Text("Findings", style="bold"))
        for finding in sorted(report.findings, key=lambda f: -f.severity.rank):
            console.print(_finding(finding))
    else:
        when = (
            f"after {report.training.taken} training steps"
            if report.training is not None
            else "at initialisation"
        )
        console.print(Text(f"No findings: gradients look healthy {when}.", style="green"))


def _summary(report: Report) -> Panel:
    counts = {s: sum(1 for f in report.findings if f.severity is s) for s in Severity}
    verdict = Text(f" {report.status.value.upper()} ", style=_STATUS_STYLE[report.status])
    lines = Text()
    lines.append("model   ", style="dim")
    lines.append(f"{printable(report.model.name)} ({printable(report.model.type)})\n")
    lines.append("params  ", style="dim")
    lines.append(f"{report.model.parameters:,} ({report.model.trainable:,} trainable)\n")
    lines.append("run     ", style="dim")
    lines.append(
        f"{report.run.steps} steps x batch {report.run.batch_size} on {report.run.device}, "
        f"loss {report.run.loss}, seed {report.run.seed}, {report.run.seconds:.1f} s\n"
    )
    lines.append("inputs  ", style="dim")
    lines.append(f"{report.run.inputs}\n")
    lines.append("verdict ", style="dim")
    lines.append_text(verdict)
    lines.append(
        f"  {counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s), "
        f"{counts[Severity.INFO]} info"
    )
    return Panel(lines, title="gradcheck", title_align="left", box=box.ROUNDED, expand=False)


def _bar(x: float | None, low: float, high: float) -> str:
    if x is None or not math.isfinite(x) or x <= 0:
        return ""
    if high <= low:
        return "█" * BAR_WIDTH
    share = (math.log10(x) - low) / (high - low)
    return "█" * max(1, round(share * BAR_WIDTH))


def _layer_status(layer: LayerStats, findings: tuple[Finding, ...]) -> Text:
    hits = [f for f in findings if layer.display_name in f.layers]
    if not hits:
        return Text("ok", style="green")
    text = Text()
    for i, f in enumerate(sorted(hits, key=lambda f: -f.severity.rank)):
        if i:
            text.append(" ")
        text.append(f.id, style=_STYLE[f.severity])
    return text


def _layer_table(report: Report) -> Table:
    table = Table(
        title="Per-layer gradients (medians over steps; bar: log10 gradient RMS)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for header, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("type", "left"),
        ("grad RMS", "right"),
        ("", "left"),
        ("grad/weight", "right"),
        ("act RMS", "right"),
        ("dead/sat", "right"),
        ("status", "left"),
    ):
        table.add_column(header, justify=justify, no_wrap=header != "layer")  # type: ignore[arg-type]
    logs = [
        math.log10(g)
        for g in (value(layer.grad_rms) for layer in report.layers)
        if g is not None and math.isfinite(g) and g > 0
    ]
    low, high = (min(logs), max(logs)) if logs else (0.0, 0.0)
    for layer in report.layers:
        grad = value(layer.grad_rms)
        dead, sat = value(layer.dead_fraction), value(layer.saturated_fraction)
        units = " ".join(
            part
            for part in (
                f"{dead:.0%} dead" if dead is not None else "",
                f"{sat:.0%} sat" if sat is not None else "",
            )
            if part
        )
        name = printable(layer.display_name) + (f" (x{layer.calls})" if layer.calls > 1 else "")
        table.add_row(
            str(layer.order),
            Text(name),
            Text(printable(layer.type)),
            sci(grad),
            Text(_bar(grad, low, high), style="blue"),
            sci(value(layer.grad_to_weight)),
            sci(value(layer.act_rms)),
            units or "-",
            _layer_status(layer, report.findings),
        )
    return table


def _finding(finding: Finding) -> Group:
    head = Text()
    head.append(f"{finding.severity.value.upper():<7} ", style=_STYLE[finding.severity])
    head.append(finding.id, style="bold")
    head.append("  ")
    head.append(printable(finding.message))
    parts: list[Text] = [head]
    if finding.layers:
        shown = printable(", ".join(finding.layers[:8]))
        more = f" (+{len(finding.layers) - 8} more)" if len(finding.layers) > 8 else ""
        parts.append(Text(f"        layers: {shown}{more}", style="dim"))
    for remedy in finding.remedies:
        line = Text("        remedy ")
        line.append(remedy, style="bold")
        line.append(f": {_first_sentence(REMEDIES.get(remedy, ''))}")
        parts.append(line)
    if finding.why:
        parts.append(Text(f"        why: {finding.why}", style="dim"))
    parts.append(Text(""))
    return Group(*parts)


def _first_sentence(text: str) -> str:
    # A sentence ends at a full stop followed by a capital, so "He et al. 2015" stays whole.
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text, maxsplit=1)[0]


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(series: tuple[float | None, ...]) -> str:
    """Log-scale sparkline of a positive series; a space where a value is missing or not positive."""
    logs = [math.log10(v) if v is not None and math.isfinite(v) and v > 0 else None for v in series]
    known = [v for v in logs if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low or 1.0
    return "".join(
        " " if v is None else SPARKS[min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))]
        for v in logs
    )


SPARK_POINTS = 48


def _temporal(profiles: tuple[TemporalProfile, ...]) -> Table:
    table = Table(
        title="Gradient over time: reaching each input step, first to last (log scale; blank = 0)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for header in ("module", "of", "profile", "early/late", "reaches back"):
        table.add_column(header, justify="right" if header == "early/late" else "left")
    for profile in profiles:
        _, points = profile.buckets(SPARK_POINTS)
        differentiated = "last output step" if profile.method == "last step" else "loss"
        table.add_row(
            Text(profile.label),
            differentiated,
            sparkline(points),
            sci(profile.early_to_late),
            f"{profile.reach()} steps",
        )
    return table


def _training(training: Training) -> Group:
    head = Text(
        f"Training: {training.taken} of {training.requested} {training.optimizer.value} steps at "
        f"lr {training.lr:g}; findings above are those after training",
        style="bold",
    )
    parts: list[Text | Table] = [head]
    if training.stopped:
        parts.append(Text(f"stopped: {training.stopped}", style="bold red"))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for header in ("after step", "loss", "findings"):
        table.add_column(header)
    for mark in training.checkpoints:
        found = ", ".join(f"{i}:{s.value}" for i, s in mark.findings) or "-"
        table.add_row(str(mark.step), sci(mark.loss), Text(found))
    parts.append(table)
    trend = Table(
        title="grad RMS over the checkpoints (log scale)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    trend.add_column("layer")
    trend.add_column("trend")
    trend.add_column("first", justify="right")
    trend.add_column("last", justify="right")
    for name, series in list(training.trends.items())[:40]:
        trend.add_row(Text(name or "(model)"), sparkline(series), sci(series[0]), sci(series[-1]))
    parts.append(trend)
    for note in training.notes:
        parts.append(Text(f"note: {note}", style="cyan"))
    return Group(*parts)
