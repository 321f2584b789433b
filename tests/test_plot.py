"""--plot draws the gradient flow (and training trends) with matplotlib."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck_cli.cli import main

from .conftest import SAMPLES


def test_plot_png_and_svg(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png, svg = tmp_path / "flow.png", tmp_path / "trend.svg"
    result = CliRunner().invoke(
        main, ["diagnose", str(SAMPLES / "deep_sigmoid.py"), "--plot", str(png), "--format", "yaml"]
    )
    assert result.exit_code == 1 and f"wrote {png}" in result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    result = CliRunner().invoke(
        main,
        ["diagnose", str(SAMPLES / "zero_head.py"), "--train-steps", "2", "--plot", str(svg), "-q"],
    )
    assert result.exit_code == 0
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "gradient RMS during training" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.png", "trend.svg"]


def test_plot_bad_target_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["diagnose", str(SAMPLES / "mlp_he.py"), "--plot", str(tmp_path / "x.gif")]
    )
    assert result.exit_code == 2 and "must end in .png, .svg, .pdf" in result.stderr


def test_plot_draws_the_temporal_profile(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    svg = tmp_path / "time.svg"
    result = CliRunner().invoke(
        main,
        ["diagnose", str(SAMPLES / "rnn_high_lr.py"), "--train-steps", "4", "--plot", str(svg)],
    )
    assert result.exit_code == 0, result.stderr
    text = svg.read_text()
    assert "gradient reaching each time step" in text and "rnn (RNN, 40 steps), early/late" in text
    assert "gradient RMS during training" in text  # the three panels together


def test_layers_with_exactly_zero_gradient_are_drawn_at_the_floor(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import yaml

    from gradcheck_cli.report.plot import log_floor

    svg = tmp_path / "flow.svg"
    result = CliRunner().invoke(
        main, ["diagnose", str(SAMPLES / "zero_head.py"), "--plot", str(svg), "--format", "yaml"]
    )
    report = yaml.safe_load(result.stdout)
    zero = [l["name"] for l in report["layers"] if l["grad_rms"].get("median") == 0]
    assert zero  # the zero-initialised head blocks the gradient of every layer below it
    text = svg.read_text()
    assert f"gradient exactly 0 ({len(zero)} layer(s), drawn at " in text
    assert log_floor([1e-3, 0.0, None], [2e-5, float("nan")]) == pytest.approx(2e-6)
    assert log_floor([0.0], [None]) == 1e-12
