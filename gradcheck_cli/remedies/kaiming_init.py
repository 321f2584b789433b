"""``kaiming-init``: He (Kaiming) init for the layers that feed ReLU-family activations."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.remedies.base import (
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    propose_init,
)


class KaimingInit(Remedy):
    """Re-initialise each Linear/Conv layer followed by a ReLU-family activation with
    ``N(0, gain^2 / fan_in)`` and a zero bias (He et al. 2015), which keeps activation and
    gradient variance constant through the layer. Refused after ``--weights`` unless
    ``--force-reinit``.
    """

    id = "kaiming-init"
    summary = "He (Kaiming) init for layers that feed ReLU-family activations."
    reinitialises = True

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        return propose_init(model, context, self.id, "kaiming_normal", {"relu", "leaky_relu"})
