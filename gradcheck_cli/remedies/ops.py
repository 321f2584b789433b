"""The edit ops: one registered function per op, with the arguments it takes and what of the
model's values it overwrites. :func:`parse_edit` checks a plan entry against them before anything
is applied; :func:`apply_edit` is the only code that changes a model.

A new op is one function here under ``@edit_op(...)`` (and, when it moves modules, a
``renamed`` rule for before/after comparisons).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradcheck_cli.layers import fans, is_hf_conv1d, out_width
from gradcheck_cli.remedies.edits import (
    POST_LN_TYPES,
    SIREN_W0,
    Edit,
    PlanError,
    chrono_init,
    get_submodule,
    orthogonal,
    replace_submodule,
)
from gradcheck_cli.remedies.modules import (
    GradClip,
    GumbelFloor,
    OutputScale,
    PreNorm,
    Residual,
)

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
_SCHEMES = (
    "kaiming_normal",
    "xavier_uniform",
    "orthogonal",
    "unit_normal",
    "sine_first",
    "sine_hidden",
)


@dataclass(frozen=True)
class EditOp:
    """One op: its arguments (allowed, required), what it overwrites, how it is applied, and where
    it moves the modules it wraps (None: nowhere)."""

    name: str
    allowed: tuple[str, ...]
    required: tuple[str, ...]
    overwrites: str
    apply: Callable[[nn.Module, Edit, torch.Generator | None], nn.Module]
    rename: Callable[[str, Edit], str] | None = None


OPS: dict[str, EditOp] = {}

_Apply = Callable[[nn.Module, Edit, torch.Generator | None], nn.Module]


def edit_op(
    name: str,
    *,
    args: tuple[str, ...] = (),
    required: tuple[str, ...] | None = None,
    overwrites: str = "nothing: adds to the model",
    rename: Callable[[str, Edit], str] | None = None,
) -> Callable[[_Apply], _Apply]:
    """Register the decorated function as op ``name`` (every argument required unless
    ``required`` names fewer)."""

    def register(apply: _Apply) -> _Apply:
        OPS[name] = EditOp(
            name, args, args if required is None else required, overwrites, apply, rename
        )
        return apply

    return register


def parse_edit(data: Mapping[str, Any]) -> Edit:
    """Parse one plan entry and check its arguments; raises :class:`PlanError` when malformed,
    before any edit is applied."""
    if not isinstance(data, Mapping) or "op" not in data or "target" not in data:
        raise PlanError(f"plan entry {_short(data)} needs 'op' and 'target'")
    op, target, remedy = data["op"], data["target"], data.get("remedy", "")
    for key, text in (("op", op), ("target", target), ("remedy", remedy)):
        if not isinstance(text, str):
            raise PlanError(f"a plan entry's '{key}' must be a string, got {_short(text)}")
    if op not in OPS:
        raise PlanError(f"unknown edit op {_short(op)} in plan; known: {', '.join(OPS)}")
    args = data.get("args")
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise PlanError(f"the 'args' of plan edit '{op}' must be a table, got {_short(args)}")
    return Edit(op, target, _checked_args(op, args), remedy)


def overwrites(edit: Edit) -> str:
    """What of the model's existing values ``edit`` replaces, in words (the fix report's list):
    the values a user set are lost with them."""
    if edit.op == "init":
        kept = edit.args.get("keep_bias")
        return "weight redrawn" + ("; bias kept" if kept else "; bias zeroed (if any)")
    return OPS[edit.op].overwrites if edit.op in OPS else "nothing: adds to the model"


def apply_edit(model: nn.Module, edit: Edit, generator: torch.Generator | None = None) -> nn.Module:
    """Apply one edit; returns the model (a new root only for ``wrap-grad-clip``)."""
    op = OPS.get(edit.op)
    if op is None:
        raise PlanError(f"unknown edit op '{edit.op}' in plan")
    return op.apply(model, edit, generator)


def renamed(name: str, edit: Edit) -> str:
    """Where the module called ``name`` lives after ``edit`` (for before/after comparisons)."""
    op = OPS.get(edit.op)
    return op.rename(name, edit) if op is not None and op.rename is not None else name


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
    allowed, required = OPS[op].allowed, OPS[op].required
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


# --- the ops -------------------------------------------------------------------------------------


@edit_op("replace-activation", args=("module",), overwrites="the activation module replaced")
def _replace_activation(
    model: nn.Module, edit: Edit, generator: torch.Generator | None
) -> nn.Module:
    kind = _ACTIVATIONS.get(str(edit.args.get("module")))
    if kind is None:
        raise PlanError(f"unknown activation {edit.args.get('module')!r} in plan")
    old = get_submodule(model, edit.target)
    if any(True for _ in old.parameters()) or isinstance(old, nn.Identity):
        # An activation has no weights; a layer that does would be dropped, silently.
        raise PlanError(
            f"plan edit 'replace-activation': '{edit.target}' is a {type(old).__name__}, not "
            "an activation; name the activation module that follows it"
        )
    replace_submodule(model, edit.target, kind())
    return model


@edit_op(
    "init",
    args=("scheme", "nonlinearity", "negative_slope", "keep_bias", "factor"),
    required=("scheme",),
    overwrites="weight redrawn",
)
def _init_op(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    _init(get_submodule(model, edit.target), edit.args, generator)
    return model


@edit_op("scale", args=("factor",), overwrites="weight and bias multiplied")
def _scale_op(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    _scale(get_submodule(model, edit.target), float(edit.args["factor"]))
    return model


@edit_op(
    "scale-output", args=("factor",), overwrites="nothing: its output multiplied by a forward hook"
)
def _scale_output(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    get_submodule(model, edit.target).register_forward_hook(OutputScale(float(edit.args["factor"])))
    return model


@edit_op("pre-norm", args=("features",), overwrites="nothing: a LayerNorm inserted before it")
def _pre_norm_op(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    module = get_submodule(model, edit.target)
    if any(isinstance(h, PreNorm) for h in module._forward_pre_hooks.values()):
        raise PlanError(f"plan edit 'pre-norm': {type(module).__name__} is normalised already")
    module.register_forward_pre_hook(PreNorm(int(edit.args["features"])), with_kwargs=True)
    return model


@edit_op(
    "norm-first",
    overwrites="nothing: its LayerNorms moved to the branch inputs (norm_first=True)",
)
def _norm_first(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    layer = get_submodule(model, edit.target)
    if not isinstance(layer, POST_LN_TYPES):
        raise PlanError(
            f"plan edit 'norm-first': '{edit.target}' is a {type(layer).__name__}, not an "
            "nn.TransformerEncoderLayer or nn.TransformerDecoderLayer"
        )
    layer.norm_first = True
    return model


@edit_op(
    "temperature-floor",
    args=("floor",),
    overwrites="nothing: F.gumbel_softmax temperatures raised in forward by a hook",
)
def _temperature_floor(
    model: nn.Module, edit: Edit, generator: torch.Generator | None
) -> nn.Module:
    root = get_submodule(model, edit.target)
    hooks = root._forward_pre_hooks.values()
    if any(isinstance(getattr(h, "__self__", None), GumbelFloor) for h in hooks):
        raise PlanError(f"plan edit 'temperature-floor': '{edit.target}' has a floor already")
    floor = GumbelFloor(float(edit.args["floor"]))
    root.register_forward_pre_hook(floor.enter)
    root.register_forward_hook(floor.exit, always_call=True)
    return model


@edit_op(
    "final-norm", args=("features",), overwrites="nothing: a LayerNorm added after its last layer"
)
def _final_norm(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    stack = get_submodule(model, edit.target)
    if not isinstance(stack, (nn.TransformerEncoder, nn.TransformerDecoder)):
        raise PlanError(
            f"plan edit 'final-norm': '{edit.target}' is a {type(stack).__name__}, not an "
            "nn.TransformerEncoder or nn.TransformerDecoder"
        )
    if stack.norm is not None:
        raise PlanError(f"plan edit 'final-norm': '{edit.target}' has a final norm already")
    device = next((p.device for p in stack.parameters()), None)
    stack.norm = nn.LayerNorm(int(edit.args["features"]), device=device)
    return model


def _inside(inner: str) -> Callable[[str, Edit], str]:
    """The rename of an op that wraps its target: the target's modules move under ``inner``."""

    def rename(name: str, edit: Edit) -> str:
        target = edit.target
        if name == target or name.startswith(f"{target}."):
            return f"{target}.{inner}{name[len(target) :]}"
        return name

    return rename


@edit_op(
    "insert-norm",
    args=("norm", "features"),
    overwrites="nothing: a normalisation layer inserted after it",
    rename=_inside("0"),
)
def _insert_norm(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    args = edit.args
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
        (d for d, c in ((1, nn.Conv1d), (2, nn.Conv2d), (3, nn.Conv3d)) if isinstance(layer, c)),
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


def _grouped_name(name: str, edit: Edit) -> str:
    """Where a child of a Sequential regrouped by ``residual-group`` lives afterwards."""
    target = edit.target
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


@edit_op(
    "residual-group",
    args=("groups",),
    overwrites="nothing: wrapped in residual connections",
    rename=_grouped_name,
)
def _residual_group(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    container = get_submodule(model, edit.target)
    if not isinstance(container, nn.Sequential):
        raise PlanError(f"'{edit.target}' is not an nn.Sequential; cannot group it")
    groups = [tuple(int(i) for i in g) for g in edit.args["groups"]]
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


@edit_op("residual", overwrites="nothing: wrapped in a residual connection", rename=_inside("body"))
def _residual(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    replace_submodule(model, edit.target, Residual(get_submodule(model, edit.target)))
    return model


@edit_op(
    "gate-bias",
    args=("steps",),
    overwrites="every bias of the recurrent module (gate biases chrono-initialised, others 0)",
)
def _gate_bias(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    module = get_submodule(model, edit.target)
    if not isinstance(module, (nn.LSTM, nn.GRU)):
        raise PlanError(f"'{edit.target}' is not an nn.LSTM or nn.GRU")
    chrono_init(module, int(edit.args["steps"]), generator)
    return model


@edit_op(
    "gated-cell",
    args=("steps",),
    overwrites="the recurrent module replaced by a fresh GRU (its weights lost)",
)
def _gated_cell(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
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
    chrono_init(gru, int(edit.args["steps"]), generator)
    like = next(old.parameters(), None)  # the new cell lives where the old one did
    if like is not None:
        gru = gru.to(device=like.device, dtype=like.dtype)
    replace_submodule(model, edit.target, gru)
    return model


@edit_op(
    "wrap-grad-clip",
    args=("max_norm",),
    overwrites="nothing: the model wrapped to clip its gradients",
    rename=lambda name, edit: f"module.{name}" if name else "module",
)
def _wrap_grad_clip(model: nn.Module, edit: Edit, generator: torch.Generator | None) -> nn.Module:
    if edit.target:
        raise PlanError("wrap-grad-clip applies to the root module only")
    return GradClip(model, float(edit.args["max_norm"]))


# --- what the ops share ----------------------------------------------------------------------------


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
