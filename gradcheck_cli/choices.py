"""The enumerations that command-line options and config files choose from.

They live here, without torch, so that building the command line (``gradcheck --help``,
``gradcheck explain``) and reading a config file do not import torch; the modules that use them
(``loading``, ``measure``, ``training``, ``config``, ``remedies.base``) re-export them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


class LossKind(str, enum.Enum):
    """How the scalar to differentiate is made from the model's output."""

    AUTO = "auto"
    CROSS_ENTROPY = "cross-entropy"
    MSE = "mse"
    SUM = "sum"


class Amp(str, enum.Enum):
    """Mixed precision for the passes (``--amp``): autocast to bfloat16 or float16."""

    NONE = "none"
    BF16 = "bf16"
    FP16 = "fp16"

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for full precision."""
        import torch

        return {Amp.NONE: None, Amp.BF16: torch.bfloat16, Amp.FP16: torch.float16}[self]


class Optimizer(str, enum.Enum):
    """``--optimizer``: what takes the training steps."""

    SGD = "sgd"
    ADAM = "adam"
    ADAMW = "adamw"

    @property
    def default_lr(self) -> float:
        """The learning rate used when ``--lr`` is not given."""
        return 0.01 if self is Optimizer.SGD else 1e-3

    def build(
        self, params: Sequence[nn.Parameter], lr: float, momentum: float = 0.0
    ) -> torch.optim.Optimizer:
        """The torch optimizer over ``params`` (``momentum`` for SGD only)."""
        import torch

        if self is Optimizer.SGD:
            return torch.optim.SGD(params, lr=lr, momentum=momentum)
        if self is Optimizer.ADAM:
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.AdamW(params, lr=lr)


class Device(str, enum.Enum):
    """Where the passes run; ``auto`` is CUDA when available, else the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Activation(str, enum.Enum):
    """What ``relu-swap`` puts in place of a saturating activation (``--activation``)."""

    RELU = "relu"
    LEAKY_RELU = "leaky-relu"
    GELU = "gelu"
    SILU = "silu"


class InitScheme(str, enum.Enum):
    """How ``gain-init`` draws weights (``--init``): ``auto`` is orthogonal for a stack whose
    layers are all followed by the identity or tanh (Saxe et al. 2014; Pennington et al. 2017),
    else ``N(0, gain^2 / fan_in)``."""

    AUTO = "auto"
    NORMAL = "normal"
    ORTHOGONAL = "orthogonal"


class BranchInit(str, enum.Enum):
    """What ``residual-scale`` does to the last layer of each residual branch
    (``--branch-init``): scale it by ``1/sqrt(branches)`` or zero it."""

    SCALE = "scale"
    ZERO = "zero"


class ShardMode(str, enum.Enum):
    """``--shard``: how a ``torchrun`` job splits the diagnosis; ``none`` is one process."""

    NONE = "none"
    DDP = "ddp"
    FSDP = "fsdp"
