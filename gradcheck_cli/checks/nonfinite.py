"""The ``nonfinite`` check: NaN or Inf in the loss, activations or gradients."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradcheck_cli.checks.base import Check
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import ModelStats


class NonFinite(Check):
    """NaN or Inf appears in the loss, in a layer's output, or in a gradient.

    Symptom:
        A loss, activation, output gradient or parameter gradient holds NaN or Inf in at least
        one step. The finding names the first module where it appears: the earliest in forward
        order whose output is non-finite, else the loss, else the first module in backward
        order whose output gradient is non-finite.

    Why it matters:
        One NaN spreads to every weight at the next optimizer step and the run is lost. At
        initialisation it points at an operation that overflows or divides by zero (log of
        zero, exp of a large value, a norm of a zero vector, a too-large init) in or just
        after the named module.

    Remedy:
        Inspect the named module's operations; clip gradients (Pascanu et al. 2013);
        re-initialise with a variance-preserving scheme; keep log/exp/division numerically
        safe (log_softmax, clamp, eps).

    References:
        Pascanu et al. 2013; torch.autograd.detect_anomaly for the exact operation.
    """

    id = "nonfinite"
    name = "NaN/Inf values"
    remedies = ("grad-clip", "kaiming-init", "lower-lr")

    @dataclass(frozen=True)
    class Options:
        """No thresholds: any NaN or Inf is an error."""

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        bad_losses = sum(1 for loss in stats.losses if not math.isfinite(loss))
        layers = [l for l in stats.layers if l.nonfinite.total > 0]
        first = stats.first_nonfinite
        if not layers and not bad_losses and first is None:
            return []
        names = [l.display_name for l in layers]
        if first is not None:
            names = [first.layer, *(n for n in names if n != first.layer)]
        where = (
            f"first in {first.layer} ({first.where} pass, step {first.step})"
            if first is not None
            else "in the loss"
        )
        return [
            Finding(
                id=self.id,
                severity=Severity.ERROR,
                layers=tuple(names),
                message=(
                    f"NaN/Inf values appear {where}; {len(layers)} layer(s) affected, "
                    f"{bad_losses} of {stats.steps} step losses non-finite"
                ),
                evidence={
                    "first_layer": first.layer if first is not None else "(loss)",
                    "first_where": first.where if first is not None else "loss",
                    "first_step": first.step if first is not None else 0,
                    "nonfinite_losses": bad_losses,
                    "nonfinite_values": sum(l.nonfinite.total for l in layers),
                },
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]
