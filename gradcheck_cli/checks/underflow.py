"""The ``underflow`` check: gradients too small for float16 (``--amp fp16``)."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import Check
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import ModelStats, value


class Underflow(Check):
    """Gradients that float16 flushes to zero: mixed-precision training without loss scaling.

    Symptom:
        Measured only with ``--amp fp16``: in one extra full-precision pass, the fraction of a
        layer's nonzero parameter-gradient values whose magnitude is below 2**-24 (about
        5.96e-8, float16's smallest subnormal) is at least 0.1 (warning) or 0.5 (error).

    Why it matters:
        Under fp16 autocast those values become exactly zero in the backward pass, so the
        affected layers learn from a truncated gradient or not at all, silently: nothing turns
        NaN and the loss just stalls (Micikevicius et al. 2018, Mixed Precision Training).

    Remedy:
        Scale the loss with torch.amp.GradScaler, which multiplies the loss before backward and
        unscales the gradients before the optimizer step, or train in bfloat16, which has
        float32's exponent range and needs no scaling.

    References:
        Micikevicius et al. 2018; PyTorch automatic mixed precision (torch.amp) documentation.
    """

    id = "underflow"
    name = "fp16 gradient underflow"
    remedies = ("grad-scaler", "bf16")

    @dataclass(frozen=True)
    class Options:
        """Fractions of a layer's gradient values below 2**-24 that make a warning or an error."""

        warning: float = 0.1
        error: float = 0.5

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        hits = []
        for layer in stats.layers:
            fraction = value(layer.underflow_fraction)
            if fraction is not None and fraction >= options.warning:
                hits.append((layer, fraction))
        if not hits:
            return []
        top = max(f for _, f in hits)
        severity = Severity.ERROR if top >= options.error else Severity.WARNING
        listing = ", ".join(f"{l.display_name} {f:.0%}" for l, f in hits[:5])
        more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
        return [
            Finding(
                id=self.id,
                severity=severity,
                layers=tuple(l.display_name for l, _ in hits),
                message=(
                    f"gradient values below float16's smallest subnormal (2**-24) would flush to "
                    f"zero under fp16: {listing}{more}"
                ),
                evidence={
                    "max_underflow_fraction": top,
                    "threshold": options.error if severity is Severity.ERROR else options.warning,
                    "underflow_fraction": {l.display_name: f for l, f in hits},
                },
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]
