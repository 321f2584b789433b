"""``residual-scale``: start every residual block near the identity (Fixup, SkipInit)."""

from __future__ import annotations

import math

from torch import nn

from gradcheck_cli.remedies.base import (
    BranchInit,
    NotApplicable,
    Proposal,
    Remedy,
    RemedyContext,
    reinit_refusal,
)
from gradcheck_cli.remedies.edits import Edit


def branch_factor(branches: int, mode: BranchInit) -> float:
    """What the last layer of each of ``branches`` residual branches is multiplied by.

    ``x + f(x)`` adds the branch's variance to the input's at every block: with branches of
    the input's variance, ``L`` blocks multiply it by ``2**L``. Scaled by ``1/sqrt(L)`` each
    block adds ``1/L`` of it, and ``L`` blocks multiply it by ``(1 + 1/L)**L < e`` (Fixup's
    argument, Zhang et al. 2019); zero makes every block the identity (Goyal et al. 2017;
    SkipInit, De & Smith 2020).
    """
    return 0.0 if mode is BranchInit.ZERO else 1.0 / math.sqrt(branches)


class ResidualScale(Remedy):
    """Multiply the last weight layer of every residual branch by ``1/sqrt(number of
    branches)`` (residual sums that ran, so a block reused across depth counts each time), or
    zero it (``--branch-init zero``). A branch is found in the autograd graph as
    a sum ``x + f(x)`` whose one side is computed from the other, whatever the modules are
    called; its last layer is the Linear/Conv nearest the sum on the ``f`` side. For residual
    networks without normalisation, whose variance doubles at every block. Refused after
    ``--weights`` unless ``--force-reinit``.
    """

    id = "residual-scale"
    summary = "Scale (or zero) the last layer of each residual branch by 1/sqrt(branches)."
    reinitialises = True

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        refusal = reinit_refusal(context)
        if refusal is not None:
            return NotApplicable(self.id, refusal)
        ends = context.probe.structure.branch_ends
        if not ends:
            return NotApplicable(
                self.id, "no residual branch: no sum x + f(x) with a Linear/Conv layer in f"
            )
        mode = context.options.branch_init
        # Branches are counted as the sums that ran: one block called 24 times adds 24.
        branches = max(len(ends), context.probe.structure.branch_sums)
        factor = branch_factor(branches, mode)
        edits = tuple(Edit("scale", name, {"factor": factor}, self.id) for name in ends)
        what = "zeroed" if mode is BranchInit.ZERO else f"scaled by 1/sqrt({branches})"
        shared = f" ({branches} residual sums)" if branches > len(ends) else ""
        return Proposal(self.id, edits, (f"{len(ends)} residual branch end(s){shared} {what}",))
