"""The benchmark's workloads: a deep MLP, a ResNet-like CNN with BatchNorm, a GPT-like model,
and an LSTM language model (which pays for the temporal probe's extra forward pass)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Workload:
    """A model factory, a batch factory, and a loss."""

    name: str
    build: Callable[[], nn.Module]
    batch: Callable[[int, torch.device], object]
    batch_size: int
    loss: Callable[[object, object], torch.Tensor]


def mlp(depth: int, width: int = 1024) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(256, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.down(x) + self.bn2(self.conv2(out)))


def resnet() -> nn.Module:
    """ResNet-18-like on 32x32 inputs: 4 stages of 2 blocks, 64 to 512 channels (11M params)."""
    stages, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        stages += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        *stages,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(512, 10),
    )


class GPT(nn.Module):
    """A GPT-like decoder: pre-LN, causal attention, GELU MLP; 6 layers, d=512 (~23M params)."""

    def __init__(
        self, layers: int = 6, width: int = 512, vocab: int = 8192, context: int = 128
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        layer = nn.TransformerEncoderLayer(
            width, 8, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=tokens.device)
        h = self.embed(tokens) + self.pos(torch.arange(n, device=tokens.device))
        return self.head(self.blocks(h, mask=mask, is_causal=True))


class LSTMLM(nn.Module):
    """A 2-layer LSTM language model on token ids (the temporal probe runs on its LSTM)."""

    def __init__(self, width: int = 512, vocab: int = 8192) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, num_layers=2, batch_first=True)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


def _ce(output: object, batch: object) -> torch.Tensor:
    assert isinstance(output, torch.Tensor)
    if output.dim() == 3:
        assert isinstance(batch, torch.Tensor)
        return nn.functional.cross_entropy(
            output[:, :-1].reshape(-1, output.shape[-1]), batch[:, 1:].reshape(-1)
        )
    return nn.functional.cross_entropy(
        output, torch.zeros(output.shape[0], dtype=torch.long, device=output.device)
    )


WORKLOADS = {
    "mlp-16x1024": Workload(
        "mlp-16x1024", lambda: mlp(16), lambda b, d: torch.randn(b, 256, device=d), 64, _ce
    ),
    "resnet18-bn": Workload(
        "resnet18-bn", resnet, lambda b, d: torch.randn(b, 3, 32, 32, device=d), 32, _ce
    ),
    "gpt-6x512": Workload(
        "gpt-6x512", GPT, lambda b, d: torch.randint(0, 8192, (b, 128), device=d), 8, _ce
    ),
    "lstm-2x512": Workload(
        "lstm-2x512", LSTMLM, lambda b, d: torch.randint(0, 8192, (b, 128), device=d), 16, _ce
    ),
}


# GPU-sized versions: a GPT-2-medium-sized decoder (24 layers, d=1024, seq 512, batch 8) and
# larger batches, so that the passes are not dominated by kernel-launch latency.
LARGE = {
    "mlp-16x4096": Workload(
        "mlp-16x4096", lambda: mlp(16, 4096), lambda b, d: torch.randn(b, 256, device=d), 1024, _ce
    ),
    "resnet18-bn-b256": Workload(
        "resnet18-bn-b256", resnet, lambda b, d: torch.randn(b, 3, 32, 32, device=d), 256, _ce
    ),
    "gpt-24x1024": Workload(
        "gpt-24x1024",
        lambda: GPT(24, 1024, 50304, 512),
        lambda b, d: torch.randint(0, 50304, (b, 512), device=d),
        8,
        _ce,
    ),
}


def scaling(depth: int) -> Workload:
    """A narrow MLP of ``depth`` layers, to show how the overhead grows with the layer count."""
    return Workload(
        f"mlp-{depth}x64",
        lambda: mlp(depth, 64),
        lambda b, d: torch.randn(b, 256, device=d),
        32,
        _ce,
    )
