"""An independent measurement of a saved model with plain PyTorch (no gradcheck code).

``python tests/plain_measure.py MODEL.pt SAMPLES_DIR C H W...`` loads a model that
``gradcheck fix --output`` saved, runs one cross-entropy backward pass on a seeded batch of
``torch.randn(64, C, H, W...)`` against random labels in train mode, and prints JSON: the loss,
each Linear/Conv weight's gradient-to-weight norm ratio in module order, and the ratio of the
first weight layer's gradient norm to the last's. The tests compare these numbers with what
gradcheck reported, so a fix is judged by arithmetic that shares nothing with gradcheck.
"""

from __future__ import annotations

import json
import statistics
import sys

import torch
from torch import nn


def main(path: str, samples: str, shape: list[int]) -> None:
    sys.path.insert(0, samples)  # the model's classes, pickled by module name
    model = torch.load(path, map_location="cpu", weights_only=False)
    model.train()
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(64, *shape, generator=generator)
    logits = model(x)
    labels = torch.randint(0, logits.shape[-1], (64,), generator=generator)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    layers = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    ]
    grads = [m.weight.grad.norm().item() for _, m in layers]
    ratios = [g / m.weight.norm().item() for g, (_, m) in zip(grads, layers, strict=True)]
    print(
        json.dumps(
            {
                "loss": loss.item(),
                "layers": [name for name, _ in layers],
                "ratios": ratios,
                "median_ratio": statistics.median(ratios),
                "max_ratio": max(ratios),
                "min_ratio": min(ratios),
                "first_last_grad": grads[0] / grads[-1],
                "first_last_ratio": ratios[0] / ratios[-1],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]])
