"""Facts about the modules gradcheck measures, read before any step runs: which modules are
measured and in what role, their own parameters, weight norms (one transfer for all layers),
zero and near-zero initialisation, residual-scale shape, and the tensors of a module's output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gradcheck_cli.aggregate import NEAR_ZERO, LayerInfo
from gradcheck_cli.distributed import local_part, whole_norms
from gradcheck_cli.layers import (
    DEAD_TYPES,
    EMBEDDING_TYPES,
    NORM_TYPES,
    SOFTMAX_TYPES,
    fans,
    saturation_bounds,
)
from gradcheck_cli.stats import LayerKind


def own_named_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``module.named_parameters(recurse=False)``: the same pairs, read from the module's own
    table without the generator machinery behind that call (about 1.5 us each, and a diagnosis
    of a 100-layer model made 3,800 of them before its first step)."""
    seen: set[int] = set()
    found = []
    for name, p in module._parameters.items():
        if p is not None and id(p) not in seen:
            seen.add(id(p))
            found.append((name, p))
    return found


def own_parameters(module: nn.Module) -> list[nn.Parameter]:
    """``module.parameters(recurse=False)``, as :func:`own_named_parameters` reads them."""
    return [p for _, p in own_named_parameters(module)]


def _has_parameters(module: nn.Module) -> bool:
    return any(p is not None for p in module._parameters.values())


def layer_kind(module: nn.Module) -> LayerKind | None:
    """The role ``module`` is measured in, or None when it is not measured."""
    if isinstance(module, EMBEDDING_TYPES):
        return LayerKind.EMBEDDING
    if isinstance(module, NORM_TYPES) or type(module).__name__.endswith(("Norm", "LayerNorm")):
        # Hugging Face and others define their own LayerNorm/RMSNorm classes.
        return LayerKind.NORM if _has_parameters(module) else None
    if _has_parameters(module):
        return LayerKind.WEIGHT
    if isinstance(module, DEAD_TYPES + SOFTMAX_TYPES) or saturation_bounds(module) is not None:
        return LayerKind.ACTIVATION
    return None


def measured_modules(model: nn.Module) -> list[tuple[str, nn.Module, LayerKind]]:
    """The modules gradcheck reports on, in registration order, with their role."""
    found = []
    for name, module in model.named_modules():
        kind = layer_kind(module)
        if kind is not None:
            found.append((name, module, kind))
    return found


def first_tensor(output: Any) -> torch.Tensor | None:
    """The primary tensor of a module output: itself, or the first tensor in a tuple/list/dict."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    if isinstance(output, dict):
        for item in output.values():
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def all_tensors(output: Any) -> list[torch.Tensor]:
    """Every tensor of a module output: itself, or those in (nested) tuples, lists and dicts."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in all_tensors(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in all_tensors(item)]
    return []


def _zero_gain(module: nn.Module, norm: Callable[[nn.Parameter], float]) -> bool:
    """Whether a weight layer scales its weight by a per-output-channel gain that is all zero.

    timm's NF-ResNets and NFNets zero-initialise the gain of each residual branch's last
    ScaledStdConv2d (``zero_init_last``): its effective weight, gain x standardised weight,
    is zero, so it blocks its branch until the first update, as a zero-initialised layer does.
    """
    params = dict(own_named_parameters(module))
    if sum(1 for name in params if not name.endswith("bias")) < 2:
        return False  # a weight and a gain at least
    matrices = [p for p in params.values() if sum(1 for d in p.shape if d > 1) >= 2]
    if len(matrices) != 1:
        return False
    out = matrices[0].shape[0]
    return any(
        not name.endswith("bias")
        and p is not matrices[0]
        and p.numel() == out > 1
        and p.shape[0] == out
        and norm(p) == 0.0
        for name, p in params.items()
    )


def _scale_like(trainable: list[nn.Parameter], kind: LayerKind) -> bool:
    """Every trainable parameter (of a module's own) a scalar or a per-channel vector (at most
    one dimension longer than 1): no weight matrix; the only layers that can be residual scales
    (LayerScale, ReZero)."""
    return (
        kind is LayerKind.WEIGHT
        and bool(trainable)
        and all(sum(1 for d in p.shape if d > 1) <= 1 for p in trainable)
    )


def param_norms(
    targets: list[tuple[str, nn.Module, LayerKind]],
) -> tuple[list[list[tuple[str, nn.Parameter]]], list[nn.Parameter], list[int], list[float]]:
    """Each target's own parameters, them flattened, the target index of each, and each one's
    norm (one transfer for all)."""
    owned = [own_named_parameters(m) for _, m, _ in targets]
    params_flat = [p for named in owned for _, p in named]
    owner = [i for i, named in enumerate(owned) for _ in named]
    return owned, params_flat, owner, whole_norms(params_flat)


def static_infos(
    targets: list[tuple[str, nn.Module, LayerKind]],
) -> tuple[list[LayerInfo], dict[int, torch.Tensor]]:
    """Weight norms (one transfer for all layers), parameter counts and zero-init flags of
    each target; and each trainable embedding's squared row norms, by target index."""
    owned, params_flat, owner, host = param_norms(targets)
    norm_of = {id(p): v for p, v in zip(params_flat, host, strict=True)}
    sq = [0.0] * len(targets)
    # A module is zero-initialised when its weights (its parameters other than biases, or
    # all of them when it only has biases) are exactly zero.
    weight_sum = [0.0] * len(targets)
    other_sum = [0.0] * len(targets)
    has_weight = [False] * len(targets)
    is_weight = [not n.endswith("bias") for named in owned for n, _ in named]
    if params_flat:
        for value, i, weightlike in zip(host, owner, is_weight, strict=True):
            sq[i] += value * value
            if weightlike:
                weight_sum[i] += value
                has_weight[i] = True
            else:
                other_sum[i] += value
    nonzero = [w if has else o for w, o, has in zip(weight_sum, other_sum, has_weight, strict=True)]
    # Near zero: every weight matrix far below the scale any standard init gives it
    # (RMS about 1/sqrt(fan_in)), as a zero-initialised head is after its first updates;
    # for a normaliser, its scale far below 1.
    # Its gradient-to-weight ratio is then huge by construction, not a sign of explosion.
    near_zero = [True] * len(targets)
    scaled = [False] * len(targets)
    init_sq = [0.0] * len(targets)
    if params_flat:
        for norm_value, i, weightlike, p in zip(host, owner, is_weight, params_flat, strict=True):
            if not weightlike or p.numel() == 0:
                continue
            rms = norm_value / math.sqrt(p.numel())
            if p.dim() >= 2:
                scaled[i] = True
                fan_in, _ = fans(targets[i][1], p)
                init_sq[i] += p.numel() / fan_in
                if rms >= NEAR_ZERO * (1 / math.sqrt(fan_in)):
                    near_zero[i] = False
            elif targets[i][2] is LayerKind.NORM:
                # A normaliser's scale starts at 1; near zero, it is a zero-init residual
                # gamma (Goyal et al. 2017) that has taken a few updates.
                scaled[i] = True
                if rms >= NEAR_ZERO:
                    near_zero[i] = False
    infos = []
    embedding_rows: dict[int, torch.Tensor] = {}
    for i, (name, module, kind) in enumerate(targets):
        params = [p for _, p in owned[i]]
        trainable = sum(p.numel() for p in params if p.requires_grad)
        if kind is LayerKind.EMBEDDING and params and params[0].requires_grad:
            # Weights do not change during the diagnosis, so the per-row norms are
            # computed once; per step only the mask of rows that got gradient is new.
            # Under FSDP2 this rank's rows only: its gradient's rows are the same ones.
            w = params[0].detach()
            part, first = local_part(w)
            rows = torch.zeros(w.shape[0], dtype=torch.float64, device=part.device)
            rows[first : first + part.shape[0]] = torch.linalg.vector_norm(part, dim=-1)
            embedding_rows[i] = rows.square()
        infos.append(
            LayerInfo(
                name=name,
                type=type(module).__name__,
                kind=kind,
                params=sum(p.numel() for p in params),
                trainable=trainable,
                weight_norm=math.sqrt(sq[i]),
                zero_weights=bool(params)
                and (nonzero[i] == 0.0 or _zero_gain(module, lambda p: norm_of[id(p)])),
                near_zero_weights=scaled[i] and near_zero[i],
                init_norm=math.sqrt(init_sq[i]),
                scale_like=_scale_like([p for p in params if p.requires_grad], kind),
            )
        )
    return infos, embedding_rows
