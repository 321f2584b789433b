"""``temperature-floor``: Gumbel-softmax temperatures no lower than 1 while a model learns."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.remedies.base import NotApplicable, Proposal, Remedy, RemedyContext
from gradcheck_cli.remedies.edits import Edit

# Jang et al. (2017) start at tau = 1 and anneal to no lower than 0.5.
FLOOR = 1.0


class TemperatureFloor(Remedy):
    """Raise every ``F.gumbel_softmax`` temperature below 1 to 1, the temperature Jang et al.
    (2017) start from. The relaxation's Jacobian is ``(diag(y) - y y^T) / tau``: at a small
    ``tau`` the sample is one-hot to float precision in almost every example, so the layers
    that score the categories get no gradient in most examples and one of size ``1/tau`` in the
    rest. Applied as forward hooks on the model (a ``TorchFunctionMode`` that rewrites the
    calls' ``tau``), so no code changes and ``torch.save`` keeps it; in your own code, start
    ``tau`` at 1 and anneal it to no lower than 0.5 (Jang et al. 2017), or learn it.
    """

    id = "temperature-floor"
    summary = "F.gumbel_softmax temperatures raised to 1 (anneal to >= 0.5 in training)."

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        cold = [tau for tau in context.probe.structure.gumbel_taus if tau < FLOOR]
        if not cold:
            return NotApplicable(
                self.id, f"no F.gumbel_softmax call with a temperature below {FLOOR:g}"
            )
        note = (
            f"{len(cold)} F.gumbel_softmax call(s) at temperature {min(cold):g} raised to "
            f"{FLOOR:g}; in training, anneal from 1 to no lower than 0.5 (Jang et al. 2017)"
        )
        return Proposal(
            self.id, (Edit("temperature-floor", "", {"floor": FLOOR}, self.id),), (note,)
        )
