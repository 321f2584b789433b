"""Real batches: ``--data`` files (tensors, tuples, dicts) and a model file's ``batches()``,
drawn a batch at a time, cast to the model's dtype.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradcheck_cli.errors import InputError, first_line, require_file, what_happened
from gradcheck_cli.inputs.calling import InputFactory, Inputs, Labeled

_TARGET_KEYS = ("target", "targets", "y")
_TEXT_TABLES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".parquet")
_INPUT_KEYS = ("x", "inputs", "input")


def load_data(path: str | Path) -> tuple[Inputs, torch.Tensor | None]:
    """Read ``--data``: a ``.pt`` (tensor, tuple/list or dict), ``.npy`` or ``.npz`` file.

    A tensor is the inputs. A tuple or list is ``(inputs..., targets)``: its last element is the
    target. A dict is keyword inputs, except a ``target``/``targets``/``y`` entry, which is the
    target (Hugging Face ``labels`` stay inputs: those models compute their own loss). An
    ``.npz`` with ``x``/``inputs`` and ``y``/``targets`` arrays is ``(inputs, targets)``. The
    first dimension of every tensor is the sample dimension. Loaded weights-only: no code runs.
    """
    path = Path(path)
    require_file(path, f"data file '{path}'", InputError)
    try:
        if path.suffix in (".npy", ".npz"):
            import numpy as np

            raw: Any = np.load(path, allow_pickle=False)
            if path.suffix == ".npz":
                raw = {k: raw[k] for k in raw.files}
            data = _tensors(raw)
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except InputError:
        raise
    except Exception as exc:
        # NumPy takes any file it cannot parse for pickled data and advises loading it
        # unsafely; that advice is never right for --data, which holds arrays only.
        # torch's weights-only refusal does the same ("This file can still be loaded ...").
        if path.suffix in (".npy", ".npz"):
            detail = "it is not a NumPy array file, or it holds Python objects"
        elif path.suffix.lower() in _TEXT_TABLES:
            # torch.load reads any other file as a zip or a pickle: a CSV fails inside the
            # unpickler ("pop from empty list"), which says nothing of the cause.
            detail = f"a {path.suffix} table, which --data does not parse (save it with numpy.save)"
        elif isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            detail = "it holds Python objects besides tensors, which --data never unpickles"
        else:
            detail = f"{type(exc).__name__}: {first_line(exc)}"
        raise InputError(
            f"cannot read data file '{path}' ({detail}); use a .pt of tensors, a .npy or a "
            ".npz of numeric arrays"
        ) from exc
    inputs, target = _split_data(data, path)
    _check_batch(inputs, path, "inputs")
    if target is not None and not (isinstance(target, torch.Tensor) and target.dim() >= 1):
        raise InputError(
            f"data file '{path}': the targets must be a tensor with a sample dimension, got "
            f"{_kind(target)}"
        )
    return inputs, target


def _split_data(data: Any, path: Path) -> tuple[Any, Any]:
    if isinstance(data, Mapping):
        data = dict(data)
        target = next((data.pop(k) for k in _TARGET_KEYS if k in data), None)
        inputs_key = next((k for k in _INPUT_KEYS if k in data), None)
        if inputs_key is not None and len(data) == 1:
            return data[inputs_key], target
        return data, target
    if isinstance(data, (tuple, list)):
        if len(data) < 2:
            return (data[0] if data else ()), None
        rest = tuple(data[:-1])
        return (rest[0] if len(rest) == 1 else rest), data[-1]
    if isinstance(data, torch.Tensor):
        return data, None
    raise InputError(f"data file '{path}' holds a {type(data).__name__}, not tensors")


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dim()}-d tensor"
    name = type(value).__name__
    if isinstance(value, (tuple, list, dict)) and not value:
        return f"an empty {name}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _check_batch(inputs: Any, path: Path, where: str, depth: int = 0) -> None:
    """Inputs are tensors with a sample dimension, in tuples, lists or dicts keyed by the
    forward's argument names; anything else is named before the run, not found by it."""
    usage = (
        "use a tensor, a tuple (inputs..., targets) or a dict of keyword inputs, each a tensor "
        "whose first dimension is the samples"
    )
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() == 0:
            raise InputError(f"data file '{path}': {where} is a 0-d tensor (no samples); {usage}")
        return
    if depth < 4 and isinstance(inputs, Mapping) and inputs:
        for key, value in inputs.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise InputError(
                    f"data file '{path}': key {key!r:.40} of {where} is not an argument name; "
                    f"{usage}"
                )
            _check_batch(value, path, f"{where}[{key!r}]", depth + 1)
        return
    if depth < 4 and isinstance(inputs, (tuple, list)) and inputs:
        for i, value in enumerate(inputs):
            _check_batch(value, path, f"{where}[{i}]", depth + 1)
        return
    raise InputError(f"data file '{path}': {where} is {_kind(inputs)}, not tensors; {usage}")


def _tensors(raw: Any) -> Any:
    if isinstance(raw, Mapping):
        return {k: _tensors(v) for k, v in raw.items()}
    return torch.from_numpy(raw.copy())


def data_factory(inputs: Inputs, targets: torch.Tensor | None, source: str) -> InputFactory:
    """Fresh batches of real data: ``batch_size`` rows drawn under the step's seed."""
    count = _rows(inputs)
    if count == 0:
        raise InputError(f"--data '{source}' holds 0 rows; give at least one sample")
    if targets is not None and targets.shape[0] != count:
        raise InputError(f"--data: {count} input rows but {targets.shape[0]} targets")

    def make(batch_size: int) -> Inputs:
        rows = torch.randperm(count)[: min(batch_size, count)]
        batch = _take(inputs, rows)
        return batch if targets is None else Labeled(batch, targets[rows])

    make.description = f"data {source} ({count} rows)"  # type: ignore[attr-defined]
    return make


_NARROW_FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def match_data_dtype(inputs: Inputs, model: nn.Module) -> tuple[Inputs, str | None]:
    """Cast float64 ``--data`` inputs to a float32/half model's dtype, with the note to print.

    NumPy arrays are float64 by default, and a float32 layer refuses a double input. A float64
    model keeps float64 data; integer inputs (token ids) are never touched.
    """
    dtype = model_dtype(model)
    if dtype not in _NARROW_FLOATS or not any(t.dtype == torch.float64 for t in _flat(inputs)):
        return inputs, None
    assert dtype is not None
    name = str(dtype).removeprefix("torch.")
    return _cast(inputs, dtype), (
        f"--data holds float64 inputs; cast to {name}, the dtype of the model's parameters"
    )


def _cast(inputs: Inputs, dtype: torch.dtype) -> Inputs:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(dtype) if inputs.dtype == torch.float64 else inputs
    if isinstance(inputs, Mapping):
        return {k: _cast(v, dtype) for k, v in inputs.items()}
    return tuple(_cast(v, dtype) for v in inputs)


def _rows(inputs: Inputs) -> int:
    sizes = {t.shape[0] for t in _flat(inputs)}
    if len(sizes) != 1:
        raise InputError(f"--data: tensors disagree on the number of rows: {sorted(sizes)}")
    return sizes.pop()


def _flat(inputs: Inputs) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    return [t for v in values for t in _flat(v)]


def _take(inputs: Inputs, rows: torch.Tensor) -> Inputs:
    if isinstance(inputs, torch.Tensor):
        return inputs[rows]
    if isinstance(inputs, Mapping):
        return {k: _take(v, rows) for k, v in inputs.items()}
    return tuple(_take(v, rows) for v in inputs)


def batches_factory(batches: Callable[[], Any], source: str) -> InputFactory:
    """Real batches from a model file's ``batches()`` generator, one per step.

    A batch that is a tensor or a dict is the inputs; a tuple or list is ``(inputs..., targets)``
    (the DataLoader convention). Batches are remembered by the step's seed, so a step that is
    rerun (to count NaN/Inf exactly) sees the same batch.
    """
    try:
        iterator = iter(batches())
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise InputError(f"batches() in {source} {what_happened(exc)}") from exc
    seen: dict[int, Inputs] = {}

    def make(batch_size: int) -> Inputs:
        key = torch.initial_seed()  # the step's seed, set by the caller
        if key not in seen:
            try:
                batch = next(iterator)
            except StopIteration:
                raise InputError(
                    f"batches() in {source} ran out; yield at least --steps batches"
                ) from None
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise InputError(f"batches() in {source} {what_happened(exc)}") from exc
            if isinstance(batch, (tuple, list)) and len(batch) >= 2:
                rest = tuple(batch[:-1])
                seen[key] = Labeled(rest[0] if len(rest) == 1 else rest, batch[-1])
            else:
                seen[key] = batch
        return seen[key]

    make.description = f"batches() of {source}"  # type: ignore[attr-defined]
    return make
