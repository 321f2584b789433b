"""Cut graphs (cuts.py): layers whose values reach the loss while no gradient reaches them are
an error naming the cut; stop-gradients with another route, zero-initialised layers and
outputs the loss never reads are not. The sample models' training labels are in
bench/cut_truth.md (plain PyTorch, Adam and SGD with momentum, 2 seeds, against controls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from gradcheck_cli import diagnose
from gradcheck_cli.cli import main
from gradcheck_cli.findings import ExitCode, Severity
from gradcheck_cli.loading import load_model

from .conftest import SAMPLES


def _diagnose(spec: str) -> Any:
    loaded = load_model(str(SAMPLES / spec))
    return loaded.module, diagnose(loaded.module, loaded.example_inputs, loaded.loss_fn)


def _cut(report: Any) -> Any:
    (cut,) = [f for f in report.findings if f.id == "no-gradient" and f.evidence["reason"] == "cut"]
    return cut


@pytest.mark.parametrize(
    ("spec", "layers", "operation", "line", "params"),
    [
        ("detached_encoder.py", ("encoder.0", "encoder.2"), ".detach()", 25, 4740),
        (
            "no_grad_backbone.py",
            (
                "backbone.net.0",
                "backbone.net.2",
                "backbone.net.4",
                "backbone.net.6",
                "backbone.net.7",
            ),
            "torch.no_grad()",
            45,
            37772,
        ),
        ("vq_argmax.py", ("encoder.0", "encoder.2"), ".argmin()", 28, 8352),
    ],
)
def test_a_cut_graph_is_an_error_naming_the_layers_the_operation_and_the_line(
    spec: str, layers: tuple[str, ...], operation: str, line: int, params: int
) -> None:
    model, report = _diagnose(spec)
    cut = _cut(report)
    assert cut.severity is Severity.ERROR and cut.layers == layers
    assert cut.evidence["operation"] == operation
    assert cut.evidence["source"] == f"sample_models/{spec}:{line}" or cut.evidence[
        "source"
    ].endswith(f"{spec}:{line}")
    assert cut.evidence["params"] == params
    total = sum(p.numel() for p in model.parameters())
    assert cut.evidence["share"] == pytest.approx(params / total)
    assert not [f for f in report.findings if f.evidence.get("reason") == "not-in-loss"]


def test_the_cut_fails_ci_by_default_and_the_model_is_left_as_found() -> None:
    loaded = load_model(str(SAMPLES / "no_grad_backbone.py"))
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    diagnose(loaded.module, loaded.example_inputs)
    after = loaded.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in loaded.module.modules())
    result = CliRunner().invoke(
        main, ["diagnose", str(SAMPLES / "vq_argmax.py"), "--format", "yaml"]
    )
    assert result.exit_code == ExitCode.FINDINGS, result.stderr
    (finding,) = yaml.safe_load(result.stdout)["findings"]
    assert (finding["id"], finding["severity"]) == ("no-gradient", "error")
    assert finding["evidence"]["operation"] == ".argmin()"


@pytest.mark.parametrize(
    "spec",
    ["simsiam_stopgrad.py", "vq_argmax.py:build_straight_through", "rezero.py", "zero_head.py"],
)
def test_stop_gradients_with_another_route_and_zero_inits_are_not_cuts(spec: str) -> None:
    _, report = _diagnose(spec)
    assert report.status.value == "healthy", report.findings
    assert not [f for f in report.findings if f.evidence.get("reason") == "cut"]


class _LoggedHead(nn.Module):
    """A head computed for a metric (``.item()``) that the loss never reads: unused, not cut."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 16)
        self.head = nn.Linear(16, 2)
        self.probe = nn.Linear(16, 1)
        self.metric = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.body(x))
        self.metric = self.probe(h).mean().item()
        return self.head(h)


def test_an_output_the_loss_never_reads_stays_info() -> None:
    report = diagnose(_LoggedHead(), lambda b: torch.randn(b, 8))
    (finding,) = report.findings
    assert (finding.severity, finding.evidence["reason"], finding.layers) == (
        Severity.INFO,
        "not-in-loss",
        ("probe",),
    )


class _FrozenEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16))
        self.head = nn.Linear(16, 2)
        self.encoder.requires_grad_(False)  # frozen on purpose: listed, not judged

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h = self.encoder(x)
        return self.head(h)


def test_a_frozen_encoder_is_listed_in_the_report_and_never_a_cut() -> None:
    report = diagnose(_FrozenEncoder(), lambda b: torch.randn(b, 8))
    assert report.status.value == "healthy" and report.findings == ()
    assert report.model.frozen == (("encoder.*", 8 * 16 + 16 + 16 * 16 + 16),)
    assert report.to_dict()["model"]["frozen"] == [{"name": "encoder.*", "parameters": 416}]


class _Cuts(nn.Module):
    """Four more ways to cut a layer off, each the way it is usually written."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.enc = nn.Linear(8, 16)
        self.log_scale = nn.Parameter(torch.tensor(1.0))  # a parameter of the root module
        self.head = nn.Linear(16, 2)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.enc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "decorator":
            h = self.embed(x)
        elif self.how == "data":
            h = torch.relu(self.enc(x)).data
        elif self.how == "block":
            h = self.enc(x)
            with torch.no_grad():  # "batch statistics are constants"
                h = (h - h.mean(0)) / (h.std(0) + 1e-5)
        else:
            h = torch.relu(self.enc(x))
        scale = self.log_scale.exp().item() if self.how == "item" else self.log_scale.exp()
        return self.head(h) * scale


@pytest.mark.parametrize(
    ("how", "operation", "layers", "parameters"),
    [
        ("decorator", "@torch.no_grad() on embed", ("enc",), []),
        ("data", ".data", ("enc",), []),
        ("block", "torch.no_grad()", ("enc",), []),
        ("item", ".item()", ("",), ["log_scale"]),
    ],
)
def test_a_decorator_a_data_read_and_one_parameter_cut_beside_others(
    how: str, operation: str, layers: tuple[str, ...], parameters: list[str]
) -> None:
    report = diagnose(_Cuts(how), lambda b: torch.randn(b, 8))
    cut = _cut(report)
    assert cut.severity is Severity.ERROR and cut.evidence["operation"] == operation
    assert cut.layers == tuple(layers) or cut.layers == ("(model)",)
    assert cut.evidence["parameters"] == parameters
    line = cut.evidence["source"].rsplit(":", 1)[1]
    source = Path(__file__).read_text().splitlines()[int(line) - 1]
    expected = {
        "decorator": "@torch.no_grad()",
        "data": ".data",
        "item": ".item()",
        "block": "h.mean(0)",  # the first operation inside the no_grad block
    }[how]
    assert expected in source


def test_fix_names_the_code_change_a_cut_needs_and_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["fix", str(SAMPLES / "detached_encoder.py"), "--format", "json"]
    )
    assert result.exit_code == ExitCode.FINDINGS, result.stderr

    report = json.loads(result.stdout)
    assert report["after"]["status"] == "error"
    message = report["message"]
    assert message.startswith("needs a code change: the gradient stops at .detach() (")
    assert "detached_encoder.py:25) before encoder.0, encoder.2" in message
    assert "requires_grad_(False)" in message
