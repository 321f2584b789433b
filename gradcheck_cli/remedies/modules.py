"""The modules and hooks that edits put into a model: what a fixed model runs.

Every class here is picklable (a model saved with ``torch.save`` keeps them) and imports nothing
from the remedies that propose them, so the edit executor (:mod:`~gradcheck_cli.remedies.edits`)
and the remedies both read them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


class Residual(nn.Module):
    """``forward(x) = x + body(x)``: the identity path carries the gradient around ``body``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x + self.body(x, *args, **kwargs)


class GradClip(nn.Module):
    """Runs ``module`` and clips its parameters' global gradient norm to ``max_norm`` as soon as
    a backward pass through its outputs has finished, exactly as
    ``torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)`` would after
    ``loss.backward()`` (Pascanu et al. 2013). With gradient accumulation over several backward
    passes each pass is clipped on its own; use the training-loop line then.
    """

    def __init__(self, module: nn.Module, max_norm: float) -> None:
        super().__init__()
        self.module = module
        self.max_norm = max_norm

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        output = self.module(*args, **kwargs)
        if torch.is_grad_enabled():
            for tensor in output_tensors(output):
                if tensor.requires_grad:
                    tensor.register_hook(self._queue_clip)
        return output

    def _queue_clip(self, grad: torch.Tensor) -> None:
        # The hook runs mid-backward; the queued callback runs once the whole pass is done,
        # when every .grad is final (the mechanism DistributedDataParallel uses).
        torch.autograd.Variable._execution_engine.queue_callback(self.clip_)

    def clip_(self) -> None:
        """Clip now; idempotent, so several hooked outputs may each queue it."""
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.max_norm)


def output_tensors(output: Any) -> list[torch.Tensor]:
    """The tensors a module returns at the top level: itself, a mapping's values, a tuple's or
    list's items, or a Hugging Face ``ModelOutput``'s values."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        return [v for v in output.values() if isinstance(v, torch.Tensor)]
    if isinstance(output, (tuple, list)):
        return [v for v in output if isinstance(v, torch.Tensor)]
    values = getattr(output, "values", None)  # Hugging Face ModelOutput
    return [v for v in values() if isinstance(v, torch.Tensor)] if callable(values) else []


class OutputScale:
    """A forward hook that multiplies a module's output by ``factor``: the ``sqrt(d_model)``
    of Vaswani et al. (2017) on an embedding whose table is shared with the output layer, so
    the stream gets unit scale and the logits keep theirs. A class, not a closure, so a model
    saved with ``torch.save`` keeps it."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return output * self.factor

    def __repr__(self) -> str:
        return f"OutputScale({self.factor:g})"


def first_tensor_argument(args: Any, kwargs: Mapping[str, Any]) -> torch.Tensor | None:
    """The first tensor a module is called with: positional arguments first, then keyword
    arguments in the order given (Hugging Face layers take ``hidden_states=`` by keyword)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
    return None


class PreNorm:
    """A forward pre-hook that layer-normalises a module's first tensor argument over its last
    dimension: ``f(x)`` becomes ``f(LayerNorm(x))``, the Pre-LN placement of Xiong et al.
    (2020). Without an affine transform, so it adds no parameter: it is put only where Linear
    layers read ``x``, and their weights and biases express any per-feature scale and shift
    (``W(g * x + b) = (W diag(g)) x + W b``). The model's ``state_dict`` keeps its keys. A
    class, not a closure, so a model saved with ``torch.save`` keeps it."""

    def __init__(self, features: int) -> None:
        self.features = features

    def __call__(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        x = first_tensor_argument(args, kwargs)
        if x is None:
            return args, kwargs
        normed = nn.functional.layer_norm(x, (self.features,))
        args = tuple(normed if a is x else a for a in args)
        kwargs = {k: normed if v is x else v for k, v in kwargs.items()}
        return args, kwargs

    def __repr__(self) -> str:
        return f"PreNorm({self.features})"


class GumbelFloor:
    """Forward hooks on the model that raise the temperature of every ``F.gumbel_softmax`` call
    in its forward pass to at least ``floor`` (a ``TorchFunctionMode`` entered before forward
    and left after it, also when forward raises). A class, so ``torch.save`` keeps it."""

    def __init__(self, floor: float) -> None:
        self.floor = floor
        self._active: list[_FloorMode] = []

    def enter(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        mode = _FloorMode(self.floor)
        mode.__enter__()
        self._active.append(mode)

    def exit(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._active:
            self._active.pop().__exit__(None, None, None)

    def __getstate__(self) -> dict[str, Any]:
        return {"floor": self.floor, "_active": []}

    def __repr__(self) -> str:
        return f"GumbelFloor({self.floor:g})"


class _FloorMode(TorchFunctionMode):
    def __init__(self, floor: float) -> None:
        super().__init__()
        self.floor = floor

    def __torch_function__(
        self, func: Any, types: Any, args: Any = (), kwargs: Any = None
    ) -> Any:  # fmt: skip
        kwargs = dict(kwargs or {})
        if func is nn.functional.gumbel_softmax:
            if len(args) > 1:
                args = (args[0], max(float(args[1]), self.floor), *args[2:])
            else:
                kwargs["tau"] = max(float(kwargs.get("tau", 1.0)), self.floor)
        return func(*args, **kwargs)
