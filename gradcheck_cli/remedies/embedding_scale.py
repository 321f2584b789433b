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
    row stays zero). Transformers draw their tables at std 0.02 because a LayerNorm follows;
    without one the whole network runs at that scale and learns ``1/0.02**2`` times slower under
    SGD (Vaswani et al. 2017 multiply embeddings by sqrt(d_model) for this reason). Refused
    after ``--weights`` unless ``--force-reinit``.
    """

    id = "embedding-scale"
    summary = "Embedding tables at unit RMS (N(0, 1), PyTorch's default) when they start small."
    reinitialises = True

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        refusal = reinit_refusal(context)
        if refusal is not None:
            return NotApplicable(self.id, refusal)
        small = []
        for call in leaf_calls(model, context.probe):
            if not issubclass(call.type, (nn.Embedding, nn.EmbeddingBag)):
                continue
            weight = getattr(model.get_submodule(call.name), "weight", None)
            if (
                isinstance(weight, torch.Tensor)
                and float(weight.detach().float().square().mean().sqrt()) < UNIT
            ):
                small.append(call.name)
        if not small:
            return NotApplicable(
                self.id, f"no embedding table that ran has an RMS below {UNIT} (unit scale)"
            )
        edits = tuple(Edit("init", name, {"scheme": "unit_normal"}, self.id) for name in small)
        return Proposal(self.id, edits, (f"{len(edits)} embedding table(s) drawn from N(0, 1)",))
