"""Temporal-profile vs learnability experiment for nn.LSTM / nn.GRU.

Usage: python rnn_temporal.py CELL INIT T TASK SEED [STEPS]
  CELL in {lstm, gru}; INIT in {default, chrono, fb1, fb2, ...(fbX = forget/update bias X)}
  TASK in {early, late, none}
Prints one JSON line.
"""

import json
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(1)
H, F, B = 64, 8, 32


def make_rnn(cell, init, T, seed):
    torch.manual_seed(seed)
    rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(F, H, batch_first=True)
    if init == "default":
        return rnn
    with torch.no_grad():
        if init == "chrono":
            b = torch.log(torch.empty(H).uniform_(1, T - 1))
        elif init.startswith("fb"):
            b = torch.full((H,), float(init[2:]))
        else:
            raise ValueError(init)
        if cell == "lstm":  # gate order i, f, g, o
            rnn.bias_hh_l0[H : 2 * H] = 0
            rnn.bias_ih_l0[H : 2 * H] = b
            if init == "chrono":
                rnn.bias_hh_l0[:H] = 0
                rnn.bias_ih_l0[:H] = -b
        else:  # gate order r, z, n; h' = (1-z)*n + z*h, z=keep gate
            rnn.bias_hh_l0[H : 2 * H] = 0
            rnn.bias_ih_l0[H : 2 * H] = b
    return rnn


def temporal_profile(rnn, T, dtype=torch.float32, seed=123):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F, generator=g).to(dtype).requires_grad_(True)
    r = rnn.to(dtype)
    out = r(x)[0][:, -1]
    d = torch.randn(out.shape[-1], generator=g).to(dtype)
    (out * d).sum().backward()
    norms = x.grad.norm(dim=(0, 2))  # per-step norm over batch & features
    r.float()
    k = max(1, T // 10)
    early = norms[:k].mean().item()
    late = norms[-k:].mean().item()
    nzero = int((norms[:k] == 0).sum().item())
    return dict(
        early=early,
        late=late,
        ratio=early / late if late > 0 else float("nan"),
        zeros_first_tenth=nzero,
        k=k,
        min_norm=norms.min().item(),
    )


class Clf(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(H, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def make_batch(n, T, task, g):
    x = torch.randn(n, T, F, generator=g)
    k = max(1, T // 10)
    s = x[:, :k, 0].sum(1) if task == "early" else x[:, -k:, 0].sum(1)
    y = (s > 0).long()
    return x, y


def train(rnn, T, task, seed, steps):
    model = Clf(rnn)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1000 + seed)
    gt = torch.Generator().manual_seed(999)
    xt, yt = make_batch(1024, T, task, gt)

    def evaluate():
        with torch.no_grad():
            return (model(xt).argmax(1) == yt).float().mean().item()

    hist = []
    done = steps
    for it in range(1, steps + 1):
        x, y = make_batch(B, T, task, g)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 50 == 0:
            a = evaluate()
            hist.append((it, round(a, 3)))
            if a >= 0.95:
                done = it
                break
    return dict(acc=evaluate(), steps=done, hist=hist)


if __name__ == "__main__":
    cell, init, T, task, seed = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        sys.argv[4],
        int(sys.argv[5]),
    )
    steps = int(sys.argv[6]) if len(sys.argv) > 6 else 400
    t0 = time.time()
    rnn = make_rnn(cell, init, T, seed)
    res = dict(cell=cell, init=init, T=T, task=task, seed=seed)
    p32 = temporal_profile(rnn, T)
    p64 = temporal_profile(rnn, T, torch.float64)
    res.update(
        ratio32=p32["ratio"],
        zeros32=p32["zeros_first_tenth"],
        k=p32["k"],
        min32=p32["min_norm"],
        ratio64=p64["ratio"],
        zeros64=p64["zeros_first_tenth"],
    )
    if task != "none":
        res.update(train(rnn, T, task, seed, steps))
    res["secs"] = round(time.time() - t0, 1)
    print(json.dumps(res), flush=True)
