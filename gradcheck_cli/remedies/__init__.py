"""Remedies: one per file, each proposing declarative edits that a single executor applies.

Each remedy is one :class:`RemedySpec` below: its summary, the class ``fix`` applies (None: advice
only), where it goes when remedies are combined, which trial is kept among equally good ones,
what it never combines with, and what else is tried beside it. ``REMEDIES``, ``APPLY_ORDER``,
``PREFERENCE``, ``CONFLICTS``, ``ALSO_TRY`` and ``REGISTRY`` are read off them. A new remedy is a
file with its class and one spec here.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradcheck_cli.remedies.base import Remedy


@dataclass(frozen=True)
class RemedySpec:
    """One remedy id and everything the fix search needs to know of it without importing it.

    ``applied_by`` is ``"module:Class"`` under this package (imported on first use of
    ``REGISTRY``, so that ``gradcheck explain`` and ``gradcheck remedies`` do not import torch).
    ``apply_rank``: the order combined remedies are applied in: activation, init and scaling
    edits keep module names (a branch is scaled after any re-initialisation); inserting norms
    keeps a container's indices; residual groups re-index containers; gradient clipping wraps the
    root, so it comes last. ``preference``: which of two equally good trials to keep: change
    weights before architecture, cure the cause (initialisation, activation, normalisation)
    before bounding the symptom (clipping). ``also_try``: a finding that names a restricted
    re-initialisation also gets the general ones tried: the activation a layer feeds may be
    none (a deep linear net), SELU or a sine (SIREN), and a residual net without normalisation
    explodes however its layers are initialised.
    """

    id: str
    summary: str
    applied_by: str | None = None
    apply_rank: int = -1
    preference: int = -1
    conflicts: tuple[str, ...] = ()
    also_try: tuple[str, ...] = ()


SPECS: tuple[RemedySpec, ...] = (
    RemedySpec(
        "relu-swap",
        (
            "Replace saturating activations (Sigmoid, Tanh, ...) with ReLU, LeakyReLU or GELU and "
            "re-initialise the layers that feed them with He (Kaiming) init: with PyTorch's default "
            "init the swap alone still leaves a deep net vanishing (He et al. 2015)."
        ),
        applied_by="relu_swap:ReluSwap",
        apply_rank=0,
        preference=7,
        conflicts=("xavier-init",),
    ),
    RemedySpec(
        "kaiming-init",
        (
            "Re-initialise Linear/Conv weights with kaiming_normal_(nonlinearity='relu') and zero "
            "biases, which keeps activation and gradient variance constant through ReLU layers "
            "(He et al. 2015). Never on a trained checkpoint."
        ),
        applied_by="kaiming_init:KaimingInit",
        apply_rank=1,
        preference=0,
        conflicts=("xavier-init",),
        also_try=("gain-init", "sine-init", "residual-scale"),
    ),
    RemedySpec(
        "xavier-init",
        (
            "Re-initialise weights with xavier_uniform_ (gain for tanh/sigmoid), which keeps "
            "variance through symmetric saturating activations (Glorot & Bengio 2010)."
        ),
        applied_by="xavier_init:XavierInit",
        apply_rank=2,
        preference=1,
        also_try=("gain-init", "sine-init"),
    ),
    RemedySpec(
        "gain-init",
        (
            "Re-initialise every Linear/Conv layer for the activation that follows it in the graph "
            "(torch.nn.init.calculate_gain: identity 1, tanh 5/3, ReLU sqrt(2), leaky ReLU, SELU 3/4, "
            "sigmoid 1), N(0, gain^2/fan_in) or orthogonal for linear and tanh stacks (He et al. "
            "2015; Saxe et al. 2014; Pennington et al. 2017). Never on a trained checkpoint."
        ),
        applied_by="gain_init:GainInit",
        apply_rank=3,
        preference=3,
        # it re-initialises every layer kaiming-/xavier-init would, for the activations of the
        # model as it was: after relu-swap it would undo the swap's He init.
        conflicts=("kaiming-init", "xavier-init", "relu-swap"),
    ),
    RemedySpec(
        "sine-init",
        (
            "Re-initialise the layers that feed a sine as SIREN does (Sitzmann et al. 2020): the "
            "first layer's w0 W x drawn from U(+-30/fan_in), every later one's from "
            "U(+-sqrt(6/fan_in)), where w0 is any factor forward applies; biases kept. A sine "
            "network with a default or small init is nearly linear and fits only low frequencies. "
            "Never on a trained checkpoint."
        ),
        applied_by="sine_init:SineInit",
        apply_rank=4,
        preference=2,
        # it re-initialises the layers before sines, which the others would redraw.
        conflicts=("gain-init", "kaiming-init", "xavier-init"),
    ),
    RemedySpec(
        "embedding-scale",
        (
            "Draw embedding tables that start well below unit RMS from N(0, 1), PyTorch's default "
            "for nn.Embedding (padding rows stay zero); a table tied to the output layer keeps its "
            "weights and has its output multiplied up to unit RMS. Transformers initialise tables "
            "at std 0.02 because a LayerNorm follows, and without one the whole network runs at "
            "that scale (Vaswani et al. 2017 scale embeddings by sqrt(d_model)). Never on a "
            "trained checkpoint."
        ),
        applied_by="embedding_scale:EmbeddingScale",
        apply_rank=5,
        preference=4,
    ),
    RemedySpec(
        "residual-scale",
        (
            "Start residual blocks near the identity: scale the last layer of each residual branch "
            "(a sum x + f(x)) by 1/sqrt(number of branches), or zero it (Goyal et al. 2017; Fixup, "
            "Zhang et al. 2019; SkipInit, De & Smith 2020). For residual nets without normalisation."
        ),
        applied_by="residual_scale:ResidualScale",
        apply_rank=6,
        preference=5,
    ),
    RemedySpec(
        "pre-norm",
        (
            "Put a LayerNorm at the input of every residual branch, x + f(LayerNorm(x)), and "
            "before a Linear layer that reads the last sum (Pre-LN; Xiong et al. 2020), where Linear "
            "layers read the stream without a normaliser: a transformer without normalisation runs "
            "at its embeddings' scale, or grows with depth until attention saturates. Branches are "
            "found in the autograd graph."
        ),
        applied_by="pre_norm:PreNormRemedy",
        apply_rank=9,
        preference=9,
    ),
    RemedySpec(
        "residual-wrap",
        (
            "Wrap shape-preserving blocks as y = x + f(x), giving the gradient an identity path "
            "around every block (He et al. 2016)."
        ),
        applied_by="residual_wrap:ResidualWrap",
        apply_rank=11,
        preference=11,
    ),
    RemedySpec(
        "batchnorm",
        (
            "Insert BatchNorm (LayerNorm for sequences or batch size 1) after Linear/Conv layers to "
            "keep pre-activations at unit scale (Ioffe & Szegedy 2015). It is not an L2 penalty."
        ),
        applied_by="batchnorm:BatchNorm",
        apply_rank=10,
        preference=10,
    ),
    RemedySpec(
        "temperature-floor",
        (
            "Raise F.gumbel_softmax temperatures below 1 to 1 (forward hooks on the model): at a "
            "small temperature the relaxed sample is one-hot to float precision and the layers "
            "that score the categories get no gradient in most examples (Jang et al. 2017 start "
            "at 1 and anneal to no lower than 0.5)."
        ),
        applied_by="temperature_floor:TemperatureFloor",
        apply_rank=12,
        preference=12,
    ),
    RemedySpec(
        "grad-clip",
        (
            "Clip the global gradient norm before the optimizer step: "
            "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm) (Pascanu et al. 2013)."
        ),
        applied_by="grad_clip:GradClipRemedy",
        apply_rank=13,
        preference=13,
    ),
    RemedySpec(
        "gated-cell",
        (
            "Replace a vanilla nn.RNN with a gated cell: gates give the gradient a path through "
            "time that is not a product of squashed Jacobians (Hochreiter & Schmidhuber 1997; Cho "
            "et al. 2014). Applied as an nn.GRU (same arguments and outputs) with chrono-initialised "
            "update gates."
        ),
        applied_by="gated_cell:GatedCell",
        apply_rank=7,
        preference=8,
    ),
    RemedySpec(
        "gate-bias",
        (
            "Start the gates remembering: LSTM forget-gate bias of 1 or more (Gers et al. 2000; "
            "Jozefowicz et al. 2015), or chrono init, b_forget = log(U(1, T - 1)) and b_input = "
            "-b_forget, for dependencies of up to T steps (Tallec & Ollivier 2018; the GRU's update "
            "gate alike). Applied as chrono init for the measured sequence length."
        ),
        applied_by="gate_bias:GateBias",
        apply_rank=8,
        preference=6,
    ),
    RemedySpec(
        "truncate-bptt",
        (
            "If the task needs no dependencies longer than the gradient reaches, train with "
            "truncated backpropagation through time on windows of that length: it bounds the "
            "horizon honestly instead of curing the decay. Advice only."
        ),
    ),
    RemedySpec(
        "grad-scaler",
        (
            "Scale the loss in fp16 training: scaler = torch.amp.GradScaler(); "
            "scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update(). Advice only."
        ),
    ),
    RemedySpec(
        "bf16",
        (
            "Train in bfloat16 (torch.autocast(device_type, dtype=torch.bfloat16)): float32's "
            "exponent range, so no gradient underflow and no loss scaling. Advice only."
        ),
    ),
    RemedySpec(
        "lower-lr",
        (
            "Lower the learning rate or add warmup. Advice only: it bounds the damage of large "
            "gradients but cures neither vanishing nor exploding gradients."
        ),
    ),
)

REMEDIES: dict[str, str] = {spec.id: spec.summary for spec in SPECS}
_APPLIED = sorted((s for s in SPECS if s.applied_by), key=lambda s: s.apply_rank)
# The ids ``fix`` can apply (the others are advice).
AUTOMATIC: frozenset[str] = frozenset(s.id for s in _APPLIED)
APPLY_ORDER: tuple[str, ...] = tuple(s.id for s in _APPLIED)
PREFERENCE: tuple[str, ...] = tuple(s.id for s in sorted(_APPLIED, key=lambda s: s.preference))
# Remedies that contradict each other and are never combined.
CONFLICTS: frozenset[frozenset[str]] = frozenset(
    frozenset({spec.id, other}) for spec in SPECS for other in spec.conflicts
)
ALSO_TRY: dict[str, tuple[str, ...]] = {s.id: s.also_try for s in SPECS if s.also_try}


@functools.cache
def _registry() -> dict[str, type[Remedy]]:
    registry: dict[str, type[Remedy]] = {}
    for spec in _APPLIED:
        module, name = str(spec.applied_by).split(":")
        registry[spec.id] = getattr(
            importlib.import_module(f"gradcheck_cli.remedies.{module}"), name
        )
    return registry


def __getattr__(name: str) -> Any:
    if name == "REGISTRY":  # dict[str, type[Remedy]]: id -> class, in APPLY_ORDER
        return _registry()
    raise AttributeError(f"module 'gradcheck_cli.remedies' has no attribute {name!r}")


if TYPE_CHECKING:
    REGISTRY: dict[str, type[Remedy]]

__all__ = [
    "ALSO_TRY",
    "APPLY_ORDER",
    "AUTOMATIC",
    "CONFLICTS",
    "PREFERENCE",
    "REGISTRY",
    "REMEDIES",
    "SPECS",
    "Remedy",
    "RemedySpec",
]
