import torch
import torch.nn as nn

from .layers import Block, PatchEmbed


class TinyViT(nn.Module):
    """ViT-Tiny-ish: the class token and positional table are registered before any layer."""

    def __init__(self, img_size=224, patch_size=16, num_classes=10, dim=192, depth=2, heads=3):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        n = (img_size // patch_size) ** 2
        self.pos = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embed = PatchEmbed(img_size, patch_size, 3, dim)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])
