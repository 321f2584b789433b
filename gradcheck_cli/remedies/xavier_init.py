"""``xavier-init``: Glorot (Xavier) init for the layers that feed tanh/sigmoid activations."""

from __future__ import annotations

from gradcheck_cli.remedies.gain_init import GainInit


class XavierInit(GainInit):
    """``gain-init`` for the Linear/Conv layers followed by a tanh- or sigmoid-like activation
    only, drawn as Glorot did: ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))`` and a
    zero bias (Glorot & Bengio 2010), which keeps pre-activations in the activation's linear
    region. Refused after ``--weights`` unless ``--force-reinit``.
    """

    id = "xavier-init"
    summary = "Glorot (Xavier) init for layers that feed tanh/sigmoid activations."
    families = frozenset({"tanh", "sigmoid"})
    scheme = "xavier_uniform"
