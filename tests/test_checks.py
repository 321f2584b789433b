"""Data-driven check cases on hand-built statistics: no torch, no hooks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from gradcheck_cli.checks import CHECKS, default_options, run_checks
from gradcheck_cli.checks.base import Check, depth_profiles, paths
from gradcheck_cli.checks.vanishing import Vanishing
from gradcheck_cli.findings import Severity
from gradcheck_cli.stats import (
    FirstNonFinite,
    GraphCut,
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
        # rows=0 alone (the field's default) is not evidence: the activation must be unmeasured
        "blocked on empty tensors only is info",
        stats(
            layer("a", 0.0, grad_zero_steps=3, rows=0, act_rms=Skipped("no tensor output")),
            layer("b", rows=32),
        ),
        {"no-gradient": "info"},
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


def test_the_findings_page_documents_every_threshold() -> None:
    from dataclasses import fields
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "docs" / "findings.md").read_text()
    for check_id, cls in CHECKS.items():
        row = next((l for l in readme.splitlines() if l.startswith(f"| `{check_id}` |")), None)
        assert row is not None, check_id
        for f in fields(cls.Options):
            assert f"`{f.name.replace('_', '-')}`" in row, (check_id, f.name)


# --- structure-aware rules (issue 10): hand-built depth, successors and scales -----------------


def _branches(cnn: tuple[float, ...], mlp: tuple[float, ...], fuse: float, heads: dict[str, float]):
    """A CNN branch and an MLP branch into ``fuse``, then output layers at depth 1."""
    layers = []
    for prefix, ratios in (("cnn", cnn), ("mlp", mlp)):
        for i, r in enumerate(ratios):
            successor = f"{prefix}.{i + 1}" if i + 1 < len(ratios) else "fuse"
            depth = len(ratios) - i + 2
            layers.append(
                layer(f"{prefix}.{i}", r, depth=depth, successor=successor, is_input=i == 0)
            )
    layers.append(layer("fuse", fuse, depth=2, successor=next(iter(heads))))
    layers += [layer(name, r, depth=1) for name, r in heads.items()]
    return stats(*layers)


def test_depth_rules_follow_paths_not_call_order() -> None:
    # Forward order ends with the regression head (ratio 1.0): comparing cnn.0 with it as the
    # two ends of one stack reads 3e-3, a false warning. Along each path, heads left out, the
    # CNN decays 3e-3 / 8e-2 and the MLP not at all.
    model = _branches((3e-3, 1e-2, 1.5e-2), (2e-2, 5e-2), 8e-2, {"reg": 1.0, "cls": 0.2})
    assert found(model) == {}
    forward_order = replace(model, layers=tuple(replace(l, depth=0) for l in model.layers))
    assert found(forward_order) == {"vanishing": "warning"}


def test_decay_on_one_branch_is_found_and_its_path_shown() -> None:
    model = _branches((1e-3, 1e-2, 2e-2), (1e-8, 1e-6, 1e-4, 1e-2), 5e-2, {"cls": 0.2})
    findings = [f for f in run_checks(model) if f.id == "vanishing"]
    assert [f.severity for f in findings] == [Severity.ERROR]
    assert (
        findings[0].evidence["path"] == "mlp.0 -> mlp.1 -> mlp.2 -> mlp.3 -> fuse (5 weight layers)"
    )
    assert findings[0].layers == ("mlp.0", "mlp.1", "mlp.2")
    assert math.isclose(findings[0].evidence["decay"], 1e-8 / 5e-2, rel_tol=1e-9)


def test_residual_scales_leave_the_ratio_rules_and_make_vanishing_info() -> None:
    # LayerScale 1e-6: the scale's own ratio is huge (5.9e3 in timm's ConvNeXt), the branch
    # layers behind it get gradients 1e-6 of normal.
    layers = [layer("stem", 1e-2)]
    for b in range(4):
        layers += [layer(f"b{b}.fc1", 1e-8), layer(f"b{b}.fc2", 1e-8)]
        layers.append(layer(f"b{b}", 5.9e3, residual_scale=True, near_zero_weights=True))
    layers.append(layer("head", 1e-1))
    findings = {f.id: f for f in run_checks(stats(*layers))}
    assert {(i, f.severity) for i, f in findings.items()} == {
        ("vanishing", Severity.INFO),
        ("exploding", Severity.INFO),  # the stem against the scaled branches: growth by design
    }
    assert findings["vanishing"].evidence["residual_scales"] == 4
    assert "4 residual scale(s) start near zero by design" in findings["exploding"].message
    # Without the structural fact the same numbers are two errors (the landed behaviour).
    plain = stats(*(replace(l, residual_scale=False, near_zero_weights=False) for l in layers))
    assert found(plain) == {"vanishing": "error", "exploding": "error"}


def _matrices(n: int, small: int) -> ModelStats:
    return stats(
        *(
            layer(f"l{i}", 1e-3, init_norm=10.0, weight_norm=_s(0.05 if i < small else 6.0))
            for i in range(n)
        )
    )


def test_most_layers_far_below_init_scale_is_an_init_bug() -> None:
    # The gradient at the small layers' outputs shrinks 10x per layer toward the input, as a
    # small init makes it (measured: SIREN's weights without w0, 0.046 per layer).
    small = [
        l if i == 15 else replace(l, near_zero_weights=True, out_grad_rms=_s(10.0 ** (i - 15)))
        for i, l in enumerate(_matrices(16, 15).layers)
    ]
    findings = [f for f in run_checks(stats(*small)) if f.id == "vanishing"]
    assert [f.severity for f in findings] == [Severity.ERROR]
    assert findings[0].evidence["rule"] == "small-init"
    assert math.isclose(findings[0].evidence["backward_decay"], 0.1)
    assert (
        findings[0].evidence["small_layers"] == 15 and findings[0].evidence["weight_layers"] == 16
    )
    assert math.isclose(findings[0].evidence["median_scale"], 0.005)
    assert "relu-swap" in findings[0].remedies and "xavier-init" in findings[0].remedies


def test_small_weights_that_forward_compensates_are_not_an_init_bug() -> None:
    # SIREN: weights at 1/w0 of the usual scale, pre-activations multiplied by w0 = 30 in
    # forward; the gradient at every layer's output keeps its scale (measured 0.007 at each).
    small = [
        l if i == 15 else replace(l, near_zero_weights=True, out_grad_rms=_s(7e-3))
        for i, l in enumerate(_matrices(16, 15).layers)
    ]
    assert [f for f in run_checks(stats(*small)) if f.id == "vanishing"] == []
    halving = [
        l if i == 15 else replace(l, near_zero_weights=True, out_grad_rms=_s(0.4 ** (15 - i)))
        for i, l in enumerate(_matrices(16, 15).layers)
    ]
    (finding,) = [f for f in run_checks(stats(*halving)) if f.id == "vanishing"]
    assert finding.evidence["rule"] == "small-init"  # 0.4 per layer: below the 0.5 line


def test_a_few_small_layers_are_a_design_and_training_is_not_init() -> None:
    half = [replace(l, near_zero_weights=i < 8) for i, l in enumerate(_matrices(16, 8).layers)]
    assert "vanishing" not in found(stats(*half))
    most = [
        replace(l, near_zero_weights=True, out_grad_rms=_s(10.0 ** (i - 15)))
        for i, l in enumerate(_matrices(16, 16).layers)
    ]
    assert found(stats(*most)) == {"vanishing": "error"}
    trained = stats(*most, start_grad_norms=(("l0", 1.0),))
    assert "vanishing" not in found(trained)


def _experts(ran: dict[int, int], total: int, **kw: object) -> ModelStats:
    return stats(
        layer("router", 1e-2, rows=48),
        *(
            layer(
                f"moe.experts.{e}.w1",
                1e-2 if e in ran else None,
                calls=int(e in ran),
                rows=ran.get(e, 0),
                grad_none_steps=0 if e in ran else 3,
                **kw,
            )
            for e in range(total)
        ),
    )


def test_experts_idle_by_chance_are_info() -> None:
    # 48 rows over 64 experts: about 64 (63/64)^48 = 30 idle by chance; 35 idle observed.
    ran = {e: 1 + e % 3 for e in range(29)}
    model = _experts(ran, 64)
    findings = [f for f in run_checks(model) if f.id == "no-gradient"]
    assert [f.severity for f in findings] == [Severity.INFO]
    assert findings[0].evidence["idle_experts"] == 35
    assert findings[0].evidence["routed_rows"] == sum(ran.values())
    assert math.isclose(findings[0].evidence["expected_idle"], 64 * (63 / 64) ** sum(ran.values()))


def test_a_collapsed_router_warns() -> None:
    model = _experts({0: 40, 1: 8}, 64)
    findings = [f for f in run_checks(model) if f.id == "no-gradient"]
    assert [f.severity for f in findings] == [Severity.WARNING]
    assert "only 2 of 64 experts" in findings[0].message


def test_identical_blocks_left_out_are_not_routing() -> None:
    # A stack whose block 3 is never called: every block that ran got the same rows.
    model = stats(
        *(
            layer(
                f"blocks.{b}.fc",
                1e-2 if b != 3 else None,
                calls=int(b != 3),
                rows=32,
                grad_none_steps=3 * int(b == 3),
            )
            for b in range(6)
        )
    )
    assert found(model) == {"no-gradient": "warning"}


def test_softmax_rows_saturate_with_their_own_advice() -> None:
    model = stats(
        layer("fc", 1e-2),
        replace(layer("softmax", None, kind=LayerKind.ACTIVATION, sat=0.9), type="Softmax"),
    )
    findings = [f for f in run_checks(model) if f.id == "saturation"]
    assert [f.severity for f in findings] == [Severity.ERROR]
    assert "softmax rows put 99%" in findings[0].message
    assert findings[0].remedies == ("temperature-floor",)  # the one remedy for softmax rows


def test_unsteady_fractions_are_called_unstable() -> None:
    swinging = replace(
        layer("relu", None, kind=LayerKind.ACTIVATION), dead_fraction=Summary(0.8, 0.05, 0.97)
    )
    findings = [f for f in run_checks(stats(layer("fc", 1e-2), swinging)) if f.id == "dead-units"]
    assert "unstable across batches (relu ranges from 5% to 97%)" in findings[0].message
    assert findings[0].evidence["unstable_layers"] == 1


def _decoder(skip: set[tuple[int, str]]) -> ModelStats:
    """Two decoder layers with self- and cross-attention; ``skip`` lists what never ran."""
    layers = []
    for b in range(2):
        for part in (
            "self_attn.q_proj",
            "self_attn.out_proj",
            "encoder_attn.q_proj",
            "encoder_attn.out_proj",
            "fc1",
        ):
            unused = (b, part.split(".")[0]) in skip or (b, part) in skip
            layers.append(
                layer(
                    f"decoder.layers.{b}.{part}",
                    None if unused else 1e-2,
                    calls=0 if unused else 1,
                    grad_none_steps=3 if unused else 0,
                )
            )
    return stats(*layers, layer("lm_head", 1e-1))


def test_a_branch_every_block_skips_is_an_optional_input() -> None:
    findings = [
        f
        for f in run_checks(_decoder({(0, "encoder_attn"), (1, "encoder_attn")}))
        if f.id == "no-gradient"
    ]
    assert [f.severity for f in findings] == [Severity.INFO]
    assert findings[0].evidence == {
        "layers": 4,
        "reason": "optional-branch",
        "group": "decoder.layers.*.encoder_attn",
    }


def test_a_branch_one_block_skips_or_a_whole_block_unused_warns() -> None:
    assert found(_decoder({(0, "encoder_attn")})) == {"no-gradient": "warning"}
    whole = {(1, p) for p in ("self_attn", "encoder_attn", "fc1")}
    assert found(_decoder(whole)) == {"no-gradient": "warning"}


def test_a_loss_of_exactly_zero_blocks_nothing_in_the_model() -> None:
    zero = [replace(layer(f"l{i}", None), grad_zero_steps=3) for i in range(4)]
    findings = [
        f for f in run_checks(stats(*zero, losses=(0.0, 0.0, 0.0))) if f.id == "no-gradient"
    ]
    assert [(f.severity, f.evidence["reason"]) for f in findings] == [
        (Severity.WARNING, "zero-loss")
    ]
    assert found(stats(*zero)) == {"no-gradient": "error"}  # a real loss: blocked


def _signal_net(head_input: float, **head: object) -> ModelStats:
    """An input layer producing RMS 0.5, a hidden layer, and an output layer fed ``head_input``."""
    return stats(
        layer("l0", 1e-2, act=0.5, depth=3, successor="l1", is_input=True),
        layer("l1", 1e-2, act=head_input, depth=2, successor="head"),
        layer("head", 1e-2, depth=1, in_rms=_s(head_input), **head),
    )


@pytest.mark.parametrize(
    ("head_input", "expected"),
    [(0.5 * 2e-2, None), (0.5 * 5e-3, Severity.WARNING), (0.5 * 5e-5, Severity.ERROR)],
)
def test_signal_rule_judges_the_head_input_against_what_the_input_layers_produce(
    head_input: float, expected: Severity | None
) -> None:
    findings = Vanishing().evaluate(_signal_net(head_input), Vanishing.Options())
    if expected is None:
        assert findings == []
        return
    (finding,) = findings
    assert finding.severity is expected
    assert finding.evidence["rule"] == "signal"
    assert finding.evidence["decay"] == pytest.approx(head_input / 0.5)
    assert finding.evidence["input_layer_rms"] == 0.5
    assert finding.layers == ("head",)


def test_signal_rule_leaves_a_head_fed_by_a_zero_initialised_layer() -> None:
    net = _signal_net(1e-6)
    fed_by_zero = stats(
        net.layers[0],
        replace(net.layers[1], zero_weights=True, near_zero_weights=True),
        net.layers[2],
    )
    assert Vanishing().evaluate(fed_by_zero, Vanishing.Options()) == []


def test_a_designed_small_init_does_not_excuse_a_vanishing_gradient() -> None:
    """Kaiming fan-out on a wide depthwise conv sits at 4.6% of 1/sqrt(fan_in): "near zero", but
    a layer at that scale cannot explain a gradient six orders of magnitude short; a zero
    initialisation on its way up (below 1%) can."""
    layers = [layer(f"l{i}", 1e-9) for i in range(6)]
    designed = replace(layers[2], near_zero_weights=True, init_norm=1 / 0.046)
    asleep = replace(layers[2], near_zero_weights=True, init_norm=1 / 0.004)
    (finding,) = Vanishing().evaluate(
        stats(*layers[:2], designed, *layers[3:]), Vanishing.Options()
    )
    assert finding.severity is Severity.ERROR
    (finding,) = Vanishing().evaluate(stats(*layers[:2], asleep, *layers[3:]), Vanishing.Options())
    assert finding.severity is Severity.INFO
    assert finding.evidence["near_zero_layers"] == 1


def test_layers_without_a_weight_matrix_stay_out_of_the_ratio_rules() -> None:
    """A Mamba mixer's own A_log, D and dt_bias (vectors, ratio 1e-5) at the start of a path:
    without a weight matrix, fan-in arguments do not apply, and no decay is read off them."""
    mixer = layer("mixer", 1e-5, scale_like=True)
    path = [layer(f"l{i}", 1e-2) for i in range(5)]
    assert Vanishing().evaluate(stats(mixer, *path), Vanishing.Options()) == []
    (finding,) = Vanishing().evaluate(
        stats(replace(mixer, scale_like=False), *path), Vanishing.Options()
    )
    assert finding.evidence["rule"] == "depth"


def _squeeze_excite(blocks: int) -> ModelStats:
    """A stem, then per block a conv into a BatchNorm and a squeeze-excitation layer whose ratio
    falls 3x per block toward the output (rexnet_100 at init: 4.9 early, 0.02 late), a head."""
    layers = []
    names = [n for b in range(blocks) for n in (f"b{b}.conv", f"b{b}.se")] + ["head"]
    for i, name in enumerate(names[:-1]):
        ratio = 3.0 ** (blocks - i // 2) * 1e-3 if name.endswith(".se") else 0.1
        layers.append(
            layer(
                name,
                ratio,
                depth=len(names) - i,
                successor=names[i + 1],
                is_input=i == 0,
                feeds_norm=name.endswith(".conv"),
            )
        )
    layers.append(layer("head", 0.5, depth=1))
    return stats(*layers)


def test_side_layers_between_normalised_convs_are_not_a_path() -> None:
    # The normaliser after each conv rescales the gradient it passes back: the squeeze-excitation
    # layers on either side are not a chain whose ratios compound (rexnet_100's false warning).
    model = _squeeze_excite(8)
    assert found(model) == {}
    se = [l for l in model.layers if l.name.endswith(".se")]
    convs = frozenset(l.name for l in model.layers if l.feeds_norm)
    assert paths(model, se, convs) == []
    assert paths(model, se) == [tuple(se)]
    # Read as one path, as before, they were growth: 3**2 / 3**-4 between the quarters.
    (whole,) = depth_profiles(model, se, 3)
    assert whole.decay == pytest.approx(3.0**6)


def test_a_cut_graph_is_an_error_naming_the_cut_and_the_rest_stays_info() -> None:
    # encoder.* ran without a gradient and its values reach the loss (cut at .detach());
    # metric ran without a gradient and its values do not (an output the loss never reads).
    none = {"grad_none_steps": 3}
    model = stats(
        layer("encoder.0", None, **none),
        layer("encoder.2", None, **none),
        layer("metric", None, **none),
        layer("head"),
        cuts=(
            GraphCut(
                ("encoder.0", "encoder.2"),
                (),
                ("encoder.0", "encoder.2"),
                ".detach()",
                "m.py:25",
                200,
                300,
            ),
        ),
    )
    findings = {f.evidence["reason"]: f for f in run_checks(model) if f.id == "no-gradient"}
    cut, unread = findings["cut"], findings["not-in-loss"]
    assert cut.severity is Severity.ERROR and cut.layers == ("encoder.0", "encoder.2")
    assert cut.remedies == ()
    assert cut.evidence == {
        "layers": 2,
        "reason": "cut",
        "operation": ".detach()",
        "source": "m.py:25",
        "parameters": [],
        "params": 200,
        "share": pytest.approx(2 / 3),
    }
    assert cut.message.startswith(
        "the graph is cut at .detach() (m.py:25): the values of encoder.*"
    )
    assert "200 trainable values, 67% of the model's" in cut.message
    assert "requires_grad_(False)" in cut.message and "straight-through" not in cut.message
    assert unread.severity is Severity.INFO and unread.layers == ("metric",)
