"""``gate-bias``: chrono initialisation of LSTM/GRU gate biases, matched to the sequence length."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.remedies.base import (
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    propose_recurrent,
)


class GateBias(Remedy):
    """Chrono init (Tallec & Ollivier 2018) for every LSTM and GRU whose time profile was measured.

    LSTM: forget-gate bias ``log(U(1, T - 1))`` and input-gate bias its negative; GRU: the same
    draw as the update-gate bias (PyTorch's GRU keeps the old state in proportion to the update
    gate), other biases zero. ``T`` is the measured sequence length, so the cell starts out
    remembering over time scales up to the whole sequence. Weights are kept; only biases change,
    which still erases what a trained model learned in them: refused after ``--weights`` unless
    ``--force-reinit``.
    """

    id = "gate-bias"
    summary = "Chrono init of LSTM/GRU gate biases for the measured sequence length."
    reinitialises = True

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        return propose_recurrent(
            model, context, self.id, lambda m: isinstance(m, (nn.LSTM, nn.GRU)), "LSTM or GRU"
        )
