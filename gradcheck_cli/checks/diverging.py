"""The ``diverging`` check: training the model makes its loss rise or turn non-finite."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import Check
from gradcheck_cli.checks.not_learning import evidence
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import ModelStats


class Diverging(Check):
    """Training diverges (the learning probe, ``--learn N``).

    Symptom:
        While the learning probe trains a copy (``--optimizer``, ``--lr``, ``--momentum``), a
        training loss turns NaN or infinite, or the held-out loss ends higher than it started
        by more than its own size. A warning.

    Why it matters:
        Steps larger than the loss surface's curvature allows throw the weights off it: the
        loss jumps, diverges or turns NaN (Pascanu, Mikolov & Bengio 2013). Under SGD with
        momentum a large spread of gradient scales across layers does this at learning rates
        Adam survives, since Adam normalises each parameter's step.

    Remedy:
        Lower the learning rate or add warm-up; clip the global gradient norm (Pascanu et al.
        2013); normalise the layers whose gradients are largest.

    References:
        Pascanu, Mikolov & Bengio 2013; Kingma & Ba 2015.
    """

    id = "diverging"
    name = "Training diverges"
    remedies = ("lower-lr", "grad-clip")

    @dataclass(frozen=True)
    class Options:
        """None: the probe's bar is part of its measurement."""

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        probe = stats.learning
        if probe is None or probe.verdict != "diverging" or not probe.asked:
            return []
        return [
            Finding(
                id=self.id,
                severity=Severity.WARNING,
                layers=("(model)",),
                message=f"training diverges: {probe.reason}; {probe.summary()}",
                evidence=evidence(probe),
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]
