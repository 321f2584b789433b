"""Causal transformer with a sliding-window (local) attention mask of width 8, 2 layers:
the last position can see at most 15 steps back.  Task: recall the signal token from the
first tenth of a length-100 sequence of blanks (dependency 90-99): beyond its reach."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

CFG = {"n_classes": 8, "seq_len": 100, "d": 64, "heads": 4, "layers": 2, "window": 8}


class LocalAttention(nn.Module):
    def __init__(self, d, heads, window, seq_len):
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        i = torch.arange(seq_len)
        allowed = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)
        self.register_buffer("bias", torch.zeros(seq_len, seq_len).masked_fill(~allowed, float("-inf")))

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, D // self.h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D // self.h) + self.bias[:T, :T]
        y = att.softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["d"]
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = LocalAttention(d, cfg["heads"], cfg["window"], cfg["seq_len"])
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class LocalTransformer(nn.Module):
    def __init__(self, cfg=CFG):
        super().__init__()
        self.tok = nn.Embedding(cfg["n_classes"] + 1, cfg["d"])
        self.pos = nn.Embedding(cfg["seq_len"], cfg["d"])
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["layers"])])
        self.ln = nn.LayerNorm(cfg["d"])
        self.head = nn.Linear(cfg["d"], cfg["n_classes"])

    def forward(self, tokens):
        x = self.tok(tokens) + self.pos(torch.arange(tokens.size(1)))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x[:, -1]))


def build_model():
    return LocalTransformer()


def example_inputs(batch_size):
    T = CFG["seq_len"]
    x = torch.zeros(batch_size, T, dtype=torch.long)
    x[torch.arange(batch_size), torch.randint(0, T // 10, (batch_size,))] = torch.randint(1, 9, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs.max(1).values - 1)


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs.max(1).values - 1).float().mean().item()
