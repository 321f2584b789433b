"""The ``dead-units`` check: ReLU units that output zero for every sample."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import FractionCheck


class DeadUnits(FractionCheck):
    """Dead units: ReLU features or channels that are zero for every sample of the batch.

    Symptom:
        In a ReLU or ReLU6 layer, the median fraction (over steps) of units that are <= 0 for
        every sample and position of the batch is at least 0.7 (warning) or 0.95 (error). Deep
        healthy ReLU nets with He init show up to about half of their units inactive on a
        batch of random inputs, since representations of different inputs grow correlated
        with depth; the thresholds sit above that. A unit is judged only with at least 8
        observations (samples x positions) per step, and a module called several times by its
        worst call.

    Why it matters:
        A dead unit passes no gradient, so the weights feeding it never change and it cannot
        come back: capacity is lost and, when most units of a layer are dead, the gradient to
        everything below is cut (Lu et al. 2019, "Dying ReLU and initialization").

    Remedy:
        Re-initialise with He (Kaiming) init and zero biases (a large negative bias kills
        units), add BatchNorm before the activation, lower the learning rate, or use
        LeakyReLU/GELU, whose gradient is never exactly zero.

    References:
        He et al. 2015; Lu, Shin, Su & Karniadakis 2019; Maas et al. 2013 (leaky ReLU).
    """

    id = "dead-units"
    name = "Dead ReLU units"
    remedies = ("kaiming-init", "batchnorm", "relu-swap")
    fractions = ("warning", "error")
    stat = "dead_fraction"
    evidence_key = "dead_fraction"
    message = "most units are dead (zero for every sample)"

    @dataclass(frozen=True)
    class Options:
        """Fractions of dead units in one layer that make a warning or an error."""

        warning: float = 0.7
        error: float = 0.95
