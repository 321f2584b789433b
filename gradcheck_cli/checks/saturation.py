"""The ``saturation`` check: sigmoid/tanh-like units stuck in their flat regions."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import Check
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import ModelStats, value


class Saturation(Check):
    """Saturated units: sigmoid, tanh and hard variants pinned at their bounds.

    Symptom:
        In a Sigmoid, Tanh, Hardtanh, Hardsigmoid or ReLU6 layer, the median fraction of output
        values in the flat region is at least 0.2 (warning) or 0.5 (error). Flat means a
        derivative under 4% of its peak: sigmoid outputs outside [0.01, 0.99], tanh outside
        [-0.99, 0.99], and the exact bounds of the hard variants (derivative zero).

    Why it matters:
        A saturated unit passes almost no gradient, so the layers below it stop learning;
        Glorot & Bengio 2010 traced the slow training of deep sigmoid nets to exactly this
        (the top hidden layer saturating at zero). It usually means the pre-activations are
        too large: weights initialised with too much variance, or unnormalised inputs.

    Remedy:
        Initialise with Xavier/Glorot init for tanh/sigmoid (Glorot & Bengio 2010), normalise
        pre-activations (BatchNorm/LayerNorm), or switch to ReLU-family activations with He
        init.

    References:
        Glorot & Bengio 2010; LeCun et al. 1998 (Efficient BackProp); Ioffe & Szegedy 2015.
    """

    id = "saturation"
    name = "Saturated activations"
    remedies = ("xavier-init", "batchnorm", "relu-swap")

    @dataclass(frozen=True)
    class Options:
        """Fractions of saturated values in one layer that make a warning or an error."""

        warning: float = 0.2
        error: float = 0.5

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        hits = []
        for layer in stats.layers:
            saturated = value(layer.saturated_fraction)
            if saturated is not None and saturated >= options.warning:
                hits.append((layer, saturated))
        if not hits:
            return []
        top = max(s for _, s in hits)
        severity = Severity.ERROR if top >= options.error else Severity.WARNING
        listing = ", ".join(f"{l.display_name} {s:.0%}" for l, s in hits[:5])
        more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
        return [
            Finding(
                id=self.id,
                severity=severity,
                layers=tuple(l.display_name for l, _ in hits),
                message=f"activations are saturated (flat, near-zero derivative): {listing}{more}",
                evidence={
                    "max_saturated_fraction": top,
                    "threshold": options.error if severity is Severity.ERROR else options.warning,
                    "saturated_fraction": {l.display_name: s for l, s in hits},
                },
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]
