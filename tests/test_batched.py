"""Deferred, batched statistics (issue 14) give the numbers the per-call ones gave.

``gradcheck_cli.batched`` reduces many small tensors a few kernels at a time; the recorder queues
small tensors during a step and reduces them at its end. These tests hold both to the per-tensor
reductions they replace, to in-place writes made after a hook saw a tensor, and to activation
checkpointing, whose gradients come from a nested backward pass.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gradcheck_cli import batched, diagnose, hooks
from gradcheck_cli.hooks import capture
from gradcheck_cli.stats import StepRecord, Summary


def _mixed() -> list[torch.Tensor]:
    """Small tensors of three shapes, interleaved, one float64, one float16, and one past
    the stacking size."""
    g = torch.Generator().manual_seed(3)
    return [
        torch.randn(4, 6, generator=g),
        torch.randn(3, 5, 2, generator=g) - 2.0,
        torch.randn(4, 6, generator=g).double(),
        torch.randn(4, 6, generator=g),
        (torch.randn(7, 3, generator=g) * 2e4).half(),  # its norm is past float16's range
        torch.randn(batched.STACKED + 5, 5, generator=g),
        torch.randn(3, 5, 2, generator=g) - 2.0,
    ]


def test_norms_equal_vector_norm_in_input_order() -> None:
    tensors = _mixed()
    got = batched.norms(tensors)
    assert got.dtype == torch.float64 and got.shape == (len(tensors),)
    for value, t in zip(got.tolist(), tensors, strict=True):
        want = torch.linalg.vector_norm(t.double()).item()
        assert value == pytest.approx(want, rel=1e-5)
    assert math.isfinite(got[4].item()) and got[4].item() > 65504  # beyond float16's range


def test_dead_units_and_outside_equal_the_per_tensor_counts() -> None:
    tensors = _mixed()
    dims = [1, 2, 0, 1, 1, 1, 0]
    dead = batched.dead_units(tensors, dims).tolist()
    for count, t, d in zip(dead, tensors, dims, strict=True):
        per_unit = t.movedim(d, 0).reshape(t.shape[d], -1)
        assert count == (per_unit <= 0).all(dim=1).sum().item()
    bounds = [(-0.5, 0.5), (0.0, 1.0), (-0.5, 0.5), (-1.0, 0.2), (-100.0, 100.0), (-2, 2), (0, 1)]
    out = batched.outside(tensors, bounds).tolist()
    for count, t, (lo, hi) in zip(out, tensors, bounds, strict=True):
        assert count == ((t <= lo) | (t >= hi)).sum().item()
    assert sum(dead) > 0 and sum(out) > 0


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 24), nn.Sigmoid(), nn.Linear(24, 6)
    )
    with torch.no_grad():
        model[0].bias[:12] -= 4.0  # dead ReLU units
        model[2].weight.mul_(30.0)  # saturated sigmoid units
    return model


def _record(model: nn.Module, x: torch.Tensor, *, defer: bool) -> StepRecord:
    with capture(model) as recorder:
        recorder.begin_step()
        recorder.defer = defer
        loss = model(x).square().mean()
        loss.backward()
        record = recorder.end_step(loss.detach())
        assert not recorder.stale
        return record


@pytest.mark.parametrize("budget", [hooks.PENDING_BYTES, 1], ids=["one-batch", "flush-each"])
def test_a_deferred_step_records_what_an_immediate_one_does(
    budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a budget of one byte every queued tensor is flushed at once, mid-step.
    monkeypatch.setattr(hooks, "PENDING_BYTES", budget)
    model, x = _mlp(), torch.randn(16, 12)
    now = _record(model, x, defer=False)
    later = _record(model, x, defer=True)
    for field in ("act_sumsq", "in_sumsq", "out_grad_sumsq", "grad_sumsq", "dead", "saturated"):
        got, want = getattr(later, field), getattr(now, field)
        assert got == pytest.approx(want, rel=1e-6), field
    assert later.dead_worst == pytest.approx(now.dead_worst)
    assert later.saturated_worst == pytest.approx(now.saturated_worst)
    assert later.units == now.units and later.out_grad_numel == now.out_grad_numel
    assert sum(now.dead) > 0 and sum(now.saturated) > 0  # the counts are exercised


class WritesInPlace(nn.Module):
    """Scales fc1's output in place after its hook saw it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h.mul_(3.0)
        return self.fc2(h)


class WritesInPlaceLater(WritesInPlace):
    """Writes fc1's output in place after fc2 has run: with a queue flushed at every entry,
    fc1's activation has been measured by then, and only its retained gradient's version
    shows the write."""

    def __init__(self) -> None:
        super().__init__()
        self.fc3 = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        g = self.fc3(x)
        h.mul_(3.0)
        return self.fc2(h + g)


def _truth(model: WritesInPlace, x: torch.Tensor) -> tuple[float, float]:
    """fc1's output RMS and its output-gradient RMS, as produced (before the write)."""
    seen: dict[str, torch.Tensor] = {}

    def keep(mod: nn.Module, args: Any, out: torch.Tensor) -> None:
        seen["out"] = out.detach().clone()
        out.register_hook(lambda g: seen.setdefault("grad", g.detach().clone()))

    handle = model.fc1.register_forward_hook(keep)
    try:
        model(x).square().mean().backward()
    finally:
        handle.remove()
    rms = [seen[k].double().square().mean().sqrt().item() for k in ("out", "grad")]
    return rms[0], rms[1]


@pytest.mark.parametrize(
    ("make", "budget"),
    [(WritesInPlace, hooks.PENDING_BYTES), (WritesInPlaceLater, 1)],
    ids=["queued", "flushed-before-the-write"],
)
def test_a_tensor_written_in_place_after_its_hook_is_measured_as_produced(
    make: type[WritesInPlace], budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks, "PENDING_BYTES", budget)
    model = make()
    batches: list[torch.Tensor] = []

    def make(b: int) -> torch.Tensor:
        batches.append(torch.randn(b, 8))
        return batches[-1]

    report = diagnose(model, make, lambda out, _: out.square().mean(), steps=2, batch_size=4)
    # Step 0 ran twice: once deferred, found written, then with fc1 measured at once.
    assert len(batches) == 3
    assert torch.equal(batches[0], batches[1])
    fc1 = next(layer for layer in report.layers if layer.name == "fc1")
    truths = [_truth(model, b) for b in (batches[0], batches[2])]
    assert isinstance(fc1.act_rms, Summary) and isinstance(fc1.out_grad_rms, Summary)
    assert (fc1.act_rms.low, fc1.act_rms.high) == pytest.approx(
        sorted(t[0] for t in truths), rel=1e-5
    )
    assert (fc1.out_grad_rms.low, fc1.out_grad_rms.high) == pytest.approx(
        sorted(t[1] for t in truths), rel=1e-5
    )


class Checkpointed(nn.Module):
    """A block under reentrant activation checkpointing (as Hugging Face models run it): its
    parameters get their gradients from a nested backward pass, which ``torch.autograd.grad``
    refuses."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.stem = nn.Linear(8, 8)
        self.inner = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(checkpoint(self.inner, self.stem(x), use_reentrant=True))


def test_reentrant_checkpointing_gets_the_gradients_backward_gives() -> None:
    model = Checkpointed()
    x = torch.randn(4, 8)
    report = diagnose(model, lambda b: x.clone(), lambda out, _: out.square().mean(), steps=1)
    model.zero_grad()
    model(x).square().mean().backward()
    for name, module in (("head", model.head), ("inner.0", model.inner[0]), ("stem", model.stem)):
        layer = next(layer for layer in report.layers if layer.name == name)
        want = math.sqrt(sum(p.grad.double().square().sum().item() for p in module.parameters()))
        assert want > 0
        assert isinstance(layer.grad_norm, Summary), name
        assert layer.grad_norm.median == pytest.approx(want, rel=1e-5), name


class Halve(nn.Module):
    """Halves its input in place, flagged ``inplace`` as torch's own in-place modules are."""

    def __init__(self) -> None:
        super().__init__()
        self.inplace = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(0.5)


def _inplace_mlp() -> nn.Sequential:
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Linear(10, 32), nn.ReLU(inplace=True), nn.Linear(32, 24), Halve(), nn.ReLU(),
        nn.Linear(24, 5),
    )  # fmt: skip
    with torch.no_grad():
        model[2].bias -= 1.0  # some dead units in the second ReLU
    return model


def _replay(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[float, float | None, float]]:
    """Per layer: output RMS and output-gradient RMS as produced (copied before any in-place
    write, gradient by a tensor hook registered then), and the dead fraction of a ReLU."""
    outs: dict[str, torch.Tensor] = {}
    grads: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_children():

        def keep(mod: nn.Module, args: Any, out: torch.Tensor, name: str = name) -> None:
            outs[name] = out.detach().clone().double()

            def grad(g: torch.Tensor) -> None:
                grads[name] = g.detach().clone()

            if isinstance(mod, nn.Linear):
                out.register_hook(grad)

        handles.append(module.register_forward_hook(keep))
    try:
        model(x).square().mean().backward()
    finally:
        for handle in handles:
            handle.remove()
    return {
        name: (
            out.square().mean().sqrt().item(),
            grads[name].double().square().mean().sqrt().item() if name in grads else None,
            (out <= 0).all(dim=0).double().mean().item(),
        )
        for name, out in outs.items()
    }


def test_a_module_writing_in_place_costs_no_second_pass_and_changes_no_number() -> None:
    model = _inplace_mlp()
    batches: list[torch.Tensor] = []

    def make(b: int) -> torch.Tensor:
        batches.append(torch.randn(b, 10))
        return batches[-1]

    report = diagnose(model, make, lambda out, _: out.square().mean(), steps=2, batch_size=16)
    assert len(batches) == 2  # the queue copied what was about to be written: no rerun
    truths = [_replay(model, b) for b in batches]
    layers = {layer.name: layer for layer in report.layers}
    assert set(layers) == {"0", "1", "2", "4", "5"}
    for name, layer in layers.items():
        act = sorted(t[name][0] for t in truths)
        assert isinstance(layer.act_rms, Summary)
        assert (layer.act_rms.low, layer.act_rms.high) == pytest.approx(act, rel=1e-5), name
        if name in ("0", "2", "5"):
            grad = sorted(t[name][1] for t in truths)  # type: ignore[type-var]
            assert isinstance(layer.out_grad_rms, Summary)
            got = (layer.out_grad_rms.low, layer.out_grad_rms.high)
            assert got == pytest.approx(grad, rel=1e-5), name
        if name in ("1", "4"):
            dead = sorted(t[name][2] for t in truths)
            assert isinstance(layer.dead_fraction, Summary)
            got = (layer.dead_fraction.low, layer.dead_fraction.high)
            assert got == pytest.approx(dead, abs=1e-12), name
    assert layers["4"].dead_fraction.high > 0  # type: ignore[union-attr]
