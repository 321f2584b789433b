"""Temporal profiles: how much gradient reaches each time step of a sequence.

Two measurements, both on the batch of measurement step 0 or on the measured steps themselves:

* Recurrent modules (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``): the gradient of the module's last
  output step, projected on a random direction, with respect to each step of the module's input
  (``d<v, h_T> / dx_t``; Bengio et al. 1994, Pascanu et al. 2013). It does not depend on the loss,
  so a sequence-labelling loss on every step cannot hide that the last state has forgotten the
  first inputs. One extra forward pass; only the recurrent module is differentiated. For a
  bidirectional module the forward direction is measured. A cell (``nn.RNNCell``,
  ``nn.LSTMCell``, ``nn.GRUCell``) that a Python loop calls once per step is measured the same
  way: its last call's hidden state, differentiated with respect to every call's input.
* Any model with an ``nn.Embedding`` (the model-level profile): the gradient of the diagnosis
  loss reaching the first embedding output at each position, from the measured steps. It sees
  whatever lies between the embedding and the loss (recurrent modules, hand-written cells,
  scans, convolutions, attention) without knowing the architecture; a position whose gradient
  is exactly zero cannot influence the loss at all (a receptive field, a detached state, a crop).

This module only collects numbers; :mod:`gradcheck_cli.checks.vanishing_over_time` judges them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils.hooks import RemovableHandle

from gradcheck_cli.stats import INPUT, TemporalProfile

# Sequences shorter than this have no meaningful "early" and "late" steps.
MIN_STEPS = 10


def recurrent_modules(model: nn.Module) -> list[tuple[str, nn.RNNBase]]:
    """The recurrent modules of ``model``, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.RNNBase)]


def cell_modules(model: nn.Module) -> list[tuple[str, nn.RNNCellBase]]:
    """The recurrent cells of ``model`` (``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``): a
    Python loop in forward calls them once per time step."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.RNNCellBase)]


def _cell(module: nn.RNNBase) -> str:
    return {"RNN_TANH": "RNN"}.get(module.mode, module.mode)  # RNN, RNN_RELU, LSTM, GRU


def _loop_cell(module: nn.RNNCellBase) -> str:
    if isinstance(module, nn.LSTMCell):
        return "LSTM"
    if isinstance(module, nn.GRUCell):
        return "GRU"
    return "RNN_RELU" if getattr(module, "nonlinearity", "tanh") == "relu" else "RNN"


class _CellLoop:
    """One cell's calls during a forward pass: each call's input swapped for a leaf copy, and
    each call's output (the hidden state) kept, so the last state can be differentiated with
    respect to every step's input, as for a recurrent module."""

    def __init__(self, name: str, module: nn.RNNCellBase):
        self.name = name
        self.module = module
        self.leaves: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def pre(self, mod: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
            return None
        copy = args[0].detach().requires_grad_(True)
        self.leaves.append(copy)
        return (copy, *args[1:])

    def post(self, mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        h = output[0] if isinstance(output, tuple) else output
        if len(self.outputs) < len(self.leaves) and isinstance(h, torch.Tensor):
            self.outputs.append(h)

    def profile(self) -> TemporalProfile | None:
        if len(self.leaves) < MIN_STEPS or len(self.outputs) != len(self.leaves):
            return None
        last = self.outputs[-1]
        if not last.requires_grad:
            return None
        direction = torch.randn(last.shape, device=last.device, dtype=last.dtype)
        grads = torch.autograd.grad((last * direction).sum(), self.leaves, allow_unused=True)
        norms = [
            torch.linalg.vector_norm(g.double()).item() if g is not None else 0.0 for g in grads
        ]
        cell = _loop_cell(self.module)
        return TemporalProfile(
            module=self.name,
            cell=cell,
            gated=cell in ("LSTM", "GRU"),
            method="last step",
            norms=tuple(norms),
        )


def probe_recurrent(model: nn.Module, run_forward: Callable[[], Any]) -> list[TemporalProfile]:
    """Profile every recurrent module during one call of ``run_forward`` (the model's forward).

    The caller seeds the call (the probe direction is drawn from the global generator) and keeps
    other hooks quiet. Each module's input is swapped for a detached copy that requires grad, so
    the gradient measured is the module's own, whatever comes before it.
    """
    found: list[TemporalProfile] = []
    seen: set[str] = set()

    def hooks(name: str, module: nn.RNNBase) -> tuple[Callable[..., Any], Callable[..., Any]]:
        time_axis = 1 if module.batch_first else 0
        leaf: list[torch.Tensor] = []

        def pre(mod: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            leaf.clear()
            if name in seen or not args or not isinstance(args[0], torch.Tensor):
                return None  # measured once; PackedSequence inputs are not profiled
            x = args[0]
            if not x.is_floating_point() or x.dim() != 3 or x.shape[time_axis] < MIN_STEPS:
                return None
            copy = x.detach().requires_grad_(True)
            leaf.append(copy)
            return (copy, *args[1:])

        def post(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not leaf:
                return
            x = leaf.pop()
            out = output[0] if isinstance(output, tuple) else output
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                return
            last = out.select(time_axis, out.shape[time_axis] - 1)
            if module.bidirectional:  # the forward direction's half of the features
                last = last[..., : last.shape[-1] // 2]
            direction = torch.randn(last.shape, device=last.device, dtype=last.dtype)
            (grad,) = torch.autograd.grad((last * direction).sum(), x, retain_graph=True)
            others = [d for d in range(grad.dim()) if d != time_axis]
            # float64: float32 squares of gradients below ~1e-23 flush to zero (a ratio of 0
            # where the true one is 1e-46), and the thresholds need the true ratio.
            norms = torch.linalg.vector_norm(grad.double(), dim=others)
            seen.add(name)
            found.append(
                TemporalProfile(
                    module=name,
                    cell=_cell(module),
                    gated=module.mode in ("LSTM", "GRU"),
                    method="last step",
                    norms=tuple(norms.cpu().tolist()),
                )
            )

        return pre, post

    loops = [_CellLoop(name, module) for name, module in cell_modules(model)]
    with contextlib.ExitStack() as stack:
        for name, module in recurrent_modules(model):
            pre, post = hooks(name, module)
            stack.callback(module.register_forward_pre_hook(pre).remove)
            stack.callback(module.register_forward_hook(post).remove)
        for loop in loops:
            stack.callback(loop.module.register_forward_pre_hook(loop.pre).remove)
            stack.callback(loop.module.register_forward_hook(loop.post).remove)
        with torch.enable_grad():
            run_forward()
            found.extend(p for loop in loops if (p := loop.profile()) is not None)
    return found


def receptive_field(model: nn.Module) -> tuple[tuple[str, ...], int | None]:
    """The model's 1-D convolutions and their receptive field in series (1 + sum of
    (kernel size - 1) x dilation): an upper bound on how many steps one output step sees
    through them (branches side by side see less); None without convolutions."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv1d)]
    if not convs:
        return (), None
    span = sum((m.kernel_size[0] - 1) * m.dilation[0] for _, m in convs)
    return tuple(n for n, _ in convs), 1 + span


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention")


class PositionProfiler:
    """Collects, per measured step, the loss gradient reaching each position of an embedding.

    Used as ``with PositionProfiler.attach(model) as profiler`` around the measured steps; set
    ``profiler.step`` before each step (a rerun of a step keeps the first run's row) and
    ``profiler.enabled`` to pause it. The embedding profiled is the first one called in a step
    with a 3-D output (token embeddings come before position embeddings; a tied, never-called
    ``shared`` table is passed over).
    """

    def __init__(
        self, time_axis: int, cell: str = "attention", model: nn.Module | None = None
    ) -> None:
        self.name = ""
        self.time_axis = time_axis
        self.cell = cell
        self.convolutions, self.receptive_field = (
            receptive_field(model) if model is not None and cell == "model" else ((), None)
        )
        self.step = 0
        self.enabled = True
        self._rows: dict[int, torch.Tensor] = {}
        self._hooked = -1  # the last step whose embedding output got a gradient hook
        # Gradient hooks on embedding outputs, removed on exit: a model that keeps an output
        # must not keep this profiler (or a hook) with it.
        self._handles: list[RemovableHandle] = []

    @classmethod
    @contextlib.contextmanager
    def attach(
        cls, model: nn.Module, time_axis: int | None = None
    ) -> Iterator[PositionProfiler | None]:
        """Hook the embeddings of a model that has one, or with ``time_axis`` the model's first
        floating input; None for other models.

        The profile is the model's own (``cell`` "model"), whatever lies between the embedding
        (or the input) and the loss (recurrent modules, hand-written cells, scans,
        convolutions), or an attention stack's (``cell`` "attention"). Time is ``time_axis``
        (an axis of the input, which is also the embedding output's), else the embedding
        output's axis 1, or 0 when an attention or recurrent module of the model takes its
        sequence first.
        """
        attention = [m for m in model.modules() if _is_attention(m)]
        embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
        cell = "attention" if attention else "model"
        if not embeddings:
            if time_axis is None:
                yield None
                return
            profiler = cls(time_axis, cell, model)
            with contextlib.ExitStack() as stack:
                hook = model.register_forward_pre_hook(profiler._input_hook, with_kwargs=True)
                stack.callback(hook.remove)
                stack.callback(profiler._release)
                yield profiler
            return
        if time_axis is None:
            seq_first = any(
                isinstance(m, nn.MultiheadAttention) and not m.batch_first for m in attention
            ) or any(not m.batch_first for _, m in recurrent_modules(model))
            time_axis = 0 if seq_first else 1
        profiler = cls(time_axis, cell, model)
        with contextlib.ExitStack() as stack:
            for name, module in embeddings:
                stack.callback(module.register_forward_hook(profiler._hook(name)).remove)
            stack.callback(profiler._release)
            yield profiler

    def _fits(self, tensor: Any, dims: int | None = None) -> bool:
        return (
            isinstance(tensor, torch.Tensor)
            and tensor.is_floating_point()
            and (dims is None or tensor.dim() == dims)
            and tensor.dim() > self.time_axis
            and tensor.shape[self.time_axis] >= MIN_STEPS
        )

    def _keep(self, name: str, tensor: torch.Tensor) -> None:
        """Keep, for this step, the norm of ``tensor``'s gradient at each position."""
        step = self._hooked = self.step
        self.name = self.name or name
        others = [d for d in range(tensor.dim()) if d != self.time_axis]

        def keep(grad: torch.Tensor) -> None:
            self._rows[step] = torch.linalg.vector_norm(grad.double(), dim=others).detach()

        self._handles.append(tensor.register_hook(keep))

    def _hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if (
                not self.enabled
                or self._hooked == self.step  # the step's first embedding call is profiled
                or not self._fits(output, dims=3)
                or not output.requires_grad
            ):
                return
            self._keep(name, output)

        return hook

    def _input_hook(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """The model's first floating input with ``time_axis`` (positional first, then keyword,
        in order) swapped for a copy that requires grad, whose gradient is kept."""
        if not self.enabled or self._hooked == self.step:
            return None
        leaves, spec = pytree.tree_flatten((args, kwargs))
        index = next((i for i, leaf in enumerate(leaves) if self._fits(leaf)), None)
        if index is None:
            return None
        copy = leaves[index].detach().requires_grad_(True)
        leaves[index] = copy
        self._keep(INPUT, copy)
        new_args, new_kwargs = pytree.tree_unflatten(leaves, spec)
        return tuple(new_args), dict(new_kwargs)

    def _release(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def profile(self) -> TemporalProfile | None:
        """The median over steps of each position's gradient norm; None if nothing was seen."""
        if not self._rows:
            return None
        lengths = {row.numel() for row in self._rows.values()}
        if len(lengths) != 1:  # batches of different lengths: profile the first step alone
            rows = [self._rows[min(self._rows)]]
        else:
            rows = [self._rows[k] for k in sorted(self._rows)]
        median = torch.stack(rows).median(dim=0).values.cpu()
        return TemporalProfile(
            module=self.name,
            cell=self.cell,
            gated=False,
            method="loss",
            norms=tuple(median.tolist()),
            convolutions=self.convolutions,
            receptive_field=self.receptive_field,
            axis=self.time_axis,
        )
