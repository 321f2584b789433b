"""Causal temporal conv net (WaveNet-style residual blocks, dilations 1, 2).

Task: at the final step, classify the token seen 20 steps earlier (sequence of 64).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class TCNConfig:
    vocab: int = 8
    seq_len: int = 64
    lag: int = 20
    channels: int = 64
    kernel_size: int = 3
    dilations: tuple = (1, 2)


CFG = TCNConfig()


class CausalConv1d(nn.Conv1d):
    def __init__(self, c_in, c_out, kernel_size, dilation):
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left_pad, 0)))


class TemporalBlock(nn.Module):
    def __init__(self, channels, kernel_size, dilation):
        super().__init__()
        self.conv1 = CausalConv1d(channels, channels, kernel_size, dilation)
        self.conv2 = CausalConv1d(channels, channels, kernel_size, dilation)

    def forward(self, x):
        y = F.relu(self.conv1(x))
        y = self.conv2(y)
        return F.relu(x + y)


class TCN(nn.Module):
    def __init__(self, cfg: TCNConfig = CFG):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab, cfg.channels)
        self.blocks = nn.Sequential(*[TemporalBlock(cfg.channels, cfg.kernel_size, d)
                                      for d in cfg.dilations])
        self.head = nn.Linear(cfg.channels, cfg.vocab)

    def forward(self, tokens):
        x = self.embed(tokens).transpose(1, 2)      # (B, C, T)
        x = self.blocks(x)
        return {"logits": self.head(x[:, :, -1])}


def build_model():
    return TCN(CFG)


def example_inputs(batch_size: int):
    return {"tokens": torch.randint(0, CFG.vocab, (batch_size, CFG.seq_len))}


def make_targets(inputs):
    return inputs["tokens"][:, -1 - CFG.lag]


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], make_targets(inputs))
