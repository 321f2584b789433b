"""``fix`` end to end: the API's choices and guarantees, the CLI, the saved folder, a fresh reload."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from gradcheck_cli.api import diagnose, fix
from gradcheck_cli.cli import main
from gradcheck_cli.fix_result import FixResult, Trial
from gradcheck_cli.fixing import best, combinations
from gradcheck_cli.loading import LoadedModel, load_model
from gradcheck_cli.remedies.plan import Plan, apply_plan
from gradcheck_cli.remedies.verdict import Verdict
from gradcheck_cli.seeding import seeded

from .conftest import SAMPLES, run_in_new_process


def _built(spec: str) -> LoadedModel:
    """The model ``spec`` names, built as `gradcheck fix` builds it (--seed 0): its weights do
    not depend on what ran before in this process."""
    with seeded(0):
        return load_model(spec)


PATHOLOGICAL = {
    # sample: (the error finding it must lose, the remedy gradcheck should pick)
    "deep_sigmoid.py": ("vanishing", "relu-swap"),
    "relu_default_init.py": ("vanishing", "kaiming-init"),
    # Both He-scaled inits cure the diagnosis of this 50-layer ReLU stack without norms; the
    # 20-step one-batch tie-break between them is chaotic and flips with the BLAS/ATen code
    # path (default: kaiming-init; MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default: kaiming
    # 2.45 -> 4.81, gain-init 2.62 -> 1.02, so gain-init), so either is a right answer.
    "deep_relu_xavier.py": ("vanishing", "kaiming-init|gain-init"),
    "exploding_init.py": ("exploding", "kaiming-init"),
    "dead_relu.py": ("dead-units", "kaiming-init"),
    "saturated_tanh.py": ("saturation", "xavier-init"),
}


def _fix(sample: str, **kw: object):
    loaded = load_model(str(SAMPLES / sample))
    return loaded, fix(
        loaded.module, loaded.example_inputs, loaded.loss_fn, source=str(SAMPLES / sample), **kw
    )


@pytest.mark.parametrize("sample", list(PATHOLOGICAL))
@pytest.mark.slow
def test_fix_picks_a_measured_cure(sample: str) -> None:
    finding, remedies = PATHOLOGICAL[sample]
    loaded, result = _fix(sample)
    assert result.chosen is not None and len(result.chosen.remedies) == 1
    (remedy,) = result.chosen.remedies
    assert remedy in remedies.split("|")
    assert finding in {f.id for f in result.before.findings}
    assert result.after.status.value == "healthy"
    by_id = {o.remedy: o for o in result.outcomes}
    assert by_id[remedy].verdict is Verdict.RESOLVED
    x = torch.randn(4, 64)
    assert result.model(x).shape == loaded.module(x).shape  # input and output shapes unchanged


@pytest.mark.slow
def test_fix_reports_remedies_that_make_things_worse() -> None:
    _, result = _fix("relu_default_init.py")
    residual = next(o for o in result.outcomes if o.remedy == "residual-wrap")
    assert residual.verdict is Verdict.WORSE  # summing unnormalised ReLU blocks explodes
    assert "residual-wrap" not in result.chosen.remedies  # type: ignore[union-attr]


@pytest.mark.slow
def test_fix_never_modifies_the_original() -> None:
    loaded = load_model(str(SAMPLES / "deep_sigmoid.py"))
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    types = [type(m) for m in loaded.module.modules()]
    result = fix(loaded.module)
    assert result.model is not loaded.module
    assert [type(m) for m in loaded.module.modules()] == types
    assert all(torch.equal(before[k], v) for k, v in loaded.module.state_dict().items())


def test_healthy_model_is_returned_unchanged() -> None:
    loaded, result = _fix("mlp_he.py")
    assert result.model is loaded.module and result.chosen is None and result.trials == ()
    assert "nothing needed fixing" in result.message


def test_unfixable_nan_is_returned_unchanged_with_verdicts() -> None:
    loaded, result = _fix("nan_model.py")
    assert result.chosen is None and result.model is loaded.module
    verdicts = {o.remedy: o.verdict for o in result.outcomes}
    # residual-scale and sine-init are tried beside kaiming-init and find no residual branch to
    # scale and no sine.
    assert verdicts.pop("residual-scale") is Verdict.NOT_APPLICABLE
    assert verdicts.pop("sine-init") is Verdict.NOT_APPLICABLE
    assert set(verdicts.values()) == {Verdict.NO_EFFECT}
    assert "returned unchanged" in result.message


def test_requested_remedy_that_cannot_apply_is_skipped_not_crashed() -> None:
    _, result = _fix("relu_default_init.py", remedies=["relu-swap"])
    (outcome,) = result.outcomes
    assert (
        outcome.verdict is Verdict.NOT_APPLICABLE and "no saturating activation" in outcome.reason
    )
    assert result.chosen is None


def test_combinations_skip_conflicts_and_respect_the_budget() -> None:
    combos = combinations(["xavier-init", "grad-clip", "relu-swap", "kaiming-init"], budget=10)
    assert ("relu-swap", "kaiming-init") in combos  # application order, not request order
    assert all(not {"kaiming-init", "xavier-init"} <= set(c) for c in combos)
    assert all(not {"relu-swap", "xavier-init"} <= set(c) for c in combos)
    assert combinations(["relu-swap", "batchnorm", "grad-clip"], budget=2) == [
        ("relu-swap", "batchnorm"),
        ("relu-swap", "grad-clip"),
    ]
    # Scored alone (EfficientNet-B2 without BatchNorm: relu-swap and kaiming-init made it
    # worse, batchnorm left one warning), the pairs of the best come first; ties keep the
    # application order.
    alone = {"relu-swap": 100, "kaiming-init": 200, "residual-scale": 100, "batchnorm": 10}
    assert combinations(list(alone), budget=4, scores=alone) == [
        ("relu-swap", "batchnorm"),
        ("residual-scale", "batchnorm"),
        ("relu-swap", "residual-scale"),
        ("kaiming-init", "batchnorm"),
    ]


def test_best_prefers_score_then_fewer_remedies_then_causes_over_clipping() -> None:
    from gradcheck_cli.findings import Finding, ModelInfo, Report, RunInfo, Severity

    def report(*severities: Severity) -> Report:
        findings = tuple(Finding("exploding", s, (), "", {}) for s in severities)
        return Report(
            ModelInfo("m", "M", 1, 1), RunInfo(1, 1, "cpu", "mse", 0, 0.0, "x", "t"), findings, ()
        )

    def trial(remedies: tuple[str, ...], rep: Report, verdict: Verdict = Verdict.IMPROVED) -> Trial:
        return Trial(remedies, Plan(()), rep, verdict)

    before = report(Severity.ERROR)
    clip, init = trial(("grad-clip",), report()), trial(("kaiming-init",), report())
    pair = trial(("kaiming-init", "batchnorm"), report())
    warn = trial(("batchnorm",), report(Severity.WARNING))
    assert best([clip, pair, warn, init], before) is init
    assert best([warn], before) is warn
    assert best([trial(("batchnorm",), report(Severity.ERROR), Verdict.NO_EFFECT)], before) is None
    assert best([trial(("x",), report(), Verdict.WORSE)], before) is None


@pytest.mark.slow
def test_probe_steps_train_both_models_on_the_same_batches() -> None:
    _, result = _fix("deep_sigmoid.py", probe_steps=5)
    assert set(result.probe_losses) == {"original", "fixed"}
    assert all(len(v) == 5 for v in result.probe_losses.values())


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_cli_fix_writes_the_folder_and_it_reloads_in_a_new_process(
    tmp_path: Path, validate_report
) -> None:
    out = tmp_path / "fixed"
    result = run("fix", str(SAMPLES / "deep_sigmoid.py"), "--output", str(out), "--format", "json")
    assert result.exit_code == 0, result.stderr  # judged on the saved, fixed model
    data = json.loads(result.stdout)
    assert data["chosen"] == ["relu-swap"] and data["before"]["status"] == "error"
    assert data["after"]["status"] == "healthy"
    assert sorted(p.name for p in out.iterdir()) == [
        "model.pt",
        "plan.yaml",
        "report.yaml",
        "state_dict.pt",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["fixed"]  # no staging folder left
    from gradcheck_cli.atomic import ordinary_mode

    assert out.stat().st_mode & 0o777 == ordinary_mode(folder=True)  # not mkdtemp's private mode
    saved = yaml.safe_load((out / "report.yaml").read_text())
    validate_report(saved["before"])
    validate_report(saved["after"])
    assert saved["remedies"][0] == {
        "remedy": "relu-swap",
        "verdict": "resolved",
        "reason": "",
        "notes": [],
        "edits": 20,
    }

    check = run_in_new_process(
        "diagnose",
        str(out / "model.pt"),
        "--trust-pickle",
        "--format",
        "yaml",
        cwd=tmp_path,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    fresh = yaml.safe_load(check.stdout)
    assert fresh["status"] == "healthy"
    assert sum(l["type"] == "ReLU" for l in fresh["layers"]) == 10

    # Adopting the fix without pickles: the user's own code + plan.yaml + state_dict.pt.
    loaded = load_model(str(SAMPLES / "deep_sigmoid.py"))
    model = apply_plan(loaded.module, Plan.load(out / "plan.yaml"))
    model.load_state_dict(torch.load(out / "state_dict.pt", weights_only=True))
    reloaded = torch.load(out / "model.pt", weights_only=False)
    x = torch.randn(3, 64)
    assert torch.allclose(model.eval()(x), reloaded.eval()(x))
    via_flags = run(
        "diagnose",
        str(SAMPLES / "deep_sigmoid.py"),
        "--plan",
        str(out / "plan.yaml"),
        "--weights",
        str(out / "state_dict.pt"),
        "--format",
        "yaml",
    )
    assert via_flags.exit_code == 0 and yaml.safe_load(via_flags.stdout)["status"] == "healthy"


def test_cli_fix_refuses_a_non_empty_output_and_writes_nothing_on_failure(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    result = run("fix", str(SAMPLES / "deep_sigmoid.py"), "--output", str(busy))
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert (busy / "keep.txt").read_text() == "mine"
    broken = tmp_path / "broken.py"
    broken.write_text("def build_model(:\n")
    failed = run("fix", str(broken), "--output", str(tmp_path / "new"))
    assert failed.exit_code == 2 and not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.py", "busy"]


@pytest.mark.slow
def test_cli_fix_rich_output_shows_verdicts_tables_and_trees() -> None:
    result = run("fix", str(SAMPLES / "saturated_tanh.py"), "--probe-steps", "3")
    assert result.exit_code == 1  # nothing saved: judged on the original
    out = result.stdout
    for text in (
        "gradcheck fix",
        "xavier-init (applied)",
        "resolved",
        "Findings before and after",
        "saturation",
        "model before",
        "model after",
        "Training probe",
        "0: Linear  [edited]",
        "0: Linear  [re-initialised]",
    ):
        assert text in out, text


def test_cli_fix_healthy_and_unknown_remedy() -> None:
    healthy = run("fix", str(SAMPLES / "mlp_he.py"), "--format", "yaml")
    assert (
        healthy.exit_code == 0
        and "nothing needed fixing" in yaml.safe_load(healthy.stdout)["message"]
    )
    bad = run("fix", str(SAMPLES / "mlp_he.py"), "--remedy", "magic")
    assert bad.exit_code == 2 and "Invalid value" in bad.stderr


def test_remedies_command_lists_every_remedy() -> None:
    result = run("remedies")
    assert result.exit_code == 0
    for remedy in (
        "relu-swap",
        "kaiming-init",
        "xavier-init",
        "residual-wrap",
        "batchnorm",
        "grad-clip",
    ):
        assert f"{remedy} (applied by fix)" in result.stdout
    assert "lower-lr (advice only)" in result.stdout


def test_change_marks_follow_renames() -> None:
    from gradcheck_cli.remedies.edits import Edit
    from gradcheck_cli.report.fix_rich import change_marks

    plan = Plan(
        (
            Edit("replace-activation", "1", {"module": "ReLU"}),
            Edit("init", "0", {"scheme": "kaiming_normal"}),
            Edit("insert-norm", "2", {"norm": "BatchNorm1d", "features": 8}),
            Edit("residual-group", "", {"groups": [[2, 4]]}),
        )
    )
    assert change_marks(plan) == {
        "1": "replaced",
        "0": "re-initialised",
        "2.body.0": "new",
        "2.body.0.1": "new",
        "2": "new",
        "2.body": "new",
    }


@pytest.mark.parametrize("sample", list(PATHOLOGICAL))
@pytest.mark.slow
def test_saved_fix_of_every_pathology_is_healthy_in_a_fresh_process(
    sample: str, tmp_path: Path
) -> None:
    finding, _ = PATHOLOGICAL[sample]
    out = tmp_path / "out"
    saved = run("fix", str(SAMPLES / sample), "--output", str(out), "--format", "yaml", "-q")
    assert saved.exit_code == 0, saved.stderr
    check = run_in_new_process(
        "diagnose",
        str(out / "model.pt"),
        "--trust-pickle",
        "--format",
        "json",
        cwd=tmp_path,
        timeout=120,
    )
    fresh = json.loads(check.stdout)
    assert finding not in {f["id"] for f in fresh["findings"] if f["severity"] == "error"}
    assert check.returncode == 0, [f["message"] for f in fresh["findings"]]
    original = load_model(str(SAMPLES / sample)).module
    reloaded = torch.load(out / "model.pt", weights_only=False)
    x = torch.randn(2, 64)
    assert reloaded(x).shape == original(x).shape


def test_memory_note_only_when_copies_may_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradcheck_cli.fix_result as fix_module

    model = torch.nn.Linear(1000, 1000)  # 4 MB of weights
    monkeypatch.setattr(fix_module, "_free_bytes", lambda device: 10 * 2**30)
    assert fix_module.memory_note(model, torch.device("cpu")) == ""
    monkeypatch.setattr(fix_module, "_free_bytes", lambda device: 8 * 2**20)
    note = fix_module.memory_note(model, torch.device("cpu"))
    assert note.startswith("memory is short") and "4 MiB" in note


@pytest.mark.slow
def test_cli_fix_after_weights_refuses_to_reinitialise(tmp_path: Path) -> None:
    weights = tmp_path / "trained.pt"
    torch.save(load_model(str(SAMPLES / "relu_default_init.py")).module.state_dict(), weights)
    spec = str(SAMPLES / "relu_default_init.py")
    refused = yaml.safe_load(
        run("fix", spec, "--weights", str(weights), "--format", "yaml", "-q").stdout
    )
    kaiming = next(r for r in refused["remedies"] if r["remedy"] == "kaiming-init")
    assert kaiming["verdict"] == "not applicable" and "--force-reinit" in kaiming["reason"]
    forced = yaml.safe_load(
        run(
            "fix", spec, "--weights", str(weights), "--force-reinit", "--format", "yaml", "-q"
        ).stdout
    )
    assert forced["chosen"] == ["kaiming-init"]


class ReadsItsConv(torch.nn.Module):
    """Hugging Face's MobileNetV2 reads ``self.conv.stride`` in forward: wrapping the conv in
    ``Sequential(conv, BatchNorm)`` breaks it. A deep plain-conv stack that vanishes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.body = torch.nn.Sequential(
            *[
                m
                for _ in range(12)
                for m in (torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Sigmoid())
            ]
        )
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.body[0].stride == (1, 1)  # an attribute a wrapper does not have
        return self.head(self.body(self.conv(x)).mean((2, 3)))


def test_a_remedy_whose_rewrite_breaks_forward_is_not_applicable_and_the_rest_go_on() -> None:
    torch.manual_seed(0)
    result = fix(
        ReadsItsConv(), lambda b: torch.randn(b, 3, 8, 8), remedies=["batchnorm", "relu-swap"]
    )
    outcomes = {o.remedy: o for o in result.outcomes}
    assert outcomes["batchnorm"].verdict.value == "not applicable"
    assert outcomes["batchnorm"].reason.startswith("the rewritten model does not run:")
    assert "stride" in outcomes["batchnorm"].reason
    assert outcomes["relu-swap"].verdict.value in ("resolved", "improved")
    assert result.chosen is not None and result.chosen.remedies == ("relu-swap",)


def test_gate_bias_clears_the_lstm_classifiers_finding_without_a_signal_warning() -> None:
    """Chrono init holds the input gates nearly shut: the state reaching the head starts at
    RMS 6e-3, small by design. The signal rule leaves heads fed by a recurrent module alone."""
    from gradcheck_cli.loading import load_model

    loaded = load_model(
        str(Path(__file__).resolve().parent.parent / "sample_models" / "lstm_classifier.py")
    )
    result = fix(loaded.module, loaded.example_inputs, loaded.loss_fn, remedies=["gate-bias"])
    (outcome,) = result.outcomes
    assert outcome.verdict.value == "resolved"
    assert [f.id for f in result.after.findings if f.severity.rank >= 1] == []


def test_init_normal_draws_gain_init_from_a_gaussian_not_orthogonal(tmp_path: Path) -> None:
    # The default (auto) is orthogonal for a deep linear stack (tests/test_fix_wild.py).
    result = CliRunner().invoke(
        main,
        ["fix", str(SAMPLES / "deep_linear.py"), "--init", "normal", "--output",
         str(tmp_path / "out"), "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chosen"] == ["gain-init"]
    plan = yaml.safe_load((tmp_path / "out" / "plan.yaml").read_text(encoding="utf-8"))
    assert len(plan["edits"]) == 60
    assert {(e["op"], e["args"]["scheme"], e["args"]["nonlinearity"]) for e in plan["edits"]} == {
        ("init", "kaiming_normal", "linear")
    }
    # N(0, 1/fan_in) at fan-in 32: each weight matrix's std is 1/sqrt(32) within sampling noise.
    saved = torch.load(tmp_path / "out" / "state_dict.pt", weights_only=True)
    assert saved["layers.0.weight"].std().item() == pytest.approx(32**-0.5, rel=0.1)


@pytest.mark.parametrize(("mode", "factor"), [("scale", 50**-0.5), ("zero", 0.0)])
@pytest.mark.slow
def test_branch_init_sets_what_residual_scale_multiplies_each_branch_by(
    mode: str, factor: float, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main,
        ["fix", str(SAMPLES / "resnet_no_norm.py"), "--remedy", "residual-scale",
         "--branch-init", mode, "--output", str(tmp_path / "out"), "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["chosen"] == ["residual-scale"]
    assert report["after"]["status"] == "healthy"
    plan = yaml.safe_load((tmp_path / "out" / "plan.yaml").read_text(encoding="utf-8"))
    assert [e["target"] for e in plan["edits"]] == [f"blocks.{b}.conv2" for b in range(50)]
    assert [e["args"]["factor"] for e in plan["edits"]] == [pytest.approx(factor)] * 50
    saved = torch.load(tmp_path / "out" / "state_dict.pt", weights_only=True)
    if mode == "zero":
        assert all(torch.count_nonzero(saved[f"blocks.{b}.conv2.weight"]) == 0 for b in range(50))


def test_trials_alike_are_told_apart_by_training_only_when_the_preferred_trains_poorly() -> None:
    from gradcheck_cli.fixing import left, trains_best

    def trial(name: str) -> Trial:
        return Trial((name,), Plan(edits=()), None, Verdict.RESOLVED)  # type: ignore[arg-type]

    kaiming, gain, norm = trial("kaiming-init"), trial("gain-init"), trial("batchnorm")
    # The last loss is the mean of the final three: a spike at the end is not forgiven.
    assert left([2.0, 1.0, 0.5, 0.1, 0.1, 0.1]) == pytest.approx(0.05)
    assert left([2.0, 0.1, 0.1, 6.0]) == pytest.approx(6.2 / 3 / 2.0)
    assert left([2.0, math.nan]) == math.inf and left([-1.0, -2.0]) is None
    # resnet_no_norm (measured): residual-scale 2.24 -> 1.89, batchnorm 5.25 -> 0.0115.
    scaled = trial("residual-scale")
    assert left([2.24, 2.0, 1.9, 1.89, 1.89]) == pytest.approx(0.85, abs=0.01)
    runs = [(scaled, [2.24, 2.0, 1.9, 1.89, 1.89]), (norm, [5.25, 1.0, 0.01, 0.0115, 0.0115])]
    assert trains_best(runs) is norm
    # Both train (relu_default_init over seeds: kaiming-init left 0.02% to 14%): the preference.
    runs = [(kaiming, [2.51, 1.0, 0.35, 0.347, 0.347]), (gain, [2.73, 0.5, 0.09, 0.09, 0.089])]
    assert trains_best(runs) is kaiming
    # Poorly, but nothing leaves less than half as much: the preference.
    runs = [(kaiming, [2.0, 1.5, 1.2, 1.2, 1.2]), (gain, [2.0, 1.5, 0.7, 0.7, 0.7])]
    assert trains_best(runs) is kaiming
    # A diverging preferred trial gives way to the one that trains best.
    runs = [(kaiming, [2.0, math.inf]), (gain, [2.0, 0.5]), (norm, [2.0, 0.1])]
    assert trains_best(runs) is norm


@pytest.mark.slow
def test_sine_init_cures_a_sine_network_that_gain_init_only_clears() -> None:
    # SIREN without the 1/omega_0 compensation of its hidden layers (bench/siren_truth.md: does
    # not train). The diagnosis has a refutable error, so the learning probe runs by itself,
    # finds it not learning, and judges every trial as well. gain-init clears the vanishing
    # error but its copy still does not learn (improved, not resolved); sine-init (SIREN's init
    # read from the graph: these layers feed torch.sin with no factor) is a cure.
    loaded = _built(str(SAMPLES / "siren.py") + ":build_uncompensated")
    result = fix(loaded.module, loaded.example_inputs, loaded.loss_fn)
    before = {f.id: f.severity.value for f in result.before.findings}
    assert before == {"vanishing": "error", "not-learning": "warning"}
    assert result.before.learning is not None and result.before.learning.asked
    by_id = {o.remedy: o for o in result.outcomes}
    assert by_id["gain-init"].verdict is Verdict.IMPROVED
    (gain,) = [t for t in result.to_dict()["trials"] if t["remedies"] == ["gain-init"]]
    assert gain["learning"]["verdict"] == "not-learning" and gain["learning"]["steps"] > 0
    assert by_id["sine-init"].verdict is Verdict.RESOLVED
    assert result.chosen is not None and result.chosen.remedies == ("sine-init",)
    assert result.after.findings == () and result.after.status.value == "healthy"
    probe = result.after.learning
    assert probe is not None and probe.verdict == "learns" and probe.blind is not None
    # Measured 0.0069 against a floor of 0.77 (the original: 0.379 against 0.379).
    assert probe.end < 0.05 * probe.blind
    # SIREN's bounds: the first layer (reads the coordinates, fan-in 2) U(+-30/2), the others
    # U(+-sqrt(6/128)); biases kept.
    edits = {e.target: e.args for e in result.chosen.plan.edits}
    assert edits["net.0.linear"] == {"scheme": "sine_first", "factor": 1.0, "keep_bias": True}
    assert edits["net.4.linear"]["scheme"] == "sine_hidden" and "out" not in edits
    fixed = result.model
    first, hidden = fixed.net[0].linear, fixed.net[1].linear
    assert 13.0 < float(first.weight.detach().abs().max()) <= 15.0
    assert (
        0.9 * math.sqrt(6 / 128) < float(hidden.weight.detach().abs().max()) <= math.sqrt(6 / 128)
    )
    assert torch.equal(hidden.bias, loaded.module.net[1].linear.bias)


def test_sine_init_reads_the_factor_forward_applies() -> None:
    # The published SIREN multiplies by w0 = 30 in forward: sine-init then draws its published
    # weights, U(+-1/fan_in) first and U(+-sqrt(6/fan_in)/30) after.
    from gradcheck_cli.remedies.probe import probe

    from .test_remedies import applied

    loaded = _built(str(SAMPLES / "siren.py"))
    coords = loaded.example_inputs(8)
    found = probe(loaded.module, coords)
    assert found.structure.sines == {f"net.{i}.linear": 30.0 for i in range(5)}
    assert found.structure.reads_input == {"net.0.linear"}
    fixed = applied("sine-init", loaded.module, coords)
    assert 0.9 / 2 < float(fixed.net[0].linear.weight.detach().abs().max()) <= 1 / 2
    bound = math.sqrt(6 / 128) / 30
    assert 0.9 * bound < float(fixed.net[2].linear.weight.detach().abs().max()) <= bound


@pytest.mark.slow
def test_remedies_keep_gates_and_deliberate_biases_and_the_report_lists_what_they_overwrote() -> (
    None
):
    from gradcheck_cli.remedies.base import FixOptions

    loaded = _built(str(SAMPLES / "highway.py"))
    result = fix(
        loaded.module, loaded.example_inputs, loaded.loss_fn, remedies=["relu-swap", "gain-init"],
        learn=0,
    )  # fmt: skip
    plans = {t.remedies: t.plan for t in result.trials}
    # relu-swap: the transforms' tanh become ReLU; the gates' sigmoid (t * h + (1 - t) * x,
    # read from the autograd graph) stay, and the note counts them.
    swapped = {e.target for e in plans[("relu-swap",)].edits if e.op == "replace-activation"}
    assert swapped == {f"layers.{i}.act" for i in range(12)}
    by_id = {o.remedy: o for o in result.outcomes}
    assert any(n.startswith("kept 12 gate(s): layers.0.sigmoid") for n in by_id["relu-swap"].notes)
    # gain-init redraws every weight but keeps the -2 gate biases, and says so.
    gated = apply_plan(loaded.module, plans[("gain-init",)])
    assert all(torch.equal(l.gate.bias, torch.full((32,), -2.0)) for l in gated.layers)
    assert all(
        not torch.equal(l.gate.weight, o.gate.weight)
        for l, o in zip(gated.layers, loaded.module.layers, strict=True)
    )
    assert all(
        torch.equal(l.transform.bias, torch.zeros(32)) for l in gated.layers
    )  # default draws
    assert any(
        "kept the biases of 12 layer(s) set deliberately" in n for n in by_id["gain-init"].notes
    )
    # --reset-biases zeroes them too.
    reset = fix(
        loaded.module, loaded.example_inputs, loaded.loss_fn, remedies=["gain-init"], learn=0,
        fix_options=FixOptions(reset_biases=True),
    )  # fmt: skip
    (trial,) = reset.trials
    zeroed = apply_plan(loaded.module, trial.plan)
    assert all(torch.equal(l.gate.bias, torch.zeros(32)) for l in zeroed.layers)
    # The fix report lists every edit of the chosen plan with what it overwrote.
    (trial,) = [t for t in result.trials if t.remedies == ("gain-init",)]
    chosen = FixResult(result.before, trial, (), (trial,), gated, "applied gain-init")
    listed = {row["target"]: row["what"] for row in chosen.to_dict()["overwritten"]}
    assert len(listed) == 26 and listed["layers.0.gate"] == "weight redrawn; bias kept"
    assert listed["layers.0.transform"] == "weight redrawn; bias zeroed (if any)"
    assert torch.equal(loaded.module.layers[0].gate.bias, torch.full((32,), -2.0))  # untouched


@pytest.mark.slow
def test_a_highway_net_that_trains_is_left_alone_and_the_probe_says_it_learns() -> None:
    # sample_models/highway.py trains (gate bias -2, as Srivastava et al. recommend: Adam 1e-3
    # reaches 0.07 from 1.39 in 300 steps). Asked to learn, the probe agrees and fix changes
    # nothing: no sigmoid swapped, no bias redrawn.
    loaded = _built(str(SAMPLES / "highway.py"))
    result = fix(loaded.module, loaded.example_inputs, loaded.loss_fn, learn=300)
    assert result.before.findings == () and result.chosen is None and result.trials == ()
    assert result.message.startswith("nothing needed fixing")
    probe = result.before.learning
    assert probe is not None and probe.asked and probe.verdict == "learns"
    assert probe.blind is not None and probe.end < 0.1 * probe.blind  # measured 0.18 against 4.7
    assert probe.end < 0.2 * probe.start  # from 1.40
    assert all(torch.equal(l.gate.bias, torch.full((32,), -2.0)) for l in result.model.layers)


@pytest.mark.slow
def test_siren_with_default_init_is_cured_by_sine_init_at_the_rate_it_trains_with() -> None:
    # sample_models/siren.py:build_default_init multiplies by w0 = 30 in forward but keeps
    # PyTorch's default init (does not train: bench/fix_truth.md). Its gradients explode (an
    # error) and the probe, at Adam 1e-4 (the rate its training oracle uses), finds it not
    # learning. sine-init is the one remedy whose copy learns; the oracle agrees on the saved
    # model (progress 0.99 and 1.00). At the default 1e-3 the probe's bar is marginal for every
    # copy (sine-init + residual-wrap ends 0.32 against a floor of 0.49 here and 0.38 against
    # 0.46 under MKL_CBWR=COMPATIBLE), so the rate is pinned.
    loaded = _built(str(SAMPLES / "siren.py") + ":build_default_init")
    result = fix(loaded.module, loaded.example_inputs, loaded.loss_fn, lr=1e-4)
    before = {f.id: f.severity.value for f in result.before.findings}
    assert before == {"exploding": "error", "not-learning": "warning"}
    alone = {t.remedies: t.report.learning for t in result.trials if len(t.remedies) == 1}
    assert {r for r, probe in alone.items() if probe is not None and probe.verdict == "learns"} == {
        ("sine-init",)
    }
    assert result.chosen is not None and result.chosen.remedies == ("sine-init",)
    assert result.after.status.value == "healthy"
    probe = result.after.learning
    assert probe is not None and probe.verdict == "learns" and probe.blind is not None
    assert probe.lr == 1e-4
    assert probe.end < 0.2 * probe.blind  # measured 0.045 against 0.77 (before: 0.61 against 0.54)


@pytest.mark.slow
def test_a_deep_gcn_that_over_smooths_is_cured_by_identity_paths_not_by_reinitialisation() -> None:
    # sample_models/gcn_deep.py: 32 graph convolutions over-smooth the node features (does not
    # train: bench/fix_truth.md). The diagnosis finds vanishing gradients and the learning probe
    # agrees it does not learn; kaiming-init clears the diagnosis but its copy still does not
    # learn (improved, not a cure); residual-wrap (h + GraphConv(h), Li et al. 2019) learns.
    loaded = _built(str(SAMPLES / "gcn_deep.py"))
    result = fix(loaded.module, loaded.example_inputs, loaded.loss_fn)
    before = {f.id: f.severity.value for f in result.before.findings}
    assert before == {"vanishing": "error", "not-learning": "warning"}
    original = result.before.learning
    assert original is not None and original.verdict == "not-learning"
    assert original.blind is not None and original.end > 0.9 * original.blind
    by_id = {o.remedy: o for o in result.outcomes}
    assert by_id["kaiming-init"].verdict is Verdict.IMPROVED
    (kaiming,) = [t for t in result.trials if t.remedies == ("kaiming-init",)]
    assert kaiming.report.learning is not None
    assert kaiming.report.learning.verdict == "not-learning"
    assert result.chosen is not None and result.chosen.remedies == ("residual-wrap",)
    assert by_id["residual-wrap"].verdict is Verdict.RESOLVED
    assert result.after.status.value == "healthy"
    probe = result.after.learning
    assert probe is not None and probe.verdict == "learns" and probe.blind is not None
    # Measured: 0.052 against a floor of 6.9 (chance is ln 4 = 1.39).
    assert probe.end < 0.2 < math.log(4) < probe.blind
    wrapped = result.model.layers
    assert all(type(block).__name__ == "Residual" for block in wrapped)
    assert len(wrapped) == 31


@pytest.mark.slow
def test_a_deep_post_ln_transformer_that_stalls_under_adam_is_made_pre_ln(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sample_models/post_ln_deep.py: 24 nn.TransformerEncoderLayer at their default Post-LN
    # placement sit at chance under Adam without warm-up (Xiong et al. 2020; bench/fix_truth.md);
    # the gradients at initialisation look healthy, so only the probe (--learn) sees it.
    # pre-norm sets norm_first on each layer and adds the final LayerNorm: the probe learns.
    loaded = _built(str(SAMPLES / "post_ln_deep.py"))
    quiet = diagnose(loaded.module, loaded.example_inputs, loaded.loss_fn)
    assert quiet.findings == () and quiet.learning is None  # nothing for the probe to test
    # Batch 8 keeps each probe near 35 s on one slow core (its budget is 60 s); on a loaded
    # machine a probe cut short by that budget would be "undecided", so the test lifts it.
    from gradcheck_cli import pipeline

    monkeypatch.setattr(pipeline, "LEARN_BUDGET", 600.0)
    result = fix(
        loaded.module, loaded.example_inputs, loaded.loss_fn, learn=300, batch_size=8,
        remedies=["pre-norm", "gain-init"],
    )  # fmt: skip
    assert [f.id for f in result.before.findings] == ["not-learning"]
    original = result.before.learning
    assert original is not None and original.verdict == "not-learning"
    assert original.end > 0.95 * math.log(8)  # chance: 8 symbols
    by_id = {o.remedy: o for o in result.outcomes}
    assert by_id["gain-init"].verdict is not Verdict.RESOLVED
    assert result.chosen is not None and result.chosen.remedies == ("pre-norm",)
    assert {e.op for e in result.chosen.plan.edits} == {"norm-first", "final-norm"}
    probe = result.after.learning
    assert probe is not None and probe.verdict == "learns"
    assert probe.end < 0.5 < 2 < probe.blind  # measured 0.0045 against 6.6
    fixed = result.model
    assert all(layer.norm_first for layer in fixed.encoder.layers)
    assert isinstance(fixed.encoder.norm, torch.nn.LayerNorm)
    assert not any(layer.norm_first for layer in loaded.module.encoder.layers)  # untouched


@pytest.mark.slow
def test_a_cold_gumbel_softmax_gets_a_temperature_floor_that_torch_save_keeps() -> None:
    # sample_models/gumbel_cold.py: F.gumbel_softmax at tau = 0.01 (does not train:
    # bench/fix_truth.md); the softmax rows saturate (an error) and the probe agrees.
    import io

    loaded = _built(str(SAMPLES / "gumbel_cold.py"))
    result = fix(loaded.module, loaded.example_inputs, loaded.loss_fn)
    before = {f.id: f.severity.value for f in result.before.findings}
    # The saturated rows pass almost no gradient back to the encoder, so its first layer's
    # ratio may also read as vanishing: it does on torch 2.2 (a warning at --seed 0, an error
    # at others), whose Gumbel noise for the same seed differs, and not on torch 2.13.
    assert before.pop("saturation") == "error" and before.pop("not-learning") == "warning"
    assert set(before) <= {"vanishing"}
    assert result.chosen is not None and result.chosen.remedies == ("temperature-floor",)
    (edit,) = result.chosen.plan.edits
    assert (edit.op, edit.target, dict(edit.args)) == ("temperature-floor", "", {"floor": 1.0})
    assert result.after.status.value == "healthy"
    probe = result.after.learning
    assert probe is not None and probe.verdict == "learns" and probe.blind is not None
    assert probe.end < 0.8 * probe.blind  # measured 1.08 against 1.65 (chance: ln 4 = 1.39)
    buffer = io.BytesIO()
    torch.save(result.model, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=False)
    x = loaded.example_inputs(32)
    outputs = []
    for model in (result.model, reloaded, loaded.module):
        torch.manual_seed(5)
        outputs.append(model(x))
    assert torch.equal(outputs[0], outputs[1]) and not torch.allclose(outputs[0], outputs[2])
    assert loaded.module._forward_pre_hooks == {}  # the original is untouched
