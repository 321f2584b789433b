"""What follows each weight layer, and which layers end residual branches, read from autograd.

Module names and call order say little about structure: ``F.relu`` in ``forward`` is no module,
one ``nn.Sigmoid()`` may follow thirty layers, and ``out = conv2(relu(conv1(x))); out + x`` is a
residual branch no container marks. The autograd graph of one forward pass shows all three. For
each Linear/Conv layer this module reads the first activation on the way from its output toward
the loss, stopping at the next weight layer (none found: the identity, gain 1), and for each sum
``a + b`` in which ``b`` is computed from ``a``'s own input (``x + f(x)``, whatever wrote it) the
weight layer nearest the sum on the branch side, and the modules that read the branch's input
``x`` itself, with no normaliser between. The same pass also records which layers feed a sine
through scalar factors only (and the product of those factors, SIREN's ``w0``), which layers
read the model's input, and the temperature of every ``F.gumbel_softmax`` call. Nothing here
keeps a reference to the graph.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from gradcheck_cli.capture import restore_training
from gradcheck_cli.inputs.calling import Inputs, call_model
from gradcheck_cli.layers import in_features, is_weight_type
from gradcheck_cli.remedies.modules import first_tensor_argument, output_tensors
from gradcheck_cli.snapshot import preserved

# How far (in graph nodes) to look for the activation after a layer, or for a branch's input.
_UP_LIMIT = 64
_DOWN_LIMIT = 4096


@dataclass(frozen=True)
class Follower:
    """The nonlinearity after a weight layer, in ``torch.nn.init.calculate_gain``'s names
    (``linear`` for none), with the negative slope of a leaky ReLU."""

    nonlinearity: str = "linear"
    negative_slope: float = 0.0


@dataclass(frozen=True)
class BranchInput:
    """A module that reads the input ``x`` of a residual branch ``x + f(x)`` as it is, the first
    of ``f``'s modules, with no normaliser before its Linear layers; ``features`` is the width of
    ``x``'s last dimension, which those layers read."""

    module: str
    features: int


@dataclass(frozen=True)
class Structure:
    """Per weight layer (by module name) what follows it; the residual branches' last layers
    in the order their sums ran, and the modules through which they read their input without a
    normaliser, in call order. Empty when the graph could not be read."""

    followers: Mapping[str, Follower] = field(default_factory=dict)
    branch_ends: tuple[str, ...] = ()
    branch_inputs: tuple[BranchInput, ...] = ()
    # Residual sums that ran: more than ``branch_ends`` when one block is called several times.
    branch_sums: int = 0
    # Sigmoid modules whose output multiplies another computed tensor: gates (a highway net's
    # transform gate, an LSTM cell written by hand, GLU), not nonlinearities of a stack.
    gates: frozenset[str] = frozenset()
    # Weight layers whose output reaches a sine through scalar factors only (SIREN's
    # sin(w0 * W x)): the product of those factors (w0; 1 when there is none).
    sines: Mapping[str, float] = field(default_factory=dict)
    # Weight layers that read an input of the model itself (the first layer of a stack).
    reads_input: frozenset[str] = frozenset()
    # The temperature of each F.gumbel_softmax call, in call order.
    gumbel_taus: tuple[float, ...] = ()


def _follower(node: Any) -> Follower | None:
    """The activation a graph node applies, or None when it is not one."""
    name = type(node).__name__
    if name in ("ReluBackward0", "GeluBackward0", "SiluBackward0", "MishBackward0"):
        return Follower("relu")  # GELU/SiLU/Mish behave like ReLU for variance at init
    if name == "LeakyReluBackward0":
        return Follower("leaky_relu", float(getattr(node, "_saved_negative_slope", 0.01)))
    if name == "EluBackward0":
        # SELU is ELU with scale 1.0507: it has its own gain, 3/4 (Klambauer et al. 2017).
        scale = float(getattr(node, "_saved_scale", 1.0))
        return Follower("selu" if abs(scale - 1.0) > 1e-3 else "relu")
    if name in ("TanhBackward0",):
        return Follower("tanh")
    if name in ("SigmoidBackward0", "HardsigmoidBackward0"):
        return Follower("sigmoid")
    if name == "HardtanhBackward0":
        low = float(getattr(node, "_saved_min_val", -1.0))
        return Follower("relu" if low >= 0 else "tanh")  # ReLU6 is Hardtanh(0, 6)
    return None


def _scalar(node: Any) -> float | None:
    """The scalar a graph node multiplies (or divides) its one computed operand by: ``w0 * h``,
    ``h * w0`` or ``h / w0`` with ``w0`` a number or a one-element tensor; None for anything
    else (a product of two computed tensors, ``c / h``)."""
    kind = type(node).__name__
    if kind == "MulBackward0":
        saved = [getattr(node, "_saved_other", None), getattr(node, "_saved_self", None)]
    elif kind == "DivBackward0":
        saved = [getattr(node, "_saved_other", None)]
    else:
        return None
    found = [t for t in saved if isinstance(t, torch.Tensor) and t.numel() == 1]
    if len(found) != 1:
        return None
    value = float(found[0])
    if not math.isfinite(value) or value == 0:
        return None
    return value if kind == "MulBackward0" else 1.0 / value


def _sine_factor(start: Any, parents: dict[Any, list[Any]]) -> float | None:
    """The product of the scalar factors on the one path from a layer's output to a sine
    (``torch.sin(w0 * linear(x))``), or None when its output does not go straight into one."""
    node, factor = start, 1.0
    for _ in range(8):
        consumers = parents.get(node, ())
        if len(consumers) != 1:
            return None
        node = consumers[0]
        if type(node).__name__ == "SinBackward0":
            return factor
        value = _scalar(node)
        if value is None:
            return None
        factor *= value
    return None


def _children(node: Any) -> Iterator[Any]:
    for child, _ in getattr(node, "next_functions", ()):
        if child is not None:
            yield child


def _graph(roots: list[Any]) -> dict[Any, list[Any]]:
    """Every node below ``roots`` mapped to the nodes that consume it."""
    parents: dict[Any, list[Any]] = {}
    stack = list(roots)
    seen = set(stack)
    for root in roots:
        parents.setdefault(root, [])
    while stack:
        node = stack.pop()
        for child in _children(node):
            parents.setdefault(child, []).append(node)
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return parents


def _first_follower(start: Any, parents: dict[Any, list[Any]], layers: set[Any]) -> Follower:
    """Breadth-first from a layer's output toward the loss: the nearest activation on any
    route that does not pass another weight layer first."""
    queue = deque(parents.get(start, ()))
    seen = set(queue)
    while queue and len(seen) <= _UP_LIMIT:
        node = queue.popleft()
        if node in layers:
            continue
        found = _follower(node)
        if found is not None:
            return found
        for parent in parents.get(node, ()):
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return Follower()


def _branch_end(branch: Any, skip: Any, layers: dict[Any, str]) -> str | None:
    """The weight layer nearest the sum on the ``branch`` side, if ``skip`` lies below it (the
    branch is computed from what is added back)."""
    queue = deque([branch])
    seen = {branch}
    end: str | None = None
    while queue and len(seen) <= _DOWN_LIMIT:
        node = queue.popleft()
        if node is skip:
            return end
        if end is None and node in layers:
            end = layers[node]
        for child in _children(node):
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return None


def _requiring_grad(inputs: Inputs) -> Inputs:
    """Floating tensors in ``inputs`` as leaves requiring grad, so ``x + f(x)`` on the model's
    own input is a sum of two graph nodes too."""

    def one(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.detach().requires_grad_()
        return value

    if isinstance(inputs, tuple):
        return tuple(one(v) for v in inputs)
    if isinstance(inputs, dict):
        return {k: one(v) for k, v in inputs.items()}
    return one(inputs)  # type: ignore[no-any-return]


def read_structure(model: nn.Module, inputs: Inputs) -> Structure:
    """One forward pass with autograd on, in eval mode: followers, residual branch ends and the
    modules that read a residual branch's input.

    The hooks live in one ExitStack and the model's mode and state are restored; no backward
    pass runs and no gradient is written.
    """
    outputs: dict[Any, str] = {}
    activations: dict[Any, str] = {}
    calls: list[_Read] = []
    reads_input: set[str] = set()
    training = {m: m.training for m in model.modules()}
    with contextlib.ExitStack() as stack:
        stack.callback(restore_training, training)
        for name, module in model.named_modules():
            if not name or isinstance(module, torch.jit.ScriptModule):
                continue

            def hook(mod: nn.Module, args: Any, kwargs: Any, output: Any, name: str = name) -> None:
                if (
                    is_weight_type(type(mod))
                    and isinstance(output, torch.Tensor)
                    and output.grad_fn is not None
                ):
                    outputs[output.grad_fn] = name
                if (
                    isinstance(output, torch.Tensor)
                    and output.grad_fn is not None
                    and _follower(output.grad_fn) is not None
                ):
                    activations[output.grad_fn] = name
                x = first_tensor_argument(args, kwargs)
                if (
                    is_weight_type(type(mod))
                    and x is not None
                    and x.grad_fn is None
                    and x.requires_grad
                ):
                    reads_input.add(name)  # a leaf: the model's own input
                if x is not None and x.grad_fn is not None and x.dim() >= 1:
                    outs = {t.grad_fn for t in output_tensors(output) if t.grad_fn is not None}
                    calls.append(_Read(name, x.grad_fn, int(x.shape[-1]), frozenset(outs)))

            stack.callback(module.register_forward_hook(hook, with_kwargs=True).remove)
        model.eval()
        temperatures = _Temperatures()
        with torch.enable_grad(), preserved(model), temperatures:
            result = call_model(model, _requiring_grad(inputs))
        roots = [t.grad_fn for t in output_tensors(result) if t.grad_fn is not None]
    parents = _graph(roots)
    layers = set(outputs)
    followers: dict[str, Follower] = {}
    for node, name in outputs.items():
        found = _first_follower(node, parents, layers)
        # A layer called several times keeps the first activation it is seen feeding.
        if name not in followers or followers[name].nonlinearity == "linear":
            followers[name] = found
    ends: list[str] = []
    starts: dict[str, int] = {}
    sums: set[Any] = set()
    for node in parents:
        if type(node).__name__ != "AddBackward0":
            continue
        operands = list(_children(node))
        if len(operands) != 2:
            continue
        for branch, skip in (operands, operands[::-1]):
            if type(skip).__name__ == "AccumulateGrad" and isinstance(
                getattr(skip, "variable", None), nn.Parameter
            ):
                continue  # x + bias: a parameter added, not an input
            end = _branch_end(branch, skip, outputs)
            if end is None:
                continue
            if end not in ends:
                ends.append(end)
            sums.add(node)
            for name, features in _branch_readers(model, branch, skip, calls):
                starts.setdefault(name, features)
    for name, features in _stream_exits(model, sums, calls, starts):
        starts.setdefault(name, features)
    order = {read.module: i for i, read in reversed(list(enumerate(calls)))}
    gates = frozenset(
        name
        for node, name in activations.items()
        if _follower(node) == Follower("sigmoid") and _gates(node, parents)
    )
    sines: dict[str, float] = {}
    for node, name in outputs.items():
        factor = _sine_factor(node, parents)
        if factor is not None:
            sines.setdefault(name, factor)
    return Structure(
        gumbel_taus=tuple(temperatures.taus),
        sines=sines,
        reads_input=frozenset(reads_input),
        gates=gates,
        followers=followers,
        branch_ends=tuple(_in_call_order(ends, outputs)),
        branch_sums=len(sums),
        branch_inputs=tuple(
            BranchInput(name, features)
            for name, features in sorted(starts.items(), key=lambda kv: order[kv[0]])
        ),
    )


# Graph nodes that only move or reshape values: a gate may be viewed, sliced or broadcast on its
# way to the product it scales.
_SHAPE_ONLY = frozenset(
    {
        "ViewBackward0",
        "UnsafeViewBackward0",
        "ReshapeAliasBackward0",
        "UnsqueezeBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "ExpandBackward0",
        "SliceBackward0",
        "SelectBackward0",
        "SplitBackward0",
        "SplitWithSizesBackward0",
        "UnbindBackward0",
        "ChunkBackward0",
        "TransposeBackward0",
        "PermuteBackward0",
        "CloneBackward0",
        "RsubBackward1",
        "NegBackward0",
    }
)


def _gates(node: Any, parents: dict[Any, list[Any]]) -> bool:
    """Whether the activation ``node``'s output, through shape-only steps (and ``1 - x``), is
    multiplied by another computed tensor: not a constant, not a parameter alone."""
    queue = deque(parents.get(node, ()))
    seen = {node, *queue}
    path = {node}
    while queue and len(seen) <= _UP_LIMIT:
        consumer = queue.popleft()
        kind = type(consumer).__name__
        if kind in ("MulBackward0", "AddcmulBackward0"):
            others = [c for c in _children(consumer) if c not in path]
            if any(type(c).__name__ != "AccumulateGrad" for c in others):
                return True
            continue
        if kind in _SHAPE_ONLY:
            path.add(consumer)
            for parent in parents.get(consumer, ()):
                if parent not in seen:
                    seen.add(parent)
                    queue.append(parent)
    return False


class _Temperatures(TorchFunctionMode):
    """Records the temperature of every ``F.gumbel_softmax`` call (it dispatches through
    ``__torch_function__`` with its arguments as keywords)."""

    def __init__(self) -> None:
        super().__init__()
        self.taus: list[float] = []

    def __torch_function__(
        self, func: Any, types: Any, args: Any = (), kwargs: Any = None
    ) -> Any:  # fmt: skip
        kwargs = kwargs or {}
        if func is F.gumbel_softmax:
            tau = kwargs.get("tau", args[1] if len(args) > 1 else 1.0)
            if isinstance(tau, (int, float)):
                self.taus.append(float(tau))
        return func(*args, **kwargs)


@dataclass(frozen=True)
class _Read:
    """One module call: the graph node of its first tensor argument, that tensor's last
    dimension, and the graph nodes of its output tensors."""

    module: str
    input: Any
    features: int
    outputs: frozenset[Any]


def _stream_exits(
    model: nn.Module, sums: set[Any], calls: list[_Read], starts: Mapping[str, int]
) -> list[tuple[str, int]]:
    """Linear layers that read the output of a residual sum and are no branch's: where the
    stream leaves the residual blocks (the head after the last block), read without a
    normaliser. A Pre-LN transformer puts its final LayerNorm there."""
    exits = []
    for call in calls:
        inside = any(call.module == s or call.module.startswith(s + ".") for s in starts)
        if call.input in sums and not inside:
            if in_features(model.get_submodule(call.module)) == call.features:
                exits.append((call.module, call.features))
    return exits


def _branch_nodes(branch: Any, skip: Any) -> set[Any]:
    """The graph nodes below ``branch`` reached without passing through ``skip``."""
    queue = deque([branch])
    seen = {branch}
    while queue and len(seen) <= _DOWN_LIMIT:
        node = queue.popleft()
        if node is skip:
            continue
        for child in _children(node):
            if child not in seen:
                seen.add(child)
                queue.append(child)
    seen.discard(skip)
    return seen


def _branch_readers(
    model: nn.Module, branch: Any, skip: Any, calls: list[_Read]
) -> list[tuple[str, int]]:
    """The modules through which the branch ``f`` of ``x + f(x)`` reads ``x``, when Linear
    layers read ``x`` as it is (no normaliser between): the largest module that holds all of
    them, is called with ``x`` and ends inside the branch, or else each such layer.

    A Pre-LN block (``x + f(norm(x))``) has no Linear layer reading ``x`` and gives none.
    """
    inside = _branch_nodes(branch, skip)
    on_branch = [c for c in calls if c.input is skip and c.outputs & inside]
    readers = {
        c.module: c.features
        for c in on_branch
        if in_features(model.get_submodule(c.module)) == c.features
    }
    if not readers:
        return []
    qualifying = {c.module for c in on_branch}
    parts = [name.split(".") for name in readers]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    chosen = None
    while common and ".".join(common) in qualifying:
        chosen = ".".join(common)
        common.pop()
    features = next(iter(readers.values()))
    if chosen is not None:
        return [(chosen, features)]
    return list(readers.items())


def _in_call_order(ends: list[str], outputs: dict[Any, str]) -> list[str]:
    order = {name: i for i, name in enumerate(dict.fromkeys(outputs.values()))}
    return sorted(ends, key=lambda n: order.get(n, len(order)))
