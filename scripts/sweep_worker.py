"""One model of the zoo sweep, in its own process: build it, diagnose it, build its twins.

    python scripts/sweep_worker.py --serve      # jobs as JSON lines on stdin
    python scripts/sweep_worker.py JOB.json     # one job

Run by ``scripts/sweep.py``, which enforces the time limits: a job names its result file, which
this process rewrites (atomically) after every stage, so a stage that runs out of time loses only itself. A stage is
``plan`` (count the parameters on the meta device; shrink a model over the budget), ``main``
(the diagnosis of the model as built) and, for a model that comes out healthy, one stage per
pathological twin: ``sigmoid`` (every activation module replaced by ``nn.Sigmoid``),
``small-init`` (every weight of two or more dimensions multiplied by 0.01) and ``no-norm``
(every normalisation layer replaced by an identity).

Nothing is downloaded: Hugging Face models are built from their config with the hub offline,
torchvision with ``weights=None`` and ``weights_backbone=None``, timm with
``pretrained=False``; the download functions of ``torch.hub`` are replaced by ones that raise.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from gradcheck_cli.errors import first_line  # noqa: E402
from gradcheck_cli.remedies.edits import replace_submodule  # noqa: E402

torch.set_num_threads(1)

TWINS = ("sigmoid", "small-init", "no-norm")
TEXT_LENGTH = 32  # tokens per sequence for Hugging Face text models
IMAGE_SIZE = 224  # torchvision segmentation and detection inputs

# --- shrinking a model over the parameter budget ------------------------------------------------

DEPTH_KEYS = (
    "num_hidden_layers",
    "num_layers",
    "n_layer",
    "n_layers",
    "encoder_layers",
    "decoder_layers",
    "num_encoder_layers",
    "num_decoder_layers",
    "depths",
    "depth",
)
WIDTH_KEYS = ("hidden_size", "d_model", "n_embd", "n_embed", "dim", "embed_dim", "emb_dim")
FFN_KEYS = (
    "intermediate_size",
    "ffn_dim",
    "d_ff",
    "n_inner",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "ffn_hidden_size",
    "expert_intermediate_size",
)
HEAD_KEYS = (
    "num_attention_heads",
    "n_head",
    "n_heads",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "num_heads",
)
KV_KEYS = ("num_key_value_heads", "n_kv_heads", "num_kv_heads", "multi_query_group_num")
EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
TOPK_KEYS = ("num_experts_per_tok", "moe_topk", "num_experts_per_token", "moe_k")
# Grouped routing (DeepSeek V3, AX-K1: experts in n_group groups, the top topk_group groups
# searched): 4 experts left cannot make 8 groups (each would hold 4 // 8 = 0).
GROUP_KEYS = ("n_group", "topk_group", "num_expert_group")
SMALL_VOCAB = 32000


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _depth_overrides(values: dict[str, Any], layers: int) -> dict[str, Any]:
    """Fewer layers. Per-layer lists (``layer_types``, ...) keep a prefix of the new depth, long
    enough to hold every kind of layer of the full model (a hybrid needs its attention layer),
    so the depth is raised to that prefix, up to 8."""
    depth_keys = [k for k in DEPTH_KEYS if _int(values.get(k)) and values[k] > layers]
    old_depth = values[depth_keys[0]] if depth_keys else None
    per_layer = {
        k: v
        for k, v in values.items()
        if old_depth and isinstance(v, list) and len(v) == old_depth and k not in DEPTH_KEYS
    }
    for value in per_layer.values():
        firsts: dict[str, int] = {}
        for i, item in enumerate(value):
            firsts.setdefault(repr(item), i)
        layers = max(layers, min(8, max(firsts.values()) + 1))
    out: dict[str, Any] = {}
    for key in DEPTH_KEYS:
        value = values.get(key)
        if _int(value) and value > layers:
            out[key] = layers
        elif (
            isinstance(value, list)
            and value
            and all(_int(v) for v in value)
            and sum(value) > len(value)
        ):
            out[key] = [1] * len(value)
    if old_depth and old_depth > layers:
        for key, value in per_layer.items():
            out[key] = value[:layers]
    # A hybrid that places its attention layers by offset and period (Jamba: offset 4, period
    # 8) would keep none in a prefix of 2: put one last, after the state-space layers, as the
    # full model has attention above them. Without it the shrunk model is a pure Mamba stack.
    offset, period = values.get("attn_layer_offset"), values.get("attn_layer_period")
    if old_depth and _int(offset) and _int(period) and offset >= layers:
        out["attn_layer_offset"], out["attn_layer_period"] = layers - 1, layers
    return out


def _width_overrides(values: dict[str, Any], target: int) -> dict[str, Any]:
    hidden_key = next(
        (k for k in WIDTH_KEYS if _int(values.get(k)) and values[k] > target),
        None,
    )
    if hidden_key is None:
        return {}
    hidden = values[hidden_key]
    heads_key = next((k for k in HEAD_KEYS if _int(values.get(k)) and values[k] > 1), None)
    out: dict[str, Any] = {}
    explicit = values.get("head_dim")
    # A head size of its own (GPT-OSS: 64 heads of 64 over a width of 2,880) is kept by the
    # config: fewer heads of it, and the width a multiple of 16, as its grouped kernels need.
    own_size = heads_key is not None and _int(explicit) and explicit * values[heads_key] != hidden
    if heads_key is not None and (own_size or hidden % values[heads_key] == 0):
        heads = max(1, round(values[heads_key] * target / hidden))
        new_hidden = (
            max(16, target // 16 * 16) if own_size else heads * (hidden // values[heads_key])
        )
        out.update(_head_overrides(values, heads_key, heads))
    else:
        new_hidden = target
    factor = new_hidden / hidden
    for key in WIDTH_KEYS:
        if _int(values.get(key)) and values[key] == hidden:
            out[key] = new_hidden
    for key in FFN_KEYS:
        if _int(values.get(key)) and values[key] > 0:
            out[key] = max(16, round(values[key] * factor / 16) * 16)
    for key in EXPERT_KEYS:
        if _int(values.get(key)) and values[key] > 4:
            out[key] = 4
            # Zero-computation experts (LongCat-Flash: 256 beside 512 routed) shrink in
            # proportion, or a token almost never routes to one of the 4 real experts left and
            # they get no gradient: an artefact of the shrink, not of the model.
            zero = values.get("zero_expert_num")
            if _int(zero) and zero > 0:
                out["zero_expert_num"] = max(1, round(zero * 4 / values[key]))
    for key in TOPK_KEYS:
        if _int(values.get(key)) and values[key] > 2:
            out[key] = 2
    if any(key in out for key in EXPERT_KEYS):
        for key in GROUP_KEYS:
            if _int(values.get(key)) and values[key] > 1:
                out[key] = 1
    return out


def _head_overrides(values: dict[str, Any], heads_key: str, heads: int) -> dict[str, Any]:
    """``heads`` attention heads, and key/value heads in the same proportion (dividing them)."""
    out: dict[str, Any] = {}
    for key in HEAD_KEYS:
        if _int(values.get(key)) and values[key] == values[heads_key]:
            out[key] = heads
    for key in KV_KEYS:
        if _int(values.get(key)) and values[key] > 1:
            kv = max(1, round(values[key] * heads / values[heads_key]))
            while heads % kv:
                kv -= 1
            out[key] = kv
    return out


def _vocab_overrides(values: dict[str, Any]) -> dict[str, Any]:
    vocab = values.get("vocab_size")
    if not _int(vocab) or vocab <= SMALL_VOCAB:
        return {}
    out: dict[str, Any] = {"vocab_size": SMALL_VOCAB}
    for key, value in values.items():
        if key.endswith(("token_id", "token_ids")):
            if _int(value) and value >= SMALL_VOCAB:
                out[key] = SMALL_VOCAB - 1
            elif isinstance(value, list) and any(_int(v) and v >= SMALL_VOCAB for v in value):
                out[key] = [min(v, SMALL_VOCAB - 1) if _int(v) else v for v in value]
    return out


def _sub_configs(config: Any) -> list[str]:
    names = []
    for key, value in vars(config).items():
        if hasattr(value, "to_dict") and hasattr(value, "model_type") and not key.startswith("_"):
            names.append(key)
    return names


def hf_overrides(config: Any, level: int) -> dict[str, Any]:
    """Config overrides of shrink level 1 (2 layers), 2 (and width 512), 3 (256), 4 (and vocab)."""
    values = config.to_dict()
    out: dict[str, Any] = _depth_overrides(values, 2)
    if level >= 2:
        out.update(_width_overrides(values, 512 if level == 2 else 256))
    if level >= 4:
        out.update(_vocab_overrides(values))
    for name in _sub_configs(config):
        sub = hf_overrides(getattr(config, name), level)
        if sub:
            out[name] = sub
    return out


def describe_overrides(overrides: dict[str, Any], config: Any, prefix: str = "") -> list[str]:
    """``key old->new`` for each override, for the report."""
    parts = []
    for key, value in overrides.items():
        old = getattr(config, key, None)
        if isinstance(value, dict) and old is not None and hasattr(old, "to_dict"):
            parts.extend(describe_overrides(value, old, f"{prefix}{key}."))
        elif isinstance(value, list) and max(len(value), len(old or [])) > 4:
            parts.append(f"{prefix}{key} len {len(old or [])}->{len(value)}")
        else:
            parts.append(f"{prefix}{key} {old}->{value}")
    return parts


def truncate_blocks(model: nn.Module, keep: int = 2) -> list[str]:
    """Keep the first ``keep`` blocks of every run of 3+ same-class blocks; what was cut."""
    cut = []
    for name, module in list(model.named_modules()):
        try:
            if model.get_submodule(name) is not module:
                continue
        except AttributeError:
            continue  # inside a block already cut away
        if not isinstance(module, (nn.Sequential, nn.ModuleList)):
            continue
        children = list(module.children())
        if len(children) <= keep or len({type(c) for c in children}) != 1:
            continue
        if not any(True for _ in children[0].children()):
            continue  # a run of leaves (Conv, ReLU, ...) is not a stack of blocks
        kept = children[:keep]
        replacement = (
            nn.Sequential(*kept) if isinstance(module, nn.Sequential) else nn.ModuleList(kept)
        )
        replace_submodule(model, name, replacement)
        cut.append(f"{name or '(model)'} {len(children)}->{keep}")
    return cut


# --- building ----------------------------------------------------------------------------------

Built = tuple[nn.Module, Any, Callable[..., torch.Tensor] | None]


class Refused(Exception):
    """A model we do not run (over budget, does not build from its defaults): a skip reason."""


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _no_downloads() -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the sweep refuses to download weights")

    torch.hub.load_state_dict_from_url = refuse  # type: ignore[assignment]
    torch.hub.download_url_to_file = refuse  # type: ignore[assignment]


class Zoo:
    """How to count, plan and build one model of a zoo."""

    def __init__(self, job: dict[str, Any]):
        self.job = job
        self.name = job["name"]
        self.plan: dict[str, Any] = {}
        self.seed = int(job.get("seed", 0))

    def plan_build(self, max_params: int) -> dict[str, Any]:
        """Count on the meta device; shrink or refuse a model over ``max_params``."""
        raise NotImplementedError

    def build(self) -> Built:
        raise NotImplementedError


class HuggingFace(Zoo):
    def _cls(self) -> Any:
        import transformers

        transformers.logging.set_verbosity_error()
        return getattr(transformers, self.job["class"])

    def plan_build(self, max_params: int) -> dict[str, Any]:
        cls = self._cls()
        try:
            config = cls.config_class()
            with torch.device("meta"):
                params = _count(cls(config))
        except Exception as exc:
            raise Refused(
                f"does not build from its default config: {type(exc).__name__}: {first_line(exc)[:300]}"
            ) from exc
        info: dict[str, Any] = {"params_default": params}
        if params <= max_params:
            return info
        errors = []
        for level in (1, 2, 3, 4):
            overrides = hf_overrides(config, level)
            if not overrides:
                continue
            try:
                with torch.device("meta"):
                    reduced = _count(cls(cls.config_class(**overrides)))
            except Exception as exc:
                errors.append(f"level {level}: {type(exc).__name__}: {first_line(exc)[:300]}")
                continue
            if reduced <= max_params:
                self.plan = overrides
                info["reduced"] = "; ".join(describe_overrides(overrides, config))
                info["params"] = reduced
                return info
        raise Refused(
            f"{params / 1e6:.0f}M parameters at its default config, over the budget even with "
            f"2 layers and a narrower width" + (f" ({errors[-1]})" if errors else "")
        )

    def build(self) -> Built:
        from gradcheck_cli import zoo

        if hasattr(zoo, "TEXT_LENGTH"):
            zoo.TEXT_LENGTH = TEXT_LENGTH
        spec = f"hf:{self.job['class']}"
        if self.plan:
            path = Path(tempfile.mkdtemp(prefix="sweep-")) / "config.json"
            path.write_text(json.dumps(self.plan), encoding="utf-8")
            spec += f":{path}"
        torch.manual_seed(self.seed)
        model, inputs = zoo.load_zoo(spec)
        return model, inputs, None


TV_DETECTION_SIZES = {"ssd300_vgg16": 300, "ssdlite320_mobilenet_v3_large": 320}


class Torchvision(Zoo):
    def _kwargs(self) -> dict[str, Any]:
        kind = self.job["kind"]
        if kind == "classification":
            return {"weights": None}
        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None}
        if kind == "detection" and self.name not in TV_DETECTION_SIZES:
            kwargs.update(min_size=IMAGE_SIZE, max_size=IMAGE_SIZE)
        return kwargs

    def _build(self) -> nn.Module:
        import torchvision

        return torchvision.models.get_model(self.name, **self._kwargs())

    def plan_build(self, max_params: int) -> dict[str, Any]:
        try:
            with torch.device("meta"):
                params = _count(self._build())
        except Exception:  # an init that reads data (RegNet): count a real build
            params = _count(self._build())
        info: dict[str, Any] = {"params_default": params}
        if params > max_params:
            self.plan = {"truncate": True}
        return info

    def build(self) -> Built:
        kind = self.job["kind"]
        torch.manual_seed(self.seed)
        if kind == "classification" and not self.plan:
            from gradcheck_cli.zoo import load_zoo

            model, inputs = load_zoo(f"torchvision:{self.name}")
            return model, inputs, None
        model = self._build()
        if self.plan:
            self.plan["cut"] = truncate_blocks(model)
        if kind == "classification":
            return model, lambda b: torch.randn(b, 3, 224, 224), None
        if kind == "segmentation":
            return model, lambda b: torch.randn(b, 3, IMAGE_SIZE, IMAGE_SIZE), None
        size = TV_DETECTION_SIZES.get(self.name, IMAGE_SIZE)
        keypoints = "keypoint" in self.name
        masks = "mask" in self.name
        classes = 2 if keypoints else 91

        def detection_batch(b: int) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
            images, targets = [], []
            for _ in range(b):
                images.append(torch.rand(3, size, size))
                n = 3
                xy = torch.rand(n, 2) * size * 0.6
                wh = torch.rand(n, 2) * size * 0.3 + 8
                boxes = torch.cat([xy, xy + wh], dim=1)
                target = {"boxes": boxes, "labels": torch.randint(1, classes, (n,))}
                if masks:
                    target["masks"] = (torch.rand(n, size, size) > 0.5).to(torch.uint8)
                if keypoints:
                    points = torch.rand(n, 17, 2) * size * 0.6
                    target["keypoints"] = torch.cat([points, torch.ones(n, 17, 1)], dim=2)
                targets.append(target)
            return images, targets

        def detection_loss(output: Any, inputs: Any) -> torch.Tensor:
            return sum(output.values())  # type: ignore[return-value]

        return model, detection_batch, detection_loss


class Timm(Zoo):
    def plan_build(self, max_params: int) -> dict[str, Any]:
        import timm

        with torch.device("meta"):
            params = _count(timm.create_model(self.name, pretrained=False))
        info: dict[str, Any] = {"params_default": params}
        if params > max_params:
            try:
                with torch.device("meta"):
                    reduced = _count(timm.create_model(self.name, pretrained=False, depth=2))
                if reduced <= max_params:
                    self.plan = {"depth": 2}
                    info.update(params=reduced, reduced="depth -> 2")
                    return info
            except Exception:
                pass
            self.plan = {"truncate": True}
        return info

    def build(self) -> Built:
        torch.manual_seed(self.seed)
        if not self.plan:
            from gradcheck_cli.zoo import load_zoo

            model, inputs = load_zoo(f"timm:{self.name}")
            return model, inputs, None
        import timm

        kwargs = {"depth": self.plan["depth"]} if "depth" in self.plan else {}
        model = timm.create_model(self.name, pretrained=False, **kwargs)
        if self.plan.get("truncate"):
            self.plan["cut"] = truncate_blocks(model)
        size = model.default_cfg.get("input_size", (3, 224, 224))
        return model, lambda b: torch.randn(b, *size), None


ZOOS: dict[str, type[Zoo]] = {"hf": HuggingFace, "torchvision": Torchvision, "timm": Timm}


# --- pathological twins --------------------------------------------------------------------------

ACTIVATION_NAMES = (
    "relu",
    "gelu",
    "silu",
    "swish",
    "mish",
    "hardswish",
    "hardswish",
    "elu",
    "selu",
    "celu",
    "softplus",
    "quickgelu",
    "leakyrelu",
    "prelu",
    "rrelu",
    "hardtanh",
    "relu6",
    "squaredrelu",
    "relusquared",
    "starrelu",
    "laplace",
    "xielu",
)
NOT_ACTIVATIONS = ("sigmoid", "softmax", "softmin", "tanh", "identity", "glu", "attention")


def is_activation(module: nn.Module) -> bool:
    """A parameter-light elementwise activation module (torch's, Hugging Face's or timm's)."""
    if list(module.children()):
        return False
    name = type(module).__name__.lower()
    if any(word in name for word in NOT_ACTIVATIONS):
        return False
    origin = type(module).__module__
    if origin.startswith("torch.nn.modules.activation"):
        return True
    if origin.startswith(("transformers.activations", "timm.layers")):
        plain = name.replace("activation", "").replace("_", "").replace("approximate", "")
        plain = (
            plain.replace("new", "").replace("fast", "").replace("pytorch", "").replace("tanh", "")
        )
        return any(word in plain for word in ACTIVATION_NAMES) or plain in ACTIVATION_NAMES
    return False


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: BatchNorm, LayerNorm, GroupNorm, RMSNorm, InstanceNorm, ..."""
    if isinstance(
        module,
        (
            nn.modules.batchnorm._NormBase,
            nn.LayerNorm,
            nn.GroupNorm,
            nn.LocalResponseNorm,
            nn.RMSNorm,
        ),
    ):
        return True
    if list(module.children()):
        return False  # a block that holds a norm (Conv2dNormActivation), not a norm itself
    name = type(module).__name__.lower()
    if "norm" not in name or "normal" in name:
        return False
    return any(
        word in name for word in ("batchnorm", "layernorm", "groupnorm", "rmsnorm", "instancenorm")
    ) or name.endswith("norm")


class NoNorm(nn.Identity):
    """An identity that takes whatever the normalisation layer it replaces was called with."""

    def forward(self, input: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        return input


def twin_sigmoid(model: nn.Module) -> int:
    names = [n for n, m in model.named_modules() if n and is_activation(m)]
    for name in names:
        replace_submodule(model, name, nn.Sigmoid())
    return len(names)


def twin_small_init(model: nn.Module) -> int:
    count = 0
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and p.is_floating_point():
                p.mul_(0.01)
                count += 1
    return count


def twin_no_norm(model: nn.Module) -> int:
    names = []
    for name, module in model.named_modules():
        if name and is_norm(module) and not any(name.startswith(n + ".") for n in names):
            names.append(name)
    for name in names:
        module = model.get_submodule(name)
        act = getattr(module, "act", None)  # timm's BatchNormAct2d: keep its activation
        new = act if isinstance(act, nn.Module) and not isinstance(act, nn.Identity) else NoNorm()
        replace_submodule(model, name, new)
    return len(names)


TRANSFORMS = {"sigmoid": twin_sigmoid, "small-init": twin_small_init, "no-norm": twin_no_norm}
WHAT = {"sigmoid": "activation modules", "small-init": "weight tensors", "no-norm": "norm layers"}


# --- diagnosing ----------------------------------------------------------------------------------


def _failure(exc: BaseException, where: str) -> dict[str, Any]:
    from gradcheck_cli.errors import UsageError

    tb = traceback.extract_tb(exc.__traceback__)
    frame = next((f for f in reversed(tb)), None)
    return {
        "where": where,
        "exit": 2 if isinstance(exc, UsageError) else 3,
        "error": f"{type(exc).__name__}: {first_line(exc)[:300]}",
        **({"at": f"{Path(frame.filename).name}:{frame.lineno}"} if frame else {}),
    }


def _finding(f: dict[str, Any], full: bool) -> dict[str, Any]:
    layers = f.get("layers", [])
    out = {"id": f["id"], "severity": f["severity"], "message": f["message"]}
    if full:
        out["layers"] = layers[:8] + ([f"(+{len(layers) - 8} more)"] if len(layers) > 8 else [])
        out["evidence"] = f.get("evidence", {})
    return out


def run_diagnosis(
    built: Built, job: dict[str, Any], name: str, report_path: Path | None
) -> dict[str, Any]:
    from gradcheck_cli.api import diagnose

    model, inputs, loss_fn = built
    started = time.perf_counter()
    report = diagnose(
        model,
        inputs,
        loss_fn,
        steps=int(job.get("steps", 3)),
        seed=int(job.get("seed", 0)),
        batch_size=int(job.get("batch_size", 2)),
        device="cpu",
        model_name=name,
    )
    seconds = time.perf_counter() - started
    doc = report.to_dict()
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(report.to_yaml(), encoding="utf-8")
    findings = doc["findings"]
    serious = [f for f in findings if f["severity"] in ("warning", "error")]
    return {
        "stats": layer_summary(doc["layers"]),
        "status": doc["status"],
        "loss": doc["run"]["loss"],
        "losses": doc["run"]["losses"],
        "layers": len(doc["layers"]),
        "seconds": round(seconds, 1),
        "findings": [_finding(f, True) for f in serious],
        "info": [_finding(f, False) for f in findings if f["severity"] == "info"],
    }


def _median(stat: Any) -> float | None:
    value = stat.get("median") if isinstance(stat, dict) else None
    return value if isinstance(value, (int, float)) else None


def layer_summary(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """A few numbers that say what the report saw: for judging a miss or a false alarm.

    ``gw_median``: the median over weight layers of the gradient-to-weight ratio;
    ``depth_ratio``: geometric mean of that ratio over the first quarter of the weight layers
    (the output layer left out) over the last quarter, as the vanishing rule computes it
    roughly (without its exceptions); ``max_saturated``/``max_dead``: the worst activation layer.
    """
    ratios = [
        r
        for layer in layers
        if layer["kind"] == "weight" and (r := _median(layer["grad_to_weight"])) is not None
    ]
    out: dict[str, Any] = {"weight_layers": len(ratios)}
    positive = [r for r in ratios if r > 0]
    if positive:
        out["gw_median"] = float(f"{sorted(positive)[len(positive) // 2]:.3g}")
    body = positive[:-1] if len(positive) > 3 else positive
    if len(body) >= 3:
        q = max(1, len(body) // 4)

        def geo(values: list[float]) -> float:
            return math.exp(sum(math.log(v) for v in values) / len(values))

        out["depth_ratio"] = float(f"{geo(body[:q]) / geo(body[-q:]):.3g}")
    for key, name in (("saturated_fraction", "max_saturated"), ("dead_fraction", "max_dead")):
        values = [v for layer in layers if (v := _median(layer[key])) is not None]
        if values:
            out[name] = float(f"{max(values):.3g}")
    return out


class Result:
    """RESULT.json, rewritten atomically after each stage."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {"stages": []}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, default=str), encoding="utf-8")
        os.replace(tmp, self.path)

    def stage(self, name: str) -> None:
        self.data["stages"].append(name)
        self.data["current"] = name
        self.data["stage_started"] = time.time()
        self.save()


def run_job(job: dict[str, Any]) -> None:
    """Plan, build, diagnose and (when healthy) the twins of one model; RESULT.json as it goes."""
    result = Result(Path(job["result"]))
    reports = Path(job["reports"]) if job.get("reports") else None
    slug = job["key"].replace(":", "__").replace("/", "_")
    zoo = ZOOS[job["zoo"]](job)
    started = time.perf_counter()

    def finish(**data: Any) -> None:
        result.data.update(data)
        result.data["seconds_total"] = round(time.perf_counter() - started, 1)
        result.stage("done")

    result.stage("plan")
    try:
        result.data.update(zoo.plan_build(int(job["max_params"])))
    except Refused as exc:
        return finish(status="skipped", reason=str(exc))
    except Exception as exc:
        return finish(
            status="skipped", reason=f"cannot count its parameters: {first_line(exc)[:300]}"
        )

    result.stage("main")
    try:
        built = zoo.build()
    except Exception as exc:
        return finish(status="failed", failure=_failure(exc, "build"))
    result.data["params"] = _count(built[0])
    if zoo.plan.get("cut"):
        result.data["reduced"] = "blocks cut: " + ", ".join(zoo.plan["cut"])
    try:
        diagnosis = run_diagnosis(built, job, zoo.name, reports and reports / f"{slug}.yaml")
    except Exception as exc:
        return finish(status="failed", failure=_failure(exc, "diagnose"))
    result.data.update(diagnosis, twins={})
    if diagnosis["status"] != "healthy" or not job.get("twins", True):
        return finish()
    for twin in TWINS:
        result.stage(twin)
        result.data["twins"][twin] = run_twin(zoo, built, twin, job, reports, slug)
        result.save()
    del built
    finish()


def run_twin(
    zoo: Zoo, built: Built, twin: str, job: dict[str, Any], reports: Path | None, slug: str
) -> dict[str, Any]:
    """Transform a copy of the healthy model and diagnose it: detected, missed, n/a or failed."""
    entry: dict[str, Any] = {}
    try:
        try:
            model = copy.deepcopy(built[0])
        except Exception:
            model = zoo.build()[0]
        changed = TRANSFORMS[twin](model)
        entry["changed"] = changed
        if changed == 0:
            entry.update(result="n/a", why=f"no {WHAT[twin]} to transform")
            return entry
        d = run_diagnosis(
            (model, built[1], built[2]),
            job,
            f"{zoo.name} ({twin} twin)",
            reports and reports / f"{slug}__{twin}.yaml",
        )
        entry.update(status=d["status"], seconds=d["seconds"])
        if d["findings"]:
            entry["result"] = "detected"
            entry["by"] = [f"{f['id']}:{f['severity']}" for f in d["findings"]]
            entry["findings"] = [
                {"id": f["id"], "severity": f["severity"], "message": f["message"]}
                for f in d["findings"]
            ]
        else:
            entry.update(result="missed", info=d["info"], losses=d["losses"], stats=d["stats"])
    except Exception as exc:
        entry.update(result="failed", failure=_failure(exc, twin))
    return entry


def serve() -> None:
    """Run the jobs read from stdin, one JSON object a line, until stdin closes."""
    import warnings

    warnings.filterwarnings("ignore")
    _no_downloads()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            run_job(job)
        except Exception as exc:  # the worker itself must survive a model's failure
            result = Result(Path(job["result"]))
            result.data.update(status="failed", failure=_failure(exc, "worker"))
            result.stage("done")
        gc.collect()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:  # one job: python scripts/sweep_worker.py JOB.json
        import warnings

        warnings.filterwarnings("ignore")
        _no_downloads()
        run_job(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
