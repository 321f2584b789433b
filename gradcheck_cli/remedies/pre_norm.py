"""``pre-norm``: a LayerNorm at the input of every residual branch (Pre-LN, Xiong et al. 2020)."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.remedies.base import (
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    reinit_refusal,
)
from gradcheck_cli.remedies.edits import POST_LN_TYPES, Edit


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

    A Post-LN stack of PyTorch's own layers (``nn.TransformerEncoderLayer`` or
    ``nn.TransformerDecoderLayer`` with ``norm_first=False``, the default: x <- LN(x + f(x)))
    becomes Pre-LN with its own parameters: ``norm_first=True`` on every such layer that ran,
    and a final LayerNorm on its ``nn.TransformerEncoder``/``Decoder`` when it has none. Xiong
    et al. (2020) show the gradient near the output of a deep Post-LN stack is large at
    initialisation, so Adam without warm-up stalls it (``sample_models/post_ln_deep.py``: 24
    layers at chance; Pre-LN learns). Moving the norms changes what trained weights compute:
    refused after ``--weights`` unless ``--force-reinit``.
    """

    id = "pre-norm"
    summary = "LayerNorm at the input of each residual branch: x + f(LayerNorm(x))."

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        post = _post_ln(model, context)
        if post:
            refusal = reinit_refusal(context)
            if refusal is not None:
                return NotApplicable(self.id, refusal)
            return post
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


def _post_ln(model: nn.Module, context: RemedyContext) -> Proposal | None:
    """``norm-first`` for every Post-LN layer of PyTorch's that ran, and a ``final-norm`` for
    each stack of them without a final norm; None when there is none."""
    post = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, POST_LN_TYPES) and not module.norm_first and context.probe.ran(name)
    }
    if not post:
        return None
    layers = list(post)
    edits = [Edit("norm-first", name, {}, PreNormRemedy.id) for name in layers]
    found = {id(module) for module in post.values()}
    for name, stack in model.named_modules():
        if not isinstance(stack, (nn.TransformerEncoder, nn.TransformerDecoder)):
            continue
        if stack.norm is None and any(id(layer) in found for layer in stack.layers):
            features = int(stack.layers[0].norm1.normalized_shape[0])
            edits.append(Edit("final-norm", name, {"features": features}, PreNormRemedy.id))
    note = f"{len(layers)} Post-LN layer(s) made Pre-LN (norm_first=True)"
    finals = len(edits) - len(layers)
    if finals:
        note += f"; a final LayerNorm added to {finals} stack(s)"
    return Proposal(PreNormRemedy.id, tuple(edits), (note,))
