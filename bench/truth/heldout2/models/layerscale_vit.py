"""Small pre-LN transformer over patch tokens with LayerScale (CaiT, Touvron et al., 2021).

Every residual branch is multiplied by a learnable per-channel gamma initialised at 1e-5.
"""
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ViTConfig:
    n_patches: int = 16
    patch_dim: int = 12
    d_model: int = 64
    n_heads: int = 4
    depth: int = 4
    mlp_ratio: int = 2
    n_classes: int = 4
    layerscale_init: float = 1e-5


CFG = ViTConfig()


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, cfg.n_heads, batch_first=True)
        self.ls1 = LayerScale(d, cfg.layerscale_init)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Linear(cfg.mlp_ratio * d, d))
        self.ls2 = LayerScale(d, cfg.layerscale_init)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.ls1(self.attn(h, h, h, need_weights=False)[0])
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig = CFG):
        super().__init__()
        self.patch_embed = nn.Linear(cfg.patch_dim, cfg.d_model)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_patches, cfg.d_model))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, patches):
        x = self.patch_embed(patches) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return {"logits": self.head(self.norm(x).mean(dim=1))}


@lru_cache(maxsize=1)
def _teacher():
    """Random per-patch feature map; the class depends on even (squared) features, pooled."""
    g = torch.Generator().manual_seed(99)
    A = torch.randn(CFG.patch_dim, 16, generator=g) / CFG.patch_dim ** 0.5 * 1.5
    B = torch.randn(16, CFG.n_classes, generator=g)
    ref = torch.randn(8192, CFG.n_patches, CFG.patch_dim, generator=g)
    centre = (torch.tanh(ref @ A) ** 2).mean(dim=1).mean(dim=0)
    return A, B, centre


@torch.no_grad()
def make_targets(inputs):
    A, B, centre = _teacher()
    feat = (torch.tanh(inputs["patches"] @ A) ** 2).mean(dim=1) - centre
    return (feat @ B).argmax(-1)


def build_model():
    return PatchTransformer(CFG)


def example_inputs(batch_size: int):
    return {"patches": torch.randn(batch_size, CFG.n_patches, CFG.patch_dim)}


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], make_targets(inputs))
