"""Reported statistics equal plain PyTorch computations on the same batches (issue 11, item 17).

Every test runs ``diagnose`` (or the recorder directly) on a seeded model, keeps the very batches
it drew, replays them on the same model with the test's own forward hooks and
``torch.autograd.grad``, and computes each statistic from ``p.grad``, the parameters and the
captured outputs in float64. The two must agree to float tolerance, layer by layer and step by
step (minimum, median and maximum over the steps), so a wrong slot or offset in
``Recorder.end_step``'s packing, or a wrong reduction, fails a test here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

from gradcheck_cli import diagnose
from gradcheck_cli.capture import capture
from gradcheck_cli.hooks import FP16_TINY
from gradcheck_cli.stats import LayerStats, Skipped, Summary

REL = 1e-5  # float32 reductions in a different order than the float64 reference

Loss = Callable[[Any, Any], torch.Tensor]


def _mean_square(output: Any, inputs: Any) -> torch.Tensor:
    """A loss that needs no targets: the mean square of the (first) output."""
    out = output[0] if isinstance(output, tuple) else output
    return out.float().pow(2).mean()


class Recording:
    """An input factory that keeps every batch it hands out, in order."""

    def __init__(self, make: Callable[[int], Any]) -> None:
        self.make = make
        self.batches: list[Any] = []

    def __call__(self, batch_size: int) -> Any:
        batch = self.make(batch_size)
        self.batches.append(batch)
        return batch


# --- the independent reference --------------------------------------------------------------


@dataclass
class StepTruth:
    """One layer's raw values in one step, computed without gradcheck."""

    calls: int = 0
    act_sumsq: float = 0.0
    act_numel: int = 0
    out_grad_sumsq: float = 0.0
    out_grad_numel: int = 0
    grad_sumsq: float = 0.0
    grad_numel: int = 0
    has_grad: bool = False
    used_rows_sumsq: float = 0.0
    dead: list[float] = field(default_factory=list)  # per call: fraction of dead units
    dead_units: int = 0
    saturated: list[float] = field(default_factory=list)  # per call: fraction saturated
    nonfinite_act: int = 0
    nonfinite_out_grad: int = 0
    nonfinite_grad: int = 0
    underflow: int = 0


def _first(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if (found := _first(item)) is not None:
                return found
    return None


def _saturated(module: nn.Module, y: torch.Tensor) -> float | None:
    """The documented definitions: Sigmoid outside [0.01, 0.99], Tanh outside [-0.99, 0.99],
    Softmax rows whose largest probability is at least 0.99."""
    if isinstance(module, nn.Sigmoid):
        return ((y <= 0.01) | (y >= 0.99)).double().mean().item()
    if isinstance(module, nn.Tanh):
        return ((y <= -0.99) | (y >= 0.99)).double().mean().item()
    if isinstance(module, nn.Softmax):
        return (y.amax(dim=module.dim) >= 0.99).double().mean().item()
    return None


def replay(
    model: nn.Module,
    names: Sequence[str],
    batch: Any,
    loss_fn: Loss = _mean_square,
    *,
    unit_dims: dict[str, int] | None = None,
    rows_of: dict[str, Callable[[Any], torch.Tensor]] | None = None,
) -> dict[str, StepTruth]:
    """One forward/backward pass on ``batch``, every statistic of ``names`` computed by hand.

    ``unit_dims`` gives the unit dimension of a ReLU's 3-D output (default: the last one);
    ``rows_of`` gives an embedding's looked-up row indices from the batch.
    """
    modules = dict(model.named_modules())
    model.train()
    for p in model.parameters():
        p.grad = None
    outputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    handles = []
    for name in names:

        def keep(mod: nn.Module, args: Any, out: Any, name: str = name) -> None:
            t = _first(out)
            if t is not None:
                outputs[name].append(t)

        handles.append(modules[name].register_forward_hook(keep))
    try:
        inputs = batch if isinstance(batch, tuple) else (batch,)
        loss = loss_fn(model(*inputs), batch)
    finally:
        for handle in handles:
            handle.remove()
    wanted = [t for n in names for t in outputs[n] if t.requires_grad]
    grads = torch.autograd.grad(loss, wanted, retain_graph=True, allow_unused=True)
    grad_of = {id(t): g for t, g in zip(wanted, grads, strict=True)}
    loss.backward()

    truth: dict[str, StepTruth] = {}
    for name in names:
        module, step = modules[name], StepTruth()
        step.calls = len(outputs[name])
        measured_grad = any(True for _ in module.parameters(recurse=False))
        for y in outputs[name]:
            x = y.detach().double()
            step.act_sumsq += x.square().sum().item()
            step.act_numel += x.numel()
            step.nonfinite_act += int((~torch.isfinite(x)).sum())
            g = grad_of.get(id(y))
            if measured_grad and g is not None:
                step.out_grad_sumsq += g.double().square().sum().item()
                step.out_grad_numel += g.numel()
                step.nonfinite_out_grad += int((~torch.isfinite(g)).sum())
            if isinstance(module, (nn.ReLU, nn.ReLU6)):
                unit = (unit_dims or {}).get(name, x.dim() - 1) if x.dim() == 3 else 1
                per_unit = x.movedim(unit, 0).reshape(x.shape[unit], -1)
                dead = (per_unit <= 0).all(dim=1)
                step.dead.append(dead.double().mean().item())
                step.dead_units += dead.numel()
            if (sat := _saturated(module, x)) is not None:
                step.saturated.append(sat)
        for p in module.parameters(recurse=False):
            if p.grad is None:
                continue
            g = p.grad.coalesce().to_dense() if p.grad.is_sparse else p.grad
            step.has_grad = True
            step.grad_sumsq += g.double().square().sum().item()
            step.grad_numel += g.numel()
            step.nonfinite_grad += int((~torch.isfinite(g)).sum())
            step.underflow += int(((g != 0) & (g.abs() < FP16_TINY)).sum())
        if rows_of and name in rows_of:
            rows = rows_of[name](batch).unique()
            weight = next(module.parameters(recurse=False)).detach().double()
            step.used_rows_sumsq = weight[rows].square().sum().item()
        truth[name] = step
    return truth


def weight_norm(module: nn.Module) -> float:
    """The norm of all of a module's own parameters together, in float64."""
    return math.sqrt(
        sum(p.detach().double().square().sum().item() for p in module.parameters(False))
    )


def assert_summary(stat: Any, per_step: Sequence[float], what: str) -> None:
    """``stat`` is the median, minimum and maximum of ``per_step`` to float tolerance."""
    assert isinstance(stat, Summary), f"{what}: {stat}"
    expected = (statistics.median(per_step), min(per_step), max(per_step))
    got = (stat.median, stat.low, stat.high)
    assert got == pytest.approx(expected, rel=REL, abs=1e-12), what


def check_layer(layer: LayerStats, module: nn.Module, steps: Sequence[StepTruth]) -> None:
    """Every statistic of ``layer`` against the reference for each step."""
    name = layer.display_name
    assert layer.calls == max(s.calls for s in steps), name
    if any(True for _ in module.parameters(recurse=False)):
        assert_summary(layer.weight_norm, [weight_norm(module)], f"{name} weight_norm")
        with_grad = [s for s in steps if s.has_grad]
        assert with_grad, name
        norms = [math.sqrt(s.grad_sumsq) for s in with_grad]
        assert_summary(layer.grad_norm, norms, f"{name} grad_norm")
        rms = [math.sqrt(s.grad_sumsq / s.grad_numel) for s in with_grad]
        assert_summary(layer.grad_rms, rms, f"{name} grad_rms")
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and steps[0].used_rows_sumsq:
            ratios = [math.sqrt(s.grad_sumsq / s.used_rows_sumsq) for s in with_grad]
        else:
            ratios = [n / weight_norm(module) for n in norms]
        assert_summary(layer.grad_to_weight, ratios, f"{name} grad_to_weight")
        out_grad = [math.sqrt(s.out_grad_sumsq / s.out_grad_numel) for s in steps]
        assert_summary(layer.out_grad_rms, out_grad, f"{name} out_grad_rms")
    act = [math.sqrt(s.act_sumsq / s.act_numel) for s in steps]
    assert_summary(layer.act_rms, act, f"{name} act_rms")
    if steps[0].dead:
        assert_summary(layer.dead_fraction, [max(s.dead) for s in steps], f"{name} dead")
    else:
        assert isinstance(layer.dead_fraction, Skipped), name
    if steps[0].saturated:
        worst = [max(s.saturated) for s in steps]
        assert_summary(layer.saturated_fraction, worst, f"{name} saturated")
    else:
        assert isinstance(layer.saturated_fraction, Skipped), name


def diagnose_and_replay(
    model: nn.Module,
    make: Callable[[int], Any],
    *,
    steps: int = 3,
    batch_size: int = 16,
    loss_fn: Loss = _mean_square,
    unit_dims: dict[str, int] | None = None,
    rows_of: dict[str, Callable[[Any], torch.Tensor]] | None = None,
) -> dict[str, tuple[LayerStats, list[StepTruth]]]:
    """Diagnose ``model``, replay its batches, and check every measured layer; returns both."""
    inputs = Recording(make)
    report = diagnose(
        model, inputs, loss_fn, steps=steps, seed=11, batch_size=batch_size, device="cpu"
    )
    batches = inputs.batches[:steps]
    assert len(batches) == steps
    layers = {layer.name: layer for layer in report.layers}
    names = list(layers)
    truths = [
        replay(model, names, b, loss_fn, unit_dims=unit_dims, rows_of=rows_of) for b in batches
    ]
    modules = dict(model.named_modules())
    for name, layer in layers.items():
        check_layer(layer, modules[name], [t[name] for t in truths])
    return {name: (layer, [t[name] for t in truths]) for name, layer in layers.items()}


# --- the models -------------------------------------------------------------------------------


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(12, 32),
        nn.ReLU(),
        nn.Linear(32, 24),
        nn.Sigmoid(),
        nn.Linear(24, 16),
        nn.LayerNorm(16),
        nn.Tanh(),
        nn.Linear(16, 6),
        nn.Softmax(dim=1),
    )
    with torch.no_grad():
        model[0].bias[:12] -= 4.0  # a third of the ReLU units dead on most batches
        model[2].weight.mul_(6.0)  # part of the sigmoid saturated
        model[5].weight.fill_(2.5)  # part of the tanh saturated
        model[7].weight.mul_(12.0)  # some softmax rows saturated
    return model


def test_linear_layers_norm_and_activations_match_pytorch() -> None:
    measured = diagnose_and_replay(_mlp(), lambda b: torch.randn(b, 12), batch_size=32)
    # The model was built so that every fraction is strictly between 0 and 1 in some step:
    # a reference of all zeros would not tell a wrong slot from a right one.
    assert 0 < max(max(s.dead) for s in measured["1"][1]) < 1
    assert 0 < max(max(s.saturated) for s in measured["3"][1]) < 1
    assert 0 < max(max(s.saturated) for s in measured["6"][1]) < 1
    assert 0 < max(max(s.saturated) for s in measured["8"][1]) < 1
    assert [layer.name for layer, _ in measured.values()] == [str(i) for i in range(9)]


def test_machine_output_rounds_the_same_numbers() -> None:
    model = _mlp()
    inputs = Recording(lambda b: torch.randn(b, 12))
    report = diagnose(model, inputs, _mean_square, steps=1, seed=5, batch_size=32)
    truth = replay(model, ["0", "1"], inputs.batches[0])
    layers = {layer["name"]: layer for layer in report.to_dict()["layers"]}
    grad_norm = math.sqrt(truth["0"].grad_sumsq)
    assert layers["0"]["grad_norm"]["median"] == pytest.approx(grad_norm, rel=1e-3)
    assert layers["0"]["weight_norm"]["median"] == pytest.approx(weight_norm(model[0]), rel=1e-3)
    assert layers["1"]["dead_fraction"]["median"] == pytest.approx(truth["1"].dead[0], rel=1e-3)


def test_convolutions_batchnorm_and_channel_dead_units_match_pytorch() -> None:
    torch.manual_seed(1)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.bn = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.conv1d = nn.Conv1d(8, 6, 3)
            self.relu1d = nn.ReLU()
            self.fc = nn.Linear(6, 4)
            with torch.no_grad():
                self.bn.bias[:3] = -5.0  # three channels dead
                self.conv1d.bias[:2] = -3.0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.relu(self.bn(self.conv(x)))  # (N, 8, 6, 6)
            h = self.relu1d(self.conv1d(h.flatten(2)))  # (N, 6, 34): channels first
            return self.fc(h.mean(2))

    measured = diagnose_and_replay(
        Net(), lambda b: torch.randn(b, 3, 8, 8), unit_dims={"relu1d": 1}, batch_size=8
    )
    dead = measured["relu"][1]
    assert [max(s.dead) for s in dead] == [3 / 8] * 3
    assert measured["relu"][0].dead_fraction == Summary(3 / 8, 3 / 8, 3 / 8)
    assert all(s.dead_units == 6 for s in measured["relu1d"][1])  # channels, not positions


def test_sequence_linear_relu_counts_features_as_units() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(10, 3))
    with torch.no_grad():
        model[0].bias[:4] = -6.0
    measured = diagnose_and_replay(model, lambda b: torch.randn(b, 7, 5), batch_size=4)
    assert all(s.dead_units == 10 for s in measured["1"][1])
    assert all(max(s.dead) >= 0.4 for s in measured["1"][1])


def test_lstm_with_embedding_matches_pytorch() -> None:
    torch.manual_seed(3)

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(40, 8)
            self.lstm = nn.LSTM(8, 12, batch_first=True)
            self.head = nn.Linear(12, 5)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.head(self.lstm(self.embed(tokens))[0])

    model = Tagger()
    measured = diagnose_and_replay(
        model,
        lambda b: torch.randint(0, 40, (b, 9)),
        rows_of={"embed": lambda tokens: tokens},
        batch_size=6,
    )
    lstm, steps = measured["lstm"]
    # the LSTM's four parameters are one layer: their gradients count together
    assert lstm.params == 4 * 12 * 8 + 4 * 12 * 12 + 2 * 4 * 12
    assert all(s.grad_numel == lstm.params for s in steps)
    # 54 lookups in 40 rows: the ratio is over the rows used, fewer than the whole table
    table = weight_norm(model.embed) ** 2
    embed_steps = measured["embed"][1]
    assert all(0 < s.used_rows_sumsq < table for s in embed_steps)


def test_sparse_embedding_ratio_uses_the_looked_up_rows() -> None:
    # A sparse gradient's rows are its indices: the gradient-to-weight ratio was inf before.
    torch.manual_seed(4)

    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(60, 8, sparse=True)
            self.fc = nn.Linear(8, 3)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.fc(self.embed(tokens).mean(1))

    measured = diagnose_and_replay(
        Bag(), lambda b: torch.randint(0, 60, (b, 5)), rows_of={"embed": lambda t: t}
    )
    ratio = measured["embed"][0].grad_to_weight
    assert isinstance(ratio, Summary) and math.isfinite(ratio.high)


def test_tied_weights_give_both_layers_the_shared_gradient() -> None:
    torch.manual_seed(5)

    class TiedLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(30, 16)
            self.mix = nn.Linear(16, 16)
            self.decode = nn.Linear(16, 30, bias=False)
            self.decode.weight = self.embed.weight

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.decode(torch.tanh(self.mix(self.embed(tokens))))

    model = TiedLM()
    measured = diagnose_and_replay(
        model,
        lambda b: torch.randint(0, 30, (b, 6)),
        # the decoder's gradient reaches every row of the shared table
        rows_of={"embed": lambda t: torch.arange(30)},
    )
    embed, decode = measured["embed"][0], measured["decode"][0]
    assert embed.grad_norm == decode.grad_norm  # one parameter, one .grad
    assert embed.weight_norm == decode.weight_norm
    assert model.decode.weight is model.embed.weight


def test_module_called_twice_pools_its_calls_and_keeps_the_worst() -> None:
    torch.manual_seed(6)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Linear(10, 10)
            self.act = nn.ReLU()
            self.squash = nn.Sigmoid()
            self.head = nn.Linear(10, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.block(x))
            h = self.act(self.block(h - 2.0))  # the second call has more dead units
            return self.head(self.squash(4.0 * h) + self.squash(h))

    measured = diagnose_and_replay(Twice(), lambda b: torch.randn(b, 10), batch_size=24)
    block, steps = measured["block"]
    assert block.calls == 2 and all(s.calls == 2 for s in steps)
    act_steps = measured["act"][1]
    assert all(len(s.dead) == 2 and s.dead[1] > s.dead[0] for s in act_steps)
    squash_steps = measured["squash"][1]
    assert all(s.saturated[0] != s.saturated[1] for s in squash_steps)


# --- the raw step record: every slot of every quantity ------------------------------------------


class Poisoned(nn.Module):
    """A NaN in one weight row: counts of non-finite values that differ from layer to layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.fc1 = nn.Linear(6, 8)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(8, 3)
        self.fc3 = nn.Linear(3, 5)  # measured, never called
        with torch.no_grad():
            self.fc1.weight[2, 0] = math.nan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _record(model: nn.Module, x: torch.Tensor, scale: float = 1.0) -> Any:
    with capture(model) as recorder, recorder.counting(), recorder.counting_underflow():
        recorder.begin_step()
        loss = _mean_square(model(x), x) * scale
        loss.backward()
        return recorder, recorder.end_step(loss.detach())


@pytest.mark.parametrize(
    ("make", "scale"),
    [(Poisoned, 1.0), (_mlp, 1e-9)],  # non-finite counts; then fp16 underflow counts
    ids=["nonfinite", "underflow"],
)
def test_every_slot_of_a_step_record_matches_pytorch(make: Callable[[], nn.Module], scale: float):
    model = make()
    torch.manual_seed(8)
    x = torch.randn(16, 6 if make is Poisoned else 12)
    recorder, record = _record(model, x, scale)
    names = [info.name for info in recorder.infos]
    truth = replay(model, names, x, lambda out, b: _mean_square(out, b) * scale)
    for i, name in enumerate(names):
        t = truth[name]
        assert record.calls[i] == t.calls, name
        assert record.act_numel[i] == t.act_numel, name
        assert record.out_grad_numel[i] == t.out_grad_numel, name
        assert record.grad_numel[i] == t.grad_numel, name
        assert record.grad_none[i] == (not t.has_grad), name
        for got, want in (
            (record.act_sumsq[i], t.act_sumsq),
            (record.out_grad_sumsq[i], t.out_grad_sumsq),
            (record.grad_sumsq[i], t.grad_sumsq),
        ):
            if math.isnan(want):
                assert math.isnan(got), name
            else:
                assert got == pytest.approx(want, rel=REL, abs=1e-30), name
        assert record.nonfinite_act is not None and record.nonfinite_act[i] == t.nonfinite_act
        assert record.nonfinite_out_grad is not None
        assert record.nonfinite_out_grad[i] == t.nonfinite_out_grad, name
        assert record.nonfinite_grad is not None and record.nonfinite_grad[i] == t.nonfinite_grad
        assert record.underflow is not None and record.underflow[i] == t.underflow, name
        units = t.dead_units
        assert record.units[i] == units, name
        if t.dead:
            assert record.dead_worst is not None
            assert record.dead_worst[i] == pytest.approx(max(t.dead)), name
            assert record.dead[i] == pytest.approx(sum(t.dead) * units / len(t.dead)), name
        if t.saturated:
            assert record.saturated_worst is not None
            assert record.saturated_worst[i] == pytest.approx(max(t.saturated)), name
    if make is Poisoned:
        counts = {n: truth[n].nonfinite_act for n in names}
        # distinct counts per layer, so that a shifted slot cannot pass
        assert counts == {"fc1": 16, "act": 16, "fc2": 48, "fc3": 0}
        assert record.first_nonfinite_module == "fc1"
        grads = {n: truth[n].nonfinite_grad for n in names}
        assert grads == {"fc1": 8 * 6 + 8, "act": 0, "fc2": 3 * 8 + 3, "fc3": 0}
    else:
        assert sum(truth[n].underflow for n in names) > 100
        assert record.first_nonfinite_module is None
