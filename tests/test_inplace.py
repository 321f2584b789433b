"""Statistics of tensors the model changes after a hook saw them are those of the tensors as
produced (issue 14's attempt at measuring them later, at the end of the step, got these wrong).

A module's output can be written in place after its forward hook ran: by the next module
(``nn.ReLU(inplace=True)``), by a residual block (``out += identity`` into a normaliser's
output), through ``.data``, and its gradient can be changed by a hook the model registers
later. Each test replays the diagnosis' own batches with its own hooks, copying each output
when it is produced, and compares.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gradcheck_cli import diagnose
from gradcheck_cli.findings import Report
from gradcheck_cli.stats import Summary


def _diagnosed(
    model: nn.Module, shape: tuple[int, ...], *, steps: int, batch_size: int, scale: float = 1.0
) -> tuple[Report, list[torch.Tensor]]:
    """Diagnose ``model`` on random batches of ``shape`` (after the batch dimension), loss the
    mean square of its output; the report and every batch the diagnosis drew, in order."""
    batches: list[torch.Tensor] = []

    def draw(b: int) -> torch.Tensor:
        batches.append(torch.randn(b, *shape) * scale)
        return batches[-1]

    report = diagnose(
        model,
        draw,
        lambda out, _: out.square().mean(),
        steps=steps,
        batch_size=batch_size,
        learn=0,  # the batches counted are the measured ones: no learning probe
    )
    assert len(batches) == steps  # one pass per step
    return report, batches


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
    """Writes fc1's output in place after another layer has run."""

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


@pytest.mark.parametrize("make", [WritesInPlace, WritesInPlaceLater], ids=["next", "later"])
def test_a_tensor_written_in_place_after_its_hook_is_measured_as_produced(
    make: type[WritesInPlace],
) -> None:
    model = make()
    report, batches = _diagnosed(model, (8,), steps=2, batch_size=4)
    fc1 = next(layer for layer in report.layers if layer.name == "fc1")
    truths = [_truth(model, b) for b in batches]
    assert isinstance(fc1.act_rms, Summary) and isinstance(fc1.out_grad_rms, Summary)
    assert (fc1.act_rms.low, fc1.act_rms.high) == pytest.approx(
        sorted(t[0] for t in truths), rel=1e-5
    )
    assert (fc1.out_grad_rms.low, fc1.out_grad_rms.high) == pytest.approx(
        sorted(t[1] for t in truths), rel=1e-5
    )


class Checkpointed(nn.Module):
    """A block under reentrant activation checkpointing (as Hugging Face models run it): its
    parameters get their gradients from a nested backward pass (``torch.autograd.grad`` over
    the parameters would prune it, and leave them no gradient at all)."""

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


def test_modules_writing_their_input_in_place_leave_every_number_as_produced() -> None:
    model = _inplace_mlp()
    report, batches = _diagnosed(model, (10,), steps=2, batch_size=16)
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


class BasicBlock(nn.Module):
    """torchvision's ResNet block: the shortcut is added into the normaliser's output in place."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.head(self.relu(out).flatten(1))


def test_a_residual_block_adding_into_a_normaliser_output_measures_it_as_produced() -> None:
    model = BasicBlock()
    report, batches = _diagnosed(model, (4, 4, 4), steps=2, batch_size=4)
    bn2 = next(layer for layer in report.layers if layer.name == "bn2")
    seen: list[torch.Tensor] = []
    handle = model.bn2.register_forward_hook(lambda m, a, out: seen.append(out.clone()))
    try:
        for batch in batches:
            model(batch)  # in train mode, as diagnose ran it: batch statistics
    finally:
        handle.remove()
    truths = [out.double().square().mean().sqrt().item() for out in seen]
    assert isinstance(bn2.act_rms, Summary)
    assert (bn2.act_rms.low, bn2.act_rms.high) == pytest.approx(sorted(truths), rel=1e-5)


class WritesThroughData(WritesInPlace):
    """Clamps fc1's output through ``.data`` (no version counter moves) and adds a gradient
    hook of its own that scales what flows further back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h.data.clamp_(-0.1, 0.1)
        if h.requires_grad:
            h.register_hook(lambda g: g * 10)
        return self.fc2(h)


def test_writes_through_data_and_later_gradient_hooks_leave_the_output_as_produced() -> None:
    model = WritesThroughData()
    report, batches = _diagnosed(model, (8,), steps=1, batch_size=8, scale=3.0)
    fc1 = next(layer for layer in report.layers if layer.name == "fc1")
    produced = model.fc1(batches[0]).detach().double()
    assert produced.abs().max() > 0.5  # the clamp changes it
    assert isinstance(fc1.act_rms, Summary)
    assert fc1.act_rms.median == pytest.approx(produced.square().mean().sqrt().item(), rel=1e-5)
    # The gradient arriving at fc1's output, before the model's own hook multiplies it.
    h = model.fc1(batches[0]).clamp(-0.1, 0.1)
    grad = torch.autograd.grad(model.fc2(h).square().mean(), h)[0].double()
    assert isinstance(fc1.out_grad_rms, Summary)
    assert fc1.out_grad_rms.median == pytest.approx(grad.square().mean().sqrt().item(), rel=1e-5)
