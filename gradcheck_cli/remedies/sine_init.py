"""``sine-init``: SIREN's initialisation for the layers that feed a sine."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.remedies.base import (
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    leaf_calls,
    reinit_refusal,
)
from gradcheck_cli.remedies.edits import SIREN_W0, Edit


class SineInit(Remedy):
    """Re-initialise every Linear/Conv layer whose output goes into ``torch.sin`` (through
    scalar factors only, read from the autograd graph) as SIREN does (Sitzmann et al. 2020,
    section 3.2): the first layer (it reads the model's input) so that ``w0 W x`` is
    U(+-30 / fan_in) times the input, which spans several periods of the sine over inputs in
    [-1, 1]; every later one so that ``w0 W x`` is U(+-sqrt(6 / fan_in)) times its input,
    which keeps each sine's input arcsine-distributed at the same spread through depth. ``w0``
    is the factor forward already applies (1 when there is none), so a network that multiplies
    by 30 in forward gets SIREN's published weights and one that does not gets them scaled up.
    Biases are kept (SIREN keeps PyTorch's default). With PyTorch's default init (or any small
    one) and no factor, a sine network is nearly linear and fits only the lowest frequencies
    of its target. Refused after ``--weights`` unless ``--force-reinit``.
    """

    id = "sine-init"
    summary = "SIREN init (first layer w0 = 30) for layers that feed a sine."
    reinitialises = True

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        refusal = reinit_refusal(context)
        if refusal is not None:
            return NotApplicable(self.id, refusal)
        structure = context.probe.structure
        sines = structure.sines
        edits = []
        for call in leaf_calls(model, context.probe):
            if call.name not in sines:
                continue
            first = call.name in structure.reads_input
            args = {
                "scheme": "sine_first" if first else "sine_hidden",
                "factor": abs(sines[call.name]),
                "keep_bias": True,
            }
            edits.append(Edit("init", call.name, args, self.id))
        if not edits:
            return NotApplicable(self.id, "no Linear/Conv layer feeds a sine (torch.sin)")
        firsts = sum(e.args["scheme"] == "sine_first" for e in edits)
        note = (
            f"{len(edits)} layer(s) feeding a sine re-initialised as SIREN: {firsts} first "
            f"layer(s) at w0 = {SIREN_W0:g}, biases kept"
        )
        return Proposal(self.id, tuple(edits), (note,))
