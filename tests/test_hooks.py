"""The capture context manager and the API leave the user's model exactly as they found it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradcheck_cli import diagnose
from gradcheck_cli.capture import capture
from gradcheck_cli.errors import ModelRunError


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3)
    )


def test_no_hook_survives_an_exception() -> None:
    model = _model()
    with pytest.raises(RuntimeError, match="boom"), capture(model):
        assert _hook_count(model) > 0
        raise RuntimeError("boom")
    assert _hook_count(model) == 0


def test_no_hook_survives_a_forward_error_through_the_api() -> None:
    model = _model()
    with pytest.raises(ModelRunError, match="forward pass raised"):
        diagnose(model, torch.randn(4, 5))  # wrong width
    assert _hook_count(model) == 0


def test_api_restores_mode_grads_flags_buffers_and_rng() -> None:
    model = _model()
    model.eval()
    model[0].train()  # mixed modes are restored module by module
    model[4].weight.requires_grad_(False)
    marker = torch.full_like(model[0].weight, 7.0)
    model[0].weight.grad = marker
    running_mean = model[1].running_mean.clone()
    batches = model[1].num_batches_tracked.clone()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)

    report = diagnose(model, lambda b: torch.randn(b, 8), steps=2)

    assert torch.rand(1).item() == expected_next.item()  # caller's RNG stream untouched
    assert [m.training for m in model] == [True, False, False, False, False]
    assert model[0].weight.grad is marker
    assert model[0].bias.grad is None
    assert model[4].weight.requires_grad is False
    assert torch.equal(model[1].running_mean, running_mean)
    assert torch.equal(model[1].num_batches_tracked, batches)
    # the frozen layer is measured for activations but not reported as missing gradient
    assert not [f for f in report.findings if f.id == "no-gradient"]
    assert _hook_count(model) == 0


def test_same_seed_same_numbers_and_other_seed_differs() -> None:
    model = _model()
    a = diagnose(model, lambda b: torch.randn(b, 8), seed=3).to_dict()
    b = diagnose(model, lambda b: torch.randn(b, 8), seed=3).to_dict()
    c = diagnose(model, lambda b: torch.randn(b, 8), seed=4).to_dict()
    for report in (a, b, c):
        report["run"].pop("seconds")
        report["run"].pop("seed")
    assert a == b
    assert a["layers"] != c["layers"]


def test_module_called_twice_is_one_row_with_two_calls() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Linear(8, 8)
            self.act = nn.Tanh()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.block(self.act(self.block(x))))

    report = diagnose(Shared(), lambda b: torch.randn(b, 8), loss="mse")
    block = next(l for l in report.layers if l.name == "block")
    assert block.calls == 2
    assert [l.name for l in report.layers] == ["block", "act"]


def test_inplace_relu_after_batchnorm_measures_the_pre_activation_gradient() -> None:
    # Tensor hooks registered before an in-place op see the gradient of the old version.
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    report = diagnose(model, lambda b: torch.randn(b, 3, 8, 8))
    conv, bn = report.layers[0], report.layers[1]
    assert conv.feeds_norm and not bn.feeds_norm
    assert conv.out_grad_rms.median > 0  # type: ignore[union-attr]
    assert report.status.value == "healthy"


def test_model_is_moved_back_to_its_device() -> None:
    model = _model()
    diagnose(model, lambda b: torch.randn(b, 8), device="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_matches_cpu_verdict_and_returns_model() -> None:
    model = _model()
    report = diagnose(model, lambda b: torch.randn(b, 8), device="cuda")
    assert report.run.device.startswith("cuda")
    assert all(p.device.type == "cpu" for p in model.parameters())
    cpu = diagnose(model, lambda b: torch.randn(b, 8), device="cpu")
    assert {f.id for f in report.findings} == {f.id for f in cpu.findings}


def test_fan_in_of_linear_conv_and_transposed_conv1d() -> None:
    from gradcheck_cli.layers import fans

    def fan_in_of(module: nn.Module, weight: torch.Tensor) -> int:
        return fans(module, weight)[0]

    linear, conv = nn.Linear(12, 5), nn.Conv2d(3, 8, 3)
    assert fan_in_of(linear, linear.weight) == 12
    assert fan_in_of(conv, conv.weight) == 27
    pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    gpt2_linear = Conv1D(20, 12)  # (out features, in features); weight stored as (12, 20)
    assert tuple(gpt2_linear.weight.shape) == (12, 20)
    assert fan_in_of(gpt2_linear, gpt2_linear.weight) == 12


def test_float64_models_are_measured() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(16, 32), nn.Sigmoid()]
    for _ in range(9):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 4)).double()
    report = diagnose(model, torch.randn(8, 16, dtype=torch.float64))
    assert [f.id for f in report.findings] == ["vanishing"]  # as in float32
    first = next(l for l in report.layers if l.name == "0")
    assert first.grad_rms.median > 0  # type: ignore[union-attr]
