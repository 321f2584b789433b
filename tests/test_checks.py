"""Data-driven check cases on hand-built statistics: no torch, no hooks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from gradcheck_cli.checks import CHECKS, default_options, run_checks
from gradcheck_cli.checks.base import Check
from gradcheck_cli.findings import Severity
from gradcheck_cli.stats import (
    FirstNonFinite,
    LayerKind,
    LayerStats,
    ModelStats,
    NonFinite,
    Skipped,
    Summary,
    TemporalProfile,
)

S = Skipped("n/a")


def _s(x: float) -> Summary:
    return Summary(x, x, x)


def layer(
    name: str,
    ratio: float | None = 1e-2,
    *,
    kind: LayerKind = LayerKind.WEIGHT,
    dead: float | None = None,
    sat: float | None = None,
    act: float = 1.0,
    **extra: object,
) -> LayerStats:
    base = LayerStats(
        name=name,
        type="Linear" if kind is LayerKind.WEIGHT else "ReLU",
        kind=kind,
        order=0,
        calls=1,
        params=100 if kind is not LayerKind.ACTIVATION else 0,
        trainable=100 if kind is not LayerKind.ACTIVATION else 0,
        grad_rms=_s(ratio) if ratio is not None else S,
        grad_norm=_s(ratio) if ratio is not None else S,
        weight_norm=_s(1.0),
        grad_to_weight=_s(ratio) if ratio is not None else S,
        act_rms=_s(act),
        out_grad_rms=_s(1e-3),
        dead_fraction=_s(dead) if dead is not None else S,
        saturated_fraction=_s(sat) if sat is not None else S,
    )
    return replace(base, **extra)  # type: ignore[arg-type]


def stats(
    *layers: LayerStats, losses: tuple[float, ...] = (2.3, 2.3, 2.3), **kw: object
) -> ModelStats:
    ordered = tuple(replace(l, order=i) for i, l in enumerate(layers))
    return ModelStats(layers=ordered, losses=losses, steps=len(losses), **kw)  # type: ignore[arg-type]


def _profile(early_to_late: float, *, gated: bool = False) -> TemporalProfile:
    """A 100-step recurrent profile whose first ten steps get ``early_to_late`` of the last ten."""
    norms = (early_to_late,) * 10 + (1.0,) * 80 + (1.0,) * 10
    return TemporalProfile("rnn", "LSTM" if gated else "RNN", gated, "last step", norms)


def chain(*ratios: float, **kw: object) -> ModelStats:
    return stats(*(layer(f"l{i}", r) for i, r in enumerate(ratios)), **kw)


def found(model: ModelStats, **options: object) -> dict[str, str]:
    opts = default_options()
    for check_id, values in options.items():
        opts[check_id.replace("_", "-")] = replace(opts[check_id.replace("_", "-")], **values)  # type: ignore[arg-type]
    result: dict[str, str] = {}
    for f in run_checks(model, opts):
        result[f.id] = f.severity.value
    return result


CASES = [
    # (label, stats, expected {id: severity})
    ("healthy chain", chain(0.05, 0.06, 0.08, 0.07, 0.2), {}),
    ("mild decay is fine", chain(1e-3, 5e-3, 2e-2, 5e-2), {}),
    ("decay 1e-2..1e-3 warns", chain(1e-4, 5e-3, 2e-2, 1e-1), {"vanishing": "warning"}),
    ("decay below 1e-3 errs", chain(1e-7, 1e-5, 1e-3, 1e-1), {"vanishing": "error"}),
    ("two layers: no depth rule", chain(1e-9, 1e-1), {}),
    ("uniformly tiny errs", chain(1e-9, 2e-9, 1e-9, 3e-9), {"vanishing": "error"}),
    ("uniformly small warns", chain(5e-6, 6e-6, 5e-6, 7e-6), {"vanishing": "warning"}),
    ("huge magnitude errs", chain(50.0, 40.0, 60.0, 30.0), {"exploding": "error"}),
    ("large magnitude warns", chain(3.0, 2.0, 4.0, 5.0), {"exploding": "warning"}),
    ("one huge layer errs", chain(0.05, 500.0, 0.05, 0.05), {"exploding": "error"}),
    ("growth toward input errs", chain(0.5, 1e-3, 1e-5, 0.1), {"exploding": "error"}),
    ("growth 1e2..1e4 warns", chain(0.5, 0.1, 1e-3, 0.1), {"exploding": "warning"}),
    (
        # A transformer block at init: query/key projections get second-order gradients.
        "attention query/key projections are not vanishing",
        stats(
            *(
                layer(f"layer.{b}.attention.{n}", r)
                for b in range(2)
                for n, r in (("query", 2e-5), ("key", 2e-5), ("value", 3e-3), ("dense", 4e-3))
            ),
            layer("classifier", 1.7),
        ),
        {},
    ),
    (
        "scale-invariant layers are exempt from magnitude",
        stats(*(layer(f"c{i}", 30.0, feeds_norm=True) for i in range(5)), layer("fc", 2.0)),
        {},
    ),
    (
        "a lone output layer with ratio > 1 is normal",
        stats(layer("conv", 50.0, feeds_norm=True), layer("fc", 2.5)),
        {},
    ),
    (
        "norm and embedding layers do not count",
        stats(
            layer("emb", 1e-9, kind=LayerKind.EMBEDDING),
            layer("a", 0.05),
            layer("ln", 1e-9, kind=LayerKind.NORM),
            layer("b", 0.05),
            layer("c", 0.06),
        ),
        {},
    ),
    (
        "dead 70% warns",
        stats(layer("a"), layer("r", None, kind=LayerKind.ACTIVATION, dead=0.75)),
        {"dead-units": "warning"},
    ),
    (
        "dead 95% errs",
        stats(layer("a"), layer("r", None, kind=LayerKind.ACTIVATION, dead=0.97)),
        {"dead-units": "error"},
    ),
    (
        "dead 50% is healthy",
        stats(layer("a"), layer("r", None, kind=LayerKind.ACTIVATION, dead=0.5)),
        {},
    ),
    (
        "saturated 30% warns",
        stats(layer("a"), layer("t", None, kind=LayerKind.ACTIVATION, sat=0.3)),
        {"saturation": "warning"},
    ),
    (
        "saturated 60% errs",
        stats(layer("a"), layer("t", None, kind=LayerKind.ACTIVATION, sat=0.6)),
        {"saturation": "error"},
    ),
    (
        "saturated 10% is healthy",
        stats(layer("a"), layer("t", None, kind=LayerKind.ACTIVATION, sat=0.1)),
        {},
    ),
    (
        "nan loss errs",
        chain(
            0.05,
            0.05,
            losses=(math.nan, 2.0, 2.0),
            first_nonfinite=FirstNonFinite("(loss)", "loss", 0),
        ),
        {"nonfinite": "error"},
    ),
    (
        "nan in a layer errs",
        stats(layer("a", nonfinite=NonFinite(activations=3)), layer("b")),
        {"nonfinite": "error"},
    ),
    (
        "blocked gradient errs",
        stats(layer("a", 0.0, grad_zero_steps=3), layer("b")),
        {"no-gradient": "error"},
    ),
    (
        "blocked by zero init is info",
        stats(
            layer("a", 0.0, grad_zero_steps=3),
            layer("head", math.inf, zero_weights=True, grad_norm=_s(0.5)),
        ),
        {"no-gradient": "info"},
    ),
    (
        "never called is a warning",
        stats(layer("a"), layer("aux", None, grad_none_steps=3, calls=0)),
        {"no-gradient": "warning"},
    ),
    (
        "called but outside the loss is info",
        stats(layer("a"), layer("pooler", None, grad_none_steps=3)),
        {"no-gradient": "info"},
    ),
    (
        "gradient missing in one step only is fine",
        stats(layer("a", grad_zero_steps=1), layer("b")),
        {},
    ),
    (
        "small-init residual projections are judged at the standard scale",
        # GPT-2 style: every other layer starts at a tenth of 1/sqrt(fan_in); against its own
        # tiny weights its ratio is 3, against the standard scale (init_norm 10x) 0.3.
        stats(
            *(
                layer(f"l{i}", 3.0, weight_norm=_s(1.0), init_norm=10.0)
                if i % 2
                else layer(f"l{i}", 0.3)
                for i in range(6)
            )
        ),
        {},
    ),
    (
        "... but weights at or above the standard scale keep the plain ratio",
        stats(*(layer(f"l{i}", 3.0, weight_norm=_s(1.0), init_norm=0.5) for i in range(6))),
        {"exploding": "warning"},
    ),
    (
        "finite gradients whose norm overflows float32",
        stats(
            layer("a", 0.1), layer("b", 0.1, grad_norm=_s(math.inf), grad_to_weight=_s(math.inf))
        ),
        {"exploding": "error"},
    ),
    (
        "an overflowing norm with Inf values is nonfinite's business",
        stats(
            layer("a", 0.1),
            layer("b", 0.1, grad_norm=_s(math.inf), nonfinite=NonFinite(param_grads=3)),
        ),
        {"nonfinite": "error"},
    ),
    (
        "RNN gradient growing back in time errs",
        stats(layer("rnn", 0.1), temporal=(_profile(1e5),)),
        {"exploding": "error"},
    ),
    (
        "... 100x-10,000x warns",
        stats(layer("rnn", 0.1), temporal=(_profile(1e3),)),
        {"exploding": "warning"},
    ),
    (
        "vanilla RNN vanishing over time errs",
        stats(layer("rnn", 0.1), temporal=(_profile(1e-7),)),
        {"vanishing-over-time": "error"},
    ),
    (
        "... 1e-3..1e-6 warns",
        stats(layer("rnn", 0.1), temporal=(_profile(1e-4),)),
        {"vanishing-over-time": "warning"},
    ),
    (
        "gated cells: information",
        stats(layer("rnn", 0.1), temporal=(_profile(1e-9, gated=True),)),
        {"vanishing-over-time": "info"},
    ),
    ("flat profile is fine", stats(layer("rnn", 0.1), temporal=(_profile(0.5),)), {}),
    (
        "training growth: 1e3x warns",
        stats(layer("a", 1e-1, grad_norm=_s(10.0)), start_grad_norms=(("a", 1e-2),)),
        {"exploding": "warning"},
    ),
    (
        "training growth: 1e5x errs",
        stats(layer("a", 1e-1, grad_norm=_s(1e3)), start_grad_norms=(("a", 1e-2),)),
        {"exploding": "error"},
    ),
    (
        "training growth: 50x is fine",
        stats(layer("a", 1e-1, grad_norm=_s(0.5)), start_grad_norms=(("a", 1e-2),)),
        {},
    ),
]


@pytest.mark.parametrize("label,model,expected", CASES, ids=[c[0] for c in CASES])
def test_check_cases(label: str, model: ModelStats, expected: dict[str, str]) -> None:
    assert found(model) == expected


def test_thresholds_are_configurable() -> None:
    model = chain(1e-4, 5e-3, 2e-2, 1e-1)  # decay 5e-3 at default (output layer left out)
    assert found(model) == {"vanishing": "warning"}
    assert found(model, vanishing={"depth_error": 1e-2}) == {"vanishing": "error"}
    assert found(model, vanishing={"depth_warning": 1e-3, "depth_error": 1e-4}) == {}


def test_vanishing_names_every_starving_layer() -> None:
    model = chain(1e-8, 1e-6, 1e-4, 5e-2, 1e-1)
    (finding,) = run_checks(model)
    assert finding.layers == ("l0", "l1", "l2")
    assert finding.evidence["decay"] == pytest.approx(
        2e-7
    )  # 1e-8 over 5e-2: the output layer is left out


def test_nonfinite_names_first_module_first() -> None:
    model = stats(
        layer("a", nonfinite=NonFinite(param_grads=2)),
        layer("b", nonfinite=NonFinite(activations=5)),
        first_nonfinite=FirstNonFinite("wrapper", "forward", 1),
    )
    (finding,) = run_checks(model)
    assert finding.layers == ("wrapper", "a", "b")
    assert finding.evidence["first_step"] == 1


def test_every_check_is_documented() -> None:
    for check_id, cls in CHECKS.items():
        assert issubclass(cls, Check) and cls.id == check_id
        for section in ("Symptom", "Why it matters", "Remedy", "References"):
            assert len(cls.section(section)) > 40, (check_id, section)


def test_findings_only_name_known_remedies() -> None:
    from gradcheck_cli.remedies import REMEDIES

    for cls in CHECKS.values():
        assert set(cls.remedies) <= set(REMEDIES), cls.id
    assert Severity.ERROR.rank > Severity.WARNING.rank > Severity.INFO.rank


def test_readme_documents_every_threshold() -> None:
    from dataclasses import fields
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for check_id, cls in CHECKS.items():
        row = next((l for l in readme.splitlines() if l.startswith(f"| `{check_id}` |")), None)
        assert row is not None, check_id
        for f in fields(cls.Options):
            assert f"`{f.name.replace('_', '-')}`" in row, (check_id, f.name)
