"""Pictures for people who would rather look than read: ``--plot FILE.png|svg``.

Needs the optional ``plot`` extra (matplotlib). Draws the per-layer gradient flow (gradient RMS
and gradient-to-weight ratio on a log scale, in forward order, the layers named by error and
warning findings marked; a layer whose gradient is exactly zero, which a log scale cannot show,
is drawn at a floor a decade below the smallest value and labelled) and, after
``--train-steps``, each layer's gradient RMS over the checkpoints. The file is written
atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

from gradcheck_cli.atomic import save_atomic
from gradcheck_cli.errors import UsageError
from gradcheck_cli.findings import Report, Severity
from gradcheck_cli.stats import value

FORMATS = (".png", ".svg", ".pdf")


def check_target(path: Path) -> None:
    """Refuse a bad ``--plot`` path, or a missing matplotlib, before any work is done."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot '{path}' must end in {', '.join(FORMATS)}")
    if not path.resolve().parent.is_dir():
        raise UsageError(f"--plot '{path}': folder '{path.parent}' does not exist")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'gradcheck-cli[plot]'") from None


def log_floor(*series: list[float | None]) -> float:
    """Where a log-scale axis draws an exact zero: a decade below the smallest positive value
    of ``series`` (1e-12 when none is positive)."""
    positive = [
        v for values in series for v in values if v is not None and math.isfinite(v) and v > 0
    ]
    return min(positive) / 10 if positive else 1e-12


def plot(report: Report, path: Path) -> None:
    """Draw the report into ``path`` (PNG, SVG or PDF by extension)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    layers = [l for l in report.layers if value(l.grad_rms) is not None]
    names = [l.display_name for l in layers]
    marked = {
        name: f.severity
        for f in sorted(report.findings, key=lambda f: f.severity.rank)
        if f.severity.rank >= Severity.WARNING.rank
        for name in f.layers
    }
    rows = 1 + (report.training is not None) + bool(report.temporal)
    fig, axes = plt.subplots(
        rows, 1, figsize=(max(8, 0.25 * len(names) + 3), 4.5 * rows), squeeze=False
    )
    ax = axes[0][0]
    x = list(range(len(layers)))

    def positive(values: list[float | None]) -> list[float]:
        return [v if v is not None and math.isfinite(v) and v > 0 else math.nan for v in values]

    grads = [value(l.grad_rms) for l in layers]
    ratios = [value(l.grad_to_weight) for l in layers]
    ax.plot(x, positive(grads), "o-", label="gradient RMS")
    ax.plot(x, positive(ratios), "s--", label="gradient / weight")
    zeros = [i for i, g in enumerate(grads) if g == 0]
    if zeros:
        floor = log_floor(grads, ratios)
        ax.plot(
            zeros,
            [floor] * len(zeros),
            "v",
            color="red",
            markersize=9,
            label=f"gradient exactly 0 ({len(zeros)} layer(s), drawn at {floor:.0e})",
        )
        ax.axhline(floor, color="red", linewidth=0.8, linestyle=":")
    for i, name in enumerate(names):
        severity = marked.get(name)
        if severity is not None:
            ax.axvspan(
                i - 0.5, i + 0.5, color="red" if severity is Severity.ERROR else "orange", alpha=0.2
            )
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_title(f"{report.model.name}: {report.status.value} (shaded: layers named by findings)")
    ax.set_xlabel("layer, in forward order")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    row = 1
    if report.temporal:
        time_ax = axes[row][0]
        row += 1
        for profile in report.temporal:
            ratio = profile.early_to_late
            label = f"{profile.label}, early/late " + (
                f"{ratio:.1e}" if ratio is not None else "n/a"
            )
            time_ax.plot(range(len(profile.norms)), positive(list(profile.norms)), label=label)
        time_ax.set_yscale("log")
        time_ax.set_xlabel("input time step (gaps: no gradient at all)")
        time_ax.set_ylabel("gradient norm")
        time_ax.set_title("gradient reaching each time step")
        time_ax.legend(fontsize=7)
        time_ax.grid(True, which="both", alpha=0.3)
    if report.training is not None:
        trend_ax = axes[row][0]
        steps = [c.step for c in report.training.checkpoints]
        for name, series in list(report.training.trends.items())[:20]:
            trend_ax.plot(
                steps[: len(series)], positive(list(series)), "o-", label=name or "(model)"
            )
        trend_ax.set_yscale("log")
        trend_ax.set_xlabel("optimizer steps")
        trend_ax.set_ylabel("gradient RMS")
        trend_ax.set_title("gradient RMS during training")
        trend_ax.legend(fontsize=6, ncol=2)
        trend_ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    try:
        # SVG keeps its text as text (searchable, and smaller than glyph outlines).
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            save_atomic(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower()))
    finally:
        plt.close(fig)
