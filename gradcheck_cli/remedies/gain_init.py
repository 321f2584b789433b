"""``gain-init``: every Linear/Conv layer at the variance-preserving scale for what follows it."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from gradcheck_cli.layers import is_weight_type
from gradcheck_cli.remedies.base import (
    InitScheme,
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    following_activation,
    init_edit,
    kept_note,
    leaf_calls,
    nonlinearity_of,
    reinit_refusal,
)
from gradcheck_cli.remedies.structure import Follower

# Followers for which an orthogonal stack is dynamically isometric (Saxe et al. 2014 for the
# identity; Pennington et al. 2017 for tanh); ReLU and sigmoid stacks are not.
_ISOMETRIC = frozenset({"linear", "tanh"})


# How a note names each calculate_gain nonlinearity: "relu" covers GELU, SiLU, ELU and Mish too.
_GAIN_NAMES = {"relu": "ReLU family (gain sqrt 2)", "linear": "no activation (gain 1)"}


class GainInit(Remedy):
    """Re-initialise each Linear/Conv layer for the activation that follows it, read from the
    autograd graph (a functional ``F.relu``, a shared ``nn.Sigmoid()`` and a residual sum before
    the activation are all seen): ``torch.nn.init.calculate_gain`` of the identity (1), tanh
    (5/3), ReLU (sqrt 2), leaky ReLU, SELU (3/4) or sigmoid (1); zero biases. Weights are
    ``N(0, gain^2 / fan_in)`` (He et al. 2015), or orthogonal at that gain for a stack whose
    layers are all followed by the identity or tanh (Saxe et al. 2014; Pennington et al. 2017),
    or as ``--init`` says. Refused after ``--weights`` unless ``--force-reinit``.

    ``kaiming-init`` and ``xavier-init`` are this remedy restricted to the layers that feed
    ReLU-family or tanh/sigmoid activations, with their own distributions.
    """

    id = "gain-init"
    summary = "Variance-preserving init for the activation (or none) after every Linear/Conv."
    reinitialises = True
    # None: every weight layer; else only those followed by these nonlinearities.
    families: ClassVar[frozenset[str] | None] = None
    scheme: ClassVar[str | None] = None  # None: chosen from --init

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        refusal = reinit_refusal(context)
        if refusal is not None:
            return NotApplicable(self.id, refusal)
        chosen = self._followers(model, context)
        if not chosen:
            if self.families is None:
                return NotApplicable(self.id, "no Linear/Conv layer ran in the probe pass")
            wanted = " or ".join(sorted(self.families))
            return NotApplicable(
                self.id, f"no Linear/Conv layer feeds a {wanted} activation module"
            )
        scheme = self.scheme or self._scheme(context.options.init, chosen)
        edits = []
        kept: list[str] = []
        for name, follower in chosen.items():
            args: dict[str, object] = {"scheme": scheme, "nonlinearity": follower.nonlinearity}
            if follower.nonlinearity == "leaky_relu":
                args["negative_slope"] = follower.negative_slope
            edits.append(init_edit(model, name, args, self.id, context, kept))
        gains = sorted({_GAIN_NAMES.get(f.nonlinearity, f.nonlinearity) for f in chosen.values()})
        note = f"{len(edits)} layer(s) re-initialised ({scheme}) for: {', '.join(gains)}"
        return Proposal(self.id, tuple(edits), (note, *kept_note(kept)))

    def _followers(self, model: nn.Module, context: RemedyContext) -> dict[str, Follower]:
        """Each weight layer that ran, in call order, with what follows it: from the graph,
        else (a layer the graph did not reach) from the next activation module called."""
        graph = context.probe.structure.followers
        calls = leaf_calls(model, context.probe, every=True)
        chosen: dict[str, Follower] = {}
        for i, call in enumerate(calls):
            if not is_weight_type(call.type) or call.name in chosen:
                continue
            follower = graph.get(call.name)
            if follower is None or follower.nonlinearity == "linear":
                # Softsign is a division in the graph; a module after the layer still names it.
                activation = following_activation(calls, i)
                kind = nonlinearity_of(activation.type) if activation is not None else None
                if kind is not None and activation is not None:
                    slope = getattr(model.get_submodule(activation.name), "negative_slope", 0.0)
                    follower = Follower(kind, float(slope) if kind == "leaky_relu" else 0.0)
            follower = follower or Follower()
            if self.families is None or follower.nonlinearity in self.families:
                chosen[call.name] = follower
        return chosen

    @staticmethod
    def _scheme(option: InitScheme, chosen: dict[str, Follower]) -> str:
        if option is InitScheme.ORTHOGONAL:
            return "orthogonal"
        if option is InitScheme.NORMAL:
            return "kaiming_normal"
        isometric = all(f.nonlinearity in _ISOMETRIC for f in chosen.values())
        return "orthogonal" if isometric else "kaiming_normal"
