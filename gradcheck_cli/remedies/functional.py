"""Finding activations called as functions in ``forward`` (torch.sigmoid, F.tanh, x.sigmoid()).

Module replacement cannot reach them. Where the model traces with torch.fx we can at least say
where they are; where it does not, we say that we could not look.
"""

from __future__ import annotations

import torch
from torch import nn

from gradcheck_cli.snapshot import preserved

_FUNCTIONS = {
    torch.sigmoid,
    torch.tanh,
    nn.functional.sigmoid,
    nn.functional.tanh,
    nn.functional.hardtanh,
    nn.functional.hardsigmoid,
    nn.functional.softsign,
}
_METHODS = {"sigmoid", "tanh"}


def functional_saturating_calls(model: nn.Module) -> str:
    """A sentence naming functional saturating activations left in place, or "" if none."""
    try:
        # Tracing runs forward with proxies: self.last = y would keep a Proxy on the model.
        with preserved(model):
            graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        return (
            "could not look for activations called as functions in forward (the model does "
            "not trace with torch.fx); any such call was left as it is"
        )
    found = [
        node.name
        for node in graph.nodes
        if (node.op == "call_function" and node.target in _FUNCTIONS)
        or (node.op == "call_method" and node.target in _METHODS)
    ]
    if not found:
        return ""
    return (
        f"left {len(found)} activation(s) called as functions in forward "
        f"({', '.join(found[:4])}): replace them in the model's code"
    )
