"""--data: real batches from .pt/.npy/.npz files, with targets feeding the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from gradcheck_cli.choices import LossKind
from gradcheck_cli.cli import main
from gradcheck_cli.errors import InputError
from gradcheck_cli.inputs.batches import data_factory, load_data
from gradcheck_cli.inputs.calling import Labeled, resolve_loss

from .conftest import SAMPLES

HEALTHY = str(SAMPLES / "mlp_he.py")


@pytest.fixture
def arrays() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(50, 64), torch.randint(0, 10, (50,))


def test_load_data_forms(tmp_path: Path, arrays) -> None:
    x, y = arrays
    torch.save((x, y), tmp_path / "pair.pt")
    inputs, targets = load_data(tmp_path / "pair.pt")
    assert torch.equal(inputs, x) and torch.equal(targets, y)
    torch.save({"input_ids": y[:, None], "labels": y[:, None]}, tmp_path / "hf.pt")
    inputs, targets = load_data(tmp_path / "hf.pt")
    assert set(inputs) == {"input_ids", "labels"} and targets is None  # HF labels stay inputs
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    inputs, targets = load_data(tmp_path / "d.npz")
    assert torch.equal(inputs, x) and torch.equal(targets, y)
    np.save(tmp_path / "x.npy", x.numpy())
    inputs, targets = load_data(tmp_path / "x.npy")
    assert torch.equal(inputs, x) and targets is None
    with pytest.raises(InputError, match="does not exist"):
        load_data(tmp_path / "none.pt")


def test_batches_are_fresh_seeded_rows(arrays) -> None:
    x, y = arrays
    make = data_factory(x, y, "d.pt")
    torch.manual_seed(1)
    first = make(8)
    torch.manual_seed(1)
    again = make(8)
    torch.manual_seed(2)
    other = make(8)
    assert isinstance(first, Labeled) and first.inputs.shape == (8, 64)
    assert torch.equal(first.inputs, again.inputs) and not torch.equal(first.inputs, other.inputs)
    row = (x == first.inputs[0]).all(dim=1).nonzero().item()
    assert first.targets[0] == y[row]  # inputs and targets stay paired
    with pytest.raises(InputError, match="targets"):
        data_factory(x, y[:10], "bad.pt")


def test_targets_drive_the_loss() -> None:
    logits = torch.zeros(4, 3, requires_grad=True)
    kind, value = resolve_loss(LossKind.AUTO, logits, torch.tensor([0, 1, 2, 0]))
    assert kind is LossKind.CROSS_ENTROPY and value.item() == pytest.approx(
        torch.log(torch.tensor(3.0)).item()
    )
    kind, value = resolve_loss(LossKind.AUTO, logits, torch.ones(4, 3))
    assert kind is LossKind.MSE and value.item() == pytest.approx(1.0)
    with pytest.raises(InputError, match="shape"):
        resolve_loss(LossKind.AUTO, logits, torch.ones(4, 5))


def test_cli_data(tmp_path: Path, arrays, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    x, y = arrays
    torch.save((x, y), tmp_path / "d.pt")
    result = CliRunner().invoke(main, ["diagnose", HEALTHY, "--data", "d.pt", "--format", "yaml"])
    assert result.exit_code == 0, result.stderr
    report = yaml.safe_load(result.stdout)
    assert (
        report["run"]["inputs"] == "data d.pt (50 rows)"
        and report["run"]["loss"] == "cross-entropy"
    )
    torch.save(torch.randn(10, 7), tmp_path / "wrong.pt")
    bad = CliRunner().invoke(main, ["diagnose", HEALTHY, "--data", "wrong.pt"])
    assert bad.exit_code == 2 and "forward pass raised" in bad.stderr


def test_batches_generator_in_the_model_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gen.py").write_text(
        "import torch\nfrom torch import nn\n"
        "def build_model():\n"
        "    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))\n"
        "def batches():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    while True:\n"
        "        yield torch.randn(12, 8, generator=g), torch.randint(0, 3, (12,), generator=g)\n"
    )
    result = CliRunner().invoke(main, ["diagnose", "gen.py", "--format", "yaml"])
    assert result.exit_code == 0, result.stderr
    report = yaml.safe_load(result.stdout)
    assert (
        report["run"]["inputs"] == "batches() of gen.py"
        and report["run"]["loss"] == "cross-entropy"
    )
    (tmp_path / "short.py").write_text(
        "import torch\nfrom torch import nn\n"
        "def build_model():\n    return nn.Linear(8, 3)\n"
        "def batches():\n    yield torch.randn(4, 8)\n"
    )
    short = CliRunner().invoke(main, ["diagnose", "short.py", "--steps", "3"])
    assert short.exit_code == 2 and "batches() in short.py ran out" in short.stderr
