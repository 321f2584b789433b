"""``xavier-init``: Glorot (Xavier) init for the layers that feed tanh/sigmoid activations."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.remedies.base import (
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    propose_init,
)


class XavierInit(Remedy):
    """Re-initialise each Linear/Conv layer followed by a tanh- or sigmoid-like activation with
    ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))`` and a zero bias (Glorot & Bengio
    2010), which keeps pre-activations in the activation's linear region. Refused after
    ``--weights`` unless ``--force-reinit``.
    """

    id = "xavier-init"
    summary = "Glorot (Xavier) init for layers that feed tanh/sigmoid activations."
    reinitialises = True

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        return propose_init(model, context, self.id, "xavier_uniform", {"tanh", "sigmoid"})
