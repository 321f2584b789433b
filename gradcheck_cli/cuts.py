"""Cut graphs: layers whose output *values* reach the loss while their gradient never does.

A layer that runs in forward but whose parameters end every step with ``.grad`` None is either
unused (its output never reaches the loss: a metric, a head the loss ignores) or cut off from
the loss's autograd graph while its values still flow there: an accidental ``.detach()``, a
backbone called under ``torch.no_grad()``, an ``argmax`` or index into a codebook, ``.item()``,
an integer cast or a NumPy round trip. The autograd graph cannot tell these apart (in both, the
loss's graph never reaches the layer), so :func:`find_cuts` asks the values: it perturbs the
parameters that got no gradient in one more seeded forward pass and compares the loss with the
unperturbed one. A change means their values reach the loss; then one more pass, under a
:class:`torch.overrides.TorchFunctionMode`, follows the values from those parameters to the
first operation that drops their gradient, and names its source line. Parameters, not modules,
are probed: one parameter of a module can be cut off (``self.scale.exp().item()``) while the
module's other parameters train.

The passes run forward and loss only (no backward), under the step-0 seed, with the caller's
hooks quiet; the caller's capture context restores whatever state they touch.
"""

from __future__ import annotations

import contextlib
import linecache
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils.hooks import RemovableHandle

from gradcheck_cli.stats import GraphCut

# A perturbation of this size (relative to the parameter's RMS) moves any value that reaches the
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
# (parameter name, the parameter, the name of the measured layer that holds it)
Candidate = tuple[str, nn.Parameter, str]


def find_cuts(
    model: nn.Module, candidates: Sequence[Candidate], run_loss: RunLoss
) -> tuple[GraphCut, ...]:
    """The candidates (trainable parameters of layers that ran, that got no gradient) whose
    values reach the loss, as one :class:`GraphCut` per place the gradient stops.

    ``run_loss`` runs one seeded forward pass and the loss; it is called 3 times when no
    candidate's values reach the loss, and a few more when some do. Every parameter is left
    bit for bit as it was found.
    """
    if not candidates:
        return ()
    base = _loss(run_loss)
    floor = abs(_loss(run_loss) - base)  # what a rerun alone changes (nondeterminism)
    if not math.isfinite(base):
        return ()

    def moves(group: Sequence[Candidate]) -> bool:
        with _perturbed([p for _, p, _ in group]):
            changed = _loss(run_loss)
        delta = abs(changed - base) if math.isfinite(changed) else math.inf
        return delta > max(10 * floor, 1e-6 * max(1.0, abs(base)))

    if moves(candidates):
        groups = _groups(candidates)
        if 1 < len(groups) <= MAX_GROUPS:
            reaching = [c for group in groups if moves(group) for c in group]
            if not reaching:  # only together (each alone moves nothing): keep the joint answer
                reaching = list(candidates)
        else:
            reaching = list(candidates)
        places, _ = _locate(model, reaching, run_loss)
    else:
        # No perturbation moved the loss, yet their values may still flow into it through a
        # choice that this batch does not flip (every sample picks the same nearest code of a
        # codebook far from the encoder's outputs): followed op by op, the loss derives from them.
        traced, flowing = _locate(model, candidates, run_loss)
        reaching = [c for c in candidates if c[0] in flowing]
        if not reaching:
            return ()
        places = {k: kept for k, v in traced.items() if (kept := [n for n in v if n in flowing])}
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cut_ids = {id(p) for _, p, _ in reaching}
    modules = dict(model.named_modules())
    cuts = []
    for (operation, source), names in places.items():
        chosen = [c for c in reaching if c[0] in names]
        layers = list(dict.fromkeys(layer for _, _, layer in chosen))
        whole = tuple(  # the root's own parameters are always named one by one
            layer
            for layer in layers
            if layer
            and all(
                id(p) in cut_ids
                for p in modules[layer].parameters(recurse=False)
                if p.requires_grad
            )
        )
        cuts.append(
            GraphCut(
                layers=tuple(layers),
                parameters=tuple(name for name, _, layer in chosen if layer not in whole),
                whole=whole,
                operation=operation,
                source=source,
                params=sum(p.numel() for _, p, _ in chosen),
                trainable=total,
            )
        )
    return tuple(cuts)


def _at_positions(
    model: nn.Module,
    embedding: str | None,
    time_axis: int,
    longer_than: int,
    change: Callable[[torch.Tensor], torch.Tensor],
) -> RemovableHandle | None:
    """A hook that passes, once per hook, the first floating tensor longer than ``longer_than``
    on ``time_axis`` through ``change``: ``embedding``'s output, or (None) the model's first such
    input. None when the model has no module of that name."""
    module = model if embedding is None else dict(model.named_modules()).get(embedding)
    if module is None:
        return None
    done: list[bool] = []

    def fits(tensor: Any) -> bool:
        return (
            not done
            and isinstance(tensor, torch.Tensor)
            and tensor.is_floating_point()
            and tensor.dim() > time_axis
            and tensor.shape[time_axis] > longer_than
        )

    def on_output(mod: nn.Module, args: Any, out: Any) -> Any:
        if not fits(out):
            return None
        done.append(True)
        return change(out)

    def on_input(mod: nn.Module, args: Any, kwargs: Any) -> Any:
        leaves, spec = pytree.tree_flatten((args, kwargs))
        index = next((i for i, leaf in enumerate(leaves) if fits(leaf)), None)
        if index is None:
            return None
        done.append(True)
        leaves[index] = change(leaves[index])
        return pytree.tree_unflatten(leaves, spec)

    if embedding is None:
        return module.register_forward_pre_hook(on_input, with_kwargs=True)
    return module.register_forward_hook(on_output)


def positions_reach(
    model: nn.Module, embedding: str | None, time_axis: int, before: int, run_loss: RunLoss
) -> bool:
    """Whether the values at the first ``before`` positions of ``embedding``'s output (None:
    of the model's first floating input long enough on ``time_axis``) reach the loss: noise
    added to them (in the first call of a pass) changes it by more than a rerun does. When those
    positions get exactly no gradient, True means their gradient is cut while their values flow
    on (a state detached in forward), False that the output does not see them at all (a
    receptive field, a crop). Three passes; nothing of the model is changed."""
    base = _loss(run_loss)
    floor = abs(_loss(run_loss) - base)
    if not math.isfinite(base):
        return False
    generator = torch.Generator().manual_seed(0)

    def noisy(tensor: torch.Tensor) -> torch.Tensor:
        early = tensor.narrow(time_axis, 0, before)
        rest = tensor.narrow(time_axis, before, tensor.shape[time_axis] - before)
        scale = tensor.detach().float().pow(2).mean().sqrt().item()
        scale = NOISE * scale if math.isfinite(scale) and scale > 0 else 1.0
        noise = torch.randn(early.shape, generator=generator).to(early)
        return torch.cat([early + scale * noise, rest], dim=time_axis)

    handle = _at_positions(model, embedding, time_axis, before, noisy)
    if handle is None:
        return False
    with handle:
        changed = _loss(run_loss)
    delta = abs(changed - base) if math.isfinite(changed) else math.inf
    return delta > max(10 * floor, 1e-6 * max(1.0, abs(base)))


def position_cut(
    model: nn.Module, embedding: str | None, time_axis: int, run_loss: RunLoss
) -> tuple[str, str]:
    """Where the gradient of values derived from ``embedding``'s output (None: the model's first
    floating input long enough on ``time_axis``) is first dropped in one traced pass: the
    operation (``.detach()``, ``torch.no_grad()``, ...) and its source line, or ``("", "")``.
    The first such operation is named, which in a loop that detaches its state is that
    detach."""
    tracer = _Tracer()

    def label(tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.requires_grad:  # an input: a leaf that requires grad stands in for it
            tensor = tensor.detach().requires_grad_(True)
        tracer.label(tensor, "positions")
        return tensor

    handle = _at_positions(model, embedding, time_axis, 1, label)
    if handle is None:
        return ("", "")
    with handle, tracer:
        run_loss()
    return tracer.cuts.get("positions", ("", ""))


def _loss(run_loss: RunLoss) -> float:
    value = run_loss()
    return float(value.detach().float().reshape(()))


def _groups(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Candidates grouped by their top-level module (``backbone``, ``aux_head``)."""
    found: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        found.setdefault(candidate[0].split(".")[0], []).append(candidate)
    return list(found.values())


@contextlib.contextmanager
def _perturbed(params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Add noise to the parameters in place for the block, and put back their exact values.
    The noise comes from a generator of its own so the model's random draws (dropout) stay
    those of the unperturbed pass."""
    generator = torch.Generator().manual_seed(0)
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p in params:
                scale = p.detach().float().pow(2).mean().sqrt().item() if p.numel() else 0.0
                scale = NOISE * scale if math.isfinite(scale) and scale > 0 else 1.0
                noise = torch.randn(p.shape, generator=generator)
                p.add_(scale * noise.to(device=p.device, dtype=p.dtype))
        yield
    finally:
        with torch.no_grad():
            for p, old in zip(params, saved, strict=True):
                p.copy_(old)


def _locate(
    model: nn.Module, reaching: Sequence[Candidate], run_loss: RunLoss
) -> tuple[dict[tuple[str, str], list[str]], frozenset[str]]:
    """Where each parameter's gradient stops: ``(operation, source line)`` -> parameter names;
    and the parameters from whose values the loss derives, followed op by op through the same
    pass (through integer indices and choices too, which no gradient follows).

    A parameter of a layer called while gradients are off is cut at the ``torch.no_grad()``
    around the call of the outermost module called so (``self.backbone(x)``, not a line within
    it). Otherwise its values are followed, op by op, to the first operation that takes a
    tensor that requires grad and returns one that does not (``detach``, ``argmax``, an integer
    cast) or a Python or NumPy value (``item``, ``numpy``).
    """
    off: dict[str, tuple[str, str]] = {}  # module -> the cut (a no_grad block or decorator)
    tracer = _Tracer()

    def pre(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            if name not in off and not torch.is_grad_enabled():
                off[name] = _no_grad_place()

        return hook

    handles = [module.register_forward_pre_hook(pre(n)) for n, module in model.named_modules()]
    try:
        for name, p, _ in reaching:
            tracer.label(p, name)
        with tracer:
            loss = run_loss()
    finally:
        for handle in handles:
            handle.remove()
    places: dict[tuple[str, str], list[str]] = {}
    for name, _, layer in reaching:
        parts = layer.split(".") if layer else []
        ancestors = (".".join(parts[:i]) for i in range(len(parts) + 1))
        outer = next((a for a in ancestors if a in off), None)
        place = (
            off[outer]
            if outer is not None
            else tracer.cuts.get(name, ("an operation not traced", ""))
        )
        places.setdefault(place, []).append(name)
    return places, tracer._of(loss)


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
        if not isinstance(t, torch.Tensor) or t.numel() == 0:  # an empty tensor carries no value
            return frozenset()
        entry = self.labels.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else frozenset()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        inputs = [t for t in pytree.tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        names = frozenset().union(*(self._of(t) for t in inputs)) if inputs else frozenset()
        if not names:
            return result
        outputs = [t for t in pytree.tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
        name = getattr(func, "__name__", str(func))
        if name == "__get__":  # an attribute read: x.data
            name = getattr(getattr(func, "__self__", None), "__name__", name)
        method = getattr(func, "__qualname__", "").startswith(
            ("Tensor", "TensorBase", "_TensorBase")
        )
        graded = any(t.requires_grad for t in inputs if self._of(t))
        if name.startswith("new_") or name.endswith("_like"):
            return result  # a fresh tensor of the same shape and type carries no value of its own
        if outputs:
            for t in outputs:
                self.label(t, *names)
            if graded and not any(t.requires_grad for t in outputs):
                if not torch.is_grad_enabled():  # an op inside a `with torch.no_grad():` block
                    self._cut(names, *_no_grad_place())
                else:
                    attribute = name == "data"
                    self._cut(
                        names,
                        ".data" if attribute else f".{name}()" if method else f"torch.{name}()",
                    )
        elif graded and name in _LEAVING:
            self._cut(names, f".{name}()")
        elif name == "numpy":  # .detach().numpy(): say it is a NumPy round trip
            for n in names:
                operation, line = self.cuts.get(n, ("", ""))
                if operation == ".detach()":
                    self.cuts[n] = (".detach().numpy(), a NumPy round trip", line)
        return result

    def _cut(self, names: frozenset[str], operation: str, line: str | None = None) -> None:
        new = [n for n in names if n not in self.cuts]
        if not new:
            return
        line = _user_line() if line is None else line
        for n in new:
            self.cuts[n] = (operation, line)


def _user_frame() -> FrameType | None:
    """The innermost frame outside torch, gradcheck and contextlib: the user's code."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith("<") and not str(Path(path).resolve()).startswith(_SKIP_DIRS):
            return frame
        frame = frame.f_back
    return None


def _where(path: str, line: int) -> str:
    """``file.py:LINE``, relative to the working directory where it lies below it."""
    resolved = str(Path(path).resolve())
    try:
        shown = os.path.relpath(resolved)
    except ValueError:
        shown = resolved
    return f"{resolved if shown.startswith('..') else shown}:{line}"


def _user_line() -> str:
    """``file.py:LINE`` of the user's innermost frame, empty when there is none."""
    frame = _user_frame()
    return _where(frame.f_code.co_filename, frame.f_lineno) if frame is not None else ""


def _no_grad_place() -> tuple[str, str]:
    """Where gradients were switched off around a module call: the decorator of the function
    that calls it (``@torch.no_grad()`` on ``embed``: the line of a decorated function's code
    object is its first decorator's) or the call inside a ``with torch.no_grad():`` block."""
    frame = _user_frame()
    if frame is None:
        return ("torch.no_grad()", "")
    code = frame.f_code
    first = linecache.getline(code.co_filename, code.co_firstlineno).strip()
    decorator = re.match(r"@((?:torch\.)?(?:no_grad|inference_mode))\b", first)
    if decorator is not None:
        return (
            f"@{decorator[1]}() on {code.co_name}",
            _where(code.co_filename, code.co_firstlineno),
        )
    return ("torch.no_grad()", _where(code.co_filename, frame.f_lineno))
