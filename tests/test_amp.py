"""Mixed precision on the CPU: --amp runs the passes under autocast; fp16 adds the underflow check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from gradcheck_cli import Severity, diagnose
from gradcheck_cli.cli import main
from gradcheck_cli.hooks import FP16_TINY


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def _scaled_loss(scale: float):
    def loss_fn(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        target = torch.zeros(output.shape[0], dtype=torch.long)
        return nn.functional.cross_entropy(output.float(), target) * scale

    return loss_fn


def inputs(b: int) -> torch.Tensor:
    return torch.randn(b, 32)


def test_fp16_tiny_constant() -> None:
    assert FP16_TINY == torch.finfo(torch.float16).smallest_normal * 2.0**-10  # 2**-24
    assert torch.tensor(FP16_TINY * 0.49).half().item() == 0.0


def test_autocast_reaches_the_layers() -> None:
    seen: list[torch.dtype] = []
    model = _model()
    model[0].register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    diagnose(model, inputs, steps=1, amp="bf16")
    assert seen == [torch.bfloat16]
    seen.clear()
    diagnose(model, inputs, steps=1)
    assert seen == [torch.float32]


def test_underflow_found_under_fp16_only() -> None:
    tiny = _scaled_loss(1e-6)  # gradients around 1e-9: far below 2**-24
    report = diagnose(_model(), inputs, tiny, amp="fp16")
    (finding,) = [f for f in report.findings if f.id == "underflow"]
    assert finding.severity is Severity.ERROR
    assert finding.remedies == ("grad-scaler", "bf16")
    assert float(finding.evidence["max_underflow_fraction"]) > 0.9
    assert report.run.amp == "fp16"
    for amp in ("none", "bf16"):
        other = diagnose(_model(), inputs, tiny, amp=amp)
        assert "underflow" not in {f.id for f in other.findings}
        assert other.layers[0].underflow_fraction.reason.startswith("measured only")  # type: ignore[union-attr]


def test_ordinary_gradients_do_not_underflow() -> None:
    report = diagnose(_model(), inputs, _scaled_loss(1.0), amp="fp16")
    assert "underflow" not in {f.id for f in report.findings}
    fractions = [l.underflow_fraction.median for l in report.layers if l.type == "Linear"]  # type: ignore[union-attr]
    assert max(fractions) < 0.01


def test_cli_amp_flag_and_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "m.py"
    model.write_text(
        "import torch\nfrom torch import nn\n"
        "def build_model():\n    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))\n"
    )
    result = CliRunner().invoke(main, ["diagnose", str(model), "--amp", "bf16", "--format", "yaml"])
    assert result.exit_code == 0 and yaml.safe_load(result.stdout)["run"]["amp"] == "bf16"
    (tmp_path / "gradcheck.yaml").write_text("amp: fp16\n")
    result = CliRunner().invoke(main, ["diagnose", str(model), "--format", "yaml"])
    data = yaml.safe_load(result.stdout)
    assert data["run"]["amp"] == "fp16" and "median" in data["layers"][0]["underflow_fraction"]
    bad = CliRunner().invoke(main, ["diagnose", str(model), "--amp", "fp8"])
    assert bad.exit_code == 2
