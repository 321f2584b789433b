"""Model specs, input shapes and losses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gradcheck_cli.errors import InputError, ModelLoadError
from gradcheck_cli.loading import (
    InputShape,
    LossKind,
    infer_input_shape,
    load_model,
    resolve_loss,
)


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_spec_forms(tmp_path: Path) -> None:
    src = (
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, width=4):\n        super().__init__(); self.l = nn.Linear(width, 2)\n"
        "    def forward(self, x):\n        return self.l(x)\n"
        "def make():\n    return Net(3)\n"
        "instance = Net(5)\n"
    )
    path = _file(tmp_path, "specs_mod.py", src)
    assert load_model(path + ":make").module.l.in_features == 3
    assert load_model(path + ":Net").module.l.in_features == 4
    assert load_model(path + ":instance").module.l.in_features == 5
    assert load_model(path).module.l.in_features == 5  # the single instance
    # imported under its own name, so pickle can find the class again
    assert type(load_model(path).module).__module__ == "specs_mod"
    assert str(tmp_path) in sys.path
    sys.modules.pop("specs_mod", None)
    assert load_model("specs_mod:Net").module.l.in_features == 4  # package.module:NAME


def test_single_class_is_built(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "only_class.py",
        "from torch import nn\nclass A(nn.Module):\n    def __init__(self):\n"
        "        super().__init__(); self.l = nn.Linear(2, 2)\n",
    )
    assert isinstance(load_model(path).module, nn.Module)


def test_factory_must_return_a_module(tmp_path: Path) -> None:
    path = _file(tmp_path, "bad_factory.py", "def build_model():\n    return 3\n")
    with pytest.raises(ModelLoadError, match="not an nn.Module"):
        load_model(path)


@pytest.mark.parametrize(
    "text,shape,dtype,low,high",
    [
        ("3x32x32", (3, 32, 32), torch.float32, 0, 2),
        ("3,32,32", (3, 32, 32), torch.float32, 0, 2),
        ("128:int64:0-50257", (128,), torch.int64, 0, 50257),
        ("16:float64", (16,), torch.float64, 0, 2),
        ("16:int64", (16,), torch.int64, 0, 2),  # [0, 2) until fit_token_range sees a vocabulary
    ],
)
def test_input_shape_parse(text: str, shape, dtype, low: int, high: int) -> None:
    parsed = InputShape.parse(text)
    assert (parsed.shape, parsed.dtype, parsed.low, parsed.top) == (shape, dtype, low, high)
    batch = parsed.make(4, torch.device("cpu"))
    assert batch.shape == (4, *shape) and batch.dtype == dtype
    if not dtype.is_floating_point:
        assert batch.min() >= low and batch.max() < high


@pytest.mark.parametrize("text", ["", "0x3", "3:int64:5-1", "a", "3:int64:1-2:9"])
def test_input_shape_rejects(text: str) -> None:
    with pytest.raises(InputError):
        InputShape.parse(text)


def test_infer_input_shape() -> None:
    assert infer_input_shape(nn.Sequential(nn.Linear(7, 2))).shape == (7,)
    assert infer_input_shape(nn.Sequential(nn.Conv2d(3, 4, 3))).shape == (3, 32, 32)
    emb = infer_input_shape(nn.Sequential(nn.Embedding(99, 4)))
    assert emb.dtype == torch.int64 and emb.high == 99
    with pytest.raises(InputError, match="--input-shape"):
        infer_input_shape(nn.Sequential(nn.ReLU()))


def test_auto_loss_picks_cross_entropy_for_logits_and_mse_otherwise() -> None:
    kind, loss = resolve_loss(LossKind.AUTO, torch.randn(4, 10, requires_grad=True))
    assert kind is LossKind.CROSS_ENTROPY and loss.dim() == 0
    kind, _ = resolve_loss(LossKind.AUTO, torch.randn(4, 7, 10))  # (N, L, C) sequence logits
    assert kind is LossKind.CROSS_ENTROPY
    kind, _ = resolve_loss(LossKind.AUTO, torch.randn(4, 1))
    assert kind is LossKind.MSE
    kind, value = resolve_loss(LossKind.SUM, torch.ones(2, 3))
    assert kind is LossKind.SUM and value.item() == 6.0
    with pytest.raises(InputError, match="--loss mse"):
        resolve_loss(LossKind.CROSS_ENTROPY, torch.randn(4, 1))


def test_loss_from_structured_outputs() -> None:
    logits = torch.randn(2, 5)
    kind, _ = resolve_loss(LossKind.AUTO, {"hidden": torch.randn(2, 3), "logits": logits})
    assert kind is LossKind.CROSS_ENTROPY
    own = torch.tensor(1.5)
    kind, value = resolve_loss(LossKind.AUTO, {"loss": own, "logits": logits})
    assert kind == "model-output-loss" and value.item() == 1.5
    kind, _ = resolve_loss(LossKind.AUTO, (torch.randn(2, 1), (torch.randn(2, 1),)))
    assert kind is LossKind.MSE
    with pytest.raises(InputError, match="loss_fn"):
        resolve_loss(LossKind.AUTO, ("text", 3))


def test_loss_module_beside_the_model_is_not_ambiguous(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "with_criterion.py",
        "from torch import nn\nmodel = nn.Linear(3, 2)\ncriterion = nn.CrossEntropyLoss()\n",
    )
    assert isinstance(load_model(path).module, nn.Linear)


def test_bias_only_module_is_not_taken_for_zero_init() -> None:
    from gradcheck_cli.hooks import Recorder, measured_modules

    class Shift(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.bias

    zero_head = nn.Linear(3, 3)
    nn.init.zeros_(zero_head.weight)
    model = nn.Sequential(Shift(), zero_head)
    infos = Recorder(model, measured_modules(model)).infos
    assert [i.zero_weights for i in infos] == [False, True]
