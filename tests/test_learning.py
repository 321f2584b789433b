"""The learning probe (--learn N): does the model learn its own task, judged on held-out batches
against an input-blind floor; what it does to the other findings."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from gradcheck_cli import diagnose
from gradcheck_cli.cli import main
from gradcheck_cli.findings import ExitCode, Severity
from gradcheck_cli.loading import load_model

from .conftest import SAMPLES


def _report(spec: str, **options: object):  # type: ignore[no-untyped-def]
    loaded = load_model(str(SAMPLES / spec))
    return diagnose(loaded.module, loaded.example_inputs, loaded.loss_fn, **options)


@pytest.mark.slow
def test_a_warning_the_model_trains_through_is_refuted_with_the_evidence(validate_report) -> None:
    # gru_recent_token: the GRU of gru_first_token on a task needing 4 steps of memory; it warns
    # at initialisation (reach 16 of 60) and learns (bench/sequence_truth.md).
    before = _report("gru_recent_token.py", learn=0)  # the diagnosis alone
    (warned,) = before.findings
    assert warned.id == "vanishing-over-time" and warned.severity is Severity.WARNING
    report = _report("gru_recent_token.py", learn=200)
    probe = report.learning
    assert probe is not None and probe.verdict == "learns" and probe.taken == 200
    assert probe.blind is not None and probe.end < probe.blind - 0.1  # measured 1.60 vs 2.34
    assert probe.start > 2.0  # ln 8 = 2.08 at initialisation
    (finding,) = report.findings
    assert finding.id == "vanishing-over-time" and finding.severity is Severity.INFO
    assert "trains anyway, by the learning probe: held-out loss" in finding.message
    assert finding.evidence["probe_steps"] == 200
    assert finding.evidence["probe_heldout_end"] == pytest.approx(probe.end)
    data = report.to_dict()
    validate_report(data)
    assert data["learning"]["verdict"] == "learns" and data["learning"]["steps_taken"] == 200


@pytest.mark.slow
def test_without_learn_the_probe_runs_only_to_test_a_finding_it_could_refute() -> None:
    # gru_recent_token warns at initialisation; the probe runs by itself and refutes it.
    report = _report("gru_recent_token.py")
    assert report.learning is not None and not report.learning.asked
    assert report.learning.verdict == "learns"
    assert [(f.id, f.severity) for f in report.findings] == [("vanishing-over-time", Severity.INFO)]
    # gru_first_token warns too and does not learn: the warning stays, says the probe agrees,
    # and the probe adds no finding of its own.
    first = _report("gru_first_token.py")
    (finding,) = first.findings
    assert finding.severity is Severity.WARNING
    assert "the learning probe agrees: the model does not learn its task" in finding.message
    assert first.learning is not None and first.learning.verdict == "not-learning"
    # A healthy model is not probed; learn=0 never probes.
    assert _report("tcn_short_rf.py:build_wide").learning is None
    off = _report("gru_recent_token.py", learn=0)
    assert off.learning is None and off.findings[0].severity is Severity.WARNING
    # Random labels (no loss_fn): the probe finds nothing to learn and stays out of the report.
    assert _report("vanilla_rnn.py").learning is None


@pytest.mark.slow
def test_a_model_that_cannot_learn_its_task_keeps_its_warning_and_gets_not_learning() -> None:
    report = _report("gru_first_token.py", learn=200)
    probe = report.learning
    assert probe is not None and probe.verdict == "not-learning"
    # Held-out loss stays at chance (ln 8 = 2.08), level with the input-blind floor.
    assert probe.blind is not None and abs(probe.end - 2.08) < 0.05
    assert probe.end > probe.blind - 0.1
    ids = {(f.id, f.severity) for f in report.findings}
    assert ids == {
        ("vanishing-over-time", Severity.WARNING),
        ("not-learning", Severity.WARNING),
    }


def test_a_probe_cut_short_by_its_time_budget_never_says_not_learning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gradcheck_cli.pipeline as pipeline

    # The budget spent before the first step is done: one step taken, nothing learned yet. That
    # is no verdict (on a slower machine the same probe must not say "not-learning").
    monkeypatch.setattr(pipeline, "LEARN_BUDGET", 0.0)
    report = _report("gru_first_token.py", learn=200)
    probe = report.learning
    assert probe is not None and probe.verdict == "undecided" and probe.taken == 1
    assert probe.reason.startswith("cut short by the time budget (0 s) after 1 of 200 steps")
    assert {(f.id, f.severity) for f in report.findings} == {
        ("vanishing-over-time", Severity.WARNING)
    }


class _Backbone(nn.Module):
    """An encoder whose output a metric-style loss reads, with a head it never trains."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_no_floor_means_no_training_spent_and_no_verdict() -> None:
    torch.manual_seed(0)
    model = _Backbone()
    # Random labels drawn inside the loss: nothing to learn from the inputs.
    random = diagnose(
        model,
        lambda b: torch.randn(b, 8),
        lambda out, x: nn.functional.cross_entropy(out, torch.randint(0, 4, (x.shape[0],))),
        learn=50,
    )
    assert random.learning is not None and random.learning.verdict == "undecided"
    assert random.learning.taken == 0 and "random targets" in random.learning.reason
    # A loss of the outputs alone (no targets): shifting rows changes nothing.
    alone = diagnose(model, lambda b: torch.randn(b, 8), lambda out, x: out.pow(2).mean(), learn=50)
    assert alone.learning is not None and alone.learning.verdict == "undecided"
    # A learnable task: the sign pattern of the first 4 inputs.
    task = diagnose(
        model,
        lambda b: torch.randn(b, 8),
        lambda out, x: nn.functional.cross_entropy(out, (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0)),
        learn=150,
    )
    assert task.learning is not None and task.learning.verdict == "learns"


class _Forgetful(nn.Module):
    """Reads its input scaled by 1e-4 at init (a state that all but forgot the token setting
    the target): outputs that differ between examples, by less than moves the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1e-4))
        self.head = nn.Linear(8, 4)
        with torch.no_grad():  # unequal class scores, or the loss ignores the targets at init
            self.head.bias.copy_(torch.tensor([0.3, -0.2, 0.1, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x * self.scale)


def test_outputs_nearly_alike_at_init_are_still_probed_when_the_loss_reads_targets() -> None:
    # Shifting rows of near-identical outputs leaves the loss unchanged, as a loss that reads no
    # targets does; scored against another batch, this one's changes: it reads targets, and the
    # probe trains (it had once been left undecided with no step taken) and judges it: its
    # scale grows slowly, so in 150 steps the held-out loss falls (1.40 -> 1.36) but stays
    # within a quarter of the input-blind floor (1.39): a verdict, not-learning yet.
    torch.manual_seed(0)
    report = diagnose(
        _Forgetful(),
        lambda b: torch.randn(b, 8),
        lambda out, x: nn.functional.cross_entropy(out, (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0)),
        learn=150,
    )
    probe = report.learning
    assert probe is not None and probe.taken == 150 and probe.blind is not None
    assert probe.verdict == "not-learning"
    assert probe.end < probe.start - 0.02 and probe.end > 0.75 * probe.blind


def test_diverging_training_is_a_warning_with_remedies() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
    report = diagnose(
        model,
        lambda b: torch.randn(b, 8) * 10,
        lambda out, x: (out.squeeze(1) - x.sum(1) ** 2).pow(2).mean(),
        learn=50,
        optimizer="sgd",
        lr=1.0,
        momentum=0.9,
    )
    assert report.learning is not None and report.learning.verdict == "diverging"
    (finding,) = [f for f in report.findings if f.id == "diverging"]
    assert finding.severity is Severity.WARNING and finding.remedies == ("lower-lr", "grad-clip")
    assert finding.evidence["optimizer"] == "sgd" and finding.evidence["lr"] == 1.0


def test_the_probe_leaves_the_model_exactly_as_it_was_found() -> None:
    loaded = load_model(str(SAMPLES / "gru_recent_token.py"))
    model = loaded.module
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    diagnose(model, loaded.example_inputs, loaded.loss_fn, learn=20)
    assert not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learn", "-1"], "learn must be 0 or a positive integer"),
        (["--learn", "10", "--momentum", "1.5", "--optimizer", "sgd"], "momentum must be"),
        (["--learn", "10", "--momentum", "0.9"], "momentum applies to --optimizer sgd"),
        (
            ["--learn", "10", "--optimizer", "rmsprop"],
            "'rmsprop' is not one of 'sgd', 'adam', 'adamw'",
        ),
        (["--learn", "10", "--lr", "-1"], "lr must be a positive finite number"),
        (["--learn", "10", "--train-steps", "5"], "use one of them"),
    ],
)
def test_bad_probe_settings_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["diagnose", str(SAMPLES / "gru_recent_token.py"), *args])
    assert result.exit_code == ExitCode.USAGE_ERROR, result.output
    assert message in result.output and "Traceback" not in result.output


def test_the_cli_prints_the_probe_and_its_cost_and_writes_it_to_json(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["diagnose", str(SAMPLES / "gru_first_token.py"), "--learn", "30"])
    assert result.exit_code == ExitCode.OK, result.output  # warnings only
    header = " ".join(result.output.split())
    assert "learn not-learning: held-out loss" in header and "30 adam steps at lr 0.001" in header
    out = tmp_path / "r.json"
    runner.invoke(
        main,
        ["diagnose", str(SAMPLES / "gru_first_token.py"), "--learn", "30", "--report", str(out)],
    )
    data = json.loads(out.read_text())
    assert data["learning"]["requested_steps"] == 30 and data["learning"]["seconds"] > 0
