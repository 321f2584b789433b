"""The ``saturation`` check: sigmoid/tanh-like units stuck in their flat regions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gradcheck_cli.checks.base import FractionCheck
from gradcheck_cli.findings import Finding
from gradcheck_cli.stats import ModelStats

_SOFTMAX = frozenset({"Softmax", "LogSoftmax", "softmax()"})


class Saturation(FractionCheck):
    """Saturated units: sigmoid, tanh and hard variants pinned at their bounds.

    Symptom:
        In a Sigmoid, Tanh, Hardtanh, Hardsigmoid or ReLU6 layer, the median fraction of output
        values in the flat region is at least 0.2 (warning) or 0.5 (error). Flat means a
        derivative under 4% of its peak: sigmoid outputs outside [0.01, 0.99], tanh outside
        [-0.99, 0.99], and the exact bounds of the hard variants (derivative zero). In a
        Softmax or LogSoftmax module, or a functional softmax (``F.softmax``: its rows are read
        from the graph of step 0 and reported as ``<module>.softmax()``), the fraction of rows
        whose largest probability is at least 0.99 (8 rows per step at least), with the same
        thresholds: logits so large (a temperature far below 1, attention scores not divided
        by sqrt(d)) that every derivative p_i (1 - p_i) is near zero. When a layer's fraction
        differs tenfold between batches, the finding says so.

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
        Glorot & Bengio 2010; LeCun et al. 1998 (Efficient BackProp); Ioffe & Szegedy 2015;
        Vaswani et al. 2017 (scaled dot-product attention).
    """

    id = "saturation"
    name = "Saturated activations"
    remedies = ("xavier-init", "batchnorm", "relu-swap")
    fractions = ("warning", "error")
    stat = "saturated_fraction"
    evidence_key = "saturated_fraction"
    message = "activations are saturated (flat, near-zero derivative)"

    @dataclass(frozen=True)
    class Options:
        """Fractions of saturated values in one layer that make a warning or an error."""

        warning: float = 0.2
        error: float = 0.5

    def evaluate(self, stats: ModelStats, options: Any) -> list[Finding]:
        """Element-wise activations and softmax rows are judged apart: they need other cures."""
        units = replace(stats, layers=tuple(l for l in stats.layers if l.type not in _SOFTMAX))
        rows = replace(stats, layers=tuple(l for l in stats.layers if l.type in _SOFTMAX))
        found = super().evaluate(units, options)
        for finding in super().evaluate(rows, options):
            found.append(
                replace(
                    finding,
                    message=finding.message.replace(
                        self.message,
                        "softmax rows put 99% or more on one entry (logits too large: a "
                        "temperature far below 1, or attention scores not scaled by 1/sqrt(d))",
                        1,
                    ),
                    remedies=("temperature-floor",),
                )
            )
        return found
