"""``pre-norm``: a LayerNorm at the input of every residual branch (Pre-LN, Xiong et al. 2020)."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.remedies.base import NotApplicable, Proposal, Remedy, RemedyContext
from gradcheck_cli.remedies.edits import Edit


class PreNormRemedy(Remedy):
    """Put a LayerNorm between each residual branch ``x + f(x)`` and the Linear layers that read
    ``x``: ``x + f(LayerNorm(x))``, and before a Linear layer that reads the last sum (the head:
    Pre-LN transformers end with a LayerNorm there). Branches and where they read ``x`` are found in the autograd
    graph (:mod:`gradcheck_cli.remedies.structure`), whatever the modules are called; the
    normalisation is a forward pre-hook on the module through which the branch reads ``x`` (the
    attention or MLP block of a transformer layer), without parameters of its own (the Linear
    layers that read it carry any scale), so no module is renamed and no key is added.

    A transformer without normalisation runs its residual stream at the scale of its
    embeddings (std 0.02 in most zoos, so every layer learns about 1/0.02**2 times slower), and
    with embeddings at unit scale its stream grows with depth until attention saturates. Pre-LN
    gives every branch unit-scale input at any depth and keeps the identity path of the stream
    untouched (Xiong et al. 2020; the placement of GPT-2, LLaMA and ViT). Branches whose input
    is already normalised, or read only by convolutions, are left.
    """

    id = "pre-norm"
    summary = "LayerNorm at the input of each residual branch: x + f(LayerNorm(x))."

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        starts = context.probe.structure.branch_inputs
        if not starts:
            return NotApplicable(
                self.id,
                "no residual branch x + f(x) whose Linear layers read x without a normaliser",
            )
        edits = tuple(
            Edit("pre-norm", start.module, {"features": start.features}, self.id)
            for start in starts
        )
        return Proposal(
            self.id, edits, (f"LayerNorm added at the input of {len(edits)} residual branch(es)",)
        )
