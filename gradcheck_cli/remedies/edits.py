"""Declarative edits and the one executor that applies them.

Every remedy expresses its rewrite as a list of :class:`Edit` records; :func:`apply_edit` is the
only code that changes a model, and :func:`gradcheck_cli.remedies.plan.apply_plan` replays the
same records on a freshly built model. All replacements go through :func:`replace_submodule`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gradcheck_cli.errors import UsageError
from gradcheck_cli.layers import fans, is_hf_conv1d, out_width
from gradcheck_cli.remedies.modules import (
    GradClip,
    GumbelFloor,
    OutputScale,
    PreNorm,
    Residual,
)


class PlanError(UsageError):
    """A plan does not fit the model it is applied to."""


@dataclass(frozen=True)
class Edit:
    """One rewrite: ``op`` on module ``target`` (a dotted name; "" is the root) with ``args``."""

    op: str
    target: str
    args: Mapping[str, Any] = field(default_factory=dict)
    remedy: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for plan.yaml."""
        return {
            "op": self.op,
            "target": self.target,
            "args": dict(self.args),
            "remedy": self.remedy,
        }

    def overwrites(self) -> str:
        """What of the model's existing values this edit replaces, in words (the fix report's
        list): the values a user set are lost with them."""
        if self.op == "init":
            kept = self.args.get("keep_bias")
            return "weight redrawn" + ("; bias kept" if kept else "; bias zeroed (if any)")
        return _OVERWRITES.get(self.op, "nothing: adds to the model")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Edit:
        """Parse one plan entry and check its arguments; raises :class:`PlanError` when
        malformed, before any edit is applied."""
        if not isinstance(data, Mapping) or "op" not in data or "target" not in data:
            raise PlanError(f"plan entry {_short(data)} needs 'op' and 'target'")
        op, target, remedy = data["op"], data["target"], data.get("remedy", "")
        for key, text in (("op", op), ("target", target), ("remedy", remedy)):
            if not isinstance(text, str):
                raise PlanError(f"a plan entry's '{key}' must be a string, got {_short(text)}")
        if op not in _ARGS:
            raise PlanError(f"unknown edit op {_short(op)} in plan; known: {', '.join(_ARGS)}")
        args = data.get("args")
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise PlanError(f"the 'args' of plan edit '{op}' must be a table, got {_short(args)}")
        return cls(op, target, _checked_args(op, args), remedy)


_MAX_FEATURES = 2**24  # a normaliser wider than any layer gradcheck would insert one after
_MAX_STEPS = 10**9


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(op: str, key: str, value: Any, *, low: float, high: float, integer: bool) -> Any:
    kind = "a whole number" if integer else "a number"
    bounds = f"{int(low)} to {int(high)}" if integer else f"{low:g} to {high:g}"
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int if integer else (int, float))
        and low <= value <= high
        and math.isfinite(value)
    )
    if not ok:
        raise PlanError(
            f"plan edit '{op}': '{key}' must be {kind} from {bounds}, got {_short(value)}"
        )
    return value if integer else float(value)


def _choice(op: str, key: str, value: Any, choices: Any) -> str:
    if not isinstance(value, str) or value not in choices:
        raise PlanError(
            f"plan edit '{op}': '{key}' must be one of {', '.join(sorted(choices))}, got "
            f"{_short(value)}"
        )
    return value


def _groups(op: str, value: Any) -> list[list[int]]:
    if not isinstance(value, list) or not all(
        isinstance(g, list)
        and len(g) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 10**6 for i in g)
        for g in value
    ):
        raise PlanError(f"plan edit '{op}': 'groups' must be a list of [start, end] index pairs")
    return [list(g) for g in value]


def _checked_args(op: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of edit ``op``, each checked for type and range (what :func:`apply_edit`
    reads; anything else is refused, so a typo is never silently ignored)."""
    allowed, required = _ARGS[op]
    unknown = [str(k) for k in args if k not in allowed]
    if unknown:
        raise PlanError(
            f"plan edit '{op}' has no argument {_short(unknown[0])}; its arguments: "
            + (", ".join(allowed) or "none")
        )
    missing = [k for k in required if k not in args]
    if missing:
        raise PlanError(f"plan edit '{op}' needs the argument '{missing[0]}'")
    checked: dict[str, Any] = {}
    for key, value in args.items():
        if key == "module":
            checked[key] = _choice(op, key, value, _ACTIVATIONS)
        elif key == "norm":
            checked[key] = _choice(op, key, value, _NORMS)
        elif key == "scheme":
            checked[key] = _choice(op, key, value, _SCHEMES)
        elif key == "nonlinearity":
            checked[key] = _choice(op, key, value, _GAINS)
        elif key == "negative_slope":
            checked[key] = _number(op, key, value, low=-1e6, high=1e6, integer=False)
        elif key == "features":
            checked[key] = _number(op, key, value, low=1, high=_MAX_FEATURES, integer=True)
        elif key == "steps":
            checked[key] = _number(op, key, value, low=1, high=_MAX_STEPS, integer=True)
        elif key == "factor":
            checked[key] = _number(op, key, value, low=0.0, high=1e6, integer=False)
        elif key == "floor":
            checked[key] = _number(op, key, value, low=1e-6, high=1e6, integer=False)
        elif key == "max_norm":
            checked[key] = _number(op, key, value, low=1e-30, high=1e30, integer=False)
        elif key == "groups":
            checked[key] = _groups(op, value)
    return checked


def get_submodule(model: nn.Module, target: str) -> nn.Module:
    """``model.get_submodule`` with a :class:`PlanError` that names the missing module."""
    try:
        return model.get_submodule(target)
    except AttributeError:
        raise PlanError(f"the model has no submodule '{target}'") from None


def replace_submodule(model: nn.Module, target: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where ``target`` is (in a Sequential, ModuleList or as an attribute).

    Returns the replaced module. The root ("") cannot be replaced in place.
    """
    if not target:
        raise PlanError("the root module cannot be replaced in place")
    parent_name, _, child = target.rpartition(".")
    parent = get_submodule(model, parent_name)
    old = get_submodule(model, target)
    if isinstance(parent, (nn.Sequential, nn.ModuleList)) and child.isdigit():
        parent[int(child)] = new
    else:
        setattr(parent, child, new)
    return old


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "GELU": nn.GELU,
    "SiLU": nn.SiLU,
}
_GAINS = {"relu", "leaky_relu", "tanh", "sigmoid", "linear", "selu"}
_NORMS: dict[str, type[nn.Module]] = {
    "BatchNorm1d": nn.BatchNorm1d,
    "BatchNorm2d": nn.BatchNorm2d,
    "BatchNorm3d": nn.BatchNorm3d,
    "LayerNorm": nn.LayerNorm,
}
# What each op replaces of the values the model had (see Edit.overwrites).
_OVERWRITES = {
    "norm-first": "nothing: its LayerNorms moved to the branch inputs (norm_first=True)",
    "final-norm": "nothing: a LayerNorm added after its last layer",
    "temperature-floor": "nothing: F.gumbel_softmax temperatures raised in forward by a hook",
    "replace-activation": "the activation module replaced",
    "scale": "weight and bias multiplied",
    "gate-bias": "every bias of the recurrent module (gate biases chrono-initialised, others 0)",
    "gated-cell": "the recurrent module replaced by a fresh GRU (its weights lost)",
    "insert-norm": "nothing: a normalisation layer inserted after it",
    "scale-output": "nothing: its output multiplied by a forward hook",
    "pre-norm": "nothing: a LayerNorm inserted before it",
    "residual": "nothing: wrapped in a residual connection",
    "residual-group": "nothing: wrapped in residual connections",
    "wrap-grad-clip": "nothing: the model wrapped to clip its gradients",
}
_SCHEMES = (
    "kaiming_normal",
    "xavier_uniform",
    "orthogonal",
    "unit_normal",
    "sine_first",
    "sine_hidden",
)
# PyTorch's transformer layers, whose LayerNorms sit after each residual sum (Post-LN) unless
# norm_first: the flag moves them to the branch inputs (Pre-LN) with the same parameters.
POST_LN_TYPES = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
# SIREN's first-layer frequency (Sitzmann et al. 2020, section 3.2): sin(30 W x) with W drawn
# from U(+-1/fan_in) spans several periods over inputs in [-1, 1].
SIREN_W0 = 30.0
# Each op's arguments: (allowed, required).
_ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "replace-activation": (("module",), ("module",)),
    "init": (("scheme", "nonlinearity", "negative_slope", "keep_bias", "factor"), ("scheme",)),
    "insert-norm": (("norm", "features"), ("norm", "features")),
    "scale": (("factor",), ("factor",)),
    "scale-output": (("factor",), ("factor",)),
    "pre-norm": (("features",), ("features",)),
    "norm-first": ((), ()),
    "final-norm": (("features",), ("features",)),
    "temperature-floor": (("floor",), ("floor",)),
    "residual-group": (("groups",), ("groups",)),
    "residual": ((), ()),
    "gate-bias": (("steps",), ("steps",)),
    "gated-cell": (("steps",), ("steps",)),
    "wrap-grad-clip": (("max_norm",), ("max_norm",)),
}


def apply_edit(model: nn.Module, edit: Edit, generator: torch.Generator | None = None) -> nn.Module:
    """Apply one edit; returns the model (a new root only for ``wrap-grad-clip``)."""
    args = edit.args
    if edit.op == "replace-activation":
        kind = _ACTIVATIONS.get(str(args.get("module")))
        if kind is None:
            raise PlanError(f"unknown activation {args.get('module')!r} in plan")
        old = get_submodule(model, edit.target)
        if any(True for _ in old.parameters()) or isinstance(old, nn.Identity):
            # An activation has no weights; a layer that does would be dropped, silently.
            raise PlanError(
                f"plan edit 'replace-activation': '{edit.target}' is a {type(old).__name__}, not "
                "an activation; name the activation module that follows it"
            )
        replace_submodule(model, edit.target, kind())
        return model
    if edit.op == "init":
        _init(get_submodule(model, edit.target), args, generator)
        return model
    if edit.op == "scale":
        _scale(get_submodule(model, edit.target), float(args["factor"]))
        return model
    if edit.op == "scale-output":
        get_submodule(model, edit.target).register_forward_hook(OutputScale(float(args["factor"])))
        return model
    if edit.op == "pre-norm":
        _pre_norm(get_submodule(model, edit.target), int(args["features"]))
        return model
    if edit.op == "norm-first":
        layer = get_submodule(model, edit.target)
        if not isinstance(layer, POST_LN_TYPES):
            raise PlanError(
                f"plan edit 'norm-first': '{edit.target}' is a {type(layer).__name__}, not an "
                "nn.TransformerEncoderLayer or nn.TransformerDecoderLayer"
            )
        layer.norm_first = True
        return model
    if edit.op == "temperature-floor":
        root = get_submodule(model, edit.target)
        hooks = root._forward_pre_hooks.values()
        if any(isinstance(getattr(h, "__self__", None), GumbelFloor) for h in hooks):
            raise PlanError(f"plan edit 'temperature-floor': '{edit.target}' has a floor already")
        floor = GumbelFloor(float(args["floor"]))
        root.register_forward_pre_hook(floor.enter)
        root.register_forward_hook(floor.exit, always_call=True)
        return model
    if edit.op == "final-norm":
        stack = get_submodule(model, edit.target)
        if not isinstance(stack, (nn.TransformerEncoder, nn.TransformerDecoder)):
            raise PlanError(
                f"plan edit 'final-norm': '{edit.target}' is a {type(stack).__name__}, not an "
                "nn.TransformerEncoder or nn.TransformerDecoder"
            )
        if stack.norm is not None:
            raise PlanError(f"plan edit 'final-norm': '{edit.target}' has a final norm already")
        device = next((p.device for p in stack.parameters()), None)
        stack.norm = nn.LayerNorm(int(args["features"]), device=device)
        return model
    if edit.op == "insert-norm":
        norm_kind = _NORMS.get(str(args.get("norm")))
        if norm_kind is None:
            raise PlanError(f"unknown normalisation {args.get('norm')!r} in plan")
        layer = get_submodule(model, edit.target)
        width = out_width(layer)
        if width is None:
            raise PlanError(
                f"plan edit 'insert-norm': '{edit.target}' is a {type(layer).__name__}, not a "
                "Linear or Conv layer with a known number of outputs"
            )
        conv_dims = next(
            (
                d
                for d, c in ((1, nn.Conv1d), (2, nn.Conv2d), (3, nn.Conv3d))
                if isinstance(layer, c)
            ),
            0,
        )
        wanted = {"BatchNorm1d": (0, 1), "BatchNorm2d": (2,), "BatchNorm3d": (3,)}.get(
            str(args.get("norm"))
        )
        if wanted is not None and conv_dims not in wanted:
            raise PlanError(
                f"plan edit 'insert-norm': a {args.get('norm')} does not fit the output of "
                f"'{edit.target}', a {type(layer).__name__}"
            )
        if width != int(args["features"]):
            raise PlanError(
                f"plan edit 'insert-norm' on '{edit.target}': features {args['features']} does "
                f"not match the layer's {width} outputs"
            )
        norm = norm_kind(int(args["features"]))
        device = next((p.device for p in layer.parameters()), None)
        if device is not None:
            norm = norm.to(device)
        replace_submodule(model, edit.target, nn.Sequential(layer, norm))
        return model
    if edit.op == "residual-group":
        container = get_submodule(model, edit.target)
        if not isinstance(container, nn.Sequential):
            raise PlanError(f"'{edit.target}' is not an nn.Sequential; cannot group it")
        groups = [tuple(int(i) for i in g) for g in args["groups"]]
        children = list(container)
        grouped: dict[int, nn.Module] = {}
        covered: set[int] = set()
        for start, end in groups:
            if not 0 <= start < end <= len(children):
                raise PlanError(f"group {start}-{end} is out of range for '{edit.target}'")
            body = children[start] if end - start == 1 else nn.Sequential(*children[start:end])
            grouped[start] = Residual(body)
            covered.update(range(start, end))
        rebuilt = [
            grouped[i] if i in grouped else c
            for i, c in enumerate(children)
            if i in grouped or i not in covered
        ]
        new = nn.Sequential(*rebuilt)
        if edit.target:
            replace_submodule(model, edit.target, new)
            return model
        return new
    if edit.op == "residual":
        replace_submodule(model, edit.target, Residual(get_submodule(model, edit.target)))
        return model
    if edit.op == "gate-bias":
        module = get_submodule(model, edit.target)
        if not isinstance(module, (nn.LSTM, nn.GRU)):
            raise PlanError(f"'{edit.target}' is not an nn.LSTM or nn.GRU")
        chrono_init(module, int(args["steps"]), generator)
        return model
    if edit.op == "gated-cell":
        old = get_submodule(model, edit.target)
        if type(old) is not nn.RNN:
            raise PlanError(f"'{edit.target}' is not an nn.RNN")
        gru = nn.GRU(
            old.input_size,
            old.hidden_size,
            num_layers=old.num_layers,
            bias=old.bias,
            batch_first=old.batch_first,
            dropout=old.dropout,
            bidirectional=old.bidirectional,
        )
        _fresh_uniform(gru, generator)
        chrono_init(gru, int(args["steps"]), generator)
        like = next(old.parameters(), None)  # the new cell lives where the old one did
        if like is not None:
            gru = gru.to(device=like.device, dtype=like.dtype)
        replace_submodule(model, edit.target, gru)
        return model
    if edit.op == "wrap-grad-clip":
        if edit.target:
            raise PlanError("wrap-grad-clip applies to the root module only")
        return GradClip(model, float(args["max_norm"]))
    raise PlanError(f"unknown edit op '{edit.op}' in plan")


def chrono_init(module: nn.LSTM | nn.GRU, steps: int, generator: torch.Generator | None) -> None:
    """Chrono init (Tallec & Ollivier 2018): gate biases for memories of up to ``steps`` steps.

    LSTM (gates input, forget, cell, output): forget bias ``log(U(1, steps - 1))``, input bias
    its negative. GRU (gates reset, update, new): the update-gate bias gets the same draw, so the
    old state is kept. All other biases are zero. Draws on the CPU from ``generator``.
    """
    if not module.bias:
        raise PlanError("chrono init needs a recurrent module with biases")
    hidden = module.hidden_size
    high = max(2.0, float(steps - 1))
    with torch.no_grad():
        for name, bias in module.named_parameters():
            if not name.startswith("bias"):
                continue
            fresh = torch.zeros(bias.shape, dtype=torch.float32)
            if name.startswith("bias_ih"):
                draw = torch.empty(hidden).uniform_(1.0, high, generator=generator).log()
                fresh[hidden : 2 * hidden] = draw  # LSTM forget gate; GRU update gate
                if isinstance(module, nn.LSTM):
                    fresh[:hidden] = -draw
            bias.copy_(fresh)


def _fresh_uniform(module: nn.RNNBase, generator: torch.Generator | None) -> None:
    """PyTorch's default recurrent init, U(-1/sqrt(hidden), 1/sqrt(hidden)), from ``generator``."""
    bound = 1.0 / math.sqrt(module.hidden_size)
    with torch.no_grad():
        for weight in module.parameters():
            weight.copy_(torch.empty(weight.shape).uniform_(-bound, bound, generator=generator))


def _init(module: nn.Module, args: Mapping[str, Any], generator: torch.Generator | None) -> None:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise PlanError(f"{type(module).__name__} has no weight to initialise")
    scheme = args.get("scheme")
    with torch.no_grad():
        fan_in, fan_out = fans(module, weight)
        # Drawn on the CPU from the plan's generator, then copied: the same plan gives the same
        # weights on any device.
        fresh = torch.empty(weight.shape, dtype=torch.float32)
        nonlinearity = str(args.get("nonlinearity", "relu"))
        if nonlinearity not in _GAINS:
            raise PlanError(f"unknown nonlinearity {nonlinearity!r} in plan")
        if scheme == "kaiming_normal":
            slope = float(args.get("negative_slope", 0.0))
            gain = nn.init.calculate_gain(nonlinearity, slope)  # type: ignore[arg-type]
            fresh.normal_(0.0, gain / math.sqrt(fan_in), generator=generator)
        elif scheme == "xavier_uniform":
            gain = nn.init.calculate_gain(nonlinearity)  # type: ignore[arg-type]
            bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
            fresh.uniform_(-bound, bound, generator=generator)
        elif scheme == "orthogonal":
            slope = float(args.get("negative_slope", 0.0))
            gain = nn.init.calculate_gain(nonlinearity, slope)  # type: ignore[arg-type]
            if is_hf_conv1d(type(module)):  # stored as (in, out): drawn as (out, in)
                fresh = orthogonal(weight.shape[::-1], gain, generator).T.contiguous()
            else:
                fresh = orthogonal(weight.shape, gain, generator)
        elif scheme in ("sine_first", "sine_hidden"):
            # SIREN (Sitzmann et al. 2020): the pre-activation W x, times the factor forward
            # applies (w0), is U(+-w0 / fan_in) in the first layer and U(+-sqrt(6 / fan_in))
            # after it, so every sine sees arcsine-distributed inputs of the same spread.
            factor = abs(float(args.get("factor", 1.0)))
            if factor == 0:
                raise PlanError("a sine init's factor (the w0 forward applies) must not be 0")
            bound = SIREN_W0 / fan_in if scheme == "sine_first" else math.sqrt(6.0 / fan_in)
            fresh.uniform_(-bound / factor, bound / factor, generator=generator)
        elif scheme == "unit_normal":
            fresh.normal_(0.0, 1.0, generator=generator)
            padding = getattr(module, "padding_idx", None)
            if isinstance(padding, int):
                fresh[padding].zero_()
        else:
            raise PlanError(f"unknown init scheme {scheme!r} in plan")
        weight.copy_(fresh)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor) and not args.get("keep_bias"):
            bias.zero_()


def orthogonal(
    shape: torch.Size | tuple[int, ...], gain: float, generator: torch.Generator | None
) -> torch.Tensor:
    """A (flattened) orthogonal matrix times ``gain`` (Saxe et al. 2014), times
    ``sqrt(rows / columns)`` when it has more rows than columns.

    Orthonormal columns keep the norm of the input, which spreads it over more outputs: the
    correction keeps each output's variance that of an input, as ``N(0, gain^2 / fan_in)`` does,
    so a widening first layer does not shrink the signal.
    """
    fresh = torch.empty(shape, dtype=torch.float32)
    nn.init.orthogonal_(fresh, gain, generator=generator)
    rows, columns = shape[0], fresh[0].numel()
    if rows > columns:
        fresh.mul_(math.sqrt(rows / columns))
    return fresh


def _scale(module: nn.Module, factor: float) -> None:
    """Multiply a layer's weight and bias by ``factor`` (0 zero-initialises it)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise PlanError(f"{type(module).__name__} has no weight to scale")
    with torch.no_grad():
        for name in ("weight", "bias"):
            tensor = getattr(module, name, None)
            if isinstance(tensor, torch.Tensor):
                tensor.mul_(factor)


def _pre_norm(module: nn.Module, features: int) -> None:
    if any(isinstance(h, PreNorm) for h in module._forward_pre_hooks.values()):
        raise PlanError(f"plan edit 'pre-norm': {type(module).__name__} is normalised already")
    module.register_forward_pre_hook(PreNorm(features), with_kwargs=True)


def renamed(name: str, edit: Edit) -> str:
    """Where the module called ``name`` lives after ``edit`` (for before/after comparisons)."""
    target = edit.target
    if edit.op == "wrap-grad-clip":
        return f"module.{name}" if name else "module"
    if edit.op in ("insert-norm", "residual"):
        inner = "0" if edit.op == "insert-norm" else "body"
        if name == target or name.startswith(f"{target}."):
            return f"{target}.{inner}{name[len(target) :]}"
        return name
    if edit.op == "residual-group":
        prefix = f"{target}." if target else ""
        if not name.startswith(prefix) or name == target:
            return name
        head, _, rest = name[len(prefix) :].partition(".")
        if not head.isdigit():
            return name
        index = int(head)
        groups = [(int(a), int(b)) for a, b in edit.args["groups"]]
        position = 0
        for i in range(index + 1):
            group = next(((a, b) for a, b in groups if a <= i < b), None)
            if i == index:
                if group is None:
                    new = str(position)
                elif group[1] - group[0] == 1:
                    new = f"{position}.body"
                else:
                    new = f"{position}.body.{i - group[0]}"
                return prefix + new + (f".{rest}" if rest else "")
            if group is None or i == group[1] - 1:
                position += 1
    return name
