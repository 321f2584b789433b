"""Cut graphs: layers whose output *values* reach the loss while their gradient never does.

A layer that runs in forward but whose parameters end every step with ``.grad`` None is either
unused (its output never reaches the loss: a metric, a head the loss ignores) or cut off from
the loss's autograd graph while its values still flow there: an accidental ``.detach()``, a
backbone called under ``torch.no_grad()``, an ``argmax`` or index into a codebook, ``.item()``,
an integer cast or a NumPy round trip. The autograd graph cannot tell these apart (in both, the
loss's graph never reaches the layer), so :func:`find_cuts` asks the values: it perturbs the
candidate layers' outputs in one more seeded forward pass and compares the loss with the
unperturbed one. A change means the values reach the loss; then one more pass, under a
:class:`torch.overrides.TorchFunctionMode`, follows the values from those layers to the first
operation that drops their gradient, and names its source line.

The passes run forward and loss only (no backward), under the step-0 seed, with the caller's
hooks quiet; the caller's capture context restores whatever state they touch.
"""

from __future__ import annotations

import contextlib
import math
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

from gradcheck_cli.stats import GraphCut

# A perturbation of this size (relative to the output's RMS) moves any value that reaches the
# loss through arithmetic, and flips some nearest-code or argmax choices across a batch.
NOISE = 0.5
# At most this many groups are perturbed one by one to tell the layers that reach the loss
# from those that do not; past it the joint answer stands for all of them.
MAX_GROUPS = 16
# Methods that leave autograd by returning a Python or NumPy value.
_LEAVING = frozenset({"item", "tolist", "numpy", "__int__", "__float__", "__index__", "__bool__"})
_SKIP_DIRS = tuple(
    str(Path(m.__file__).resolve().parent) + os.sep
    for m in (torch, contextlib)
    if m.__file__ is not None
) + (str(Path(__file__).resolve().parent) + os.sep,)

RunLoss = Callable[[], torch.Tensor]


def find_cuts(
    model: nn.Module,
    candidates: Sequence[tuple[str, nn.Module]],
    run_loss: RunLoss,
) -> tuple[GraphCut, ...]:
    """The candidates (measured layers that ran but got no gradient) whose outputs reach the
    loss, as one :class:`GraphCut` per place the gradient stops.

    ``run_loss`` runs one seeded forward pass and the loss; it is called 3 times when no
    candidate's values reach the loss, and a few more when some do.
    """
    if not candidates:
        return ()
    base = _loss(run_loss)
    floor = abs(_loss(run_loss) - base)  # what a rerun alone changes (nondeterminism)
    if not math.isfinite(base):
        return ()

    def moves(group: Sequence[tuple[str, nn.Module]]) -> float:
        with _perturbed([m for _, m in group]):
            changed = _loss(run_loss)
        delta = abs(changed - base) if math.isfinite(changed) else math.inf
        return delta if delta > max(10 * floor, 1e-6 * max(1.0, abs(base))) else 0.0

    if not moves(candidates):
        return ()
    groups = _groups(candidates)
    if 1 < len(groups) <= MAX_GROUPS:
        reaching = [pair for group in groups if moves(group) for pair in group]
        if not reaching:  # only together (each alone moves nothing): keep the joint answer
            reaching = list(candidates)
    else:
        reaching = list(candidates)
    places = _locate(model, reaching, run_loss)
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cuts = []
    for (operation, source), names in places.items():
        modules = [m for n, m in reaching if n in names]
        params = sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
        cuts.append(
            GraphCut(
                layers=tuple(names),
                operation=operation,
                source=source,
                params=params,
                trainable=total,
            )
        )
    return tuple(cuts)


def _loss(run_loss: RunLoss) -> float:
    value = run_loss()
    return float(value.detach().float().reshape(()))


def _groups(candidates: Sequence[tuple[str, nn.Module]]) -> list[list[tuple[str, nn.Module]]]:
    """Candidates grouped by their top-level module (``backbone``, ``aux_head``)."""
    found: dict[str, list[tuple[str, nn.Module]]] = {}
    for name, module in candidates:
        found.setdefault(name.split(".")[0], []).append((name, module))
    return list(found.values())


@contextlib.contextmanager
def _perturbed(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Add noise to every floating-point tensor the modules output, drawn from a generator of
    its own so the model's random draws (dropout) stay those of the unperturbed pass."""
    generator = torch.Generator().manual_seed(0)

    def noisy(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point() or t.numel() == 0:
            return t
        scale = t.detach().float().pow(2).mean().sqrt().item()
        scale = NOISE * scale if math.isfinite(scale) and scale > 0 else 1.0
        noise = torch.randn(t.shape, generator=generator).to(device=t.device, dtype=t.dtype)
        return t + scale * noise

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        return pytree.tree_map_only(torch.Tensor, noisy, output)

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _locate(
    model: nn.Module, reaching: Sequence[tuple[str, nn.Module]], run_loss: RunLoss
) -> dict[tuple[str, str], list[str]]:
    """Where each layer's gradient stops: ``(operation, source line)`` -> layer names.

    A layer called while gradients are off is cut at the ``torch.no_grad()`` around the call of
    the outermost module called so.
    Otherwise its output is followed, op by op, to the first operation that takes a tensor
    that requires grad and returns one that does not (``detach``, ``argmax``, an integer cast)
    or a Python or NumPy value (``item``, ``numpy``).
    """
    off: dict[str, str] = {}  # module -> the line that called it with gradients off
    tracer = _Tracer()

    def pre(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            if name not in off and not torch.is_grad_enabled():
                off[name] = _user_line()

        return hook

    def post(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            for t in pytree.tree_leaves(output):
                if isinstance(t, torch.Tensor) and t.requires_grad:
                    tracer.label(t, name)

        return hook

    handles = []
    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(pre(name)))
        for name, module in reaching:
            handles.append(module.register_forward_hook(post(name)))
        with tracer:
            run_loss()
    finally:
        for handle in handles:
            handle.remove()
    places: dict[tuple[str, str], list[str]] = {}
    for name, _ in reaching:
        # Cut at the outermost module called with gradients off: the call inside the
        # ``with torch.no_grad():`` block (``self.backbone(x)``), not a line within it.
        parts = name.split(".")
        outer = next(
            (p for p in (".".join(parts[:i]) for i in range(len(parts) + 1)) if p in off), None
        )
        place = (
            ("torch.no_grad()", off[outer])
            if outer is not None
            else tracer.cuts.get(name, ("an operation not traced", ""))
        )
        places.setdefault(place, []).append(name)
    return places


class _Tracer(TorchFunctionMode):
    """Labels tensors with the layers whose outputs they derive from, and records, per layer,
    the first operation that drops their gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[int, tuple[torch.Tensor, frozenset[str]]] = {}
        self.cuts: dict[str, tuple[str, str]] = {}

    def label(self, t: torch.Tensor, *names: str) -> None:
        old = self.labels.get(id(t))
        known = old[1] if old is not None and old[0] is t else frozenset()
        self.labels[id(t)] = (t, known | frozenset(names))  # the tensor is held: ids stay its

    def _of(self, t: Any) -> frozenset[str]:
        if not isinstance(t, torch.Tensor):
            return frozenset()
        entry = self.labels.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else frozenset()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        inputs = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        names = frozenset().union(*(self._of(t) for t in inputs)) if inputs else frozenset()
        if not names:
            return result
        outputs = [t for t in pytree.tree_leaves(result) if isinstance(t, torch.Tensor)]
        name = getattr(func, "__name__", str(func))
        method = getattr(func, "__qualname__", "").startswith(
            ("Tensor", "TensorBase", "_TensorBase")
        )
        graded = any(t.requires_grad for t in inputs if self._of(t))
        if outputs:
            for t in outputs:
                self.label(t, *names)
            if graded and torch.is_grad_enabled() and not any(t.requires_grad for t in outputs):
                self._cut(names, f".{name}()" if method else f"torch.{name}()")
        elif graded and name in _LEAVING:
            self._cut(names, f".{name}()")
        return result

    def _cut(self, names: frozenset[str], operation: str) -> None:
        new = [n for n in names if n not in self.cuts]
        if not new:
            return
        line = _user_line()
        for n in new:
            self.cuts[n] = (operation, line)


def _user_line() -> str:
    """``file.py:LINE`` of the innermost frame outside torch, gradcheck and contextlib."""
    for frame in reversed(traceback.extract_stack()):
        path = str(Path(frame.filename).resolve())
        if not path.startswith(_SKIP_DIRS) and not frame.filename.startswith("<"):
            try:
                shown = os.path.relpath(path)
            except ValueError:
                shown = path
            if shown.startswith(".."):
                shown = path
            return f"{shown}:{frame.lineno}"
    return ""
