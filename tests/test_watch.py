"""watch(): statistics from the user's own training loop, agreeing with diagnose."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradcheck_cli import diagnose, watch
from gradcheck_cli.loading import load_model

from .conftest import SAMPLES


def _train(model: nn.Module, steps: int, watcher_every: int | None = None):
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    report = None

    def loop() -> None:
        for _ in range(steps):
            x = torch.randn(16, 64)
            y = torch.randint(0, 10, (16,))
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    if watcher_every is None:
        loop()
        return None
    with watch(model, every=watcher_every) as w:
        loop()
        report = w.report()
    return report, w


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_watch_agrees_with_diagnose_and_leaves_training_untouched() -> None:
    watched = load_model(str(SAMPLES / "deep_sigmoid.py")).module
    plain = load_model(str(SAMPLES / "deep_sigmoid.py")).module
    plain.load_state_dict(watched.state_dict())
    report, w = _train(watched, steps=10, watcher_every=3)
    _train(plain, steps=10)
    assert len(w.records) == 4 and w.forwards == 10  # steps 0, 3, 6, 9
    assert _hooks(watched) == 0
    for a, b in zip(watched.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b)  # watching changed nothing in the training
    assert {f.id for f in report.findings} == {"vanishing"}
    reference = diagnose(load_model(str(SAMPLES / "deep_sigmoid.py")).module)
    assert {f.id: f.severity for f in report.findings} == {
        f.id: f.severity for f in reference.findings
    }
    assert report.run.batch_size == 16 and "1 in 3 of 10 forward passes" in report.run.inputs


def test_watch_on_a_healthy_model() -> None:
    model = load_model(str(SAMPLES / "mlp_he.py")).module
    report, w = _train(model, steps=4, watcher_every=2)
    assert report.status.value == "healthy" and len(w.records) == 2
    layer = next(l for l in report.layers if l.name == "0")
    assert layer.grad_rms.median > 0  # type: ignore[union-attr]


def test_watch_ignores_eval_and_no_grad_passes() -> None:
    model = load_model(str(SAMPLES / "mlp_he.py")).module
    with watch(model, every=1) as w:
        with torch.no_grad():
            model(torch.randn(4, 64))
        model.eval()
        model(torch.randn(4, 64)).sum().backward()
    assert w.records == []


def test_watch_refuses_fsdp1_flat_parameters() -> None:
    # FSDP1 needs an accelerator on torch 2.13, so the wrapper is stood in for by its class name:
    # what watch() recognises it by (its flat parameters hide the layers' own).
    FullyShardedDataParallel = type("FullyShardedDataParallel", (nn.Sequential,), {})
    model = nn.Sequential(FullyShardedDataParallel(nn.Linear(4, 4)), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"FullyShardedDataParallel \(FSDP1"):
        with watch(model, every=1):
            pass
    assert not model[1]._forward_hooks  # nothing was left attached


def test_each_measured_step_is_compared_with_that_steps_weights() -> None:
    # The loop grows the first layer's weights (x1.1 per step, a stand-in for a stem that grows
    # in training): each measured step's gradient-to-weight ratio divides by the weights of
    # that step, and the report's weight norm spans them, not the first step's alone.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    norms, ratios = [], []
    with watch(model, every=2) as w:
        for step in range(6):
            loss = model(torch.randn(32, 8)).square().mean()
            loss.backward()
            if step % 2 == 0:  # a measured step: its weights and gradient, before the update
                weight = torch.cat([p.detach().flatten() for p in model[0].parameters()])
                grad = torch.cat([p.grad.flatten() for p in model[0].parameters()])
                norms.append(float(weight.double().norm()))
                ratios.append(float(grad.double().norm()) / norms[-1])
            with torch.no_grad():
                model[0].weight.mul_(1.1)
            model.zero_grad()
        report = w.report()
    (first,) = [l for l in report.layers if l.name == "0"]
    assert len(w.records) == 3 and norms[-1] > 1.3 * norms[0]
    assert first.weight_norm.low == pytest.approx(norms[0], rel=1e-5)
    assert first.weight_norm.high == pytest.approx(norms[-1], rel=1e-5)
    assert first.grad_to_weight.median == pytest.approx(sorted(ratios)[1], rel=1e-5)
