"""``embedding-scale``: embedding tables at unit RMS when no normalisation rescales them."""

from __future__ import annotations

import torch
from torch import nn

from gradcheck_cli.remedies.base import (
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    leaf_calls,
    reinit_refusal,
)
from gradcheck_cli.remedies.edits import Edit

# An embedding whose rows have an RMS of at least this is already near unit scale.
UNIT = 0.5


class EmbeddingScale(Remedy):
    """Re-initialise every ``nn.Embedding``/``nn.EmbeddingBag`` that ran and whose weights are
    well below unit RMS to ``N(0, 1)``, PyTorch's own default for ``nn.Embedding`` (the padding
    row stays zero); a table tied to an output layer keeps its weights and has its output
    multiplied by ``1/rms`` instead, so the logits keep their scale. Transformers draw their
    tables at std 0.02 because a LayerNorm follows; without one the whole network runs at that
    scale and learns ``1/0.02**2`` times slower under SGD (Vaswani et al. 2017 multiply
    embeddings by sqrt(d_model) for this reason). Refused after ``--weights`` unless
    ``--force-reinit``.
    """

    id = "embedding-scale"
    summary = "Embedding tables at unit RMS (N(0, 1), PyTorch's default) when they start small."
    reinitialises = True

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        refusal = reinit_refusal(context)
        if refusal is not None:
            return NotApplicable(self.id, refusal)
        shared = _shared_with_other_modules(model)
        edits = []
        for call in leaf_calls(model, context.probe):
            if not issubclass(call.type, (nn.Embedding, nn.EmbeddingBag)):
                continue
            weight = getattr(model.get_submodule(call.name), "weight", None)
            if not isinstance(weight, torch.Tensor):
                continue
            rms = float(weight.detach().float().square().mean().sqrt())
            if not 0 < rms < UNIT:
                continue
            if id(weight) in shared:
                # Tied to the output layer: a unit-scale table would multiply the logits by
                # 1/rms too. Scale what the table delivers instead (Vaswani et al. 2017).
                edits.append(Edit("scale-output", call.name, {"factor": 1.0 / rms}, self.id))
            else:
                edits.append(Edit("init", call.name, {"scheme": "unit_normal"}, self.id))
        if not edits:
            return NotApplicable(
                self.id, f"no embedding table that ran has an RMS below {UNIT} (unit scale)"
            )
        redrawn = sum(e.op == "init" for e in edits)
        notes = []
        if redrawn:
            notes.append(f"{redrawn} embedding table(s) drawn from N(0, 1)")
        if len(edits) > redrawn:
            notes.append(
                f"{len(edits) - redrawn} table(s) shared with an output layer: their output "
                "multiplied up to unit RMS (a forward hook, kept by torch.save)"
            )
        return Proposal(self.id, tuple(edits), tuple(notes))


def _shared_with_other_modules(model: nn.Module) -> set[int]:
    """The ids of parameters that more than one module holds directly (tied weights)."""
    holders: dict[int, int] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            holders[id(p)] = holders.get(id(p), 0) + 1
    return {key for key, count in holders.items() if count > 1}
