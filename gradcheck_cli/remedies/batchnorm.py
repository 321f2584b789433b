"""``batchnorm``: insert a normalisation layer after each hidden Linear/Conv layer."""

from __future__ import annotations

from typing import Any

from torch import nn

from gradcheck_cli.remedies.base import (
    NORM_TYPES,
    WEIGHT_TYPES,
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
    """Insert BatchNorm between each hidden Linear/Conv layer and its activation (Ioffe & Szegedy
    2015), keeping pre-activations at zero mean and unit variance whatever the init.

    BatchNorm1d/2d/3d matches the layer; LayerNorm over the features is used instead where batch
    statistics are wrong: a Linear applied to sequences (output of 3 or more dimensions, where
    BatchNorm1d would normalise the wrong axis) or a batch of size 1. Layers already followed by
    a normaliser, and output layers (no activation after them), are left.
    """

    id = "batchnorm"
    summary = "Insert BatchNorm (LayerNorm for sequences or batch size 1) after hidden layers."

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        calls = leaf_calls(model, context.probe)
        edits: list[Edit] = []
        layer_norms = 0
        for i, call in enumerate(calls):
            if not issubclass(call.type, WEIGHT_TYPES) or following_activation(calls, i) is None:
                continue
            nxt = calls[i + 1] if i + 1 < len(calls) else None
            if nxt is not None and issubclass(nxt.type, NORM_TYPES):
                continue
            layer = model.get_submodule(call.name)
            out = call.out_shape or ()
            if isinstance(layer, nn.Linear):
                features = layer.out_features
                if len(out) >= 3 or context.probe.batch_size <= 1:
                    norm = "LayerNorm"
                    layer_norms += 1
                else:
                    norm = "BatchNorm1d"
            else:
                channels: Any = layer.out_channels
                features = int(channels)
                norm = next(v for k, v in _BATCHNORM.items() if isinstance(layer, k))
                if context.probe.batch_size <= 1:
                    continue
            edits.append(
                Edit("insert-norm", call.name, {"norm": norm, "features": features}, self.id)
            )
        if not edits:
            return NotApplicable(
                self.id, "no hidden Linear/Conv layer without a normaliser after it"
            )
        notes = (
            (
                f"LayerNorm instead of BatchNorm for {layer_norms} layer(s): sequence outputs or batch size 1",
            )
            if layer_norms
            else ()
        )
        return Proposal(self.id, tuple(edits), notes)
