"""Temporal profiles and vanishing-over-time: how much gradient reaches each time step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from gradcheck_cli import diagnose
from gradcheck_cli.checks import run_checks
from gradcheck_cli.cli import main
from gradcheck_cli.findings import Severity
from gradcheck_cli.loading import load_model
from gradcheck_cli.seeding import seeded
from gradcheck_cli.stats import ModelStats, TemporalProfile
from gradcheck_cli.temporal import probe_recurrent

from .conftest import SAMPLES
from .models import LastStep


def _report(spec: str, **options: object):  # type: ignore[no-untyped-def]
    with seeded(0):  # built as `gradcheck diagnose` builds it, whatever tests ran before
        loaded = load_model(str(SAMPLES / spec))
    return diagnose(loaded.module, loaded.example_inputs, loaded.loss_fn, **options)


def test_vanilla_rnn_over_120_steps_vanishes_over_time(validate_report) -> None:
    report = _report("vanilla_rnn.py")
    (finding,) = report.findings
    assert finding.id == "vanishing-over-time" and finding.severity is Severity.ERROR
    assert finding.layers == ("rnn",)
    assert finding.evidence["early_to_late"] < 1e-6 and finding.evidence["steps"] == 120
    assert finding.remedies == ("gated-cell", "gate-bias", "truncate-bptt")
    (profile,) = report.temporal
    assert profile.cell == "RNN" and profile.method == "last step" and len(profile.norms) == 120
    assert profile.reach() < 30  # the gradient reaches back a few dozen steps at most
    data = report.to_dict()
    validate_report(data)
    assert data["temporal"][0]["steps"] == 120 and data["temporal"][0]["stride"] == 2
    assert len(data["temporal"][0]["profile"]) == 60


def test_lstm_with_chrono_init_keeps_its_gradient_over_time() -> None:
    report = _report("lstm_chrono.py")
    assert report.findings == ()
    (profile,) = report.temporal
    assert profile.cell == "LSTM" and profile.gated
    ratio = profile.early_to_late
    assert ratio is not None and 1e-2 < ratio < 10  # measured 0.10
    assert profile.reach() == 120


def test_a_default_lstm_reaching_back_less_than_half_its_sequence_warns() -> None:
    report = _report("lstm_classifier.py")  # 2-layer LSTM, PyTorch's default biases, 50 steps
    (finding,) = report.findings
    assert finding.id == "vanishing-over-time" and finding.severity is Severity.WARNING
    assert finding.evidence["early_to_late"] < 1e-6  # measured 6e-9, above the 1e-12 floor
    assert finding.evidence["steps"] == 50
    assert 10 <= finding.evidence["reach_steps"] < 25  # measured 19-20 (init draw)
    assert "less than half the sequence" in finding.message
    assert finding.remedies == ("gate-bias", "truncate-bptt")


def test_the_60_token_first_token_gru_warns_with_its_reach() -> None:
    # Stays at chance with Adam and SGD with momentum, learns at 10 tokens
    # (bench/gru_first_token.md); before, an info finding and exit 0.
    report = _report("gru_first_token.py")
    (finding,) = report.findings
    assert (finding.id, finding.severity, finding.layers) == (
        "vanishing-over-time",
        Severity.WARNING,
        ("gru",),
    )
    assert finding.evidence["steps"] == 60
    assert 10 <= finding.evidence["reach_steps"] < 30  # measured 16
    assert 1e-12 < finding.evidence["early_to_late"] < 1e-9  # measured 1.3e-11
    assert "gate-bias" in finding.remedies


@pytest.mark.parametrize(
    ("forget_bias", "severity"),
    # At 120 steps: bias 0 gives about 1e-20 (below 1e-12: the first steps cannot train the
    # cell, a warning), bias 1 about 1e-8 and reaches back 45 of 120 steps (less than half: a
    # warning), bias 1.5 2e-4 but reaches back 92 (information), bias 3 about 1.6 (nothing).
    [(0.0, Severity.WARNING), (1.0, Severity.WARNING), (1.5, Severity.INFO), (3.0, None)],
)
def test_forget_gate_bias_decides_the_lstm_finding(
    forget_bias: float, severity: Severity | None
) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(16, 64, batch_first=True)
    with torch.no_grad():
        lstm.bias_hh_l0.zero_()
        lstm.bias_ih_l0.zero_()
        lstm.bias_ih_l0[64:128] = forget_bias
    model = LastStep(lstm)
    report = diagnose(model, lambda b: torch.randn(b, 120, 16))
    found = [f.severity for f in report.findings if f.id == "vanishing-over-time"]
    assert found == ([] if severity is None else [severity])


def test_sequence_first_relu_rnn_and_short_sequences() -> None:
    torch.manual_seed(0)
    rnn = nn.RNN(8, 32, nonlinearity="relu")  # batch_first=False: time is dimension 0
    report = diagnose(LastStep(rnn), lambda b: torch.randn(100, b, 8))
    (profile,) = report.temporal
    assert profile.cell == "RNN_RELU" and len(profile.norms) == 100
    assert [f.id for f in report.findings] == ["vanishing-over-time"]
    short = diagnose(LastStep(nn.RNN(8, 32)), lambda b: torch.randn(5, b, 8))
    assert short.temporal == () and short.findings == ()  # under 10 steps: not profiled


def test_probe_measures_the_module_not_the_loss() -> None:
    # A per-step loss would hide the decay; the probe differentiates the last output step only.
    torch.manual_seed(0)
    rnn = nn.RNN(4, 16, batch_first=True)
    x = torch.randn(3, 30, 4)
    (profile,) = probe_recurrent(rnn, lambda: rnn(x))
    assert profile.module == "" and len(profile.norms) == 30
    assert profile.norms[-1] > 0 and profile.norms[0] < profile.norms[-1] * 1e-3
    # The probe leaves no hook and no gradient behind.
    assert not rnn._forward_hooks and not rnn._forward_pre_hooks
    assert all(p.grad is None for p in rnn.parameters())


def test_bidirectional_modules_are_profiled_in_the_forward_direction() -> None:
    torch.manual_seed(0)
    rnn = nn.GRU(8, 16, batch_first=True, bidirectional=True)
    (profile,) = probe_recurrent(rnn, lambda: rnn(torch.randn(4, 40, 8)))
    assert profile.cell == "GRU" and len(profile.norms) == 40
    ratio = profile.early_to_late
    assert ratio is not None and ratio < 1e-3  # the backward half would make the first steps big


def test_attention_stacks_get_a_profile_that_is_not_judged(validate_report) -> None:
    report = _report("transformer_preln.py")
    assert report.findings == ()
    (profile,) = report.temporal
    assert profile.cell == "attention" and profile.method == "loss" and profile.module == "embed"
    assert len(profile.norms) == 64
    assert profile.norms[-1] == 0.0  # next-token loss: the last position predicts nothing
    ratio = profile.early_to_late
    assert ratio is not None and 0.5 < ratio < 5  # measured 1.6: attention reaches every step
    validate_report(report.to_dict())
    # The check ignores loss profiles even when they decay.
    fake = TemporalProfile("embed", "attention", False, "loss", tuple([1e-9] * 10 + [1.0] * 90))
    assert run_checks(ModelStats((), (), 1, temporal=(fake,))) == []


class _LocalAttention(nn.Module):
    """Two encoder layers whose attention is masked to the last ``window`` positions (causal),
    reading the last position: the output sees ``2 * (window - 1) + 1`` positions."""

    def __init__(self, window: int | None) -> None:
        super().__init__()
        self.embed = nn.Embedding(8, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 8)
        self.window = window

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        i = torch.arange(t)
        blocked = i[None, :] > i[:, None]  # causal
        if self.window is not None:
            blocked = blocked | (i[None, :] <= i[:, None] - self.window)
        return self.head(self.encoder(self.embed(tokens), mask=blocked)[:, -1])


@pytest.mark.parametrize("window", [8, None])
def test_an_attention_window_the_output_cannot_see_past_warns_and_full_attention_does_not(
    window: int | None,
) -> None:
    tokens = lambda b: torch.randint(0, 8, (b, 40))  # noqa: E731
    loss = lambda out, x: nn.functional.cross_entropy(out, x[:, 0])  # noqa: E731
    torch.manual_seed(0)
    report = diagnose(_LocalAttention(window), tokens, loss, learn=0)
    (profile,) = report.temporal
    assert profile.cell == "attention"
    if window is None:
        assert report.findings == ()
        return
    # Two layers of window 8: the last position sees 15; the 25 before get exactly nothing, and
    # their values do not reach the loss either (a mask, not a cut): a warning, not an error.
    (finding,) = report.findings
    assert (finding.id, finding.severity) == ("vanishing-over-time", Severity.WARNING)
    assert finding.evidence["reach_steps"] == 15 and finding.evidence["cut_step"] == 26
    assert finding.evidence["values_reach"] is False and "reason" not in finding.evidence
    assert "a mask, a window" in finding.message


def test_thresholds_are_configurable() -> None:
    report = _report("lstm_chrono.py", thresholds={"vanishing-over-time": {"warning": 0.5}})
    (finding,) = report.findings
    assert finding.severity is Severity.INFO and finding.evidence["threshold"] == 0.5


def test_profile_arithmetic() -> None:
    profile = TemporalProfile("rnn", "RNN", False, "last step", (0.0,) * 10 + (1.0,) * 90)
    assert profile.window == 10 and profile.early == 0.0 and profile.late == 1.0
    assert profile.early_to_late == 0.0 and profile.reach() == 90
    flat = TemporalProfile("rnn", "RNN", False, "last step", (2.0,) * 10)
    assert flat.window == 1 and flat.early_to_late == 1.0 and flat.reach() == 10
    dead = TemporalProfile("rnn", "RNN", False, "last step", (0.0,) * 10)
    assert dead.early_to_late is None and math.isclose(dead.late, 0.0)


def test_cli_shows_the_profile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["diagnose", str(SAMPLES / "vanilla_rnn.py")])
    assert result.exit_code == 1, result.stderr
    assert "vanishing-over-time" in result.stdout
    assert "Gradient over time" in result.stdout and "rnn (RNN, 120 steps)" in result.stdout


def test_encoder_decoder_profiles_the_first_embedding_called() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BartConfig(
        d_model=64,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        vocab_size=100,
    )
    torch.manual_seed(0)
    model = transformers.BartForConditionalGeneration(config)
    batch = {"input_ids": torch.randint(0, 100, (4, 30)), "labels": torch.randint(0, 100, (4, 30))}
    report = diagnose(model, batch)
    # model.shared is tied to the encoder's and decoder's tables but never called itself.
    (profile,) = report.temporal
    assert profile.module == "model.encoder.embed_tokens" and len(profile.norms) == 30
    assert report.findings == ()


class CellLoop(nn.Module):
    """A cell stepped by a Python loop, as hand-written seq2seq and RL code does."""

    def __init__(self, cell: nn.RNNCellBase, hidden: int = 32):
        super().__init__()
        self.cell = cell
        self.hidden = hidden
        self.head = nn.Linear(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.hidden)
        c = h
        for t in range(x.shape[1]):
            if isinstance(self.cell, nn.LSTMCell):
                h, c = self.cell(x[:, t], (h, c))
            else:
                h = self.cell(x[:, t], h)
        return self.head(h)


@pytest.mark.slow
def test_a_cell_stepped_in_a_python_loop_is_profiled_like_a_recurrent_module() -> None:
    torch.manual_seed(0)
    model = CellLoop(nn.RNNCell(6, 32))
    report = diagnose(model, lambda b: torch.randn(b, 120, 6), steps=1)
    (profile,) = report.temporal
    assert (profile.module, profile.cell, profile.gated, len(profile.norms)) == (
        "cell",
        "RNN",
        False,
        120,
    )
    # The same measurement by hand: d<v, h_T>/dx_t through the loop, with the seeded direction.
    finding = next(f for f in report.findings if f.id == "vanishing-over-time")
    assert finding.severity is Severity.ERROR
    assert finding.layers == ("cell",)
    assert profile.early_to_late is not None and profile.early_to_late < 1e-6
    # The gradient reaching the last steps is a real, finite measurement, not an underflow.
    assert profile.norms[-1] > 0 and math.isfinite(profile.norms[-1])


def test_a_cell_loop_profile_equals_the_gradient_of_the_last_state_by_hand() -> None:
    torch.manual_seed(1)
    model = CellLoop(nn.GRUCell(5, 32))
    x = torch.randn(3, 12, 5)
    torch.manual_seed(7)
    (profile,) = probe_recurrent(model, lambda: model(x))
    steps = [x[:, t].clone().requires_grad_(True) for t in range(12)]
    h = x.new_zeros(3, 32)
    for step in steps:
        h = model.cell(step, h)
    torch.manual_seed(7)
    direction = torch.randn(h.shape)
    grads = torch.autograd.grad((h * direction).sum(), steps)
    expected = [torch.linalg.vector_norm(g.double()).item() for g in grads]
    assert profile.cell == "GRU" and profile.gated
    assert profile.norms == pytest.approx(expected, rel=1e-5)


def test_a_remembering_lstm_cell_loop_is_healthy() -> None:
    torch.manual_seed(0)
    cell = nn.LSTMCell(6, 32)
    with torch.no_grad():
        cell.bias_hh[32:64].fill_(3.0)  # forget gate starts remembering (Gers et al. 2000)
    report = diagnose(CellLoop(cell), lambda b: torch.randn(b, 60, 6), steps=1)
    (profile,) = report.temporal
    assert profile.cell == "LSTM" and profile.early_to_late is not None
    assert profile.early_to_late > 1e-3
    assert [f.id for f in report.findings if f.severity is not Severity.INFO] == []


class _DetachedEveryStep(nn.Module):
    """A GRU cell unrolled by hand, its state detached every step "to keep memory flat"."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(8, 32)
        self.head = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], 32)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h.detach())
        return self.head(h)


def test_a_hidden_state_detached_in_forward_is_named_a_cut_not_a_decay() -> None:
    torch.manual_seed(0)
    report = diagnose(_DetachedEveryStep(), lambda b: torch.randn(b, 30, 8))
    (finding,) = [f for f in report.findings if f.id == "vanishing-over-time"]
    assert finding.layers == ("cell",) and finding.evidence["cut_step"] == 30
    assert finding.remedies == ()  # no gate bias or truncation brings back a detached state
    assert "a cut in the recurrence" in finding.message and "gate-bias" not in finding.message
    # A gradient that decays into float32's underflow is not a cut (gru_long: 300 steps).
    long = _report("gru_long.py")
    (decay,) = long.findings
    assert "cut_step" not in decay.evidence and "gate-bias" in decay.remedies


def _model_level(report):  # type: ignore[no-untyped-def]
    (profile,) = [p for p in report.temporal if p.cell == "model"]
    return profile


@pytest.mark.slow
def test_a_tcn_that_cannot_see_its_dependency_warns_with_its_receptive_field(
    validate_report,
) -> None:
    # sample_models/tcn_short_rf.py: dilations 1, 2 (7 steps), label 24 steps back; it does not
    # learn, and build_wide (31 steps) does (bench/sequence_truth.md).
    report = _report("tcn_short_rf.py")
    (finding,) = report.findings
    assert finding.id == "vanishing-over-time" and finding.severity is Severity.WARNING
    assert finding.layers == ("convs.0", "convs.1")
    assert finding.evidence["reach_steps"] == 7 and finding.evidence["receptive_field"] == 7
    assert finding.evidence["steps"] == 48 and finding.evidence["cut_step"] == 42
    assert finding.evidence["values_reach"] is False  # not a cut graph: nothing flows from there
    assert "see 7 steps in series" in finding.message and finding.remedies == ()
    profile = _model_level(report)
    assert profile.module == "embed" and profile.method == "loss"
    assert profile.norms[:41] == (0.0,) * 41 and min(profile.norms[41:]) > 0
    validate_report(report.to_dict())
    # Seeing more than half the sequence is information: the task may not need the rest.
    wide = _report("tcn_short_rf.py:build_wide")
    (info,) = wide.findings
    assert info.severity is Severity.INFO and info.evidence["receptive_field"] == 31
    assert info.evidence["reach_steps"] == 31


class _HandWrittenGRU(nn.Module):
    """A GRU cell written with nn.Linear gates in a Python loop, its state detached every
    ``chunk`` steps (truncated BPTT), reading the last state: no nn.GRUCell to profile."""

    def __init__(self, chunk: int | None) -> None:
        super().__init__()
        self.chunk = chunk
        self.embed = nn.Embedding(8, 16)
        self.gates = nn.Linear(16 + 32, 64)
        self.candidate = nn.Linear(16 + 32, 32)
        self.head = nn.Linear(32, 8)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        h = x.new_zeros(x.shape[0], 32)
        for t in range(x.shape[1]):
            if self.chunk and t % self.chunk == 0:
                h = h.detach()  # _DETACH_LINE
            z, r = torch.sigmoid(self.gates(torch.cat([x[:, t], h], -1))).chunk(2, -1)
            n = torch.tanh(self.candidate(torch.cat([x[:, t], r * h], -1)))
            h = (1 - z) * n + z * h
        return self.head(h)


_DETACH_LINE = next(
    i
    for i, line in enumerate(Path(__file__).read_text().splitlines(), 1)
    if line.endswith("h = h.detach()  # _DETACH_LINE")
)


@pytest.mark.slow
def test_a_state_detached_in_a_hand_written_loop_is_a_cut_graph_error() -> None:
    torch.manual_seed(0)
    tokens = lambda b: torch.randint(0, 8, (b, 30))  # noqa: E731
    loss = lambda out, x: nn.functional.cross_entropy(out, x[:, 0])  # noqa: E731
    report = diagnose(_HandWrittenGRU(chunk=10), tokens, loss)
    (finding,) = [f for f in report.findings if f.id == "vanishing-over-time"]
    assert finding.severity is Severity.ERROR and finding.layers == ("embed",)
    # The last chunk (steps 21-30) gets the gradient; the 20 steps before get exactly none,
    # while their values reach the loss through the state.
    assert finding.evidence["cut_step"] == 21 and finding.evidence["reach_steps"] == 10
    assert finding.evidence["values_reach"] is True and "receptive_field" not in finding.evidence
    assert finding.evidence["reason"] == "cut" and finding.evidence["operation"] == ".detach()"
    assert finding.evidence["source"].endswith("test_temporal.py:" + str(_DETACH_LINE))
    assert "the gradient stops at .detach()" in finding.message
    # Without the detach there is no cut, but default gates (near 0.5) forget: a decay, a
    # warning (issue 28: the same cell with default biases cannot learn token 0 of 30+).
    torch.manual_seed(0)
    whole = diagnose(_HandWrittenGRU(chunk=None), tokens, loss)
    profile = _model_level(whole)
    assert profile.cut_at() is None and profile.norms[0] > 0
    (decay,) = [f for f in whole.findings if f.id == "vanishing-over-time"]
    assert decay.severity is Severity.WARNING and "cut_step" not in decay.evidence
    assert decay.evidence["early_to_late"] < 1e-3 and decay.evidence["reach_steps"] < 15


@pytest.mark.slow
def test_a_diagonal_recurrence_at_half_decay_warns_and_near_the_unit_circle_does_not() -> None:
    # sample_models/diagonal_recurrence.py: lambda = 0.5 over 40 tokens, label token 0; does
    # not learn; build_near_unit (lambda in [0.9, 0.999]) does (bench/sequence_truth.md).
    report = _report("diagonal_recurrence.py")
    (finding,) = report.findings
    assert finding.id == "vanishing-over-time" and finding.severity is Severity.WARNING
    assert finding.layers == ("embed",) and finding.remedies == ()
    # 0.5 per step: the first 4 positions get about 0.5^36 = 1.5e-11 of the last 4's gradient.
    assert 1e-12 < finding.evidence["early_to_late"] < 1e-10
    assert 8 <= finding.evidence["reach_steps"] <= 14  # 0.5^10 = 1e-3
    near = _report("diagonal_recurrence.py:build_near_unit")
    assert near.findings == ()
    assert _model_level(near).reach() == 40


def test_the_model_level_profile_defers_to_a_recurrent_modules_own() -> None:
    # gru_first_token: an embedding and an nn.GRU. Both profiles are measured and agree; only the
    # module's (which says more: per layer, the gated policy) is judged.
    report = _report("gru_first_token.py")
    (finding,) = report.findings
    assert finding.layers == ("gru",) and finding.severity is Severity.WARNING
    model, module = report.temporal  # the whole model's first, then each module's
    assert (module.method, model.method, model.cell) == ("last step", "loss", "model")
    assert module.reach() == model.reach()
    fake = TemporalProfile("embed", "model", False, "loss", tuple([1e-9] * 60 + [1.0] * 40))
    (alone,) = run_checks(ModelStats((), (), 1, temporal=(fake,)))
    assert alone.severity is Severity.WARNING and alone.evidence["reach_steps"] == 40
    # A decay that still reaches back more than half the sequence is not judged.
    most = TemporalProfile("embed", "model", False, "loss", tuple([1e-9] * 10 + [1.0] * 90))
    assert run_checks(ModelStats((), (), 1, temporal=(most,))) == []
    rnn = TemporalProfile("gru", "GRU", True, "last step", tuple([1.0] * 100))
    assert run_checks(ModelStats((), (), 1, temporal=(rnn, fake))) == []


_FLOAT_TBPTT = '''
import torch, torch.nn.functional as F
from torch import nn
{axis}

class Net(nn.Module):
    """A tanh RNN written by hand over one-hot floats, its state detached every 10 steps."""

    def __init__(self):
        super().__init__()
        self.inp, self.rec, self.head = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 8)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], 32)
        for t in range(x.shape[1]):
            if t % 10 == 0:
                h = h.detach()
            h = torch.tanh(self.inp(x[:, t]) + self.rec(h))
        return self.head(h)

def build_model():
    return Net()

def example_inputs(b):
    return F.one_hot(torch.randint(0, 8, (b, 30)), 8).float()

def loss_fn(out, x):
    return F.cross_entropy(out, x[:, 0].argmax(1))
'''


def test_float_sequences_are_profiled_along_the_axis_the_model_file_or_flag_names(
    tmp_path, validate_report
) -> None:
    import yaml

    runner = CliRunner()
    named = tmp_path / "named.py"
    named.write_text(_FLOAT_TBPTT.format(axis="time_axis = 1"))
    report = tmp_path / "r.yaml"
    result = runner.invoke(main, ["diagnose", str(named), "--report", str(report), "-q"])
    assert result.exit_code == 1, result.output  # a cut graph fails CI
    data = yaml.safe_load(report.read_text())
    validate_report(data)
    (profile,) = data["temporal"]
    assert profile["module"] == "(input)" and profile["cell"] == "model" and profile["axis"] == 1
    (finding,) = [f for f in data["findings"] if f["id"] == "vanishing-over-time"]
    assert finding["severity"] == "error" and finding["evidence"]["values_reach"] is True
    assert finding["evidence"]["cut_step"] == 21
    assert "the input (30 positions along axis 1)" in finding["message"]
    assert finding["evidence"]["operation"] == ".detach()"
    # fix cannot rewrite code: it says which line to change, and changes nothing.
    fixed = runner.invoke(main, ["fix", str(named), "--format", "json", "-q"])
    assert fixed.exit_code == 1, fixed.output
    message = json.loads(fixed.stdout)["message"]
    assert message.startswith("needs a code change: the gradient through time stops at .detach()")
    assert "named.py:17) before step 21 of 30" in message  # the line of h.detach()
    # Without a time axis a float sequence is not profiled; --time-axis names one.
    plain = tmp_path / "plain.py"
    plain.write_text(_FLOAT_TBPTT.format(axis=""))
    result = runner.invoke(main, ["diagnose", str(plain), "--report", str(report), "-q"])
    assert result.exit_code == 0 and "temporal" not in yaml.safe_load(report.read_text())
    flagged = runner.invoke(
        main, ["diagnose", str(plain), "--time-axis", "1", "--report", str(report), "-q"]
    )
    assert flagged.exit_code == 1 and yaml.safe_load(report.read_text())["temporal"][0]["axis"] == 1
    # Bad values: one line, exit 2.
    bad = runner.invoke(main, ["diagnose", str(plain), "--time-axis", "9"])
    assert bad.exit_code == 2 and "time-axis must be an input axis from 0 to 7" in bad.output
    wrong = tmp_path / "wrong.py"
    wrong.write_text(_FLOAT_TBPTT.format(axis="time_axis = 'T'"))
    bad = runner.invoke(main, ["diagnose", str(wrong)])
    assert bad.exit_code == 2 and "time_axis must be an integer" in bad.output
    assert "Traceback" not in bad.output


class _LinearRecurrence(nn.Module):
    """h = decay * h + W x over tokens, a Python loop; the last state is classified."""

    def __init__(self, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.embed = nn.Embedding(8, 32)
        self.inp = nn.Linear(32, 32)
        self.head = nn.Linear(32, 8)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        u = self.inp(self.embed(tokens))
        h = torch.zeros_like(u[:, 0])
        for t in range(u.shape[1]):
            h = self.decay * h + u[:, t]
        return self.head(h / h.detach().norm(dim=-1, keepdim=True).clamp_min(1e-6))


@pytest.mark.slow
def test_growth_back_in_time_of_the_whole_model_is_exploding_and_a_remedy_causing_it_is_worse() -> (
    None
):
    from gradcheck_cli.remedies.verdict import Verdict, judge

    tokens = lambda b: torch.randint(0, 8, (b, 40))  # noqa: E731
    loss = lambda out, x: nn.functional.cross_entropy(out, x[:, 0])  # noqa: E731
    torch.manual_seed(0)
    before = diagnose(_LinearRecurrence(0.5), tokens, loss, learn=0)
    assert [(f.id, f.severity) for f in before.findings] == [
        ("vanishing-over-time", Severity.WARNING)
    ]
    torch.manual_seed(0)
    after = diagnose(_LinearRecurrence(1.3), tokens, loss, learn=0)  # 1.3^36 = 1.3e4 back in time
    (finding,) = [f for f in after.findings if f.id == "exploding"]
    assert finding.evidence["rule"] == "over-time" and finding.layers == ("embed",)
    assert finding.severity is Severity.WARNING
    assert 5e3 < finding.evidence["early_to_late"] < 5e4
    assert finding.evidence["threshold"] == 1e2 * 40  # scaled by the sequence length
    # A remedy that turns the decay into growth is made worse, never healthy or resolved.
    assert judge(before, after, ["vanishing-over-time"]) is Verdict.WORSE
    # The state is normalised before the head, so the growth does not stop it learning the first
    # token: by default the learning probe runs, finds it learns, and leaves the growth an info.
    torch.manual_seed(0)
    probed = diagnose(_LinearRecurrence(1.3), tokens, loss)
    (finding,) = [f for f in probed.findings if f.id == "exploding"]
    assert finding.severity is Severity.INFO and probed.learning is not None
    assert probed.learning.verdict == "learns"


class _SelectiveScan(nn.Module):
    """A Mamba-style selective scan written as a loop: input-dependent step sizes
    dt = softplus(W x + b), decay exp(-dt * A) per channel and state, h = decay * h + dt * B x.
    With b = 2 (dt about 2) and A >= 1 the state forgets within a few steps; with Mamba's
    default step-size init (dt in [1e-3, 1e-1]) it keeps most of its past."""

    def __init__(self, dt_bias: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(8, 16)
        self.dt = nn.Linear(16, 16)
        self.B = nn.Linear(16, 16, bias=False)
        self.A = nn.Parameter(torch.arange(1, 5, dtype=torch.float).repeat(16, 1))  # (16, 4)
        self.head = nn.Linear(16 * 4, 8)
        with torch.no_grad():
            self.dt.bias.fill_(dt_bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        h = x.new_zeros(x.shape[0], 16, 4)
        for t in range(x.shape[1]):
            dt = nn.functional.softplus(self.dt(x[:, t]))[..., None]  # (B, 16, 1)
            h = torch.exp(-dt * self.A) * h + dt * self.B(x[:, t])[..., None]
        return self.head(h.flatten(1))


def test_a_selective_scan_that_forgets_warns_and_one_with_mambas_step_sizes_does_not() -> None:
    tokens = lambda b: torch.randint(0, 8, (b, 40))  # noqa: E731
    loss = lambda out, x: nn.functional.cross_entropy(out, x[:, 0])  # noqa: E731
    torch.manual_seed(0)
    fast = diagnose(_SelectiveScan(dt_bias=2.0), tokens, loss, learn=0)
    (finding,) = [f for f in fast.findings if f.id == "vanishing-over-time"]
    assert finding.severity is Severity.WARNING and finding.layers == ("embed",)
    assert finding.evidence["early_to_late"] < 1e-10 and finding.evidence["reach_steps"] < 10
    torch.manual_seed(0)
    slow = diagnose(_SelectiveScan(dt_bias=math.log(math.expm1(0.01))), tokens, loss, learn=0)
    assert [f for f in slow.findings if f.id == "vanishing-over-time"] == []
    assert _model_level(slow).reach() == 40


class _TanhCellLoop(nn.Module):
    """A vanilla tanh cell written by hand, stepped over 30 tokens; the label is the first."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(8, 32)
        self.ih = nn.Linear(32, 32)
        self.hh = nn.Linear(32, 32)
        self.head = nn.Linear(32, 8)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        h = torch.zeros(x.shape[0], 32)
        for t in range(x.shape[1]):
            h = torch.tanh(self.ih(x[:, t]) + self.hh(h))
        return self.head(h)


@pytest.mark.slow
def test_batchnorm_inside_a_hand_written_loop_clears_the_profile_but_fix_does_not_call_it_cured() -> (
    None
):
    from gradcheck_cli.api import fix
    from gradcheck_cli.remedies.verdict import Verdict

    tokens = lambda b: torch.randint(0, 8, (b, 30))  # noqa: E731
    loss = lambda out, x: nn.functional.cross_entropy(out, x[:, 0])  # noqa: E731
    torch.manual_seed(0)
    result = fix(_TanhCellLoop(), tokens, loss, remedies=["batchnorm"])
    # The profile reaches 10 of 30 positions; a BatchNorm after each Linear of the cell (so at
    # every step) lets the gradient reach all 30 at init: the diagnosis clears...
    assert {f.id: f.severity for f in result.before.findings} == {
        "vanishing-over-time": Severity.WARNING,
        "not-learning": Severity.WARNING,
    }
    (trial,) = result.trials
    (profile,) = trial.report.temporal
    assert profile.reach() == 30 and "vanishing-over-time" not in {
        f.id for f in trial.report.findings
    }
    # ...but the copy still does not learn the first token: never healthy, never resolved.
    assert trial.report.learning is not None and trial.report.learning.verdict == "not-learning"
    assert result.after.status.value == "warning" and trial.verdict is Verdict.IMPROVED
    assert "not a cure" in result.message
