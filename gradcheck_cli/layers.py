"""The module taxonomy, in one place: which modules are weight layers (Linear and Conv, Hugging
Face's ``Conv1D`` included) and how wide they are, normalisers (RMSNorm included), embeddings,
activations of the ReLU family, saturating ones with the outputs where their derivative vanishes,
softmaxes, and the layers a model's input can enter. The recorder, the checks, the remedies and
input inference all read it here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CONV_TYPES: tuple[type[nn.modules.conv._ConvNd], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
WEIGHT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, *CONV_TYPES)


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


NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),  # torch >= 2.4
)
EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)
# Output is zero (zero gradient) for negative inputs: units can die (Lu et al. 2019).
DEAD_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)
# Layers whose output convention is (N, C, L) rather than (N, L, features).
CHANNEL_FIRST_1D: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.ConvTranspose1d,
    nn.BatchNorm1d,
    nn.InstanceNorm1d,
)


def saturation_bounds(module: nn.Module) -> tuple[float, float] | None:
    """Output values at or beyond which the activation's derivative is (nearly) zero.

    Sigmoid: sigma' = y(1-y) < 0.0099 outside [0.01, 0.99], under 4% of its peak of 0.25.
    Tanh: tanh' = 1 - y^2 < 0.02 outside [-0.99, 0.99], 2% of its peak of 1.
    Hardtanh, ReLU6 and Hardsigmoid: the derivative is exactly zero at their bounds.
    """
    if isinstance(module, nn.Sigmoid):
        return (0.01, 0.99)
    if isinstance(module, nn.Tanh):
        return (-0.99, 0.99)
    if isinstance(module, nn.ReLU6):
        return (-math.inf, 6.0)  # its lower bound is dead-unit territory, counted separately
    if isinstance(module, nn.Hardtanh):
        return (module.min_val, module.max_val)
    if isinstance(module, nn.Hardsigmoid):
        return (0.0, 1.0)
    return None


SOFTMAX_TYPES: tuple[type[nn.Module], ...] = (nn.Softmax, nn.LogSoftmax)


# A softmax row is saturated when its largest probability is at least this: every other output
# then gets a derivative p_i (1 - p_i) or p_i p_j under 1% of its peak.
SOFTMAX_SATURATED = 0.99
# Attention masks write -inf, the dtype's minimum, -1e9 or (older Hugging Face models) -10000
# added to the scores; unmasked logits of even a temperature-1e-3 softmax stay well above this.
MASKED_LOGIT = -5e3


def softmax_dim(module: nn.Module, x: torch.Tensor) -> int:
    """The dimension a Softmax/LogSoftmax normalises (PyTorch's legacy choice when None)."""
    dim = getattr(module, "dim", None)
    if dim is None:
        return 0 if x.dim() in (0, 1, 3) else 1
    return int(dim)


def is_normaliser(module: nn.Module) -> bool:
    """A normalisation layer: one of ``NORM_TYPES``, or a class named ``*Norm`` (Hugging Face and
    others define their own LayerNorm/RMSNorm classes)."""
    return isinstance(module, NORM_TYPES) or type(module).__name__.endswith("Norm")


RELU_FAMILY: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.Hardswish,  # MobileNetV3, LCNet
    nn.Mish,
)
# ReLU6 is a Hardtanh subclass but is a ReLU-family activation: it is checked first.
SATURATING: tuple[type[nn.Module], ...] = (
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Softsign,
)


def is_saturating(kind: type[nn.Module]) -> bool:
    """Sigmoid, Tanh, Hardtanh (not ReLU6), Hardsigmoid, Softsign."""
    return issubclass(kind, SATURATING) and not issubclass(kind, nn.ReLU6)


# The layers a model's input can enter first (input inference reads their sizes).
INPUT_LAYERS: tuple[type[nn.Module], ...] = (*WEIGHT_TYPES, nn.Embedding, nn.RNNBase)
