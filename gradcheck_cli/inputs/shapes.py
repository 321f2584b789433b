"""What the model takes when the user gives no data: input shapes read from the model's first
layer or declared by it, checked by one forward pass, and the synthetic batches drawn from them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.utils._pytree as pytree
from torch import nn

from gradcheck_cli.errors import InputError, first_line, what_happened
from gradcheck_cli.inputs.calling import InputFactory, Inputs, call_model
from gradcheck_cli.layers import CONV_TYPES, INPUT_LAYERS
from gradcheck_cli.memory import is_out_of_memory
from gradcheck_cli.seeding import seeded
from gradcheck_cli.snapshot import preserved

_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "long": torch.int64,
    "int32": torch.int32,
    "int": torch.int32,
    "bool": torch.bool,
}


@dataclass(frozen=True)
class InputShape:
    """One positional input: its shape without the batch dimension, dtype and integer range.

    ``high`` None (an integer shape given without a range) means [0, 2) until
    :func:`fit_token_range` sets it to the model's vocabulary.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    low: int = 0
    high: int | None = None

    @classmethod
    def parse(cls, text: str) -> InputShape:
        """Parse ``3x32x32``, ``3,32,32``, ``128:int64:0-30522`` or ``16:float64``."""
        parts = text.strip().split(":")
        if not 1 <= len(parts) <= 3 or not parts[0]:
            raise InputError(
                f"--input-shape '{text}' is malformed; write e.g. 3x32x32 or 128:int64:0-50257"
            )
        try:
            pieces = re.split(r"[x,]", parts[0])
            if not all(p.strip() for p in pieces):  # '8x' or '3,,32' is a typo, not a shape
                raise ValueError(parts[0])
            shape = tuple(int(d) for d in pieces)
        except ValueError:
            raise InputError(
                f"--input-shape '{text}': the shape must be integers separated by 'x' or ','"
            ) from None
        if not shape or any(d <= 0 for d in shape):
            raise InputError(f"--input-shape '{text}': every dimension must be a positive integer")
        dtype = torch.float32
        if len(parts) >= 2:
            if parts[1] not in _DTYPES:
                raise InputError(
                    f"--input-shape '{text}': unknown dtype '{parts[1]}'; use one of "
                    + ", ".join(sorted(_DTYPES))
                )
            dtype = _DTYPES[parts[1]]
        low, high = 0, None
        if len(parts) == 3:
            match = re.fullmatch(r"(-?\d+)-(-?\d+)", parts[2])
            if not match or int(match.group(1)) >= int(match.group(2)):
                raise InputError(
                    f"--input-shape '{text}': the range must be LOW-HIGH with LOW < HIGH (HIGH exclusive)"
                )
            low, high = int(match.group(1)), int(match.group(2))
        return cls(shape, dtype, low, high)

    def make(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """A random batch: standard normal floats, or uniform integers in [low, high)."""
        size = (batch_size, *self.shape)
        if self.dtype.is_floating_point:
            return torch.randn(size, device=device).to(self.dtype)
        if self.dtype == torch.bool:
            return torch.randint(0, 2, size, device=device).bool()
        return torch.randint(self.low, self.top, size, device=device, dtype=self.dtype)

    @property
    def top(self) -> int:
        """The exclusive upper bound of integer inputs."""
        return 2 if self.high is None else self.high

    @property
    def integer(self) -> bool:
        """Whether the input holds integers (token ids) with a range."""
        return not self.dtype.is_floating_point and self.dtype != torch.bool

    def describe(self) -> str:
        """The shape as the user would write it, e.g. ``3x32x32:float32``."""
        text = "x".join(str(d) for d in self.shape) + ":" + str(self.dtype).removeprefix("torch.")
        if self.integer:
            text += f":{self.low}-{self.top}"
        return text

    def flag(self) -> str:
        """The shortest ``--input-shape`` value that gives this input, e.g. ``30``."""
        text = self.describe()
        return text.removesuffix(":float32")


_SPATIAL = {nn.Conv1d: (64,), nn.Conv2d: (32, 32), nn.Conv3d: (16, 16, 16)}


def first_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first registered layer: a Linear/Conv/Embedding/RNN, or a module without children
    that has weights (the model itself when it is one).

    Parameters registered directly on a module with children, the root above all (a learned
    positional table, a class token), are looked through: they are added somewhere inside
    ``forward``, not applied to the input.
    """
    for name, module in model.named_modules():
        if isinstance(module, INPUT_LAYERS):
            return name, module
        has_weights = any(True for _ in module.parameters(recurse=False))
        if has_weights and not any(True for _ in module.children()):
            return name, module
    return None


def infer_input_shape(model: nn.Module) -> InputShape:
    """Guess the input from the first registered layer when that is unambiguous.

    Linear: ``(in_features,)``; Conv1d/2d/3d: channels by 64, 32x32 or 16x16x16 (a guess at the
    spatial size: a model that needs another must say so with ``--input-shape``); Embedding:
    32 token ids below ``num_embeddings``; a batch-first RNN: 32 steps of ``input_size``. The
    root's own parameters are looked through (see :func:`first_layer`).
    """
    found = first_layer(model)
    if found is not None:
        shape = _layer_input(found[1])
        if shape is not None:
            return shape
    raise InputError(
        "cannot infer the model's input from its first layer"
        + (f" ({_layer_text(*found)})" if found is not None else "")
        + "; pass --input-shape (e.g. 3x224x224, or 128:int64:0-30522 for token ids) or "
        "define example_inputs(batch_size)"
    )


def _layer_input(module: nn.Module) -> InputShape | None:
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters(False)):
        return None  # LazyLinear's in_features is 0 until its first call: nothing to infer
    # A float64 or float16 model reads inputs of its own dtype (PyTorch does not promote).
    dtype = next(
        (p.dtype for p in module.parameters(recurse=False) if p.is_floating_point()),
        torch.float32,
    )
    if isinstance(module, nn.Linear):
        return InputShape((module.in_features,), dtype)
    if isinstance(module, CONV_TYPES):
        return InputShape((module.in_channels, *_SPATIAL[type(module)]), dtype)
    if isinstance(module, nn.Embedding):
        return InputShape((32,), torch.int64, 0, module.num_embeddings)
    if isinstance(module, nn.RNNBase) and module.batch_first:
        return InputShape((32, module.input_size), dtype)
    return None


def _layer_text(name: str, module: nn.Module) -> str:
    """``Linear(in_features=30)`` and where it is: how messages name a layer."""
    if isinstance(module, nn.Linear):
        text = f"Linear(in_features={module.in_features})"
    elif isinstance(module, CONV_TYPES):
        text = f"{type(module).__name__}(in_channels={module.in_channels})"
    elif isinstance(module, nn.Embedding):
        text = f"Embedding(num_embeddings={module.num_embeddings})"
    elif isinstance(module, nn.RNNBase):
        text = f"{type(module).__name__}(input_size={module.input_size}, batch_first={module.batch_first})"
    else:
        text = type(module).__name__
    return f"{text} '{name}'" if name else text


def first_embedding(model: nn.Module) -> nn.Embedding | None:
    """The first registered ``nn.Embedding``: the table token ids index."""
    return next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)


def fit_token_range(shapes: list[InputShape], model: nn.Module) -> list[InputShape]:
    """Integer inputs given without a range draw ids in [0, num_embeddings) of the model's first
    embedding (a [0, 2) default would leave most of the vocabulary unused)."""
    embedding = first_embedding(model)
    if embedding is None:
        return shapes
    return [
        dataclasses.replace(s, high=embedding.num_embeddings) if s.integer and s.high is None else s
        for s in shapes
    ]


# --- checking inferred inputs ------------------------------------------------------------------

PROBE_BATCH = 2
_PROBE_SIZES = {
    nn.Conv1d: (64, 128, 256, 512, 1024, 16000),
    nn.Conv2d: (32, 28, 64, 96, 128, 224, 256, 299, 384, 512),
    nn.Conv3d: (16, 32, 64, 112),
}
_PROBE_LENGTHS = (32, 64, 128, 512)


def check_inferred_inputs(model: nn.Module, batch_size: int = 16) -> InputShape:
    """The inferred input, checked by one forward pass; when it fails, an :class:`InputError`
    that names the model's real sizes.

    The check runs like a measured step (training mode, no gradient) and leaves the model as it
    was: modes, buffers (BatchNorm statistics) and the global RNG are restored. When the
    inferred input does not run, inputs built from every layer's sizes are tried (each Linear's
    ``in_features``, each convolution's channels at common image sizes, each embedding's
    vocabulary at the lengths a positional table allows) and the first that runs is suggested.
    """
    lazy = next(
        (
            name
            for name, m in model.named_modules()
            if any(isinstance(p, nn.parameter.UninitializedParameter) for p in m.parameters(False))
        ),
        None,
    )
    if lazy is not None:
        raise InputError(
            f"'{lazy or type(model).__name__}' is a lazy module (e.g. nn.LazyLinear) with no "
            "shape yet, so no input can be inferred: call the model once on an example batch "
            "in build_model() before returning it"
        )
    layer = first_layer(model)
    try:
        shape = infer_input_shape(model)
    except InputError:
        found = _first_that_runs(model, layer, skip=None)
        if found is None:
            raise
        raise InputError(
            "cannot infer the model's input from its first layer"
            + (f", {_layer_text(*layer)}" if layer is not None else "")
            + f"; {found}"
        ) from None
    failure = _forward_failure(model, shape, min(batch_size, PROBE_BATCH))
    if failure is not None and batch_size > PROBE_BATCH:
        failure = _forward_failure(model, shape, batch_size)  # a model that fixes its batch size
    if failure is None:
        return shape
    assert layer is not None  # a shape was inferred from it
    head = (
        f"the model's forward pass fails on {shape.flag()}, the input inferred from its first "
        f"layer {_layer_text(*layer)} ({type(failure).__name__}: {first_line(failure)})"
    )
    if isinstance(failure, SystemExit) or is_out_of_memory(failure):
        # Not a misfit of the input: no other input would run either.
        raise InputError(f"the model's forward pass {forward_advice(failure, synthetic=False)}")
    # The spatial size of a convolution's input was a guess: the one whose flattened features
    # fit the Linear layer after the convolutions is the model's own.
    for fitted in _fitted_spatial(model, layer[1], shape):
        if _forward_failure(model, fitted, min(batch_size, PROBE_BATCH)) is None:
            return fitted
    needed = _required_inputs(model)
    if len(needed) > 1:
        raise InputError(
            f"{head}; forward takes {len(needed)} inputs ({', '.join(needed)}): give "
            "--input-shape once for each, in order, or define example_inputs(batch_size)"
        )
    found = _first_that_runs(model, layer, skip=shape)
    if found is not None:
        raise InputError(f"{head}; {found}")
    raise InputError(
        f"{head}; no input built from the sizes of its layers runs either: pass --input-shape "
        "with the size forward expects, or define example_inputs(batch_size)"
    )


class _Reached(Exception):
    """Raised by a pre-hook to end a trial forward pass once it has what it measured."""


def _fitted_spatial(model: nn.Module, first: nn.Module, guess: InputShape) -> list[InputShape]:
    """Inputs of the first convolution's channels at the spatial sizes whose flattened
    features fit the ``in_features`` of the first Linear registered after it, nearest first.

    The features reaching that Linear are measured at the guessed size and at twice it (a
    pre-hook ends each trial there); a conv stack's flattened output grows as size**dims, so
    the size that gives ``in_features`` follows. Empty when the first layer is no convolution,
    no Linear follows it, or the features do not depend on the size (global pooling).
    """
    if not isinstance(first, CONV_TYPES):
        return []
    modules = list(model.modules())
    head = next(
        (m for m in modules[modules.index(first) :] if isinstance(m, nn.Linear)),
        None,
    )
    if head is None:
        return []
    size = guess.shape[1]
    features = [_features_reaching(model, head, guess, s) for s in (size, 2 * size)]
    if None in features or features[0] == features[1]:
        return []
    low, high = cast(list[int], features)
    growth = math.log(high / low) / math.log(2)  # about the number of spatial dims
    best = size * (head.in_features / low) ** (1 / growth)
    if not math.isfinite(best) or best < 1:
        return []
    sizes = sorted(
        {max(1, round(best) + d) for d in range(-3, 4)}, key=lambda s: (abs(s - best), s)
    )
    return [_at_size(guess, s) for s in sizes]


def _at_size(guess: InputShape, size: int) -> InputShape:
    """``guess`` (channels, then spatial dims) with every spatial dim ``size``."""
    return dataclasses.replace(guess, shape=(guess.shape[0], *(size,) * (len(guess.shape) - 1)))


def _features_reaching(
    model: nn.Module, head: nn.Linear, guess: InputShape, size: int
) -> int | None:
    """The last dimension of the input ``head`` gets when the model reads ``guess`` at
    ``size``, or None when forward fails before it."""
    seen: list[int] = []

    def stop(module: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            seen.append(int(args[0].shape[-1]))
        raise _Reached

    handle = head.register_forward_pre_hook(stop)
    try:
        _forward_failure(model, _at_size(guess, size), PROBE_BATCH)
    finally:
        handle.remove()
    return seen[0] if seen else None


def _required_inputs(model: nn.Module) -> list[str]:
    """The positional parameters of ``forward`` that have no default."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        p.name for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty
    ]


def _candidates(model: nn.Module) -> list[tuple[InputShape, str, nn.Module]]:
    """Inputs the model's layers suggest, in registration order, with the layer each fits."""
    lengths = list(_PROBE_LENGTHS)
    for p in model.parameters():  # a (1, L, d) positional table fixes the sequence length L
        if isinstance(p, nn.parameter.UninitializedParameter):
            continue  # a lazy module's, shapeless until its first call
        if p.dim() == 3 and p.shape[0] == 1:
            lengths[:0] = [int(p.shape[1]), int(p.shape[1]) - 1]
    lengths = [n for i, n in enumerate(lengths) if n > 0 and n not in lengths[:i]]
    found: list[tuple[InputShape, str, nn.Module]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found.append((InputShape((module.in_features,)), name, module))
        elif isinstance(module, CONV_TYPES):
            dims = len(_SPATIAL[type(module)])
            for size in _PROBE_SIZES[type(module)]:
                shape = (module.in_channels, *(size,) * dims)
                found.append((InputShape(shape), name, module))
        elif isinstance(module, nn.Embedding):
            for n in lengths:
                ids = InputShape((n,), torch.int64, 0, module.num_embeddings)
                found.append((ids, name, module))
        elif isinstance(module, nn.RNNBase) and module.batch_first:
            for n in lengths:
                found.append((InputShape((n, module.input_size)), name, module))
    return found


def _first_that_runs(
    model: nn.Module, first: tuple[str, nn.Module] | None, skip: InputShape | None, limit: int = 40
) -> str | None:
    """Advice naming the first candidate input that runs, or None when none does."""
    tried: set[InputShape] = set() if skip is None else {skip}
    for shape, name, module in _candidates(model):
        if shape in tried:
            continue
        tried.add(shape)
        if len(tried) > limit:
            return None
        if _forward_failure(model, shape, PROBE_BATCH) is not None:
            continue
        if first is not None and module is first[1]:
            why = ""
        elif isinstance(module, nn.Embedding):
            why = f" (token ids for {_layer_text(name, module)})"
        else:
            why = f" (the input of {_layer_text(name, module)})"
        return f"{shape.flag()} runs{why}: try --input-shape {shape.flag()}"
    return None


def _forward_failure(model: nn.Module, shape: InputShape, batch_size: int) -> BaseException | None:
    """The exception one forward pass on a batch of ``shape`` raises, or None when it runs
    (``sys.exit()`` in forward included: it is the model's failure, not gradcheck's exit)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with _trial(model, device):
        try:
            call_model(model, shape.make(batch_size, device))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            return exc
    return None


@contextlib.contextmanager
def _trial(model: nn.Module, device: torch.device) -> Iterator[None]:
    """A forward pass that changes nothing: training mode as in a measured step, no graph,
    buffers (BatchNorm running statistics), attributes forward rebinds and the global RNG
    restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with seeded(0, devices), torch.no_grad(), preserved(model):
            model.train()
            yield
    finally:
        for module, mode in modes.items():
            module.training = mode


@dataclass(frozen=True)
class DeclaredInputs:
    """Random batches shaped like the model's own ``example_input_array`` (the attribute
    PyTorch Lightning reads for its summaries; any module may set it): each tensor's sample
    dimension becomes the batch size, floats are drawn from a standard normal and integers
    (token ids, labels) in the example's own range. A dict or tuple keeps its structure."""

    example: Any
    device: torch.device | None = None  # where the batches go (None: the example's device)

    def __call__(self, batch_size: int) -> Inputs:
        def draw(leaf: Any) -> Any:
            if not isinstance(leaf, torch.Tensor) or leaf.dim() == 0:
                return leaf
            shape = (batch_size, *leaf.shape[1:])
            device = self.device or leaf.device
            if leaf.is_floating_point() or leaf.is_complex():
                return torch.randn(shape, dtype=leaf.dtype, device=device)
            if leaf.dtype == torch.bool:
                return torch.rand(shape, device=device) < 0.5
            low, high = int(leaf.min()), int(leaf.max()) + 1
            return torch.randint(low, high, shape, dtype=leaf.dtype, device=device)

        return pytree.tree_map(draw, self.example)

    @property
    def description(self) -> str:
        """How the report names these inputs, e.g. ``example_input_array 1x16x16:float32``."""
        leaves = [t for t in pytree.tree_leaves(self.example) if isinstance(t, torch.Tensor)]
        shapes = ", ".join(
            ":".join(
                part
                for part in ("x".join(str(d) for d in t.shape[1:]), str(t.dtype).split(".")[-1])
                if part
            )
            for t in leaves
        )
        return f"example_input_array {shapes}"


def declared_inputs(model: nn.Module, device: torch.device | None = None) -> DeclaredInputs | None:
    """The model's ``example_input_array`` as an input factory drawing on ``device``, when it
    holds a tensor with a sample dimension (a LightningModule that sets it says what its
    forward takes)."""
    example = getattr(model, "example_input_array", None)
    leaves = [t for t in pytree.tree_leaves(example) if isinstance(t, torch.Tensor)]
    if not leaves or not any(t.dim() > 0 for t in leaves):
        return None
    return DeclaredInputs(example, device)


@dataclass(frozen=True)
class SyntheticInputs:
    """Random inputs of given shapes (``--input-shape`` or inferred): one tensor per shape, a
    tuple when there are several. A forward pass that fails on them may want other shapes."""

    shapes: tuple[InputShape, ...]
    device: torch.device
    given: bool = False  # the user's --input-shape, not inferred

    def __call__(self, batch_size: int) -> Inputs:
        tensors = tuple(s.make(batch_size, self.device) for s in self.shapes)
        return tensors[0] if len(tensors) == 1 else tensors

    @property
    def description(self) -> str:
        """How the report names these inputs, e.g. ``3x32x32:float32``."""
        return ", ".join(s.describe() for s in self.shapes)


def shapes_factory(
    shapes: list[InputShape], device: torch.device, *, given: bool = False
) -> InputFactory:
    """An input factory producing one tensor per shape (a tuple when there are several);
    ``given`` when the user named the shapes (``--input-shape``)."""
    return SyntheticInputs(tuple(shapes), device, given)


def forward_advice(
    exc: BaseException,
    *,
    synthetic: bool,
    inputs: str = "",
    given: bool = False,
    declared: bool = False,
) -> str:
    """What a failed forward pass did and what to do about it, to follow ``the model's forward
    pass``: out of memory asks for less, a misfit of inferred inputs (``synthetic``) for other
    shapes, of the user's ``--input-shape`` (``given``) for a check of them, of batches shaped
    like the model's ``example_input_array`` (``declared``) for a check of that attribute,
    anything else for the model or its inputs to be fixed. ``inputs`` describes them."""
    happened = what_happened(exc)
    on = f"; the inputs were {inputs}" if inputs else ""
    if is_out_of_memory(exc):
        return (
            f"ran out of memory ({happened}){on}; use a smaller --batch-size, a smaller model "
            "or another --device"
        )
    if isinstance(exc, SystemExit):
        return f"{happened}; forward must return the output, not end the process"
    if synthetic and given:
        return (
            f"{happened}{on} (from --input-shape): check those shapes, or fix forward (rerun "
            "with --debug for the traceback)"
        )
    if synthetic:
        return f"{happened}{on}: pass --input-shape or define example_inputs(batch_size)"
    if declared:
        return (
            f"{happened}{on} (shaped like the model's example_input_array): check that "
            "attribute, or pass --input-shape or define example_inputs(batch_size)"
        )
    return f"{happened}{on}: fix forward or the inputs (rerun with --debug for the traceback)"
