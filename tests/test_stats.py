"""Aggregation of raw step totals into per-layer statistics: hand-built records, exact numbers."""

from __future__ import annotations

import math

import pytest

from gradcheck_cli.aggregate import LayerInfo, StepRecord, aggregate
from gradcheck_cli.stats import LayerKind, Skipped, Summary


def record(loss: float = 1.0, **kw: object) -> StepRecord:
    n = 2
    base: dict[str, object] = dict(
        loss=loss,
        order=(1, 0),
        calls=(1, 2),
        act_sumsq=(4.0, 36.0),
        act_numel=(4, 36),  # 9 observations per unit of the ReLU: enough to call one dead
        out_grad_sumsq=(1.0, 0.0),
        out_grad_numel=(4, 0),
        grad_sumsq=(16.0, 0.0),
        grad_numel=(4, 0),
        grad_none=(False, True),
        used_weight_sumsq=(0.0,) * n,
        dead=(0.0, 3.0),
        units=(0, 4),
        saturated=(0.0, 0.0),
        sat_numel=(0, 0),
        feeds_norm=(True, False),
    )
    base.update(kw)
    return StepRecord(**base)  # type: ignore[arg-type]


INFOS = [
    LayerInfo(
        "fc", "Linear", LayerKind.WEIGHT, params=4, trainable=4, weight_norm=8.0, zero_weights=False
    ),
    LayerInfo(
        "relu",
        "ReLU",
        LayerKind.ACTIVATION,
        params=0,
        trainable=0,
        weight_norm=0.0,
        zero_weights=False,
    ),
]


def test_summary_median_and_range() -> None:
    s = Summary.of([3.0, 1.0, 2.0], missing="x")
    assert s == Summary(2.0, 1.0, 3.0)
    assert Summary.of([], missing="why") == Skipped("why")
    bad = Summary.of([1.0, math.nan, 2.0], missing="x")
    assert isinstance(bad, Summary) and math.isnan(bad.median)


def test_aggregate_computes_rms_ratios_and_order() -> None:
    stats = aggregate(INFOS, [record(), record(grad_sumsq=(64.0, 0.0))])
    relu, fc = stats.layers  # relu ran first (order 0)
    assert (relu.name, fc.name) == ("relu", "fc")
    assert fc.grad_rms == Summary(3.0, 2.0, 4.0)  # sqrt(16/4)=2, sqrt(64/4)=4
    assert fc.grad_to_weight == Summary(0.75, 0.5, 1.0)  # norms 4 and 8 over weight norm 8
    assert fc.act_rms == Summary(1.0, 1.0, 1.0)
    assert fc.out_grad_rms == Summary(0.5, 0.5, 0.5)
    assert fc.feeds_norm
    assert relu.dead_fraction == Summary(0.75, 0.75, 0.75)
    assert relu.calls == 2
    assert isinstance(relu.grad_rms, Skipped) and "no trainable" in relu.grad_rms.reason
    assert isinstance(relu.out_grad_rms, Skipped)
    assert stats.losses == (1.0, 1.0) and stats.first_nonfinite is None


def test_zero_and_missing_gradients_are_counted() -> None:
    stats = aggregate(INFOS, [record(grad_sumsq=(0.0, 0.0)), record(grad_none=(True, True))])
    fc = stats.by_name("fc")
    assert fc.grad_zero_steps == 1 and fc.grad_none_steps == 1
    assert fc.grad_rms == Summary(0.0, 0.0, 0.0)


def test_embedding_ratio_uses_only_rows_that_got_gradient() -> None:
    info = [
        LayerInfo(
            "emb", "Embedding", LayerKind.EMBEDDING, 4, 4, weight_norm=100.0, zero_weights=False
        )
    ]
    rec = record(
        order=(0,),
        calls=(1,),
        act_sumsq=(1.0,),
        act_numel=(1,),
        out_grad_sumsq=(1.0,),
        out_grad_numel=(1,),
        grad_sumsq=(4.0,),
        grad_numel=(4,),
        grad_none=(False,),
        used_weight_sumsq=(16.0,),
        dead=(0.0,),
        units=(0,),
        saturated=(0.0,),
        sat_numel=(0,),
        feeds_norm=(False,),
    )
    (emb,) = aggregate(info, [rec]).layers
    assert emb.grad_to_weight == Summary(0.5, 0.5, 0.5)  # 2 / 4, not 2 / 100


def test_first_nonfinite_prefers_located_module_then_forward_order() -> None:
    counted = dict(nonfinite_act=(1, 1), nonfinite_out_grad=(0, 0), nonfinite_grad=(0, 0))
    stats = aggregate(INFOS, [record(loss=math.nan, **counted)])
    assert stats.first_nonfinite is not None
    assert (stats.first_nonfinite.layer, stats.first_nonfinite.where) == ("relu", "forward")
    located = aggregate(INFOS, [record(loss=math.nan, first_nonfinite_module="block", **counted)])
    assert located.first_nonfinite.layer == "block"  # type: ignore[union-attr]
    backward = dict(nonfinite_act=(0, 0), nonfinite_out_grad=(2, 1), nonfinite_grad=(0, 0))
    stats = aggregate(INFOS, [record(**backward)])
    # backward runs in reverse forward order: fc (order 1) sees the bad gradient first
    assert stats.first_nonfinite.layer == "fc"  # type: ignore[union-attr]
    assert stats.by_name("fc").nonfinite.output_grads == 2


def test_anomalous_detects_nan_and_inf() -> None:
    assert not record().anomalous
    assert record(loss=math.inf).anomalous
    assert record(act_sumsq=(math.nan, 1.0)).anomalous
    with pytest.raises(KeyError):
        aggregate(INFOS, [record()]).by_name("nope")


def test_a_unit_is_not_called_dead_on_too_few_observations() -> None:
    # A pooled (B, C, 1, 1) context at batch 2: 2 observations per unit, 3 of 4 units <= 0.
    few = aggregate(INFOS, [record(act_numel=(4, 8), dead=(0.0, 3.0))]).by_name("relu")
    assert few.dead_fraction == Skipped("fewer than 8 samples per unit: raise --batch-size")
    enough = aggregate(INFOS, [record(act_numel=(4, 32), dead=(0.0, 3.0))]).by_name("relu")
    assert enough.dead_fraction == Summary(0.75, 0.75, 0.75)


def test_a_weight_layers_input_rms_is_what_the_layer_before_it_produced() -> None:
    import torch
    from torch import nn

    from gradcheck_cli import diagnose

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.Tanh(), nn.Linear(20, 5))
    x = torch.randn(4, 10) * 3
    report = diagnose(model, lambda b: x, steps=1)
    by_name = {l.name: l for l in report.layers}
    hidden = torch.tanh(model[0](x))
    assert by_name["0"].in_rms.median == pytest.approx(x.pow(2).mean().sqrt().item(), rel=1e-5)
    assert by_name["2"].in_rms.median == pytest.approx(hidden.pow(2).mean().sqrt().item(), rel=1e-5)
    assert by_name["2"].in_rms.median == pytest.approx(by_name["1"].act_rms.median, rel=1e-6)
    assert isinstance(by_name["1"].in_rms, Skipped)


def test_an_input_changed_in_place_after_the_layer_before_is_measured_again() -> None:
    # The second layer's input is the very tensor the first returned, but doubled in place by
    # forward code no hook sees: its norm is measured again, not reused from the first's output.
    import torch
    from torch import nn

    from gradcheck_cli import diagnose

    class Doubling(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.last = nn.Linear(10, 20), nn.Linear(20, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.last(self.first(x).mul_(2))

    torch.manual_seed(0)
    model = Doubling()
    x = torch.randn(4, 10)
    report = diagnose(model, lambda b: x, steps=1)
    by_name = {l.name: l for l in report.layers}
    hidden = model.first(x)
    assert by_name["first"].act_rms.median == pytest.approx(
        hidden.pow(2).mean().sqrt().item(), rel=1e-5
    )
    assert by_name["last"].in_rms.median == pytest.approx(
        2 * by_name["first"].act_rms.median, rel=1e-5
    )


def test_collapse_names_writes_a_wholly_chosen_module_once() -> None:
    from gradcheck_cli.stats import collapse_names

    universe = ["encoder.0", "encoder.2", "head", "scale.weight", "norm.weight", "norm.bias"]
    assert collapse_names(["encoder.0", "encoder.2", "norm.bias"], universe) == {
        "encoder.0": "encoder.*",
        "encoder.2": "encoder.*",
        "norm.bias": "norm.bias",  # norm.weight is not chosen
    }
    assert collapse_names(["scale.weight"], universe) == {"scale.weight": "scale.*"}
    assert collapse_names(["scale.weight"], universe, min_under=2) == {
        "scale.weight": "scale.weight"
    }
