"""The ``vanishing`` check: gradients that shrink with depth, or are tiny everywhere."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from gradcheck_cli.checks.base import Check, crossed, depth_profile, ratio, ratio_layers, worst
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import ModelStats, value


class Vanishing(Check):
    """Gradients vanish: early layers learn orders of magnitude slower than late ones.

    Symptom:
        The gradient-to-weight ratio ||grad W|| / ||W|| of the first quarter of the weight
        layers (geometric mean) is far below that of the last quarter (depth decay), or the
        median ratio over all weight layers is tiny (every layer starves, as when the forward
        signal collapses in a deep ReLU net with Xavier init).

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
        2015; LayerNorm in pre-LN position for transformers, Xiong et al. 2020).

    References:
        Glorot & Bengio 2010; He et al. 2015 (Delving deep into rectifiers); He et al. 2016;
        Ioffe & Szegedy 2015; Xiong et al. 2020.
    """

    id = "vanishing"
    name = "Vanishing gradients"
    remedies = ("relu-swap", "kaiming-init", "residual-wrap", "batchnorm")

    @dataclass(frozen=True)
    class Options:
        """Thresholds for the depth decay (early/late ratio) and the median magnitude."""

        depth_warning: float = 1e-2
        depth_error: float = 1e-3
        magnitude_warning: float = 1e-5
        magnitude_error: float = 1e-6
        min_layers: int = 3

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        findings = []
        layers = ratio_layers(stats)
        profile = depth_profile(layers, options.min_layers)
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
                        for l in layers
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
        return [_waking(f, stats) for f in worst(findings)]


def _waking(finding: Finding, stats: ModelStats) -> Finding:
    """Information only while zero-initialised layers are still near zero.

    A zero-init head or residual gamma (Goyal et al. 2017) scales down the gradient of every
    layer behind it until its weights have grown: after the first updates the ratios are tiny
    by design, not by depth.
    """
    waking = [l.display_name for l in stats.layers if l.near_zero_weights]
    if not waking:
        return finding
    shown = ", ".join(waking[:3]) + (f" and {len(waking) - 3} more" if len(waking) > 3 else "")
    return replace(
        finding,
        severity=Severity.INFO,
        message=(
            f"{finding.message}; {len(waking)} zero-initialised layer(s) are still near zero "
            f"({shown}) and scale down the gradient behind them until they grow: measure "
            "again after more steps"
        ),
        evidence={**finding.evidence, "near_zero_layers": len(waking)},
    )
