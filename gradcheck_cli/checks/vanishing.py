"""The ``vanishing`` check: gradients that shrink with depth, or are tiny everywhere."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

from gradcheck_cli.checks.base import Check, crossed, depth_profiles, ratio, ratio_layers, worst
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import LayerKind, LayerStats, ModelStats, value

# The small-init rule stands only where the gradient reaching the small layers' outputs
# shrinks by more than this factor per layer toward the input (median over the layers).
SMALL_COMPENSATED = 0.5


def _backward_decay(layers: list[LayerStats]) -> float | None:
    """The median, over consecutive layers in forward order, of the factor by which the
    gradient at a layer's output changes from the later layer to the earlier one (0 where the
    earlier gets none). The median, not the product: the output layer's gradient is the loss's
    own, of another scale, and one pair must not decide. None with fewer than two layers."""
    ordered = [value(l.out_grad_rms) for l in sorted(layers, key=lambda l: l.order)]
    ratios = [
        (early / late if late > 0 else 0.0)
        for early, late in zip(ordered, ordered[1:], strict=False)
        if early is not None and late is not None and math.isfinite(early)
    ]
    return float(statistics.median(ratios)) if ratios else None


class Vanishing(Check):
    """Gradients vanish: early layers learn orders of magnitude slower than late ones.

    Symptom:
        Along a path of weight layers from an input layer to the loss (read off the autograd
        graph: each layer's next layer toward the loss on its longest route, so branches and
        several heads make several paths), the gradient-to-weight ratio ||grad W|| / ||W|| of
        the first quarter (geometric mean) is far below that of the last quarter, output layers
        left out (depth decay); or the median ratio over all weight layers is tiny (every layer
        starves, as when the forward signal collapses in a deep ReLU net with Xavier init); or
        more than half of the weight matrices start below 5% of the standard scale
        1/sqrt(fan_in) (an initialisation bug: error); or the features reaching an output
        layer are orders of magnitude below what the input layers produce (the forward signal
        collapses, He et al. 2015's criterion); or no weight layer's input reaches an RMS of
        0.1 (the whole network runs small, as a transformer whose N(0, 0.02) embeddings lost
        the LayerNorm after them does: warning). Layers small by design, a zero-init head
        or residual gamma, or a residual scale (LayerScale, ReZero, SkipInit: a scalar or
        per-channel factor whose branch is added to a residual stream), make the first two
        rules information while they are near zero.

    Why it matters:
        An SGD step changes a layer by lr times this ratio, relative to its size. When the
        ratio decays geometrically with depth, the first layers barely move while the last
        ones fit noise: the classic failure of deep sigmoid/tanh stacks (Glorot & Bengio 2010)
        and of deep ReLU nets whose initialisation does not preserve variance (He et al. 2015).
        Regularisation and learning-rate decay do not fix it; they make it worse.

    Remedy:
        Use ReLU-family activations together with He (Kaiming) initialisation (a swap without
        the re-initialisation is not enough with PyTorch's default init), add residual
        connections (He et al. 2016), or normalise activations (BatchNorm, Ioffe & Szegedy
        2015; LayerNorm in pre-LN position for transformers, Xiong et al. 2020); for a
        network that runs small, give its embeddings unit scale (Vaswani et al. 2017).

    References:
        LeCun et al. 1998 (Efficient BackProp); Glorot & Bengio 2010; He et al. 2015 (Delving
        deep into rectifiers); He et al. 2016;
        Ioffe & Szegedy 2015; Xiong et al. 2020; Touvron et al. 2021 (LayerScale);
        Bachlechner et al. 2020 (ReZero); De & Smith 2020 (SkipInit); Vaswani et al. 2017.
    """

    id = "vanishing"
    name = "Vanishing gradients"
    remedies = ("relu-swap", "kaiming-init", "residual-wrap", "pre-norm", "batchnorm")

    @dataclass(frozen=True)
    class Options:
        """Thresholds for the depth decay (early/late ratio) and the median magnitude."""

        depth_warning: float = 1e-2
        depth_error: float = 1e-3
        magnitude_warning: float = 1e-5
        magnitude_error: float = 1e-6
        signal_warning: float = 1e-2
        signal_error: float = 1e-4
        scale_warning: float = 1e-1
        min_layers: int = 3

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        small = self._small_init(stats, options)
        if small is not None:
            return [small]
        findings = []
        layers = ratio_layers(stats)
        profiles = depth_profiles(stats, layers, options.min_layers)
        profile = min(profiles, key=lambda p: p.decay, default=None)
        if profile is not None and profile.decay < options.depth_warning:
            severity = Severity.ERROR if profile.decay < options.depth_error else Severity.WARNING
            first, last = profile.early[0], profile.late[-1]
            findings.append(
                Finding(
                    id=self.id,
                    severity=severity,
                    # Every layer learning 1/depth_warning as fast as the last ones starves.
                    layers=tuple(
                        l.display_name
                        for l in profile.path
                        if ratio(l) < profile.late_ratio * options.depth_warning
                    ),
                    message=(
                        f"gradients shrink with depth: the first {len(profile.early)} weight "
                        f"layer(s) get a gradient-to-weight ratio {profile.decay:.1e} times "
                        f"that of the last {len(profile.late)} "
                        f"({first.display_name}: {ratio(first):.1e}, "
                        f"{last.display_name}: {ratio(last):.1e})"
                    ),
                    evidence={
                        "rule": "depth",
                        "decay": profile.decay,
                        "early_ratio": profile.early_ratio,
                        "late_ratio": profile.late_ratio,
                        "path": profile.route,
                        "threshold": crossed(severity, options.depth_warning, options.depth_error),
                    },
                    remedies=self.remedies,
                    why=self.section("Why it matters"),
                )
            )
        if not layers:
            return findings
        median = statistics.median(ratio(l) for l in layers)
        if median < options.magnitude_warning:
            severity = Severity.ERROR if median < options.magnitude_error else Severity.WARNING
            # The output layer is left out: its bias and the loss set its scale, not depth.
            acts = [value(l.act_rms) for l in layers[:-1]]
            known = [a for a in acts if a is not None and a > 0]
            evidence: dict[str, float | str | int] = {
                "rule": "magnitude",
                "median_ratio": median,
                "threshold": crossed(severity, options.magnitude_warning, options.magnitude_error),
                "layers": len(layers),
            }
            if len(known) >= 2:
                evidence["activation_rms_first"] = known[0]
                evidence["activation_rms_last_hidden"] = known[-1]
            findings.append(
                Finding(
                    id=self.id,
                    severity=severity,
                    layers=tuple(l.display_name for l in layers),
                    message=(
                        f"every layer's gradient is tiny relative to its weights: median "
                        f"gradient-to-weight ratio {median:.1e} over {len(layers)} weight layers"
                        + (
                            f"; the forward signal falls from RMS {known[0]:.1e} to {known[-1]:.1e}"
                            if len(known) >= 2 and known[-1] < known[0] * 1e-2
                            else ""
                        )
                    ),
                    evidence=evidence,
                    remedies=self.remedies,
                    why=self.section("Why it matters"),
                )
            )
        findings = [_waking(f, stats) for f in findings]
        for extra in (self._signal(stats, options), self._scale(stats, options)):
            if extra is not None:
                findings.append(extra)
        return worst(findings)

    def _signal(self, stats: ModelStats, options: Options) -> Finding | None:
        """The features the network delivers to an output layer have collapsed in scale.

        He et al. (2015) derive their initialisation from this: unless each layer preserves
        the variance of its input, "the magnitudes of input signals are reduced or magnified
        exponentially" with depth. Measured here as the RMS of what reaches an output layer
        over the RMS the input layers produce (the network's own decay, whatever the scale of
        the data); when it is orders of magnitude short, the output barely depends on the
        input and every weight gradient below is scaled down with it. Not judged when a
        zero-initialised layer or a recurrent module feeds the output layer (small by design:
        a gated state starts small), nor on a one-layer model.
        """
        sources = [
            v for l in stats.layers if l.is_input and (v := value(l.act_rms)) is not None and v > 0
        ]
        if not sources:
            return None
        source = max(sources)
        feeding: dict[str, list[LayerStats]] = {}
        for l in stats.layers:
            if l.successor is not None:
                feeding.setdefault(l.successor, []).append(l)
        recurrent = {p.module for p in stats.temporal if p.method == "last step"}
        heads = []
        for l in stats.layers:
            rms = value(l.in_rms)
            if (
                l.kind is LayerKind.WEIGHT
                and l.depth == 1
                and not l.is_input
                and not l.residual_scale
                and rms is not None
                and 0 < rms < source * options.signal_warning
                and not any(_asleep(f) for f in feeding.get(l.name, []))
                # A recurrent state is bounded by its gates and starts small by design (an
                # input gate held nearly shut by chrono init): vanishing-over-time judges it.
                and not any(
                    f.name in recurrent or f.type in _RECURRENT for f in feeding.get(l.name, [])
                )
            ):
                heads.append((rms / source, l))
        if not heads:
            return None
        decay, head = min(heads, key=lambda h: h[0])
        severity = Severity.ERROR if decay < options.signal_error else Severity.WARNING
        return Finding(
            id=self.id,
            severity=severity,
            layers=tuple(l.display_name for _, l in sorted(heads, key=lambda h: h[0])),
            message=(
                f"the forward signal collapses: the features reaching the output layer "
                f"{head.display_name} have RMS {decay * source:.1e}, {decay:.1e} times the "
                f"{source:.1e} the input layers produce, so the output barely depends on the "
                "input and every gradient below is scaled down with it"
            ),
            evidence={
                "rule": "signal",
                "decay": decay,
                "head_input_rms": decay * source,
                "input_layer_rms": source,
                "threshold": crossed(severity, options.signal_warning, options.signal_error),
            },
            remedies=("kaiming-init", "batchnorm"),
            why=self.section("Why it matters"),
        )

    def _scale(self, stats: ModelStats, options: Options) -> Finding | None:
        """No weight layer receives an input anywhere near unit scale: the whole network runs
        small.

        A layer's weight gradient is its input times its output gradient, and an SGD step
        changes its output by the learning rate times the input's squared norm: at input RMS
        ``s`` everywhere, every layer learns ``1/s**2`` times slower than at unit scale. The
        usual cause is an embedding table initialised small (std 0.02, as transformers do)
        because a LayerNorm was meant to follow it, with the normalisation gone; Vaswani et al.
        (2017) multiply embeddings by sqrt(d_model) for the same reason. Measured: Hugging Face
        transformers with their LayerNorms replaced by identities run at RMS 0.02-0.04 and make
        under 6% of the original's progress in 30 SGD steps; every healthy zoo model but one has
        a weight layer with input RMS near 1 (the exception, MobileBERT, has no LayerNorm by
        design and is as slow). Adam rescales each gradient and hides it, hence a warning.
        """
        measured = [
            (rms, l)
            for l in stats.layers
            if l.kind is LayerKind.WEIGHT and (rms := value(l.in_rms)) is not None and rms > 0
        ]
        if len(measured) < options.min_layers:
            return None
        largest, widest = max(measured, key=lambda m: m[0])
        if largest >= options.scale_warning:
            return None
        return Finding(
            id=self.id,
            severity=Severity.WARNING,
            layers=tuple(l.display_name for _, l in measured),
            message=(
                f"the whole network runs far below unit scale: no weight layer's input has an "
                f"RMS above {largest:.1e} (the largest, in {widest.display_name}), so every "
                f"gradient is scaled down with it and an SGD step changes each layer about "
                f"{1 / largest**2:.0e} times less than at unit scale; normalise (LayerNorm), or "
                "give the embeddings or the input data unit RMS"
            ),
            evidence={
                "rule": "scale",
                "largest_input_rms": largest,
                "layer": widest.display_name,
                "layers": len(measured),
                "threshold": options.scale_warning,
            },
            remedies=("embedding-scale", "pre-norm", "batchnorm"),
            why=self.section("Why it matters"),
        )

    def _small_init(self, stats: ModelStats, options: Options) -> Finding | None:
        """Most weight matrices start far below their init scale: an initialisation bug.

        One zero-initialised head or residual branch is a design (Goyal et al. 2017; Fixup);
        when more than half of the weight matrices sit below 5% of 1/sqrt(fan_in) at step 0,
        the forward signal and the gradient shrink by that factor at every layer, unless
        forward multiplies it back: SIREN draws its weights at 1/w0 of the usual scale and
        multiplies each pre-activation by w0 = 30 (Sitzmann et al. 2020). So the rule also
        measures the shrinking: the gradient reaching the small layers' outputs, followed from
        the last toward the first, must lose at least half of itself per layer (the median
        over consecutive layers; the output layer's gradient is the loss's own and may differ
        by 10x from the hidden ones'); SIREN's keeps its scale (0.007 at every hidden layer),
        the same net without w0 loses 10x or more per layer. Judged on the untrained model only: under --train-steps,
        zero-initialised layers pass through "near zero" on their way up.
        """
        if stats.start_grad_norms:
            return None
        matrices = [
            l
            for l in stats.layers
            if l.kind is LayerKind.WEIGHT and l.init_norm > 0 and not l.residual_scale
        ]
        small = [l for l in matrices if l.near_zero_weights and not l.zero_weights]
        if len(matrices) < options.min_layers or len(small) <= len(matrices) * 0.5:
            return None
        decay = _backward_decay(small)
        if decay is not None and decay >= SMALL_COMPENSATED:
            return None  # compensated in forward (SIREN's w0): the gradient keeps its scale
        scales = sorted((value(l.weight_norm) or 0.0) / l.init_norm for l in small)
        median = statistics.median(scales)
        return Finding(
            id=self.id,
            severity=Severity.ERROR,
            layers=tuple(l.display_name for l in small),
            message=(
                f"{len(small)} of {len(matrices)} weight layers start far below their init "
                f"scale (median {median:.1e} of the norm at 1/sqrt(fan_in)): an initialisation "
                "bug that shrinks the signal and the gradient at every layer; re-initialise "
                "them (Xavier for sigmoid/tanh, He for ReLU)"
            ),
            evidence={
                "rule": "small-init",
                "small_layers": len(small),
                **({"backward_decay": decay} if decay is not None else {}),
                "weight_layers": len(matrices),
                "median_scale": median,
                "threshold": 0.5,
            },
            # Xavier suits a shallow sigmoid/tanh net; a deep one vanishes at Xavier init too
            # (Glorot & Bengio 2010) and needs the ReLU swap with He init.
            remedies=("xavier-init", "kaiming-init", "relu-swap"),
            why=self.section("Why it matters"),
        )


def _waking(finding: Finding, stats: ModelStats) -> Finding:
    """Information only while small-by-design layers are still near zero.

    A zero-init head or residual gamma (Goyal et al. 2017), and a residual scale (LayerScale at
    1e-6, Touvron et al. 2021; ReZero, Bachlechner et al. 2020) scale down the gradient of every
    layer behind them until their weights have grown: the ratios are tiny by design, not by
    depth.
    """
    waking = [l for l in stats.layers if _asleep(l)]
    if not waking:
        return finding
    scales = [l.display_name for l in waking if l.residual_scale]
    others = [l.display_name for l in waking if not l.residual_scale]
    parts = []
    if scales:
        parts.append(
            f"{len(scales)} residual scale(s) (LayerScale/ReZero: a factor on a residual "
            f"branch) start near zero by design ({_shown(scales)})"
        )
    if others:
        parts.append(
            f"{len(others)} zero-initialised layer(s) are still near zero ({_shown(others)})"
        )
    return replace(
        finding,
        severity=Severity.INFO,
        message=(
            f"{finding.message}; {' and '.join(parts)}: they scale down the gradient behind "
            "them until they grow, so measure again after some training steps"
        ),
        evidence={
            **finding.evidence,
            "near_zero_layers": len(waking),
            "residual_scales": len(scales),
        },
    )


_RECURRENT = frozenset({"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"})


# A weight layer scales the gradient that passes through it by about its scale (its norm over
# the norm at 1/sqrt(fan_in)). Below 1% it is a zero initialisation on its way up; between 1%
# and 5% it is a designed init (Kaiming fan-out on a wide depthwise conv: 4.6% at 960 channels)
# that cannot explain a gradient many orders of magnitude short.
ASLEEP = 0.01


def _asleep(layer: LayerStats) -> bool:
    if not layer.near_zero_weights:
        return False
    if layer.residual_scale or layer.zero_weights or layer.init_norm <= 0:
        return True
    return (value(layer.weight_norm) or 0.0) < ASLEEP * layer.init_norm


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
