"""The ``exploding`` check: gradients that are huge, or that grow with depth."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from gradcheck_cli.checks.base import (
    Check,
    crossed,
    depth_profiles,
    ratio_layers,
    step_ratio,
    worst,
)
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import LayerKind, ModelStats, value


class Exploding(Check):
    """Gradients explode: steps larger than the weights themselves, or growing with depth.

    Symptom:
        The median gradient-to-weight ratio ||grad W|| / ||W|| over the weight layers is
        above 1 (warning) or 10 (error), or one layer's ratio is above 100 (for layers whose
        weights start below the standard scale 1/sqrt(fan_in), as GPT-2's scaled residual
        projections do, ||W|| counts at that scale), or the ratio of
        the first quarter of the layers of a path (see ``vanishing``) exceeds that of the last
        quarter by 100x (warning) or 10,000x (error); this growth is information while residual
        scales (LayerScale, ReZero) are near zero, since they shrink the gradient of their
        branches by design. Layers whose output goes straight into a normaliser are left out of
        the magnitude rules: their weights are scale-invariant and show large relative
        gradients at initialisation without harm. Under --train-steps, also when the global
        gradient norm has grown 100x (warning) or 10,000x (error) since step 0: when the
        weights blow up with the gradients the ratios stay moderate while the loss diverges.
        Also when a layer's gradient norm overflows float32 although its values are finite
        (error), and when the first tenth of a recurrent module's input steps gets 100x
        (warning) or 10,000x (error) the gradient of the last tenth: gradients that grow going
        back in time, the exploding-gradient problem of RNNs. The model-level profile (the
        loss's gradient at the embedding output or the input, for models with no recurrent
        module profiled) counts the same growth past that many times the sequence length: a
        loss read at every position gives an early position the gradient of up to that many
        outputs by design, no more.

    Why it matters:
        With a ratio above 1, a single SGD step at learning rate 1 replaces the layer's weights
        wholesale; at ordinary learning rates the loss jumps, diverges or turns NaN. Growth
        with depth is the exploding-gradient problem of Pascanu et al. 2013: each layer
        multiplies the backward signal by a factor above one.

    Remedy:
        Clip the global gradient norm (Pascanu et al. 2013), re-initialise with a
        variance-preserving scheme (He et al. 2015 for ReLU, Glorot & Bengio 2010 for tanh),
        add normalisation layers (Ioffe & Szegedy 2015) and lower the learning rate.

    References:
        Pascanu, Mikolov & Bengio 2013; He et al. 2015; Glorot & Bengio 2010; Ioffe & Szegedy
        2015.
    """

    id = "exploding"
    name = "Exploding gradients"
    remedies = ("grad-clip", "kaiming-init", "pre-norm", "batchnorm", "lower-lr")

    @dataclass(frozen=True)
    class Options:
        """Thresholds for the median magnitude, one layer's magnitude, and growth with depth."""

        magnitude_warning: float = 1.0
        magnitude_error: float = 10.0
        layer_error: float = 100.0
        growth_warning: float = 1e2
        growth_error: float = 1e4
        min_layers: int = 3
        training_warning: float = 1e2
        training_error: float = 1e4
        time_warning: float = 1e2
        time_error: float = 1e4

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        findings = [
            *self._in_training(stats, options),
            *self._overflow(stats),
            *self._over_time(stats, options),
        ]
        layers = [l for l in ratio_layers(stats) if not l.feeds_norm]
        if not layers:
            return worst(findings)

        why = self.section("Why it matters")
        median = statistics.median(step_ratio(l) for l in layers)
        biggest = max(layers, key=step_ratio)
        acts = [a for a in (value(l.act_rms) for l in stats.layers) if a is not None]
        peak_act = max(acts, default=0.0)
        # The median needs several layers: alone, an output layer's ratio is large by nature
        # (it gets the loss gradient directly), as in healthy ResNets whose other layers all
        # feed BatchNorm.
        if len(layers) >= options.min_layers and median > options.magnitude_warning:
            severity = Severity.ERROR if median > options.magnitude_error else Severity.WARNING
            over = [l for l in layers if step_ratio(l) > options.magnitude_warning]
            findings.append(
                Finding(
                    id=self.id,
                    severity=severity,
                    layers=tuple(l.display_name for l in over),
                    message=(
                        f"gradients are larger than the weights: median gradient-to-weight "
                        f"ratio {median:.1e} over {len(layers)} weight layers (largest "
                        f"{step_ratio(biggest):.1e} in {biggest.display_name}); peak activation "
                        f"RMS {peak_act:.1e}"
                    ),
                    evidence={
                        "rule": "magnitude",
                        "median_ratio": median,
                        "max_ratio": step_ratio(biggest),
                        "peak_activation_rms": peak_act,
                        "threshold": crossed(
                            severity, options.magnitude_warning, options.magnitude_error
                        ),
                    },
                    remedies=self.remedies,
                    why=why,
                )
            )
        elif step_ratio(biggest) > options.layer_error:
            findings.append(
                Finding(
                    id=self.id,
                    severity=Severity.ERROR,
                    layers=(biggest.display_name,),
                    message=(
                        f"{biggest.display_name} gets a gradient {step_ratio(biggest):.1e} times "
                        "the size of its weights"
                    ),
                    evidence={
                        "rule": "layer",
                        "max_ratio": step_ratio(biggest),
                        "threshold": options.layer_error,
                    },
                    remedies=self.remedies,
                    why=why,
                )
            )
        # Growth is judged only along paths without a normaliser between their layers (nor a
        # layer feeding one, left out of the ratios): a normaliser rescales the gradient it
        # passes back, so the layers on either side (squeeze-excitation or router layers
        # between normalised convolutions, the blocks of a normalised transformer) are not a
        # chain whose ratios compound, and the short runs between two normalisers are too
        # short for a trend (a conv against the squeeze-excitation layer after it).
        normalised = frozenset(
            l.name for l in stats.layers if l.feeds_norm or l.kind is LayerKind.NORM
        )
        profiles = depth_profiles(stats, layers, options.min_layers, normalised)
        profile = max(profiles, key=lambda p: p.decay, default=None)
        if profile is not None and profile.decay > options.growth_warning:
            severity = Severity.ERROR if profile.decay > options.growth_error else Severity.WARNING
            # Residual scales near zero (LayerScale 1e-6) shrink the gradient of the layers in
            # their branches by design, so layers outside them (a stem) look like growth.
            scales = [
                l.display_name for l in stats.layers if l.residual_scale and l.near_zero_weights
            ]
            if scales:
                severity = Severity.INFO
            findings.append(
                Finding(
                    id=self.id,
                    severity=severity,
                    layers=tuple(l.display_name for l in profile.early),
                    message=(
                        f"gradients grow toward the input: the first {len(profile.early)} "
                        f"weight layer(s) get a gradient-to-weight ratio {profile.decay:.1e} "
                        f"times that of the last {len(profile.late)}"
                        + (
                            f"; {len(scales)} residual scale(s) start near zero by design "
                            f"({', '.join(scales[:3])}) and shrink the gradient of their "
                            "branches until they grow"
                            if scales
                            else ""
                        )
                    ),
                    evidence={
                        "rule": "growth",
                        "growth": profile.decay,
                        "early_ratio": profile.early_ratio,
                        "late_ratio": profile.late_ratio,
                        "path": profile.route,
                        "threshold": crossed(
                            severity, options.growth_warning, options.growth_error
                        ),
                    },
                    remedies=self.remedies,
                    why=why,
                )
            )
        return worst(findings)

    def _overflow(self, stats: ModelStats) -> list[Finding]:
        """Gradients whose values are finite but whose norm overflows float32 (above 3.4e38)."""
        over = [
            l
            for l in stats.layers
            if value(l.grad_norm) == math.inf and l.nonfinite.param_grads == 0
        ]
        if not over:
            return []
        return [
            Finding(
                id=self.id,
                severity=Severity.ERROR,
                layers=tuple(l.display_name for l in over),
                message=(
                    f"the gradient norm of {len(over)} layer(s) overflows float32 although every "
                    f"value is finite ({', '.join(l.display_name for l in over[:3])}): gradients "
                    "of about 1e19 or more per value"
                ),
                evidence={"rule": "overflow", "layers": len(over)},
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]

    def _over_time(self, stats: ModelStats, options: Options) -> list[Finding]:
        """A recurrent module (or, where none was profiled, the whole model) whose gradient
        grows going back in time (Pascanu et al. 2013)."""
        findings = []
        modules = any(p.method == "last step" for p in stats.temporal)
        for profile in stats.temporal:
            ratio = profile.early_to_late
            if profile.method == "last step":
                scale = 1
            elif profile.cell == "model" and not modules:
                scale = len(profile.norms)  # a loss on every position: up to T outputs each
            else:
                continue
            warning, error = options.time_warning * scale, options.time_error * scale
            if ratio is None or ratio <= warning:
                continue
            severity = Severity.ERROR if ratio > error else Severity.WARNING
            findings.append(
                Finding(
                    id=self.id,
                    severity=severity,
                    layers=(profile.module or "(model)",),
                    message=(
                        f"{profile.label}: the first {profile.window} input steps get "
                        f"{ratio:.1e} times the gradient of the last {profile.window}: it grows "
                        "going back in time"
                    ),
                    evidence={
                        "rule": "over-time",
                        "early_to_late": ratio,
                        "threshold": crossed(severity, warning, error),
                    },
                    remedies=self.remedies,
                    why=self.section("Why it matters"),
                )
            )
        return findings

    def _in_training(self, stats: ModelStats, options: Options) -> list[Finding]:
        """Growth of the global gradient norm since step 0 of ``--train-steps``.

        The ratio rules miss an explosion in which the weights blow up with the gradients (a
        net thrown off a curvature wall by a large step, Pascanu et al. 2013): the gradient
        norm measured against where training started does not.
        """
        start = dict(stats.start_grad_norms)
        pairs = [
            (layer, start[layer.name], now)
            for layer in stats.layers
            if layer.name in start
            and (now := value(layer.grad_norm)) is not None
            and math.isfinite(now)
            and math.isfinite(start[layer.name])
        ]
        before = math.sqrt(sum(s * s for _, s, _ in pairs))
        after = math.sqrt(sum(n * n for _, _, n in pairs))
        if before == 0 or after <= options.training_warning * before:
            return []
        growth = after / before
        severity = Severity.ERROR if growth > options.training_error else Severity.WARNING
        grown = sorted(
            ((l, n / s) for l, s, n in pairs if s > 0 and n > options.training_warning * s),
            key=lambda pair: -pair[1],
        )
        named = ", ".join(f"{l.display_name} {g:.0e}x" for l, g in grown[:3])
        return [
            Finding(
                id=self.id,
                severity=severity,
                layers=tuple(l.display_name for l, _ in grown),
                message=(
                    f"gradients exploded during training: the global gradient norm grew "
                    f"{growth:.1e}x since step 0 ({before:.1e} -> {after:.1e})"
                    + (f"; most in {named}" if named else "")
                ),
                evidence={
                    "rule": "training",
                    "growth": growth,
                    "start_norm": before,
                    "norm": after,
                    "threshold": crossed(
                        severity, options.training_warning, options.training_error
                    ),
                },
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]
