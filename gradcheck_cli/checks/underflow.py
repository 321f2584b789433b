"""The ``underflow`` check: gradients too small for float16 (``--amp fp16``)."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import FractionCheck


class Underflow(FractionCheck):
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
    fractions = ("warning", "error")
    stat = "underflow_fraction"
    evidence_key = "underflow_fraction"
    message = (
        "gradient values below float16's smallest subnormal (2**-24) would flush to zero under fp16"
    )

    @dataclass(frozen=True)
    class Options:
        """Fractions of a layer's gradient values below 2**-24 that make a warning or an error."""

        warning: float = 0.1
        error: float = 0.5
