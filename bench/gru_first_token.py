"""Training truth for ``sample_models/gru_first_token.py``: does a default-init GRU learn to
recall the first of T tokens?

    python bench/gru_first_token.py      # prints the Markdown table committed as bench/gru_first_token.md

Plain PyTorch, no gradcheck. Fresh batches of 64 random sequences (8 symbols) each step, the
label the first token; 1,000 steps with Adam (lr 3e-3) and with SGD (momentum 0.9, lr 0.1), 2
seeds, at T = 60 (the sample) and T = 10 (the control: the same model on a span its gradient
reaches). Accuracy on 2,048 held-out sequences; chance is 1/8 = 0.125. "Learns" means held-out
accuracy of 0.5 or more.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
STEPS, BATCH = 1000, 64


def sample():  # type: ignore[no-untyped-def]
    path = ROOT / "sample_models" / "gru_first_token.py"
    spec = importlib.util.spec_from_file_location("gru_first_token", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gru_first_token"] = module
    spec.loader.exec_module(module)
    return module


def accuracy(tokens: int, optimizer: str, seed: int) -> float:
    m = sample()
    torch.manual_seed(seed)
    model = m.build_model()
    opt = (
        torch.optim.Adam(model.parameters(), lr=3e-3)
        if optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    )
    g = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        x = torch.randint(0, m.SYMBOLS, (BATCH, tokens), generator=g)
        loss = F.cross_entropy(model(x), x[:, 0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = torch.randint(0, m.SYMBOLS, (2048, tokens), generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        return (model(test).argmax(-1) == test[:, 0]).float().mean().item()


def main() -> None:
    print("| tokens | optimizer | seed | held-out accuracy | learns |")
    print("|---|---|---|---|---|")
    for tokens in (60, 10):
        for optimizer in ("adam", "sgd"):
            for seed in (0, 1):
                acc = accuracy(tokens, optimizer, seed)
                print(
                    f"| {tokens} | {optimizer} | {seed} | {acc:.3f} | {'yes' if acc >= 0.5 else 'no'} |"
                )


if __name__ == "__main__":
    main()
