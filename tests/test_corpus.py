"""The labelled corpus: the right verdict on every pathological and healthy model.

Each model is diagnosed through the library exactly as the CLI does it (same loader, same
defaults), and the report is validated against the schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from gradcheck_cli import Severity, diagnose
from gradcheck_cli.loading import load_model

from .conftest import SAMPLES

CORPUS = yaml.safe_load((Path(__file__).parent / "corpus.yaml").read_text())


def _run(spec: str) -> Any:
    loaded = load_model(spec)
    return diagnose(loaded.module, loaded.example_inputs, loaded.loss_fn, model_name=spec)


def _actual(report: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for f in report.findings:
        if f.severity.rank >= Severity.WARNING.rank:
            current = found.get(f.id)
            if current is None or Severity(current).rank < f.severity.rank:
                found[f.id] = f.severity.value
    return found


def test_corpus_is_large_and_mixed() -> None:
    healthy = [c for c in CORPUS if not c["expect"]]
    sick = [c for c in CORPUS if c["expect"]]
    assert len(CORPUS) >= 12 and len(healthy) >= 6 and len(sick) >= 6
    covered = {finding for c in sick for finding in c["expect"]}
    assert covered == {
        "vanishing",
        "vanishing-over-time",
        "exploding",
        "nonfinite",
        "dead-units",
        "saturation",
        "no-gradient",
    }


@pytest.mark.parametrize("case", CORPUS, ids=[c["model"] for c in CORPUS])
@pytest.mark.slow
def test_corpus_verdict(case: dict[str, Any], validate_report) -> None:
    if case.get("needs"):
        pytest.importorskip(case["needs"])
    report = _run(str(SAMPLES / case["model"]))
    assert _actual(report) == case["expect"], [f.message for f in report.findings]
    infos = {f.id for f in report.findings if f.severity is Severity.INFO}
    assert set(case.get("info", [])) <= infos
    validate_report(report.to_dict())


# Models built in the test rather than from a file: widely used shapes that must stay quiet.


def _post_ln_transformer() -> nn.Module:
    layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.1, batch_first=True)
    return nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)


@pytest.mark.slow
def test_post_ln_transformer_has_no_error() -> None:
    # Post-LN (the PyTorch default) has larger gradients near the output at init (Xiong et al.
    # 2020) but trains with warmup: it must not be an error.
    report = diagnose(_post_ln_transformer(), lambda b: torch.randn(b, 32, 128), loss="mse")
    assert not [f for f in report.findings if f.severity is Severity.ERROR]
    assert report.status.value == "healthy"


def test_hf_bert_base_model_is_quiet() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        num_hidden_layers=4,
        hidden_size=128,
        num_attention_heads=4,
        intermediate_size=512,
        vocab_size=1000,
    )
    model = transformers.BertModel(config)
    report = diagnose(model, lambda b: {"input_ids": torch.randint(0, 1000, (b, 32))})
    # The pooler is not part of the loss on last_hidden_state: info, never an error.
    assert report.status.value == "healthy"
    pooler = [f for f in report.findings if f.id == "no-gradient"]
    assert pooler and pooler[0].severity is Severity.INFO
    assert pooler[0].layers == ("pooler.dense",)


def test_xavier_relu_without_bias_is_caught_by_magnitude_not_depth() -> None:
    # The first/last ratio looks fine here (the forward signal and the backward signal collapse
    # together), so the finding must come from the magnitude rule (He et al. 2015).
    report = _run(str(SAMPLES / "deep_relu_xavier.py"))
    (finding,) = [f for f in report.findings if f.id == "vanishing"]
    assert finding.evidence["rule"] == "magnitude"
    assert float(finding.evidence["median_ratio"]) < 1e-6
    assert float(finding.evidence["activation_rms_last_hidden"]) < 1e-5 * float(
        finding.evidence["activation_rms_first"]
    )


def test_sigmoid_decay_spans_orders_of_magnitude() -> None:
    report = _run(str(SAMPLES / "deep_sigmoid.py"))
    (finding,) = [f for f in report.findings if f.id == "vanishing"]
    assert finding.evidence["rule"] == "depth"
    assert 1e-10 < float(finding.evidence["decay"]) < 1e-6
    assert finding.layers[0] == "0"  # the first Linear starves most


def test_nan_is_located_in_the_module_that_makes_it() -> None:
    report = _run(str(SAMPLES / "nan_model.py"))
    (finding,) = [f for f in report.findings if f.id == "nonfinite"]
    assert finding.layers[0] == "log_features"
    assert finding.evidence["first_where"] == "forward"
    assert finding.evidence["nonfinite_losses"] == 3


def test_dead_units_fraction_is_measured() -> None:
    report = _run(str(SAMPLES / "dead_relu.py"))
    (finding,) = [f for f in report.findings if f.id == "dead-units"]
    assert float(finding.evidence["max_dead_fraction"]) == pytest.approx(1.0)
    layer = next(l for l in report.layers if l.name == "3")
    assert layer.dead_fraction.median == pytest.approx(1.0)  # type: ignore[union-attr]


def test_he_mlp_gradients_are_even_across_depth() -> None:
    report = _run(str(SAMPLES / "mlp_he.py"))
    ratios = [l.grad_to_weight.median for l in report.layers if l.type == "Linear"]  # type: ignore[union-attr]
    hidden = ratios[:-1]
    assert max(hidden) / min(hidden) < 5  # He init: every hidden layer learns at a similar rate
