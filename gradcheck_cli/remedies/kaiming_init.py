"""``kaiming-init``: He (Kaiming) init for the layers that feed ReLU-family activations."""

from __future__ import annotations

from gradcheck_cli.remedies.gain_init import GainInit


class KaimingInit(GainInit):
    """``gain-init`` for the Linear/Conv layers followed by a ReLU-family activation only:
    ``N(0, gain^2 / fan_in)`` and a zero bias (He et al. 2015), which keeps activation and
    gradient variance constant through the layer. Refused after ``--weights`` unless
    ``--force-reinit``.
    """

    id = "kaiming-init"
    summary = "He (Kaiming) init for layers that feed ReLU-family activations."
    families = frozenset({"relu", "leaky_relu"})
    scheme = "kaiming_normal"
