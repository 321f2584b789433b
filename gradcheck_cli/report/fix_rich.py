"""The terminal renderer of ``gradcheck fix``: verdicts, before/after findings and layers, trees."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from rich import box
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree
from torch import nn

from gradcheck_cli.findings import Report, Severity
from gradcheck_cli.fix_result import FixResult
from gradcheck_cli.remedies.ops import overwrites, renamed
from gradcheck_cli.remedies.plan import Plan
from gradcheck_cli.remedies.verdict import Verdict
from gradcheck_cli.report.console import make_console, sci
from gradcheck_cli.report.escape import printable
from gradcheck_cli.stats import LearningProbe, value

MAX_TREE_NODES = 60
_VERDICT_STYLE = {
    Verdict.RESOLVED: "bold green",
    Verdict.IMPROVED: "green",
    Verdict.NO_EFFECT: "yellow",
    Verdict.WORSE: "bold red",
    Verdict.NOT_APPLICABLE: "dim",
}
_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def render(
    result: FixResult,
    out: TextIO,
    *,
    color: bool,
    before_model: nn.Module | None = None,
    width: int | None = None,
) -> None:
    """Write the fix report to ``out``."""
    console = make_console(out, color=color, width=width)
    console.print(_summary(result))
    if result.outcomes:
        console.print(_outcomes(result))
    if len(result.trials) > len(
        [o for o in result.outcomes if o.verdict is not Verdict.NOT_APPLICABLE]
    ):
        console.print(_trials(result))
    if result.chosen is not None:
        console.print(_findings(result.before, result.after))
        console.print(_overwritten(result))
        console.print(_layers(result))
        if before_model is not None:
            console.print(_trees(result, before_model))
    if result.probe_losses:
        console.print(_losses(result.probe_losses))
    for note in result.notes:
        console.print(Text(f"warning: {printable(note)}", style="yellow"))
    for outcome in result.outcomes:
        for note in outcome.notes:
            console.print(Text(f"note ({outcome.remedy}): {printable(note)}", style="dim"))


def _summary(result: FixResult) -> Panel:
    text = Text()
    text.append("model    ", style="dim")
    text.append(printable(f"{result.before.model.name} ({result.before.model.type})") + "\n")
    text.append("before   ", style="dim")
    text.append(result.before.status.value.upper(), style=_status_style(result.before))
    text.append("\nafter    ", style="dim")
    text.append(result.after.status.value.upper(), style=_status_style(result.after))
    text.append("\nresult   ", style="dim")
    text.append(printable(result.message))
    return Panel(text, title="gradcheck fix", title_align="left", box=box.ROUNDED, expand=False)


def _status_style(report: Report) -> str:
    return {"healthy": "bold green", "warning": "yellow", "error": "bold red"}[report.status.value]


def _outcomes(result: FixResult) -> Table:
    table = Table(
        title="Remedies, each tried alone and measured again",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    alone = {t.remedies[0]: t.report.learning for t in result.trials if len(t.remedies) == 1}
    probed = any(p is not None for p in alone.values())
    headers = (
        "remedy",
        "verdict",
        "edits",
        *(("learns?",) if probed else ()),
        "why / what was left",
    )
    for header in headers:
        table.add_column(header)
    chosen = set(result.chosen.remedies) if result.chosen else set()
    for o in result.outcomes:
        name = Text(o.remedy + (" (applied)" if o.remedy in chosen else ""))
        detail = o.reason or "; ".join(n for n in o.notes if not n.startswith("in a training loop"))
        probe = alone.get(o.remedy)
        learned = (
            (Text(_learned(probe), style="green" if probe.verdict == "learns" else "red"),)
            if probe is not None
            else (Text("-"),)
            if probed
            else ()
        )
        table.add_row(
            name,
            Text(o.verdict.value, style=_VERDICT_STYLE[o.verdict]),
            str(o.edits or "-"),
            *learned,
            Text(printable(detail)),
        )
    return table


def _learned(probe: LearningProbe) -> str:
    """A trial's learning probe in one cell: its verdict, and its held-out loss to the floor."""
    floor = f" (floor {probe.blind:.3g})" if probe.blind is not None else ""
    return f"{probe.verdict}: {probe.end:.3g}{floor}"


def _trials(result: FixResult) -> Table:
    table = Table(title="Combinations tried", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("remedies", "status", "findings"):
        table.add_column(header)
    for t in result.trials:
        if len(t.remedies) < 2:
            continue
        found = ", ".join(f"{f.id}:{f.severity.value}" for f in t.report.findings) or "-"
        if t.report.learning is not None:
            found += f"; probe {_learned(t.report.learning)}"
        table.add_row(Text(" + ".join(t.remedies)), t.report.status.value, Text(printable(found)))
    return table


def _overwritten(result: FixResult) -> Table:
    table = Table(title="What the fix overwrote", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("module", "remedy", "values"):
        table.add_column(header, overflow="fold")  # names are never cut
    for edit in result.plan.edits:
        table.add_row(
            Text(printable(edit.target) or "(root)"),
            edit.remedy,
            Text(printable(overwrites(edit))),
        )
    return table


def _findings(before: Report, after: Report) -> Table:
    table = Table(title="Findings before and after", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("finding", "before", "after"):
        table.add_column(header)
    ids = sorted({f.id for f in before.findings} | {f.id for f in after.findings})

    def worst(report: Report, finding_id: str) -> Text:
        levels = [f.severity for f in report.findings if f.id == finding_id]
        if not levels:
            return Text("-", style="green")
        top = max(levels, key=lambda s: s.rank)
        return Text(top.value, style=_SEVERITY_STYLE[top])

    for finding_id in ids:
        table.add_row(finding_id, worst(before, finding_id), worst(after, finding_id))
    if not ids:
        table.add_row("(none)", "-", "-")
    return table


def _layers(result: FixResult) -> Table:
    table = Table(
        title="Per-layer gradient-to-weight ratio before and after",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for header, justify in (
        ("layer", "left"),
        ("type", "left"),
        ("before", "right"),
        ("after", "right"),
        ("after layer", "left"),
    ):
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    after = {layer.name: layer for layer in result.after.layers}
    for layer in result.before.layers:
        ratio = value(layer.grad_to_weight)
        if ratio is None:
            continue
        new_name = result.plan.rename(layer.name)
        moved = after.get(new_name)
        table.add_row(
            Text(printable(layer.display_name)),
            Text(printable(layer.type)),
            sci(ratio),
            sci(value(moved.grad_to_weight) if moved else None),
            Text(printable(new_name) if new_name != layer.name else "", style="dim"),
        )
    return table


def _trees(result: FixResult, before_model: nn.Module) -> Table:
    edited = {e.target for e in result.plan.edits if e.target}
    marks = change_marks(result.plan)
    grid = Table.grid(padding=(0, 4))
    grid.add_column()
    grid.add_column()
    clipped = any(e.op == "wrap-grad-clip" for e in result.plan.edits)
    grid.add_row(
        _tree("model before", before_model, lambda name: "edited" if name in edited else ""),
        _tree(
            "model after" + (" (wrapped in GradClip)" if clipped else ""),
            result.model,
            lambda name: marks.get(name, ""),
        ),
    )
    return grid


def change_marks(plan: Plan) -> dict[str, str]:
    """Module names of the planned model that an edit created, replaced or re-initialised."""
    marks: dict[str, str] = {}
    for edit in plan.edits:
        marks = {renamed(name, edit): mark for name, mark in marks.items()}
        target = edit.target
        prefix = f"{target}." if target else ""
        if edit.op == "replace-activation":
            marks[target] = "replaced"
        elif edit.op == "init":
            marks.setdefault(target, "re-initialised")
        elif edit.op == "insert-norm":
            marks[target] = "new"
            marks[f"{target}.1"] = "new"
        elif edit.op == "residual":
            marks[target] = "new"
        elif edit.op == "pre-norm":
            marks[target] = "input normalised"
        elif edit.op == "residual-group":
            for start, end in edit.args["groups"]:
                position = renamed(f"{prefix}{start}", edit).removeprefix(prefix).split(".")[0]
                marks[f"{prefix}{position}"] = "new"
                if end - start > 1:
                    marks[f"{prefix}{position}.body"] = "new"
    return marks


def _tree(title: str, model: nn.Module, mark: Callable[[str], str]) -> Tree:
    tree = Tree(Text(title, style="bold"))
    nodes = {"": tree}
    count = 0
    for name, module in model.named_modules():
        if not name:
            continue
        count += 1
        if count > MAX_TREE_NODES:
            tree.add(
                Text(
                    f"... {sum(1 for _ in model.modules()) - MAX_TREE_NODES - 1} more", style="dim"
                )
            )
            break
        parent = nodes.get(name.rpartition(".")[0], tree)
        note = mark(name)
        label = Text(
            printable(f"{name.rpartition('.')[2]}: {type(module).__name__}"), overflow="fold"
        )
        if note:
            label.append(f"  [{note}]", style="green" if note != "edited" else "yellow")
        nodes[name] = parent.add(label)
    return tree


def _losses(curves: dict[str, list[float]]) -> Table:
    table = Table(
        title="Training probe (Adam, lr 1e-3, same batches)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for header in ("model", "first loss", "last loss", "change"):
        table.add_column(header)
    for label, losses in curves.items():
        first, last = losses[0], losses[-1]
        table.add_row(label, f"{first:.4g}", f"{last:.4g}", f"{last - first:+.4g}")
    return table
