"""Healthy: the ResNet of resnet_bn.py with zero_init_residual (expect: no-gradient at info only).

Each block's last BatchNorm scale starts at zero (Goyal et al. 2017), so the convolutions inside
the residual branches get no gradient until the first optimizer step. That is by design, not a
failure: the identity paths carry the gradient.
"""

import torch
from resnet_bn import ResNet
from torch import nn


def build_model() -> nn.Module:
    return ResNet(zero_init_residual=True)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 3, 32, 32)
