"""The ``saturation`` check: sigmoid/tanh-like units stuck in their flat regions."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import FractionCheck


class Saturation(FractionCheck):
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
    stat = "saturated_fraction"
    evidence_key = "saturated_fraction"
    message = "activations are saturated (flat, near-zero derivative)"

    @dataclass(frozen=True)
    class Options:
        """Fractions of saturated values in one layer that make a warning or an error."""

        warning: float = 0.2
        error: float = 0.5
