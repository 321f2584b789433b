"""Golden snapshots of the terminal and YAML reports, from a hand-built report.

A hand-built report keeps the snapshots independent of floating-point noise across machines.
After an intended change of layout, regenerate with ``GRADCHECK_UPDATE_GOLDEN=1 pytest
tests/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import pytest

from gradcheck_cli.checks import run_checks
from gradcheck_cli.findings import ModelInfo, Report, RunInfo
from gradcheck_cli.report import RENDERERS, OutputFormat
from gradcheck_cli.stats import LayerKind, LayerStats, ModelStats, Skipped, Summary

GOLDEN = Path(__file__).parent / "golden"


def _layer(
    order: int, name: str, ratio: float | None, kind: LayerKind, **extra: object
) -> LayerStats:
    def s(x: float | None, reason: str = "n/a") -> Summary | Skipped:
        return Summary(x, x * 0.8, x * 1.25) if x is not None else Skipped(reason)

    return LayerStats(
        name=name,
        type={"weight": "Linear", "activation": "Sigmoid"}[kind.value],
        kind=kind,
        order=order,
        calls=1,
        params=8256 if kind is LayerKind.WEIGHT else 0,
        trainable=8256 if kind is LayerKind.WEIGHT else 0,
        grad_rms=s(ratio and ratio / 20, "no trainable parameters"),
        grad_norm=s(ratio and ratio * 4),
        weight_norm=s(4.0 if ratio else None, "no parameters"),
        grad_to_weight=s(ratio, "no trainable parameters"),
        act_rms=s(0.5),
        out_grad_rms=s(1e-4),
        dead_fraction=Skipped("not a ReLU-family activation"),
        saturated_fraction=s(
            0.0 if kind is LayerKind.ACTIVATION else None, "not a saturating activation"
        ),
        **extra,  # type: ignore[arg-type]
    )


def _report() -> Report:
    layers = (
        _layer(0, "net.0", 1e-9, LayerKind.WEIGHT),
        _layer(1, "net.1", None, LayerKind.ACTIVATION),
        _layer(2, "net.2", 1e-6, LayerKind.WEIGHT),
        _layer(3, "net.3", None, LayerKind.ACTIVATION),
        _layer(4, "net.4", 1e-3, LayerKind.WEIGHT),
        _layer(5, "head[out]", 0.5, LayerKind.WEIGHT),
    )
    stats = ModelStats(layers=layers, losses=(2.3, math.nan, 2.25), steps=3)
    return Report(
        model=ModelInfo("sample_models/net.py", "Net", 33024, 33024),
        run=RunInfo(3, 16, "cpu", "cross-entropy", 0, 0.25, "inferred 64:float32", "2.13.0+cpu"),
        findings=tuple(run_checks(stats)),
        layers=layers,
        losses=stats.losses,
        tool_version="0.1.0",
    )


@pytest.mark.parametrize("fmt,suffix", [(OutputFormat.RICH, "txt"), (OutputFormat.YAML, "yaml")])
def test_golden(fmt: OutputFormat, suffix: str) -> None:
    out = io.StringIO()
    RENDERERS[fmt](_report(), out, color=False)
    path = GOLDEN / f"report.{suffix}"
    if os.environ.get("GRADCHECK_UPDATE_GOLDEN"):
        path.write_text(out.getvalue(), encoding="utf-8")
    assert out.getvalue() == path.read_text(encoding="utf-8")
