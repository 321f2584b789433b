"""A 'pretrained' feature encoder frozen on purpose (requires_grad_(False), eval) + a trainable adapter head."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- task: classify a 32-d Gaussian vector by a fixed random teacher MLP (4 classes) ----
TASK = "vec-cls"
_g = torch.Generator().manual_seed(1234)
_TW1 = torch.randn(32, 64, generator=_g) * 2.0 / math.sqrt(32)
_TB1 = torch.randn(64, generator=_g) * 0.5
_TW2 = torch.randn(64, 4, generator=_g) * 2.0 / math.sqrt(64)


def _labels(x):
    return (torch.tanh(x @ _TW1 + _TB1) @ _TW2).argmax(dim=1)


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 32)


def _logits(output):
    return output["logits"] if isinstance(output, dict) else output


def loss_fn(output, inputs):
    return F.cross_entropy(_logits(output), _labels(inputs))


def accuracy(output, inputs):
    return (_logits(output).argmax(dim=1) == _labels(inputs)).float().mean()


score = accuracy


def chance(inputs):
    return torch.bincount(_labels(inputs), minlength=4).max().item() / inputs.shape[0]


# ---- model ----


@dataclass
class EncoderConfig:
    d_in: int = 32
    hidden: int = 512
    d_feat: int = 256


class FeatureEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.d_in, cfg.hidden), nn.ReLU(),
                                 nn.Linear(cfg.hidden, cfg.d_feat), nn.ReLU())

    def forward(self, x):
        return self.net(x)


def _load_pretrained(encoder: FeatureEncoder):
    # stand-in for torch.load(ckpt): deterministic "checkpoint" weights
    g = torch.Generator().manual_seed(2024)
    with torch.no_grad():
        for m in encoder.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / m.in_features))
                m.bias.zero_()


class AdapterClassifier(nn.Module):
    def __init__(self, enc_cfg: EncoderConfig = EncoderConfig(), n_classes: int = 4):
        super().__init__()
        self.encoder = FeatureEncoder(enc_cfg)
        _load_pretrained(self.encoder)
        self.encoder.requires_grad_(False)          # frozen on purpose: only the adapter is fine-tuned
        self.adapter = nn.Sequential(nn.LayerNorm(enc_cfg.d_feat), nn.Linear(enc_cfg.d_feat, 128), nn.ReLU(),
                                     nn.Linear(128, n_classes))

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x):
        return {"logits": self.adapter(self.encoder(x))}


def build_model():
    return AdapterClassifier()
