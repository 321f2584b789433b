"""``grad-clip``: clip the global gradient norm at the end of every backward pass."""

from __future__ import annotations

import math

from torch import nn

from gradcheck_cli.remedies.base import NotApplicable, Proposal, Remedy, RemedyContext
from gradcheck_cli.remedies.edits import Edit
from gradcheck_cli.remedies.modules import GradClip  # re-exported: saved models name it here
from gradcheck_cli.stats import value

# Healthy models measured at init have gradient-to-weight ratios up to about 0.1 (docs/findings.md).
RELATIVE_LIMIT = 0.1
# Activations this far above unit scale (He et al. 2015) are a forward explosion, which
# clipping the gradient cannot cure (Pascanu et al. 2013 clip bounded recurrent networks).
FORWARD_LIMIT = 1e2


def clip_threshold(weight_norm: float) -> float:
    """max_norm = 0.1 x the global weight norm, to 2 significant digits.

    No step at learning rate 1 can then move the weights by more than a tenth of their norm,
    the upper end of what healthy models show at initialisation; spikes are cut, ordinary
    gradients pass untouched.
    """
    return float(f"{RELATIVE_LIMIT * weight_norm:.2g}")


class GradClipRemedy(Remedy):
    """Wrap the model so that every backward pass ends with global-norm gradient clipping at
    ``max_norm = 0.1 x the global weight norm``; print the equivalent training-loop line.
    Clipping bounds the step; it does not make a badly initialised network well conditioned.
    """

    id = "grad-clip"
    summary = "Clip the global gradient norm after every backward pass."

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        if isinstance(model, GradClip):
            return NotApplicable(self.id, "the model already clips its gradients")
        acts = [value(layer.act_rms) for layer in context.report.layers]
        peak = max((a for a in acts if a is not None and math.isfinite(a)), default=0.0)
        if peak > FORWARD_LIMIT:
            # Clipping rescales the gradient after backward; the forward pass, where the
            # explosion starts, is untouched, and measuring the clipped gradient would call
            # it cured.
            return NotApplicable(
                self.id,
                f"the forward signal itself explodes (activation RMS up to {peak:.1e}): "
                "clipping bounds the step, not the forward pass; re-initialise or normalise",
            )
        norms = [value(layer.weight_norm) for layer in context.report.layers]
        weight_norm = math.sqrt(sum(n * n for n in norms if n is not None and math.isfinite(n)))
        if weight_norm == 0:
            return NotApplicable(self.id, "every weight is zero; no clipping threshold follows")
        max_norm = clip_threshold(weight_norm)
        line = f"torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={max_norm:g})"
        return Proposal(
            self.id,
            (Edit("wrap-grad-clip", "", {"max_norm": max_norm}, self.id),),
            (f"in a training loop, after loss.backward(): {line}",),
        )
