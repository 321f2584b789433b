"""The terminal renderer: a summary panel, a per-layer table with log-scale bars, the findings.

User-supplied strings (layer and model names can contain ``[``) are always wrapped in
:class:`rich.text.Text`, never parsed as markup. Without colour (not a TTY, or ``NO_COLOR``) the
same layout is written as plain text. The layout adapts to the width: the per-layer table drops
whole columns (:data:`LAYOUTS`) rather than cut a name or a number, long tables fold runs of
healthy repeated structure (:func:`fold_layers`), and findings wrap with hanging indents.
"""

from __future__ import annotations

import enum
import functools
import io
import math
import re
import sys
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Any, TextIO

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gradcheck_cli.findings import FailOn, Finding, Report, Severity, Status, Training
from gradcheck_cli.remedies import REMEDIES
from gradcheck_cli.report.console import make_console, sci
from gradcheck_cli.report.escape import printable
from gradcheck_cli.stats import LayerStats, TemporalProfile, value

BAR_WIDTH = 12
_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_STATUS_STYLE = {
    Status.ERROR: "bold white on red",
    Status.WARNING: "bold black on yellow",
    Status.HEALTHY: "bold white on green",
}


def render(
    report: Report,
    out: TextIO,
    *,
    color: bool = False,
    fail_on: FailOn = FailOn.ERROR,
    all_layers: bool = False,
    width: int | None = None,
) -> None:
    """Write the human-readable report to ``out``.

    ``all_layers`` lists every layer instead of folding runs of healthy repeated structure;
    ``width`` fixes the width (default: the terminal's, see :func:`make_console`).
    """
    console = make_console(out, color=color, width=width)
    console.print(_summary(report))
    console.print(layer_table(report, console.width, all_layers=all_layers))
    if report.temporal:
        console.print(_temporal(report.temporal, console.width))
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
    verdict = Text()
    verdict.append(f" {report.status.value.upper()} ", style=_STATUS_STYLE[report.status])
    verdict.append(
        f"  {counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s), "
        f"{counts[Severity.INFO]} info"
    )
    # A grid, so a value too long for the terminal (a model path) continues under itself.
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("model", Text(f"{printable(report.model.name)} ({printable(report.model.type)})"))
    grid.add_row("params", f"{report.model.parameters:,} ({report.model.trainable:,} trainable)")
    if report.model.frozen:
        frozen = sum(count for _, count in report.model.frozen)
        parts = ", ".join(f"{name} {count:,}" for name, count in report.model.frozen[:4])
        more = len(report.model.frozen) - 4
        grid.add_row(
            "frozen",
            Text(
                printable(parts + (f" and {more} more" if more > 0 else ""))
                + f": {frozen:,} of {report.model.parameters:,} parameters"
            ),
        )
    grid.add_row(
        "run",
        f"{report.run.steps} steps x batch {report.run.batch_size} on {report.run.device}, "
        f"loss {report.run.loss}, seed {report.run.seed}, {report.run.seconds:.1f} s",
    )
    grid.add_row("inputs", Text(report.run.inputs))
    if report.learning is not None:
        grid.add_row("learn", Text(f"{report.learning.verdict}: {report.learning.summary()}"))
    grid.add_row("verdict", verdict)
    return Panel(grid, title="gradcheck", title_align="left", box=box.ROUNDED, expand=False)


def _share(x: float, low: float, high: float) -> int:
    """Blocks of a bar for ``x`` on the log scale from ``low`` to ``high`` (at least one)."""
    if high <= low:
        return BAR_WIDTH
    return max(1, round((math.log10(x) - low) / (high - low) * BAR_WIDTH))


def _bar(x: float | None, low: float, high: float) -> str:
    if x is None or not math.isfinite(x) or x <= 0:
        return ""
    return "█" * _share(x, low, high)


def _span(xs: Sequence[float | None], low: float, high: float) -> str:
    """A bar from the smallest to the largest of ``xs``: where a folded run's values lie."""
    known = [x for x in xs if x is not None and math.isfinite(x) and x > 0]
    if not known:
        return ""
    start, end = _share(min(known), low, high) - 1, _share(max(known), low, high)
    return " " * start + "█" * (end - start)


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


def short_type(type_name: str) -> str:
    """How the terminal names a module type: a class of torch's own that ``torch.nn`` does not
    export is named by the first class in its MRO that ``torch.nn`` does export
    (``NonDynamicallyQuantizableLinear``, the ``out_proj`` of ``nn.MultiheadAttention``, is a
    ``Linear``). Other names are kept: the reports hold only the class name, which identifies
    torch's classes but not a user's, and a user's own class names are their vocabulary. The
    YAML and JSON reports keep the full name."""
    return _torch_aliases().get(type_name, type_name)


def _torch_aliases() -> dict[str, str]:
    # No import: a report names only classes that were built, so torch is loaded when one does.
    nn = sys.modules.get("torch.nn")
    return {} if nn is None else _aliases_in(nn)


@functools.cache
def _aliases_in(nn: Any) -> dict[str, str]:
    # Cached: torch's own classes (modules under torch.nn.) are all defined once torch.nn is
    # imported, and a user's classes are never aliased.
    module = nn.Module
    public = {c for c in vars(nn).values() if isinstance(c, type) and issubclass(c, module)}
    public_names = {c.__name__ for c in public}
    found: dict[str, set[str]] = {}
    stack, seen = [module], {module}
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            stack.append(sub)
            if sub in public or sub.__name__ in public_names:
                continue
            if not sub.__module__.startswith("torch.nn."):
                continue
            base = next((b for b in sub.__mro__[1:] if b in public and b is not module), None)
            if base is not None:
                found.setdefault(sub.__name__, set()).add(base.__name__)
    # A name that two of torch's classes share with different bases stays as it is.
    return {name: bases.pop() for name, bases in found.items() if len(bases) == 1}


# Folding: a run of consecutive healthy layers that repeats one structure (the same names but
# for one index, the same types) becomes one summary row. Short tables are shown whole.
FOLD_ABOVE = 30  # tables of at most this many rows are never folded
MIN_FOLD_ROWS = 6  # a fold replaces at least this many rows...
MIN_REPEATS = 3  # ...holding at least this many copies of its unit
MAX_PERIOD = 16  # the most layers one copy of a repeated unit may hold


@dataclass(frozen=True)
class Fold:
    """Consecutive healthy layers shown as one row: ``repeats`` copies of a unit of layers
    whose names differ only in one index, e.g. ``encoder.layers.0-23``."""

    layers: tuple[LayerStats, ...]
    label: str  # the names with the index as a range
    repeats: int
    unit: tuple[str, ...]  # the (short) types of one copy

    def describe(self, *, terse: bool = False) -> str:
        """``24 x Linear``, ``35 x (Linear, ReLU)``, or ``24 x 5 layers`` when the unit's types
        would be long (or ``terse``)."""
        if len(self.unit) == 1:
            return f"{self.repeats} x {self.unit[0]}"
        listed = ", ".join(self.unit)
        if terse or len(listed) > 24:
            return f"{self.repeats} x {len(self.unit)} layers"
        return f"{self.repeats} x ({listed})"


def _split(name: str, k: int) -> tuple[tuple[str, ...], int, tuple[str, ...]] | None:
    """``name`` around its ``k``-th numeric part: (parts before, the index, parts after)."""
    parts = name.split(".")
    numeric = [i for i, part in enumerate(parts) if part.isdigit()]
    if len(numeric) <= k:
        return None
    at = numeric[k]
    return tuple(parts[:at]), int(parts[at]), tuple(parts[at + 1 :])


def _run(layers: Sequence[LayerStats], start: int, k: int, period: int, keep: Set[str]) -> int:
    """How many layers from ``start`` repeat a unit of ``period`` layers, indexed by the
    ``k``-th numeric part of their names: same parts around it, same types, and the index
    growing from one copy to the next."""
    first = _split(layers[start].name, k)
    if first is None:
        return 0
    prefix = first[0]
    keys: list[tuple[tuple[str, ...], str, int]] = []
    indices: list[int] = []
    for layer in layers[start:]:
        split = _split(layer.name, k)
        if layer.display_name in keep or split is None or split[0] != prefix:
            break
        _, index, suffix = split
        key = (suffix, layer.type, layer.calls)
        at = len(keys)
        if indices and index < indices[-1]:
            break
        if at >= period and (key != keys[at - period] or index <= indices[at - period]):
            break
        keys.append(key)
        indices.append(index)
    return len(keys)


def _fold(layers: Sequence[LayerStats], k: int, period: int) -> Fold:
    splits = [_split(layer.name, k) for layer in layers]
    indices = [s[1] for s in splits if s is not None]
    prefix = splits[0][0] if splits[0] is not None else ()
    suffixes = {s[2] for s in splits if s is not None}
    suffix = next(iter(suffixes)) if len(suffixes) == 1 else ()
    label = ".".join((*prefix, f"{indices[0]}-{indices[-1]}", *suffix))
    return Fold(
        layers=tuple(layers),
        label=printable(label),
        repeats=len(layers) // period,
        unit=tuple(short_type(layer.type) for layer in layers[:period]),
    )


def fold_layers(layers: Sequence[LayerStats], keep: Set[str]) -> list[LayerStats | Fold]:
    """The table's rows: ``layers`` in forward order, with each run of at least
    :data:`MIN_REPEATS` copies of a repeated unit (and :data:`MIN_FOLD_ROWS` rows) folded into
    a :class:`Fold`. Layers named in ``keep`` (by findings) are never folded. At each row the
    longest run wins, over every numeric part of the names and unit lengths up to
    :data:`MAX_PERIOD`; a run is cut to whole copies of its unit."""
    layers = sorted(layers, key=lambda layer: layer.order)
    rows: list[LayerStats | Fold] = []
    i = 0
    while i < len(layers):
        best: tuple[int, int, int] | None = None  # (rows, k, period)
        parts = layers[i].name.count(".") + 1
        for k in range(parts):
            if _split(layers[i].name, k) is None:
                break
            for period in range(1, MAX_PERIOD + 1):
                length = _run(layers, i, k, period, keep) // period * period
                if length // period < MIN_REPEATS or length < MIN_FOLD_ROWS:
                    continue
                if best is None or length > best[0]:
                    best = (length, k, period)
        if best is None:
            rows.append(layers[i])
            i += 1
        else:
            length, k, period = best
            rows.append(_fold(layers[i : i + length], k, period))
            i += length
    return rows


class Column(enum.Enum):
    """The columns of the per-layer table, in their order."""

    ORDER = "#"
    LAYER = "layer"
    TYPE = "type"
    GRAD = "grad RMS"
    BAR = "bar"
    RATIO = "grad/weight"
    ACT = "act RMS"
    UNITS = "dead/sat"
    STATUS = "status"


_RIGHT = {Column.ORDER, Column.GRAD, Column.RATIO, Column.ACT, Column.UNITS}
# Widest first. As the width shrinks, columns go rather than names or numbers being cut: the
# bar first, then act RMS, then dead/sat, then type; below COMPACT_BELOW columns (or when even
# the last of these does not fit) the compact layout.
LAYOUTS: tuple[tuple[Column, ...], ...] = tuple(
    tuple(c for c in Column if c not in dropped)
    for dropped in (
        (),
        (Column.BAR,),
        (Column.BAR, Column.ACT),
        (Column.BAR, Column.ACT, Column.UNITS),
        (Column.BAR, Column.ACT, Column.UNITS, Column.TYPE),
    )
)
COMPACT: tuple[Column, ...] = (Column.LAYER, Column.RATIO, Column.STATUS)
COMPACT_BELOW = 60
_UNBOUNDED = 100_000


def _positive_logs(xs: Iterable[float | None]) -> tuple[float, float]:
    logs = [math.log10(x) for x in xs if x is not None and math.isfinite(x) and x > 0]
    return (min(logs), max(logs)) if logs else (0.0, 0.0)


def _layer_cells(
    layer: LayerStats, findings: tuple[Finding, ...], low: float, high: float
) -> dict[Column, Text]:
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
    return {
        Column.ORDER: Text(str(layer.order)),
        Column.LAYER: Text(name),
        Column.TYPE: Text(printable(short_type(layer.type))),
        Column.GRAD: Text(sci(grad)),
        Column.BAR: Text(_bar(grad, low, high), style="blue"),
        Column.RATIO: Text(sci(value(layer.grad_to_weight))),
        Column.ACT: Text(sci(value(layer.act_rms))),
        Column.UNITS: Text(units or "-"),
        Column.STATUS: _layer_status(layer, findings),
    }


def _fold_cells(fold: Fold, low: float, high: float, *, terse: bool) -> dict[Column, Text]:
    ratios = [value(layer.grad_to_weight) for layer in fold.layers]
    known = [r for r in ratios if r is not None and math.isfinite(r)]
    lowest, highest = (sci(min(known)), sci(max(known))) if known else ("-", "-")
    return {
        Column.ORDER: Text(f"{fold.layers[0].order}-{fold.layers[-1].order}"),
        Column.LAYER: Text(fold.label, style="italic"),
        Column.TYPE: Text(printable(fold.describe(terse=terse)), style="italic"),
        Column.GRAD: Text(""),
        Column.BAR: Text(
            _span([value(layer.grad_rms) for layer in fold.layers], low, high), style="blue"
        ),
        # Spaced: where even the compact layout is too wide, a range wraps between its
        # numbers, not inside one.
        Column.RATIO: Text(lowest if lowest == highest else f"{lowest} – {highest}"),
        Column.ACT: Text(""),
        Column.UNITS: Text(""),
        Column.STATUS: Text("ok", style="green"),
    }


def _table(
    layout: tuple[Column, ...], cells: list[dict[Column, Text]], caption: str | None
) -> Table:
    bar = Column.BAR in layout
    table = Table(
        title="Per-layer gradients (medians over steps"
        + ("; bar: log10 gradient RMS)" if bar else ")"),
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    for column in layout:
        # Never an ellipsis: the layouts are chosen so that nothing needs cutting, and where
        # even the compact one is too wide a name continues on the next line, whole.
        table.add_column(
            "" if column is Column.BAR else column.value,
            justify="right" if column in _RIGHT else "left",
            overflow="fold",
        )
    for row in cells:
        table.add_row(*(row[column] for column in layout))
    return table


def layer_table(report: Report, width: int, *, all_layers: bool = False) -> Table:
    """The per-layer table in the widest layout that fits ``width`` columns, with runs of
    healthy repeated structure folded unless ``all_layers`` (or the table is short)."""
    keep = {name for finding in report.findings for name in finding.layers}
    layers = sorted(report.layers, key=lambda layer: layer.order)
    rows: list[LayerStats | Fold] = list(layers)
    if not all_layers and len(layers) > FOLD_ABOVE:
        rows = fold_layers(layers, keep)
    low, high = _positive_logs(value(layer.grad_rms) for layer in layers)
    folds = [row for row in rows if isinstance(row, Fold)]
    caption = None
    if folds:
        folded = sum(len(fold.layers) for fold in folds)
        rows_word = "row" if len(folds) == 1 else "rows"
        caption = (
            f"{folded} healthy layers folded into {len(folds)} {rows_word}; --all-layers lists each"
        )

    def cells(terse: bool) -> list[dict[Column, Text]]:
        return [
            _fold_cells(row, low, high, terse=terse)
            if isinstance(row, Fold)
            else _layer_cells(row, report.findings, low, high)
            for row in rows
        ]

    # Measured on a console wide enough for every row on one line: its natural width. Before a
    # column goes, folded rows try the terse description of their unit (``35 x 2 layers``).
    measure = Console(width=_UNBOUNDED, file=io.StringIO(), no_color=True)
    for layout in LAYOUTS if width >= COMPACT_BELOW else ():
        for terse in (False, True) if folds and Column.TYPE in layout else (False,):
            table = _table(layout, cells(terse), caption)
            if measure.measure(table).maximum <= width:
                return table
    return _table(COMPACT, cells(True), caption)


def _hanging(label: Text, text: Text, gap: int = 1) -> Table:
    """``label`` then ``text``, whose continuation lines hang under its first character."""
    grid = Table.grid(padding=(0, gap, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(label, text)
    return grid


def _finding(finding: Finding) -> Group:
    # Severity, then the finding's lines, each with a hanging indent: the message continues
    # under the message, a remedy under its id, so they stay readable at any width.
    body: list[Table] = [
        _hanging(Text(finding.id, style="bold"), Text(printable(finding.message)), gap=2)
    ]
    if finding.layers:
        shown = printable(", ".join(finding.layers[:8]))
        more = f" (+{len(finding.layers) - 8} more)" if len(finding.layers) > 8 else ""
        body.append(_hanging(Text("layers:", style="dim"), Text(f"{shown}{more}", style="dim")))
    for remedy in finding.remedies:
        line = Text()
        line.append(remedy, style="bold")
        line.append(f": {_first_sentence(REMEDIES.get(remedy, ''))}")
        body.append(_hanging(Text("remedy"), line))
    if finding.why:
        body.append(_hanging(Text("why:", style="dim"), Text(finding.why, style="dim")))
    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True, min_width=7)
    grid.add_column()
    grid.add_row(Text(finding.severity.value.upper(), style=_STYLE[finding.severity]), Group(*body))
    return Group(grid, Text(""))


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


def _temporal(profiles: tuple[TemporalProfile, ...], width: int) -> Table:
    # The sparkline shortens to fit the width (48 down to 8 points) before anything wraps.
    measure = Console(width=_UNBOUNDED, file=io.StringIO(), no_color=True)
    for spark in (SPARK_POINTS, 32, 24, 16, 8):
        table = Table(
            title="Gradient over time: reaching each input step, first to last "
            "(log scale; blank = 0)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            padding=(0, 1, 0, 0),
        )
        for header in ("module", "of", "profile", "early/late", "reaches back"):
            table.add_column(
                header, justify="right" if header == "early/late" else "left", overflow="fold"
            )
        for profile in profiles:
            _, points = profile.buckets(spark)
            differentiated = "last output step" if profile.method == "last step" else "loss"
            table.add_row(
                Text(profile.label),
                differentiated,
                sparkline(points),
                sci(profile.early_to_late),
                f"{profile.reach()} steps",
            )
        if measure.measure(table).maximum <= width:
            break
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
        table.add_column(header, overflow="fold")  # wrapped whole, never cut
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
    trend.add_column("layer", overflow="fold")
    trend.add_column("trend")
    trend.add_column("first", justify="right")
    trend.add_column("last", justify="right")
    for name, series in list(training.trends.items())[:40]:
        trend.add_row(Text(name or "(model)"), sparkline(series), sci(series[0]), sci(series[-1]))
    parts.append(trend)
    for note in training.notes:
        parts.append(Text(f"note: {note}", style="cyan"))
    return Group(*parts)
