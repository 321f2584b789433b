"""Each remedy's rewrite, checked on the module tree itself: structure, counts, shapes, numbers."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gradcheck_cli import diagnose
from gradcheck_cli.findings import Severity
from gradcheck_cli.loading import load_model
from gradcheck_cli.remedies import REGISTRY
from gradcheck_cli.remedies.base import (
    Activation,
    BranchInit,
    FixOptions,
    NotApplicable,
    Proposal,
    RemedyContext,
)
from gradcheck_cli.remedies.edits import Edit, PlanError
from gradcheck_cli.remedies.grad_clip import GradClip
from gradcheck_cli.remedies.ops import parse_edit, renamed
from gradcheck_cli.remedies.plan import Plan, apply_plan
from gradcheck_cli.remedies.probe import probe
from gradcheck_cli.remedies.residual_wrap import Residual
from gradcheck_cli.remedies.verdict import Verdict, judge
from gradcheck_cli.stats import value

from .conftest import SAMPLES
from .models import LastStep


def mlp(
    act: type[nn.Module] = nn.Sigmoid,
    depth: int = 6,
    width: int = 32,
    out_act: type[nn.Module] | None = None,
) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(8, width), act()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), act()]
    layers.append(nn.Linear(width, 3))
    if out_act is not None:
        layers.append(out_act())
    return nn.Sequential(*layers)


def propose(
    remedy: str, model: nn.Module, x: torch.Tensor | None = None, **options: object
) -> Proposal | NotApplicable:
    x = torch.randn(16, 8) if x is None else x
    report = diagnose(model, x)
    context = RemedyContext(probe(model, x), report, FixOptions(**options))  # type: ignore[arg-type]
    return REGISTRY[remedy]().propose(model, context)


def applied(
    remedy: str, model: nn.Module, x: torch.Tensor | None = None, **options: object
) -> nn.Module:
    proposal = propose(remedy, model, x, **options)
    assert isinstance(proposal, Proposal), proposal
    return apply_plan(model, Plan(proposal.edits))


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_relu_swap_leaves_no_saturating_module_and_reinitialises() -> None:
    model = mlp(nn.Tanh)
    fixed = applied("relu-swap", model)
    assert not any(isinstance(m, (nn.Tanh, nn.Sigmoid)) for m in fixed.modules())
    assert sum(isinstance(m, nn.ReLU) for m in fixed.modules()) == 6
    assert params(fixed) == params(model)
    x = torch.randn(4, 8)
    assert fixed(x).shape == model(x).shape
    hidden = fixed[2].weight
    assert hidden.std().item() == pytest.approx(
        math.sqrt(2 / 32), rel=0.15
    )  # He: std = sqrt(2/fan_in)
    assert torch.count_nonzero(fixed[2].bias) == 0
    assert isinstance(model[1], nn.Tanh)  # the original is untouched


def test_relu_swap_other_activation_and_output_kept() -> None:
    model = mlp(nn.Sigmoid, out_act=nn.Sigmoid)
    proposal = propose("relu-swap", model, activation=Activation.LEAKY_RELU)
    assert isinstance(proposal, Proposal)
    assert any("output activation" in n for n in proposal.notes)
    fixed = apply_plan(model, Plan(proposal.edits))
    assert isinstance(fixed[-1], nn.Sigmoid)  # it defines the output range
    assert sum(isinstance(m, nn.LeakyReLU) for m in fixed.modules()) == 6


def test_relu_swap_reports_functional_activations() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.sigmoid(self.a(x)).tanh())

    proposal = propose("relu-swap", Functional())
    assert isinstance(proposal, NotApplicable)
    assert "2 activation(s) called as functions" in proposal.reason and "sigmoid" in proposal.reason

    class Untraceable(Functional):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow defeats symbolic tracing
                x = x * 2
            return self.b(torch.sigmoid(self.a(x)))

    proposal = propose("relu-swap", Untraceable())
    assert isinstance(proposal, NotApplicable) and "does not trace" in proposal.reason


def test_swap_without_he_init_still_vanishes() -> None:
    # The brief's point, measured: ReLU with PyTorch's default init is not enough in a deep net.
    loaded = load_model(str(SAMPLES / "deep_sigmoid.py"))
    proposal = propose("relu-swap", loaded.module, torch.randn(16, 64))
    assert isinstance(proposal, Proposal)
    swap_only = Plan(tuple(e for e in proposal.edits if e.op == "replace-activation"))
    with_init = Plan(proposal.edits)
    vanishing = [
        f for f in diagnose(apply_plan(loaded.module, swap_only)).findings if f.id == "vanishing"
    ]
    # Still vanishing: the first layers learn hundreds of times slower than the last hidden
    # ones (a warning at this depth of 10; the 20-layer relu_default_init.py is an error).
    assert vanishing and vanishing[0].severity is Severity.WARNING
    assert float(vanishing[0].evidence["decay"]) < 1e-2
    assert diagnose(apply_plan(loaded.module, with_init)).status.value == "healthy"


def test_residual_wrap_adds_the_input() -> None:
    model = mlp(nn.Sigmoid, depth=4)
    proposal = propose("residual-wrap", model)
    assert isinstance(proposal, Proposal)
    (edit,) = proposal.edits
    assert edit.op == "residual-group" and edit.args["groups"] == [[2, 4], [4, 6], [6, 8]]
    assert any("changes shape" in n for n in proposal.notes)  # 8->32 and 32->3 blocks left
    fixed = apply_plan(model, Plan(proposal.edits))
    blocks = [m for m in fixed.modules() if isinstance(m, Residual)]
    assert len(blocks) == 3 and params(fixed) == params(model)
    x = torch.randn(5, 32)
    assert torch.allclose(blocks[0](x), x + blocks[0].body(x))
    assert fixed(torch.randn(5, 8)).shape == (5, 3)


def test_residual_wrap_module_list_and_not_applicable() -> None:
    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
            self.head = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x = torch.tanh(block(x))
            return self.head(x)

    fixed = applied("residual-wrap", Stack())
    assert all(isinstance(b, Residual) for b in fixed.blocks)  # type: ignore[union-attr]
    flat = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    proposal = propose("residual-wrap", flat)
    assert isinstance(proposal, NotApplicable) and "changes shape" in proposal.reason


def test_residual_wrap_of_sequential_blocks_in_a_module_list_applies() -> None:
    # torchvision's FPN keeps Conv2dNormActivation (a Sequential) blocks in a ModuleList: each
    # block is both grouped inside and wrapped whole. Wrapping first left a Residual where the
    # grouping expected a Sequential (PlanError in the zoo's no-norm twin of
    # fasterrcnn_mobilenet_v3_large_fpn).
    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())
                for _ in range(3)
            )
            self.head = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    model = Stack()
    proposal = propose("residual-wrap", model)
    assert isinstance(proposal, Proposal)
    assert [(e.op, e.target) for e in proposal.edits][::3] == [
        ("residual-group", "blocks.0"),
        ("residual", "blocks.0"),
    ]
    fixed = apply_plan(model, Plan(proposal.edits))
    outer = fixed.blocks  # type: ignore[union-attr]
    assert all(isinstance(b, Residual) for b in outer)
    assert all(isinstance(m, Residual) for b in outer for m in b.body)  # grouped inside too
    assert params(fixed) == params(model) and fixed(torch.randn(4, 8)).shape == (4, 2)


def test_batchnorm_inserts_the_right_norm() -> None:
    model = mlp(nn.ReLU, depth=3)
    fixed = applied("batchnorm", model)
    norms = [m for m in fixed.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [n.num_features for n in norms] == [32, 32, 32]  # hidden layers only, not the head
    assert params(fixed) == params(model) + 3 * 2 * 32
    assert isinstance(fixed[0], nn.Sequential) and isinstance(fixed[0][0], nn.Linear)

    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    fixed_conv = applied("batchnorm", conv, torch.randn(8, 3, 8, 8))
    assert isinstance(fixed_conv[0][1], nn.BatchNorm2d) and fixed_conv[0][1].num_features == 4

    seq = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 3))
    proposal = propose("batchnorm", seq, torch.randn(4, 10, 8))  # (N, L, F): a sequence
    assert isinstance(proposal, Proposal) and proposal.edits[0].args["norm"] == "LayerNorm"
    already = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    assert isinstance(propose("batchnorm", already), NotApplicable)


def test_grad_clip_is_not_offered_for_an_exploding_forward_pass() -> None:
    loaded = load_model(str(SAMPLES / "exploding_init.py"))
    proposal = propose("grad-clip", loaded.module, torch.randn(16, 64))
    assert isinstance(proposal, NotApplicable)
    assert proposal.reason.startswith("the forward signal itself explodes (activation RMS up to")


def test_grad_clip_really_bounds_the_global_norm() -> None:
    # Saturated tanh: a bounded forward pass (|tanh| <= 1) whose gradients grow toward the
    # input, the regime gradient clipping was proposed for (Pascanu et al. 2013).
    loaded = load_model(str(SAMPLES / "saturated_tanh.py"))
    proposal = propose("grad-clip", loaded.module, torch.randn(16, 64))
    assert isinstance(proposal, Proposal)
    max_norm = proposal.edits[0].args["max_norm"]
    weight_norm = math.sqrt(
        sum(p.detach().square().sum().item() for p in loaded.module.parameters())
    )
    assert max_norm == pytest.approx(0.1 * weight_norm, rel=0.05)
    assert "clip_grad_norm_(model.parameters(), max_norm=" in proposal.notes[0]
    fixed = apply_plan(loaded.module, Plan(proposal.edits))
    assert isinstance(fixed, GradClip)
    loss = nn.functional.cross_entropy(fixed(torch.randn(16, 64)), torch.randint(0, 10, (16,)))
    loss.backward()
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in fixed.parameters()]))
    assert total.item() <= max_norm * (1 + 1e-5)
    unclipped = loaded.module
    torch.manual_seed(0)
    nn.functional.cross_entropy(
        unclipped(torch.randn(16, 64)), torch.randint(0, 10, (16,))
    ).backward()
    assert (
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in unclipped.parameters()]))
        > 4 * max_norm  # about 6x on this model
    )


@pytest.mark.parametrize("remedy", ["kaiming-init", "xavier-init", "relu-swap"])
def test_reinit_refused_on_trained_weights(remedy: str) -> None:
    model = mlp(nn.Tanh) if remedy != "kaiming-init" else mlp(nn.ReLU)
    refused = propose(remedy, model, weights_given=True)
    if remedy == "relu-swap":  # the swap still applies; the re-initialisation is left out
        assert isinstance(refused, Proposal) and all(e.op != "init" for e in refused.edits)
        assert any("--force-reinit" in n for n in refused.notes)
    else:
        assert isinstance(refused, NotApplicable) and "--force-reinit" in refused.reason
    forced = propose(remedy, model, weights_given=True, force_reinit=True)
    assert isinstance(forced, Proposal) and any(e.op == "init" for e in forced.edits)


def test_plan_round_trip_reproduces_architecture_and_weights() -> None:
    model = mlp(nn.Sigmoid, depth=4)
    edits = tuple(
        e for r in ("relu-swap", "batchnorm", "residual-wrap") for e in propose(r, model).edits
    )  # type: ignore[union-attr]
    plan = Plan(edits, ("relu-swap", "batchnorm", "residual-wrap"), source="m.py", seed=7)
    again = Plan.from_dict(__import__("yaml").safe_load(plan.to_yaml()))
    assert again == plan
    a, b = apply_plan(model, plan), apply_plan(mlp(nn.Sigmoid, depth=4), again)
    assert [type(m).__name__ for m in a.modules()] == [type(m).__name__ for m in b.modules()]
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    b.load_state_dict(a.state_dict())  # a saved state_dict loads into the re-planned model


def test_renamed_follows_each_edit() -> None:
    group = Edit("residual-group", "", {"groups": [[2, 4], [4, 5]]})
    assert [renamed(str(i), group) for i in range(6)] == [
        "0",
        "1",
        "2.body.0",
        "2.body.1",
        "3.body",
        "4",
    ]
    assert renamed("2.weight", group) == "2.body.0.weight"
    assert renamed("net.3", Edit("insert-norm", "net.3")) == "net.3.0"
    assert renamed("a.b", Edit("residual", "a")) == "a.body.b"
    assert renamed("x", Edit("wrap-grad-clip", "")) == "module.x"
    plan = Plan((Edit("insert-norm", "2", {"norm": "BatchNorm1d", "features": 32}), group))
    assert plan.rename("2") == "2.body.0.0"
    fixed = apply_plan(mlp(nn.ReLU, depth=3), plan)
    assert isinstance(fixed.get_submodule(plan.rename("2")), nn.Linear)


def test_bad_plans_are_usage_errors() -> None:
    with pytest.raises(PlanError, match="no submodule"):
        apply_plan(mlp(), Plan((Edit("init", "nope", {"scheme": "kaiming_normal"}),)))
    with pytest.raises(PlanError, match="unknown edit op"):
        apply_plan(mlp(), Plan((Edit("explode", "0"),)))
    with pytest.raises(PlanError, match="plan_version"):
        Plan.from_dict({"edits": []})


def _report(*findings: tuple[str, Severity]):
    from gradcheck_cli.findings import Finding, ModelInfo, Report, RunInfo

    return Report(
        ModelInfo("m", "M", 1, 1),
        RunInfo(1, 1, "cpu", "mse", 0, 0.0, "x", "t"),
        tuple(Finding(i, s, (), "", {}) for i, s in findings),
        (),
    )


@pytest.mark.parametrize(
    "before,after,targets,verdict",
    [
        ([("vanishing", Severity.ERROR)], [], {"vanishing"}, Verdict.RESOLVED),
        (
            [("vanishing", Severity.ERROR)],
            [("vanishing", Severity.WARNING)],
            {"vanishing"},
            Verdict.IMPROVED,
        ),
        (
            [("vanishing", Severity.ERROR)],
            [("vanishing", Severity.ERROR)],
            {"vanishing"},
            Verdict.NO_EFFECT,
        ),
        (
            [("vanishing", Severity.ERROR)],
            [("exploding", Severity.WARNING)],
            {"vanishing"},
            Verdict.WORSE,
        ),
        (
            [("vanishing", Severity.WARNING)],
            [("vanishing", Severity.ERROR)],
            {"vanishing"},
            Verdict.WORSE,
        ),
        (
            [("vanishing", Severity.ERROR), ("saturation", Severity.ERROR)],
            [("saturation", Severity.ERROR)],
            {"vanishing"},
            Verdict.RESOLVED,
        ),
        # The learning probe's verdict is every remedy's target: the diagnosis cleared while
        # the copy still does not learn is an improvement, not a cure.
        (
            [("vanishing", Severity.ERROR), ("not-learning", Severity.WARNING)],
            [("not-learning", Severity.WARNING)],
            {"vanishing"},
            Verdict.IMPROVED,
        ),
        (
            [("vanishing", Severity.ERROR), ("not-learning", Severity.WARNING)],
            [],
            {"vanishing"},
            Verdict.RESOLVED,
        ),
        (
            [("exploding", Severity.WARNING), ("diverging", Severity.WARNING)],
            [("diverging", Severity.WARNING)],
            {"exploding"},
            Verdict.IMPROVED,
        ),
    ],
)
def test_judge(before, after, targets, verdict) -> None:
    assert judge(_report(*before), _report(*after), targets) is verdict


def test_gated_cell_swaps_the_rnn_for_a_remembering_gru() -> None:
    torch.manual_seed(0)
    model = LastStep(nn.RNN(8, 16, num_layers=2, batch_first=True))
    x = torch.randn(16, 60, 8)
    fixed = applied("gated-cell", model, x)
    gru = fixed.rnn
    assert type(gru) is nn.GRU and type(model.rnn) is nn.RNN  # a copy was changed
    assert (gru.input_size, gru.hidden_size, gru.num_layers, gru.batch_first) == (8, 16, 2, True)
    assert fixed(x).shape == model(x).shape == (16, 4)
    update = gru.bias_ih_l0[16:32]
    assert torch.all(update >= 0) and torch.all(update <= math.log(59) + 1e-6)
    assert torch.count_nonzero(gru.bias_hh_l0) == 0
    before, after = diagnose(model, x), diagnose(fixed, x)
    assert [f.id for f in before.findings] == ["vanishing-over-time"]
    assert after.findings == ()
    ratio = after.temporal[0].early_to_late
    assert ratio is not None and ratio > 1e-2


def test_gate_bias_is_chrono_init_for_the_measured_length() -> None:
    torch.manual_seed(0)
    model = LastStep(nn.LSTM(8, 16, batch_first=True))
    x = torch.randn(16, 100, 8)
    proposal = propose("gate-bias", model, x)
    assert isinstance(proposal, Proposal)
    (edit,) = proposal.edits
    assert (edit.op, edit.target, dict(edit.args)) == ("gate-bias", "rnn", {"steps": 100})
    fixed = apply_plan(model, Plan(proposal.edits))
    bias = fixed.rnn.bias_ih_l0
    forget, input_gate = bias[16:32], bias[:16]
    assert torch.all(forget >= 0) and torch.all(forget <= math.log(99) + 1e-6)
    assert torch.equal(input_gate, -forget) and torch.count_nonzero(bias[32:]) == 0
    assert torch.equal(fixed.rnn.weight_hh_l0, model.rnn.weight_hh_l0)  # weights kept
    # A default LSTM over 100 steps is below 1e-12: a warning (gated cells, issue 10).
    found = [f for f in diagnose(model, x).findings if f.id == "vanishing-over-time"]
    assert found and found[0].severity is Severity.WARNING
    assert found[0].evidence["early_to_late"] < 1e-12
    assert diagnose(fixed, x).findings == ()


def test_recurrent_remedies_need_a_profile_and_respect_trained_weights() -> None:
    x = torch.randn(16, 100, 8)
    lstm, rnn = LastStep(nn.LSTM(8, 16, batch_first=True)), LastStep(nn.RNN(8, 16))
    assert isinstance(propose("gated-cell", lstm, x), NotApplicable)  # only vanilla nn.RNN
    assert isinstance(propose("gate-bias", mlp()), NotApplicable)
    # batch_first=False: time is the first dimension, 4 steps here, too short to profile
    short = propose("gated-cell", rnn, torch.randn(4, 5, 8))
    assert isinstance(short, NotApplicable) and "10+ steps" in short.reason
    for remedy, model in (
        ("gate-bias", lstm),
        ("gated-cell", LastStep(nn.RNN(8, 16, batch_first=True))),
    ):
        refused = propose(remedy, model, x, weights_given=True)
        assert isinstance(refused, NotApplicable) and "--force-reinit" in refused.reason
        assert isinstance(
            propose(remedy, model, x, weights_given=True, force_reinit=True), Proposal
        )


def test_recurrent_plans_replay_to_the_same_weights() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 40, 8)
    model = LastStep(nn.RNN(8, 16, batch_first=True))
    proposal = propose("gated-cell", model, x)
    assert isinstance(proposal, Proposal)
    plan = Plan(proposal.edits, ("gated-cell",), seed=3)
    again = Plan.from_dict(__import__("yaml").safe_load(plan.to_yaml()))
    a, b = apply_plan(model, plan), apply_plan(model, again)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(PlanError, match="not an nn.RNN"):
        apply_plan(LastStep(nn.GRU(8, 16, batch_first=True)), plan)


def test_gated_cell_keeps_the_dtype() -> None:
    model = LastStep(nn.RNN(8, 16, batch_first=True)).double()
    x = torch.randn(4, 30, 8, dtype=torch.float64)
    fixed = applied("gated-cell", model, x)
    assert fixed.rnn.weight_ih_l0.dtype == torch.float64 and fixed(x).dtype == torch.float64


def test_residual_wrap_leaves_blocks_that_return_tuples() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = torch.tanh(self.fc(x))
            return y, y.square().mean()  # (activation, penalty), as auxiliary losses do

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(4))
            self.head = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x, _ = block(x)
            return self.head(x)

    torch.manual_seed(0)
    result = propose("residual-wrap", Net())
    assert isinstance(result, NotApplicable)
    assert "blocks.0: takes or returns more than one tensor" in result.reason


class Functional(nn.Module):
    """Activations as functions and a residual sum written in ``forward``: no module marks
    either, and the layer names say nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(8, 8) for _ in range(4))
        self.e = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.b(torch.selu(self.a(x)))  # a branch: a -> selu -> b, added to its input
        x = nn.functional.leaky_relu(self.c(x), 0.2)
        return self.e(torch.tanh(self.d(x)))


def test_structure_reads_followers_and_branches_from_the_graph() -> None:
    torch.manual_seed(0)
    structure = probe(Functional(), torch.randn(4, 8)).structure
    followers = {n: (f.nonlinearity, f.negative_slope) for n, f in structure.followers.items()}
    assert followers == {
        "a": ("selu", 0.0),
        "b": ("linear", 0.0),  # the sum feeds c directly
        "c": ("leaky_relu", pytest.approx(0.2)),
        "d": ("tanh", 0.0),
        "e": ("linear", 0.0),
    }
    assert structure.branch_ends == ("b",)


def test_gain_init_gives_each_layer_calculate_gains_scale() -> None:
    torch.manual_seed(0)
    model = Functional()
    x = torch.randn(16, 8)
    proposal = propose("gain-init", model, x)
    assert isinstance(proposal, Proposal)
    args = {e.target: dict(e.args) for e in proposal.edits}
    # SELU and leaky ReLU followers: not an identity/tanh stack, so N(0, gain^2 / fan_in).
    assert {a["scheme"] for a in args.values()} == {"kaiming_normal"}
    assert args["a"]["nonlinearity"] == "selu" and args["c"]["negative_slope"] == 0.2
    # Wide layers make the drawn scale measurable: std = gain / sqrt(fan_in).
    for nonlinearity, gain in (("linear", 1.0), ("tanh", 5 / 3), ("relu", 2**0.5), ("selu", 0.75)):
        layer = nn.Linear(1024, 1024)
        edit = Edit("init", "", {"scheme": "kaiming_normal", "nonlinearity": nonlinearity})
        apply_plan(layer, Plan((edit,)), inplace=True)
        assert layer.weight.std().item() == pytest.approx(gain / 32, rel=0.01)
        assert not layer.bias.any()


def test_orthogonal_init_is_an_isometry_and_keeps_variance_when_widening() -> None:
    square, wide = nn.Linear(64, 64), nn.Linear(32, 64)
    for layer in (square, wide):
        edit = Edit("init", "", {"scheme": "orthogonal", "nonlinearity": "linear"})
        apply_plan(layer, Plan((edit,)), inplace=True)
    torch.testing.assert_close(square.weight @ square.weight.T, torch.eye(64), atol=1e-5, rtol=0)
    # 64 outputs from 32 inputs: orthogonal columns times sqrt(64 / 32).
    torch.testing.assert_close(wide.weight.T @ wide.weight, 2 * torch.eye(32), atol=1e-5, rtol=0)


def test_gain_init_is_orthogonal_for_a_deep_linear_stack() -> None:
    loaded = load_model(str(SAMPLES / "deep_linear.py:DeepLinear(depth=8,gain=0.8)"))
    fixed = applied("gain-init", loaded.module, torch.randn(16, 32))
    x = torch.randn(256, 32)
    # Per-unit variance: before, 0.8**2 per layer and half once more where the author's plain
    # orthogonal first layer spreads 32 inputs over 64 units; after, kept through all eight.
    before = loaded.module(x).pow(2).mean() / x.pow(2).mean()
    after = fixed(x).pow(2).mean() / x.pow(2).mean()
    assert before.item() == pytest.approx(0.5 * 0.8**16, rel=0.3)
    assert after.item() == pytest.approx(1.0, rel=0.3)


def test_residual_scale_finds_branches_by_structure_and_scales_them() -> None:
    torch.manual_seed(0)
    loaded = load_model(str(SAMPLES / "resnet_no_norm.py:ResNet(blocks=4)"))
    x = torch.randn(4, 3, 16, 16)
    proposal = propose("residual-scale", loaded.module, x)
    assert isinstance(proposal, Proposal)
    assert [e.target for e in proposal.edits] == [f"blocks.{b}.conv2" for b in range(4)]
    fixed = apply_plan(loaded.module, Plan(proposal.edits))
    for b in range(4):
        before = loaded.module.get_submodule(f"blocks.{b}.conv2").weight
        after = fixed.get_submodule(f"blocks.{b}.conv2").weight
        torch.testing.assert_close(after, before / 2)  # 1/sqrt(4 branches)
    zero = propose("residual-scale", loaded.module, x, branch_init=BranchInit.ZERO)
    assert isinstance(zero, Proposal) and {e.args["factor"] for e in zero.edits} == {0.0}
    plain = propose("residual-scale", mlp(nn.ReLU))
    assert isinstance(plain, NotApplicable) and "no residual branch" in plain.reason


def test_batchnorm_goes_after_layers_that_feed_hardswish() -> None:
    """MobileNetV3/LCNet blocks: conv, then Hardswish (a ReLU-family activation for the
    variance at init); the batchnorm remedy skipped them all."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.Hardswish(),
        nn.Conv2d(8, 8, 3),
        nn.Mish(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 2),
    )
    fixed = applied("batchnorm", model, torch.randn(8, 3, 8, 8))
    assert [type(m).__name__ for m in fixed[0]] == ["Conv2d", "BatchNorm2d"]
    assert [type(m).__name__ for m in fixed[2]] == ["Conv2d", "BatchNorm2d"]


def test_a_made_worse_verdict_says_what_got_worse() -> None:
    from gradcheck_cli.remedies.verdict import what_got_worse

    before = _report(("vanishing", Severity.ERROR), ("saturation", Severity.WARNING))
    after = _report(("exploding", Severity.WARNING), ("saturation", Severity.ERROR))
    assert what_got_worse(before, after) == (
        "exploding appeared at warning; saturation rose to error"
    )
    # A second finding of the same id at the same severity: nothing rose, the score did.
    one = _report(("vanishing", Severity.WARNING))
    two = _report(("vanishing", Severity.WARNING), ("vanishing", Severity.WARNING))
    assert what_got_worse(one, two) == "the score rose from 10 to 20"


def test_unit_normal_redraws_an_embedding_and_keeps_its_padding_row_zero() -> None:
    model = nn.Sequential(nn.Embedding(500, 64, padding_idx=3))
    nn.init.normal_(model[0].weight, std=0.02)
    plan = Plan(edits=(Edit("init", "0", {"scheme": "unit_normal"}),), remedies=("x",), seed=0)
    fixed = apply_plan(model, plan)
    weight = fixed[0].weight.detach()
    assert weight.std().item() == pytest.approx(1.0, abs=0.02)
    assert torch.count_nonzero(weight[3]).item() == 0
    assert model[0].weight.std().item() == pytest.approx(0.02, abs=0.002)  # the original stays


def test_scale_output_multiplies_a_tied_tables_output_and_survives_torch_save(
    tmp_path: Path,
) -> None:
    embed, head = nn.Embedding(100, 16), nn.Linear(16, 100, bias=False)
    head.weight = embed.weight
    model = nn.Sequential(embed, head)
    ids = torch.arange(10)
    plan = Plan(edits=(Edit("scale-output", "0", {"factor": 50.0}),), remedies=("x",), seed=0)
    fixed = apply_plan(model, plan)
    torch.testing.assert_close(fixed[0](ids), 50.0 * model[0](ids))
    torch.testing.assert_close(fixed[1].weight, model[1].weight)  # the logits' weights stay
    torch.save(fixed, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    torch.testing.assert_close(loaded(ids), fixed(ids))
    # A plan file is checked when read: the op is known, its factor a number in range.
    assert parse_edit({"op": "scale-output", "target": "0", "args": {"factor": 50}}).args == {
        "factor": 50.0
    }
    with pytest.raises(PlanError, match="factor"):
        parse_edit({"op": "scale-output", "target": "0", "args": {"factor": -1.0}})


class _SelfAttention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self.query(hidden_states), self.key(hidden_states), self.value(hidden_states)
        probs = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1)
        return probs @ v, probs


class _AddBack(nn.Module):
    """BERT's ``*Output`` modules: the sum happens here, on an input passed in beside."""

    def __init__(self, width_in: int, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width_in, width)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.dense(hidden_states) + input_tensor


class _Layer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.attention = _SelfAttention(width)
        self.attention_output = _AddBack(width, width)
        self.intermediate = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU())
        self.output = _AddBack(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context, _ = self.attention(hidden_states=x, attention_mask=None)
        x = self.attention_output(context, x)
        return self.output(self.intermediate(x), x)


class PostSumEncoder(nn.Module):
    """A BERT-shaped encoder with its LayerNorms left out, written the way Hugging Face writes
    it: attention called by keyword and returning a tuple, sums inside the output modules."""

    def __init__(self, width: int = 16, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, width)
        self.layers = nn.ModuleList(_Layer(width) for _ in range(layers))
        self.head = nn.Linear(width, 50)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def test_structure_finds_where_residual_branches_read_their_input() -> None:
    """By the graph: the largest module that reads x and ends inside the branch (BERT's
    attention, its intermediate block), or each Linear reading x when the block holding them
    also holds the sum (TinyGPT), and the head that reads the last sum; none where a normaliser
    reads x first (pre-LN)."""
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 5))
    found = probe(PostSumEncoder(), ids).structure.branch_inputs
    assert [(b.module, b.features) for b in found] == [
        (f"layers.{i}.{name}", 16) for i in range(2) for name in ("attention", "intermediate")
    ] + [("head", 16)]
    gpt = load_model(str(SAMPLES / "transformer_no_norm.py")).module
    tokens = torch.randint(0, 256, (2, 32))
    found = probe(gpt, tokens).structure.branch_inputs
    assert [(b.module, b.features) for b in found] == [
        (f"blocks.{i}.{name}", 64) for i in range(2) for name in ("qkv", "up")
    ] + [("head", 64)]
    pre_ln = load_model(str(SAMPLES / "transformer_no_norm.py:TinyGPT(norm=True)")).module
    assert probe(pre_ln, tokens).structure.branch_inputs == ()
    refused = propose("pre-norm", pre_ln, tokens)
    assert isinstance(refused, NotApplicable) and "without a normaliser" in refused.reason


def test_pre_norm_normalises_each_branch_input_and_survives_torch_save(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PostSumEncoder()
    ids = torch.randint(0, 50, (2, 5))
    fixed = applied("pre-norm", model, ids)
    seen: dict[str, torch.Tensor] = {}
    handles = [
        fixed.get_submodule(name).register_forward_hook(
            lambda m, args, out, name=name: seen.__setitem__(name, args[0])
        )
        for name in ("layers.0.attention.key", "layers.1.intermediate.0")
    ]
    with torch.no_grad():
        out = fixed(ids)
        x = model.embed(ids)
    for handle in handles:
        handle.remove()
    # The embeddings are N(0, 1) here; what the branches read is layer-normalised: each row
    # has mean 0 and RMS 1.
    for tensor in seen.values():
        torch.testing.assert_close(tensor.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            tensor.pow(2).mean(-1).sqrt(), torch.ones(2, 5), atol=1e-3, rtol=0
        )
    assert not torch.allclose(seen["layers.0.attention.key"], x)
    hooked = {n for n, m in fixed.named_modules() if m._forward_pre_hooks}
    assert hooked == {
        f"layers.{i}.{name}" for i in range(2) for name in ("attention", "intermediate")
    } | {"head"}
    assert not any(m._forward_pre_hooks for m in model.modules())  # the original stays
    assert fixed.state_dict().keys() == model.state_dict().keys()  # no parameter added
    torch.save(fixed, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    torch.testing.assert_close(loaded(ids), out)
    with pytest.raises(PlanError, match="features"):
        parse_edit({"op": "pre-norm", "target": "layers.0", "args": {"features": 0}})


def test_fix_cures_a_transformer_without_norms_by_pre_norm() -> None:
    """``TinyGPT`` without its LayerNorms runs at its embeddings' 0.02 (the ``scale``
    warning); with a LayerNorm at each branch input every Linear there reads unit RMS."""
    from gradcheck_cli.api import fix

    loaded = load_model(str(SAMPLES / "transformer_no_norm.py"))
    result = fix(
        loaded.module,
        loaded.example_inputs,
        loaded.loss_fn,
        remedies=["pre-norm"],
        steps=2,
        seed=0,
        # Judged by the diagnosis: the sample's task (next token of uniformly random tokens)
        # cannot be learned by any model, so the learning probe says not-learning either way.
        learn=0,
    )
    assert [f.evidence.get("rule") for f in result.before.findings if f.id == "vanishing"] == [
        "scale"
    ]
    (outcome,) = result.outcomes
    assert (outcome.remedy, outcome.verdict) == ("pre-norm", Verdict.RESOLVED)
    assert [e.target for e in result.plan.edits] == [
        f"blocks.{i}.{name}" for i in range(2) for name in ("qkv", "up")
    ] + ["head"]
    assert not [f for f in result.after.findings if f.severity.rank >= Severity.WARNING.rank]
    rms = {l.display_name: value(l.in_rms) for l in result.after.layers}
    assert [rms[f"blocks.{i}.qkv"] for i in range(2)] == [pytest.approx(1.0, rel=0.02)] * 2


def test_hf_conv1d_is_a_weight_layer_with_its_transposed_fan_in() -> None:
    """GPT-2's Conv1D stores (in_features, out_features): gain-init draws it at 1/sqrt(in)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_embd=64, n_head=2, vocab_size=100, n_positions=16)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 100, (2, 8))
    proposal = propose("gain-init", model, ids)
    assert isinstance(proposal, Proposal)
    targets = {e.target: e.args["nonlinearity"] for e in proposal.edits}
    assert targets["transformer.h.0.attn.c_attn"] == "linear"
    fixed = apply_plan(model, Plan(proposal.edits))
    c_attn = fixed.get_submodule("transformer.h.0.attn.c_attn").weight  # (64, 192)
    assert c_attn.std().item() == pytest.approx(1 / 64**0.5, rel=0.05)
    c_proj = fixed.get_submodule("transformer.h.0.mlp.c_proj").weight  # (256, 64)
    assert c_proj.std().item() == pytest.approx(1 / 256**0.5, rel=0.05)


def _sgd_drop(model: nn.Module, ids: torch.Tensor, loss_fn: object) -> float:
    """How far 30 SGD steps (lr 0.01, momentum 0.9) on one batch bring the loss down."""
    model = copy.deepcopy(model).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(30):
        loss = loss_fn(model(ids), ids)  # type: ignore[operator]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses[0] - losses[-1]


@pytest.mark.slow
def test_pre_norm_makes_a_transformer_without_norms_train_like_a_pre_ln_one() -> None:
    """Measured by training, not by gradcheck: TinyGPT(layers=4) without norms drops its loss by
    0.002 in 30 SGD steps, the author's pre-LN version by 1.04, and the pre-norm fix by 1.02
    (LayerNorm at the four blocks' branch inputs and before the head)."""
    from gradcheck_cli.api import fix

    torch.manual_seed(0)
    spec = str(SAMPLES / "transformer_no_norm.py:TinyGPT(layers=4)")
    loaded = load_model(spec)
    fixed = fix(
        loaded.module, loaded.example_inputs, loaded.loss_fn, remedies=["pre-norm"], steps=2
    ).model
    pre_ln = load_model(spec.replace("layers=4", "layers=4,norm=True")).module
    ids = loaded.example_inputs(8)  # type: ignore[misc]
    drops = [_sgd_drop(m, ids, loaded.loss_fn) for m in (loaded.module, fixed, pre_ln)]
    assert drops[0] < 0.02 * drops[2]
    assert drops[1] == pytest.approx(drops[2], rel=0.1)


class _InvertedResidual(nn.Module):
    """MobileNetV2/EfficientNet's block with its BatchNorms left out: expand (ReLU6),
    squeeze-excitation on the pooled map, a linear projection, the sum."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.expand = nn.Conv2d(channels, 4 * channels, 1)
        self.act = nn.ReLU6()
        self.se_reduce = nn.Conv2d(4 * channels, channels, 1)
        self.se_expand = nn.Conv2d(channels, 4 * channels, 1)
        self.project = nn.Conv2d(4 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.expand(x))
        pooled = h.mean((2, 3), keepdim=True)
        h = h * torch.sigmoid(self.se_expand(torch.relu(self.se_reduce(pooled))))
        return x + self.project(h)


def test_batchnorm_follows_every_convolution_but_pooled_maps_and_the_last() -> None:
    """A linear bottleneck's projection has no activation after it and a BatchNorm in every
    design that uses it; the squeeze-excitation convolutions see one value per channel and
    sample, which BatchNorm would normalise over the batch alone (the zoo's EfficientNetV2-L
    twin: gradients of 1e19); the last convolution is the output."""
    torch.manual_seed(0)
    model = nn.Sequential(_InvertedResidual(), _InvertedResidual(), nn.Conv2d(8, 3, 1))
    proposal = propose("batchnorm", model, torch.randn(4, 8, 6, 6))
    assert isinstance(proposal, Proposal)
    assert {e.target: e.args["norm"] for e in proposal.edits} == {
        f"{b}.{name}": "BatchNorm2d" for b in (0, 1) for name in ("expand", "project")
    }
    assert proposal.notes == (
        "4 convolution(s) on 1x1 maps (squeeze-excitation) left: BatchNorm would normalise "
        "over the batch alone",
    )


def test_the_factor_before_a_sine_is_read_from_either_side_of_a_product_and_a_division() -> None:
    from gradcheck_cli.remedies.structure import read_structure

    class Sines(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(2, 4), nn.Linear(4, 4), nn.Linear(4, 1)
            self.register_buffer("w0", torch.tensor(30.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.sin(self.a(x) / 0.5)  # a factor of 2
            gate = torch.sigmoid(self.c(h))
            return self.c(torch.sin(self.w0 * self.b(h))) * gate  # w0 on the left

    structure = read_structure(Sines(), torch.randn(3, 2))
    assert structure.sines == {"a": 2.0, "b": 30.0}  # c feeds a sigmoid and the output
    assert structure.reads_input == {"a"}
    assert structure.gumbel_taus == ()


def test_every_edit_op_is_registered_with_its_arguments_and_what_it_overwrites() -> None:
    from gradcheck_cli.remedies.ops import OPS, overwrites, parse_edit

    assert set(OPS) == {
        "replace-activation", "init", "insert-norm", "scale", "scale-output", "pre-norm",
        "norm-first", "final-norm", "temperature-floor", "residual-group", "residual",
        "gate-bias", "gated-cell", "wrap-grad-clip",
    }  # fmt: skip
    for name, op in OPS.items():
        assert set(op.required) <= set(op.allowed) and op.overwrites
        with pytest.raises(PlanError, match=f"plan edit '{name}' has no argument 'bogus'"):
            parse_edit({"op": name, "target": "", "args": {"bogus": 1}})
    assert overwrites(Edit("init", "0", {"scheme": "orthogonal", "keep_bias": True})) == (
        "weight redrawn; bias kept"
    )
    assert overwrites(Edit("residual", "0")) == "nothing: wrapped in a residual connection"
