"""How much memory a model needs and how much this machine has, known before it is built.

A model is counted on the ``meta`` device first (``with torch.device("meta"): build()``): its
parameters get shapes and dtypes but no storage, so a 6.7-billion-parameter configuration is
counted in a moment on any machine. A model whose weights and gradients would not fit in the
memory that is free is refused with its size, what is free and what to do, instead of failing
in the allocator ("DefaultCPUAllocator: can't allocate memory") or being killed by the kernel.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gradcheck_cli.errors import ModelLoadError

WHAT_TO_DO = (
    "diagnose a smaller configuration of the model (fewer layers, a smaller hidden size; for "
    "hf: a config file, hf:CLASS:config.json) or run on a machine with more memory"
)


def model_bytes(module: nn.Module) -> tuple[int, int]:
    """The number of parameters and the bytes of parameters and buffers of ``module``."""
    params = list(module.parameters())
    size = sum(t.numel() * t.element_size() for t in (*params, *module.buffers()))
    return sum(p.numel() for p in params), size


def count_on_meta(build: Callable[[], nn.Module]) -> tuple[int, int] | None:
    """:func:`model_bytes` of what ``build()`` returns, built on the meta device (no memory is
    allocated and no weights are initialised); None when it cannot be built there."""
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = build()
    except Exception:  # code that needs real tensors (loads a file, reads values)
        return None
    if not isinstance(module, nn.Module):
        return None
    return model_bytes(module)


def free_bytes() -> int | None:
    """Memory this process can still allocate: the least of what the kernel reports available,
    what the cgroup's limit leaves, and what ``ulimit -v`` leaves; None when none is known."""
    found = [n for n in (_available(), _cgroup_left(), _address_space_left()) if n is not None]
    return min(found) if found else None


def check_fits(what: str, counted: tuple[int, int] | None) -> None:
    """Refuse a model whose weights and gradients (twice its size: a diagnosis needs both)
    do not fit in the free memory."""
    if counted is None:
        return
    free = free_bytes()
    params, size = counted
    if free is not None and 2 * size > free:
        raise ModelLoadError(too_big(what, params, size, free))


def too_big(what: str, params: int, size: int, free: int | None) -> str:
    """The one-line refusal: size, free memory, what to do."""
    left = f"{gib(free)} is free here" if free is not None else "that is more than is free"
    return (
        f"{what} has {params:,} parameters: {gib(size)} of weights and {gib(2 * size)} with "
        f"their gradients, but {left}; {WHAT_TO_DO}"
    )


def gib(size: int) -> str:
    """``27.0 GiB``."""
    return f"{size / 2**30:.1f} GiB"


def built_on_meta(model: nn.Module) -> bool:
    """Whether ``model`` was built on the meta device: shapes, no data (every tensor of it)."""
    tensors = [*model.parameters(), *model.buffers()]
    return bool(tensors) and all(t.is_meta for t in tensors)


# What builds a module's own tensors again after ``to_empty``: torch's layers name it
# ``reset_parameters`` (``nn.MultiheadAttention`` ``_reset_parameters``; a BatchNorm's also
# resets its running statistics).
RESETS = ("reset_parameters", "_reset_parameters")


def meta_blockers(model: nn.Module) -> list[str]:
    """The modules of a meta-built ``model`` whose own parameters or buffers nothing can
    initialise after ``to_empty`` (no ``reset_parameters()``): built on meta, they would be
    left as uninitialised memory. Empty when the model can be materialised shard by shard."""
    blocked = []
    for name, module in model.named_modules():
        own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        if own and not any(callable(getattr(module, r, None)) for r in RESETS):
            blocked.append(f"{name or 'the model'} ({type(module).__name__})")
    return blocked


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA out of memory, or the CPU allocator's)."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_left() -> int | None:
    """What the memory limit of this process's cgroup (v2, else v1) leaves."""
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            cap = Path(limit).read_text(encoding="ascii").strip()
            used = int(Path(usage).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        if cap.isdigit() and int(cap) < 2**60:  # "max", or v1's huge "unlimited"
            return max(0, int(cap) - used)
    return None


def _address_space_left() -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) leaves of this process's address space."""
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        return None
    return None
