"""Which modules are weight layers (Linear and Conv, Hugging Face's ``Conv1D`` included), and
how wide their inputs and outputs are: the one definition every remedy and the executor use."""

from __future__ import annotations

import torch
from torch import nn

WEIGHT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def is_hf_conv1d(kind: type[nn.Module]) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-1, GPT-2): a Linear layer whose weight is stored
    transposed, ``(in_features, out_features)``, computing ``x @ weight + bias``."""
    return kind.__name__ == "Conv1D" and kind.__module__.startswith("transformers")


def is_weight_type(kind: type[nn.Module]) -> bool:
    """A Linear or Conv layer: one of ``WEIGHT_TYPES``, or Hugging Face's ``Conv1D``."""
    return issubclass(kind, WEIGHT_TYPES) or is_hf_conv1d(kind)


def _conv1d_weight(module: nn.Module) -> torch.Tensor | None:
    weight = getattr(module, "weight", None)
    if is_hf_conv1d(type(module)) and isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return weight
    return None


def in_features(module: nn.Module) -> int | None:
    """The width of the last input dimension a Linear-like layer reads (None for a Conv)."""
    if isinstance(module, nn.Linear):
        return module.in_features
    weight = _conv1d_weight(module)
    return int(weight.shape[0]) if weight is not None else None


def out_width(module: nn.Module) -> int | None:
    """A weight layer's number of outputs: features of a Linear, channels of a Conv."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, WEIGHT_TYPES):
        return int(module.out_channels)  # type: ignore[arg-type]
    weight = _conv1d_weight(module)
    return int(weight.shape[1]) if weight is not None else None


def fans(module: nn.Module, weight: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight: PyTorch's, swapped for a transposed ``Conv1D``."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return (fan_out, fan_in) if _conv1d_weight(module) is weight else (fan_in, fan_out)
