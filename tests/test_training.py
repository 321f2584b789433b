"""--train-steps: training a copy between measurements, trends, and why step 0 looked sick."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from gradcheck_cli import diagnose
from gradcheck_cli.cli import main
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.loading import load_model
from gradcheck_cli.training import checkpoints, transient

from .conftest import SAMPLES


def test_checkpoints() -> None:
    assert checkpoints(4) == [0, 1, 2, 3, 4]
    assert checkpoints(10) == [0, 3, 5, 8, 10]
    assert checkpoints(1) == [0, 1]


def test_zero_head_is_healthy_after_one_update_and_the_report_says_why(validate_report) -> None:
    model = load_model(str(SAMPLES / "zero_head.py")).module
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = diagnose(model, train_steps=4)
    assert report.status.value == "healthy" and report.findings == ()
    training = report.training
    assert training is not None and training.taken == 4 and len(training.losses) == 4
    assert [c.step for c in training.checkpoints] == [0, 1, 2, 3, 4]
    assert [i for i, _ in training.checkpoints[0].findings] == ["no-gradient"]
    assert all(c.findings == () for c in training.checkpoints[1:])
    (note,) = training.notes
    assert (
        note.startswith("at step 0: no-gradient (info)") and "gone after 1 optimizer step" in note
    )
    body = training.trends["0"]
    assert body[0] == 0.0 and body[-1] > 0  # blocked at init, flowing once the head moved
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy trained
    data = report.to_dict()
    validate_report(data)
    assert data["training"]["checkpoints"][0]["findings"] == ["no-gradient:info"]


def test_training_stops_on_a_nonfinite_loss() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    report = diagnose(
        model, lambda b: torch.randn(b, 8), train_steps=10, optimizer="sgd", lr=1e6, loss="mse"
    )
    training = report.training
    assert training is not None and training.stopped.startswith("the training loss became")
    assert training.taken < 10
    assert not math.isfinite(training.losses[-1])
    assert "nonfinite" in {f.id for f in report.findings}


def test_cli_train_steps_with_sparklines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "diagnose",
            str(SAMPLES / "zero_head.py"),
            "--train-steps",
            "2",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "Training: 2 of 2 sgd steps at lr 0.1" in result.stdout
    assert "note: at step 0: no-gradient (info)" in result.stdout
    assert "No findings: gradients look healthy after 2 training steps." in result.stdout
    assert any(ch in result.stdout for ch in "▁▂▃▄▅▆▇█")
    data = yaml.safe_load(
        CliRunner()
        .invoke(
            main,
            ["diagnose", str(SAMPLES / "zero_head.py"), "--train-steps", "2", "--format", "yaml"],
        )
        .stdout
    )
    assert data["training"]["optimizer"] == "adam" and data["training"]["lr"] == 0.001
    bad = CliRunner().invoke(
        main, ["diagnose", str(SAMPLES / "zero_head.py"), "--train-steps", "-1"]
    )
    assert bad.exit_code == 2 and "train-steps" in bad.stderr


def _train_rnn(spec: str) -> Any:
    torch.manual_seed(0)
    loaded = load_model(str(SAMPLES / spec))
    return diagnose(
        loaded.module,
        loaded.example_inputs,
        loaded.loss_fn,
        train_steps=20,
        optimizer="sgd",
        lr=0.1,
    )


def test_rnn_explodes_only_after_some_high_lr_steps(validate_report) -> None:
    report = _train_rnn("rnn_high_lr.py")
    training = report.training
    assert training is not None and training.stopped == ""
    assert training.checkpoints[0].findings == ()  # healthy at initialisation
    exploding = next(f for f in report.findings if f.id == "exploding")
    assert exploding.severity is Severity.ERROR and exploding.evidence["rule"] == "training"
    # Past step 5 the trajectory is chaotic: the last-bit differences between BLAS/ATen code
    # paths (AVX2, AVX-512, MKL_CBWR=COMPATIBLE) grow until the final gradient norm differs by
    # orders of magnitude (measured 1.8e7 to 1.1e13 growth), so only the physics is asserted.
    assert exploding.evidence["growth"] > 1e4
    # The readout's gradient grows with the error in every path. The recurrent layer's grows
    # too, unless by step 20 its tanh units have saturated, which cuts its gradient off: then
    # the rules that see that name it instead (AVX2 path: no-gradient and vanishing-over-time).
    assert "fc" in exploding.layers and set(exploding.layers) <= {"rnn", "fc"}
    if "rnn" not in exploding.layers:
        cut = {f.id for f in report.findings if "rnn" in f.layers}
        assert cut & {"no-gradient", "vanishing-over-time"}, report.findings
    first = next(
        c.step for c in training.checkpoints if any(i == "exploding" for i, _ in c.findings)
    )
    assert first in (5, 10)  # loss 9.6 -> 140 by step 5 in every path; an error by step 10
    assert any(
        i == "exploding" and s is Severity.ERROR for i, s in training.checkpoints[2].findings
    )
    assert training.losses[-1] > 1e3 * training.losses[0]
    validate_report(report.to_dict())


def test_healthy_lstm_does_not_explode_under_the_same_training() -> None:
    report = _train_rnn("rnn_high_lr.py:build_lstm")
    assert report.findings == ()
    training = report.training
    assert training is not None and all(c.findings == () for c in training.checkpoints)


def _finding(id_: str, severity: Severity) -> Finding:
    return Finding(id=id_, severity=severity, layers=("x",), message="m", evidence={})


def test_transient_findings_are_kept_with_their_step() -> None:
    w, e = Severity.WARNING, Severity.ERROR
    found = [
        (0, [_finding("vanishing", e)]),
        (
            5,
            [
                _finding("exploding", w),
                _finding("vanishing", e),
                _finding("dead-units", Severity.INFO),
            ],
        ),
        (10, [_finding("exploding", e), _finding("saturation", w)]),
        (20, [_finding("saturation", w)]),
    ]
    kept = transient(found)
    # exploding arose in training and is gone at the end: kept at its worst, with its step.
    # vanishing was there at step 0 (a note's business); saturation is still there at the end;
    # info findings are not kept.
    assert [(f.id, f.severity, f.evidence["step"]) for f in kept] == [("exploding", e, 10)]
    assert kept[0].message == "at step 10 of 20, gone by the end: m"
    assert transient(found[:2]) == []  # no checkpoint between the first and the last


def test_identity_relu_rnn_explodes_in_training_even_past_float32_norms() -> None:
    # An IRNN (Le et al. 2015: ReLU, identity recurrent weights) is healthy at init; a few Adam
    # steps at lr 0.05 push its spectral radius past 1, and gradients grow ~1e13x back in time.
    # Gradient values stay finite while their norms overflow float32: this once passed as healthy.
    torch.manual_seed(0)
    rnn = nn.RNN(8, 64, nonlinearity="relu", batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.eye(64))
        rnn.bias_hh_l0.zero_()
        rnn.bias_ih_l0.zero_()
    loaded = load_model(str(SAMPLES / "rnn_high_lr.py"))
    model = loaded.module.__class__(rnn)  # the sample's Regressor around the IRNN
    report = diagnose(
        model,
        lambda b: torch.randn(b, 50, 8),
        loaded.loss_fn,
        train_steps=10,
        optimizer="adam",
        lr=0.05,
    )
    training = report.training
    assert training is not None and training.checkpoints[0].findings == ()
    assert all(("exploding", Severity.ERROR) in c.findings for c in training.checkpoints[1:])
    (exploding,) = [f for f in report.findings if f.id == "exploding"]
    assert exploding.severity is Severity.ERROR
    assert exploding.evidence["rule"] == "overflow"
