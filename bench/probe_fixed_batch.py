"""Does fitting one fixed batch tell a model that trains from one that does not? (issue 23 item 2)

    python bench/probe_fixed_batch.py SPEC...    # bench/probe_fixed_batch.md has the run on the samples

For each model: 50 steps of Adam (lr 1e-3) on the diagnosis' first batch (16 rows, its own loss
and targets), over and over, as ``fix``'s tie-break trains; and the *input-blind floor*, the
lowest loss a constant output (one learnable value per output element, shared by every row)
reaches on the same batch and loss in 300 Adam steps (lr 1e-2). "LEARNS" means the model ends
below the floor by a tenth of the way from its first loss to the floor. Uses private helpers of
the library; a measurement, not a tool.
"""

import copy
import math
import sys
import time

import torch
from torch.utils import _pytree as pytree

from gradcheck_cli.choices import Optimizer
from gradcheck_cli.config import Settings
from gradcheck_cli.loading import load_model
from gradcheck_cli.pipeline import passes_for
from gradcheck_cli.training import train_step


def blind_floor(passes, steps=300):  # type: ignore[no-untyped-def]
    """The lowest loss a constant output reaches on the first batch (its own targets)."""
    with passes.seeded(0):
        inputs = passes.inputs()
        with torch.no_grad():
            out = passes.forward(inputs)
        state = torch.random.get_rng_state()
    leaves, spec = pytree.tree_flatten(out)
    params = []
    new = []
    for l in leaves:
        if isinstance(l, torch.Tensor) and l.is_floating_point() and l.dim() >= 1:
            p = l.detach().float().mean(0, keepdim=True).clone().requires_grad_(True)
            params.append(p)
            new.append(p)
        else:
            new.append(None)
    opt = torch.optim.Adam(params, lr=1e-2)
    best = math.inf
    for _i in range(steps):
        it = iter(params)
        vals = [
            (
                next(it).expand(l.shape).to(l.dtype)
                if n is not None
                else (l.detach() if isinstance(l, torch.Tensor) else l)
            )
            for l, n in zip(leaves, new, strict=False)
        ]
        o = pytree.tree_unflatten(vals, spec)
        with torch.random.fork_rng():
            torch.random.set_rng_state(state)
            try:
                loss = passes.loss_of(o, inputs)[0]
            except Exception:
                return float("nan")
        best = min(best, loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return best


def run(spec, steps=50, opt_kind="adam"):  # type: ignore[no-untyped-def]
    """First and last loss of ``steps`` steps on one batch, the blind floor, and the time."""
    torch.manual_seed(0)
    loaded = load_model(spec)
    model = copy.deepcopy(loaded.module)
    s = Settings()
    passes = passes_for(model, loaded.example_inputs, loaded.loss_fn, s)
    kind = Optimizer.ADAM if opt_kind == "adam" else Optimizer.SGD
    lr = 1e-3 if opt_kind == "adam" else 1e-2
    opt = kind.build([p for p in model.parameters() if p.requires_grad], lr)
    t = time.perf_counter()
    losses = [train_step(passes, 0, opt, seed_offset=0) for _ in range(steps)]
    dt = time.perf_counter() - t
    floor = blind_floor(  # the loss draws its targets after the forward: same seed, same RNG
        passes_for(copy.deepcopy(loaded.module), loaded.example_inputs, loaded.loss_fn, s)
    )
    return losses[0], losses[-1], floor, dt


for spec in sys.argv[1:]:  # noqa: E501
    try:
        l0, lk, fl, dt = run(spec)
        print(
            f"{spec.split('/')[-1]:45s} L0 {l0:9.4f}  L50 {lk:9.4f}  blind {fl:9.4f}  {'LEARNS' if lk < fl - 0.1 * abs(l0 - fl) else 'no'}  {dt:.1f}s",
            flush=True,
        )
    except Exception as e:
        print(spec, "ERR", type(e).__name__, str(e)[:100], flush=True)
