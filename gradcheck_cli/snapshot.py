"""What a model's forward passes may change, saved before a diagnosis and put back after it.

A forward pass can change a model in two ways: in place (BatchNorm's ``running_mean.mul_()``,
``self.count += 1`` on a buffer) and by rebinding a name (``self.ema = 0.9 * self.ema + x``
replaces the buffer object; ``self.last = y`` keeps a tensor of the pass; a lazily built
submodule or cache appears). Copying saved values into the old tensors undoes only the first, so
:class:`ModelState` keeps the original objects themselves: each module's parameter, buffer and
submodule entries, its plain attributes (and the contents of list, dict and set attributes), and
a copy of every buffer's and tensor attribute's values. :meth:`ModelState.restore` puts back the
original objects, drops what the passes added, and copies values back into the tensors whose
values changed. TorchScript modules keep their attributes in C++: only their buffers'
values are restored.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# nn.Module's own bookkeeping (hook dictionaries, the training flag): owned by torch, by the hooks'
# removable handles and by restore_training, never rebound by a forward pass.
_MODULE_INTERNALS = frozenset(vars(nn.Module()))
_REGISTRIES = ("_parameters", "_buffers", "_modules")
_MISSING = object()


def _unchanged(tensor: torch.Tensor, saved: torch.Tensor) -> bool:
    # Compared by value, not by version counter: in-place updates inside TorchScript (a scripted
    # BatchNorm's running_mean) leave the counter as it was.
    try:
        return tensor.shape == saved.shape and bool(torch.equal(tensor, saved))
    except (RuntimeError, NotImplementedError):  # meta tensors and other values without data
        return False


@dataclass(frozen=True)
class _Values:
    """A tensor and a copy of its values."""

    tensor: torch.Tensor
    saved: torch.Tensor

    @classmethod
    def of(cls, tensor: torch.Tensor) -> _Values:
        return cls(tensor, tensor.detach().clone())

    def restore(self) -> None:
        # Only changed tensors are written: an expanded or inference-mode buffer that no pass
        # touched (Hugging Face's position_ids) is never copied into.
        if not _unchanged(self.tensor, self.saved):
            with torch.no_grad():
                self.tensor.copy_(self.saved)


@dataclass(frozen=True)
class _ModuleEntries:
    """One module's registered entries and plain attributes, as objects (not copies)."""

    module: nn.Module
    registries: dict[str, dict[str, Any]]
    non_persistent: frozenset[str]
    attributes: dict[str, Any]
    contents: dict[str, Any]  # shallow copies of list, dict and set attributes

    @classmethod
    def of(cls, module: nn.Module) -> _ModuleEntries:
        attributes = {k: v for k, v in vars(module).items() if k not in _MODULE_INTERNALS}
        return cls(
            module=module,
            registries={name: dict(getattr(module, name)) for name in _REGISTRIES},
            non_persistent=frozenset(module._non_persistent_buffers_set),
            attributes=attributes,
            contents={
                k: v.copy() for k, v in attributes.items() if isinstance(v, (list, dict, set))
            },
        )

    def restore(self) -> None:
        module = self.module
        for name, saved in self.registries.items():
            current = getattr(module, name)
            if current.keys() != saved.keys() or any(current[k] is not v for k, v in saved.items()):
                current.clear()  # the same dict object: torch and user code may hold it
                current.update(saved)
        if module._non_persistent_buffers_set != self.non_persistent:
            module._non_persistent_buffers_set.clear()
            module._non_persistent_buffers_set.update(self.non_persistent)
        state = vars(module)
        for key in [k for k in state if k not in _MODULE_INTERNALS and k not in self.attributes]:
            del state[key]  # added by a forward pass (self.last = y on a model without one)
        for key, value in self.attributes.items():
            if state.get(key, _MISSING) is not value:
                state[key] = value
        for key, saved in self.contents.items():
            _put_back(self.attributes[key], saved)


def _put_back(container: Any, saved: Any) -> None:
    """Give a list, dict or set the contents of its shallow copy ``saved`` again (in place: the
    model and the user's code may hold the container)."""
    if _same(container, saved):
        return
    if isinstance(container, list):
        container[:] = saved
    else:
        container.clear()
        container.update(saved)


def _same(container: Any, saved: Any) -> bool:
    """Whether a container holds the very objects it held (by identity: == on tensors is
    elementwise)."""
    if len(container) != len(saved):
        return False
    if isinstance(container, list):
        return all(a is b for a, b in zip(container, saved, strict=True))
    if isinstance(container, dict):
        return all(k in container and container[k] is v for k, v in saved.items())
    return all(item in container for item in saved)


class ModelState:
    """Everything of a model that its forward passes may rebind or change in place."""

    def __init__(self, model: nn.Module) -> None:
        self._modules = [
            _ModuleEntries.of(m)
            for m in model.modules()
            if not isinstance(m, torch.jit.ScriptModule)
        ]
        tensors: dict[int, torch.Tensor] = {id(b): b for b in model.buffers()}
        # Parameter values are not copied (that would double the model's memory), except the
        # one kind that forward writes by design: an embedding with max_norm renormalises the
        # rows it looks up, in place (torch.embedding_renorm_).
        for m in model.modules():
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.max_norm is not None:
                tensors.setdefault(id(m.weight), m.weight)
        for entries in self._modules:
            for value in entries.attributes.values():
                if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                    tensors.setdefault(id(value), value)
        # Plain objects and containers reachable from the attributes (``self.cfg.calls += 1``
        # on a SimpleNamespace, a tensor in ``self.history[0]["sum"]``), a few levels deep.
        self._reached = _Reachable()
        for entries in self._modules:
            for value in entries.attributes.values():
                self._reached.visit(value, 0)
        for tensor in self._reached.tensors:
            tensors.setdefault(id(tensor), tensor)
        self._values = [_Values.of(t) for t in tensors.values()]
        self._parameters = _parameter_copies(
            [p for p in model.parameters() if id(p) not in tensors]
        )

    def restore(self) -> None:
        """Put back the original objects, then the original values of the original tensors."""
        for entries in self._modules:
            entries.restore()
        self._reached.restore()
        for values in self._values:
            values.restore()
        for parameter, version, saved in self._parameters:
            # Written in place: clamp_ under no_grad moves the version counter; a write through
            # .data does not, so the values are compared too.
            if parameter._version != version or not _unchanged(
                parameter.detach(), saved.to(parameter.device)
            ):
                with torch.no_grad():
                    parameter.copy_(saved)


class _Reachable:
    """What a forward pass could change in place below a module's attributes: the contents of
    lists, dicts and sets (shallowly), the attributes of plain objects (``vars``), and tensors,
    found up to :attr:`DEPTH` levels below an attribute and at most :attr:`LIMIT` objects.
    Modules (their own entries), parameters, classes, functions and Python modules are not
    entered; nor are tensors above :attr:`TENSOR_BYTES` in all (a dataset kept on the model)."""

    DEPTH = 3
    LIMIT = 5000
    TENSOR_BYTES = 64 * 2**20

    def __init__(self) -> None:
        self.containers: list[tuple[Any, Any]] = []  # (container, shallow copy)
        self.objects: list[tuple[Any, dict[str, Any]]] = []  # (object, copy of its vars)
        self.tensors: list[torch.Tensor] = []
        self._seen: set[int] = set()
        self._bytes = 0

    def visit(self, value: Any, depth: int) -> None:
        if id(value) in self._seen or len(self._seen) >= self.LIMIT:
            return
        if isinstance(value, (nn.Module, nn.Parameter, type, types.ModuleType)) or callable(value):
            return
        if isinstance(value, torch.Tensor):
            size = value.numel() * value.element_size()
            if (
                depth > 0
                and value.device.type != "meta"
                and self._bytes + size <= self.TENSOR_BYTES
            ):
                self._seen.add(id(value))
                self._bytes += size
                self.tensors.append(value)
            return
        if depth > self.DEPTH:
            return
        if isinstance(value, (list, dict, set)):
            self._seen.add(id(value))
            if depth > 0:  # a module's own list/dict/set attributes: _ModuleEntries keeps them
                self.containers.append((value, value.copy()))
            items = value.values() if isinstance(value, dict) else value
            for item in list(items):
                self.visit(item, depth + 1)
        elif isinstance(value, tuple):
            self._seen.add(id(value))
            for item in value:
                self.visit(item, depth + 1)
        elif _plain(value):
            self._seen.add(id(value))
            state = vars(value)
            self.objects.append((value, dict(state)))
            for item in list(state.values()):
                self.visit(item, depth + 1)

    def restore(self) -> None:
        for obj, saved in self.objects:
            state = vars(obj)
            if state.keys() != saved.keys() or any(state[k] is not v for k, v in saved.items()):
                state.clear()
                state.update(saved)
        for container, saved in self.containers:
            _put_back(container, saved)


def _plain(value: Any) -> bool:
    """An instance of a Python class holding its state in a writable ``__dict__`` (a config
    object, a SimpleNamespace), not one of torch's or a C extension's."""
    try:
        state = vars(value)
    except TypeError:
        return False
    module = type(value).__module__ or ""
    return isinstance(state, dict) and not module.startswith(("torch", "numpy", "builtins"))


# Parameters are copied to host memory up to this many bytes in all (beyond it, what a forward
# pass writes into its own weights in place is not undone: documented in docs/promises.md).
PARAMETER_COPY_LIMIT = 4 * 2**30


def _parameter_copies(
    parameters: list[torch.Tensor],
) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
    """(parameter, its version counter, a host copy of its values) for the parameters a forward
    pass could write in place (WGAN-style weight clipping, a hand-written weight norm). Only
    plain tensors with storage are copied (not meta, sharded or lazy ones), and none when they
    hold more than :data:`PARAMETER_COPY_LIMIT` bytes; a copy is written back only where the
    version counter or the values say the parameter was changed in place."""
    plain = [
        p
        for p in parameters
        if type(p.data) is torch.Tensor
        and p.device.type != "meta"
        and not isinstance(p, nn.parameter.UninitializedParameter)
    ]
    if sum(p.numel() * p.element_size() for p in plain) > PARAMETER_COPY_LIMIT:
        return []
    return [(p, p._version, p.detach().to("cpu", copy=True)) for p in plain]


@dataclass(frozen=True)
class TorchGlobals:
    """The process-wide torch settings a forward pass can change (``torch.set_default_dtype``,
    ``use_deterministic_algorithms``, ``set_float32_matmul_precision``, grad and anomaly modes,
    cuDNN's flags), read before a diagnosis and put back after it; the random generators are
    saved and restored separately (:mod:`gradcheck_cli.seeding`)."""

    default_dtype: torch.dtype
    deterministic: bool
    deterministic_warn_only: bool
    matmul_precision: str
    grad_enabled: bool
    anomaly: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool

    @classmethod
    def read(cls) -> TorchGlobals:
        """The settings as they are now."""
        return cls(
            torch.get_default_dtype(),
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.get_float32_matmul_precision(),
            torch.is_grad_enabled(),
            torch.is_anomaly_enabled(),
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark,
        )

    def restore(self) -> None:
        """Put every setting back as it was read."""
        torch.set_default_dtype(self.default_dtype)
        torch.use_deterministic_algorithms(
            self.deterministic, warn_only=self.deterministic_warn_only
        )
        torch.set_float32_matmul_precision(self.matmul_precision)
        torch.set_grad_enabled(self.grad_enabled)
        torch.set_anomaly_enabled(self.anomaly)
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.backends.cudnn.benchmark = self.cudnn_benchmark


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    """Run the block, then put back whatever its forward passes changed or rebound on ``model``
    (not the ``training`` flags: whoever changes those restores them)."""
    state = ModelState(model)
    try:
        yield
    finally:
        state.restore()
