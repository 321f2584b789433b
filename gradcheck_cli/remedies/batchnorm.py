"""``batchnorm``: insert a normalisation layer after each convolution and hidden Linear layer."""

from __future__ import annotations

import math

from torch import nn

from gradcheck_cli.layers import NORM_TYPES, is_weight_type, out_width
from gradcheck_cli.remedies.base import (
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    following_activation,
    leaf_calls,
)
from gradcheck_cli.remedies.edits import Edit

_BATCHNORM = {nn.Conv1d: "BatchNorm1d", nn.Conv2d: "BatchNorm2d", nn.Conv3d: "BatchNorm3d"}


class BatchNorm(Remedy):
    """Insert BatchNorm after each convolution, and between each hidden Linear layer and its
    activation (Ioffe & Szegedy 2015), keeping pre-activations at zero mean and unit variance
    whatever the init.

    BatchNorm1d/2d/3d matches the layer; LayerNorm over the features is used instead where batch
    statistics are wrong: a Linear applied to sequences (output of 3 or more dimensions, where
    BatchNorm1d would normalise the wrong axis) or a batch of size 1. Layers already followed by
    a normaliser, the last weight layer, and Linear layers with no activation after them (an
    output head, a transformer's projections) are left. Convolutions are normalised whatever
    follows them: the projection of a linear bottleneck (MobileNetV2, EfficientNet) has no
    activation after it and a BatchNorm in every one of those designs.
    """

    id = "batchnorm"
    summary = "Insert BatchNorm (LayerNorm for sequences or batch size 1) after hidden layers."

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        calls = leaf_calls(model, context.probe)
        edits: list[Edit] = []
        layer_norms = 0
        skipped_pooled = 0
        last = max((i for i, c in enumerate(calls) if is_weight_type(c.type)), default=-1)
        for i, call in enumerate(calls):
            if not is_weight_type(call.type):
                continue
            # A convolution is normalised whatever follows it (a linear bottleneck's projection
            # too, as in ResNet, MobileNetV2 and EfficientNet), unless it is the last layer; a
            # Linear only before an activation (a transformer's projections and an MLP's head
            # are left).
            conv = issubclass(call.type, tuple(_BATCHNORM))
            # The activation after a Linear: a module called next, or what the autograd graph
            # shows (F.gelu in forward, one activation module shared by several layers).
            follower = context.probe.structure.followers.get(call.name)
            activated = following_activation(calls, i) is not None or (
                follower is not None and follower.nonlinearity != "linear"
            )
            if i == last if conv else not activated:
                continue
            nxt = calls[i + 1] if i + 1 < len(calls) else None
            if nxt is not None and issubclass(nxt.type, NORM_TYPES):
                continue
            layer = model.get_submodule(call.name)
            out = call.out_shape or ()
            features = out_width(layer)
            if features is None:
                continue
            if not conv:  # a Linear, or Hugging Face's Conv1D: features last
                if len(out) >= 3 or context.probe.batch_size <= 1:
                    norm = "LayerNorm"
                    layer_norms += 1
                else:
                    norm = "BatchNorm1d"
            else:
                norm = next(v for k, v in _BATCHNORM.items() if isinstance(layer, k))
                # One value per channel and sample (a squeeze-excitation layer on a pooled map):
                # its statistics would come from the batch alone, with a variance near zero at a
                # small batch (EfficientNetV2-L's gradients reached 1e19 through 50 of them at
                # batch 2).
                pooled = len(out) > 2 and math.prod(out[2:]) == 1
                skipped_pooled += pooled
                if pooled or context.probe.batch_size <= 1:
                    continue
            edits.append(
                Edit("insert-norm", call.name, {"norm": norm, "features": features}, self.id)
            )
        if not edits:
            return NotApplicable(
                self.id, "no hidden Linear/Conv layer without a normaliser after it"
            )
        notes = []
        if layer_norms:
            notes.append(
                f"LayerNorm instead of BatchNorm for {layer_norms} layer(s): sequence outputs or "
                "batch size 1"
            )
        if skipped_pooled:
            notes.append(
                f"{skipped_pooled} convolution(s) on 1x1 maps (squeeze-excitation) left: "
                "BatchNorm would normalise over the batch alone"
            )
        return Proposal(self.id, tuple(edits), tuple(notes))
