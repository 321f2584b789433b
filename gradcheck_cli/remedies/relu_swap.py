"""``relu-swap``: replace saturating activation modules by ReLU and re-initialise to match."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.layers import is_saturating, is_weight_type
from gradcheck_cli.remedies.base import (
    Activation,
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    init_edit,
    kept_note,
    leaf_calls,
    reinit_refusal,
)
from gradcheck_cli.remedies.edits import Edit
from gradcheck_cli.remedies.functional import functional_saturating_calls

_MODULES = {
    Activation.RELU: ("ReLU", "relu", 0.0),
    Activation.LEAKY_RELU: ("LeakyReLU", "leaky_relu", 0.01),
    Activation.GELU: ("GELU", "relu", 0.0),
    Activation.SILU: ("SiLU", "relu", 0.0),
}


class ReluSwap(Remedy):
    """Swap Sigmoid/Tanh/Hardtanh/Hardsigmoid/Softsign modules for ReLU (or ``--activation``).

    The weight layer feeding each swapped activation is re-initialised with He (Kaiming) init:
    with PyTorch's default init a deep ReLU net still vanishes (He et al. 2015). The model's
    output activation (no weight layer after it) is kept, since it defines the output range,
    and so is a sigmoid gate (a sigmoid whose output multiplies another computed tensor, read
    from the autograd graph: a highway net's transform gate, an LSTM written by hand), whose
    [0, 1] range is what it means. A bias set deliberately is kept by the re-initialisation.
    Activations called as functions in ``forward`` cannot be swapped by module replacement;
    they are found with torch.fx where the model traces and reported as left.
    """

    id = "relu-swap"
    summary = "Replace saturating activations with ReLU-family ones, with He init to match."
    reinitialises = True

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        module_name, nonlinearity, slope = _MODULES[context.options.activation]
        # Every call site: a shared activation module is swapped once, but each layer that
        # feeds any of its calls gets He init.
        calls = leaf_calls(model, context.probe, every=True)
        last_weight = max((i for i, c in enumerate(calls) if is_weight_type(c.type)), default=-1)
        outputs = {c.name for i, c in enumerate(calls) if i > last_weight}
        edits: list[Edit] = []
        notes: list[str] = []
        refusal = reinit_refusal(context)
        swapped: set[str] = set()
        initialised: set[str] = set()
        gates = context.probe.structure.gates
        kept: list[str] = []
        gated: list[str] = []
        for i, call in enumerate(calls):
            if not is_saturating(call.type):
                continue
            if call.name in gates:
                if call.name not in swapped:
                    gated.append(call.name)
                    swapped.add(call.name)
                continue
            if call.name in outputs:
                if call.name not in swapped:
                    notes.append(
                        f"kept {call.name} ({call.type.__name__}): it is the output activation"
                    )
                    swapped.add(call.name)
                continue
            if call.name not in swapped:
                swapped.add(call.name)
                edits.append(
                    Edit("replace-activation", call.name, {"module": module_name}, self.id)
                )
            feeding = next((c for c in reversed(calls[:i]) if is_weight_type(c.type)), None)
            if feeding is None or feeding.name in initialised:
                continue
            if refusal is None:
                initialised.add(feeding.name)
                args: dict[str, object] = {"scheme": "kaiming_normal", "nonlinearity": nonlinearity}
                if slope:
                    args["negative_slope"] = slope
                edits.append(init_edit(model, feeding.name, args, self.id, context, kept))
        if gated:
            more = f" and {len(gated) - 3} more" if len(gated) > 3 else ""
            notes.append(
                f"kept {len(gated)} gate(s): {', '.join(gated[:3])}{more} (a sigmoid whose output "
                "multiplies another tensor; a ReLU there would change what the model computes)"
            )
        notes.extend(kept_note(kept))
        if refusal is not None and edits:
            notes.append(f"layers not re-initialised: {refusal}")
        functional = functional_saturating_calls(model)
        if functional:
            notes.append(functional)
        if not edits:
            reason = "no saturating activation module to swap"
            return NotApplicable(self.id, "; ".join([reason, *notes]))
        return Proposal(self.id, tuple(edits), tuple(notes))
