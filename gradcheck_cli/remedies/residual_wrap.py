"""``residual-wrap``: turn shape-preserving blocks into ``y = x + f(x)`` (He et al. 2016)."""

from __future__ import annotations

from torch import nn

from gradcheck_cli.remedies.base import NotApplicable, Proposal, Remedy, RemedyContext
from gradcheck_cli.remedies.edits import Edit
from gradcheck_cli.remedies.modules import Residual  # re-exported: saved models name it here
from gradcheck_cli.remedies.probe import Probe


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _blocks(container: nn.Sequential) -> list[tuple[int, int]]:
    """Split a Sequential into blocks: a child with parameters plus the parameter-free children
    (activations, dropout) that follow it up to the next child with parameters."""
    blocks: list[tuple[int, int]] = []
    start: int | None = None
    for i, child in enumerate(container):
        if _has_params(child):
            if start is not None:
                blocks.append((start, i))
            start = i
    if start is not None:
        blocks.append((start, len(container)))
    return blocks


def _preserves_shape(probe: Probe, prefix: str, start: int, end: int) -> tuple[bool, str]:
    first = probe.first(f"{prefix}{start}")
    last = probe.first(f"{prefix}{end - 1}")
    if first is None or last is None:
        return False, "did not run"
    if not (first.plain and last.plain):
        # x + block(x) needs one tensor in and one out: a block returning (x, penalty)
        # cannot be wrapped, and trying it made the whole fix fail.
        return False, "takes or returns more than one tensor"
    if first.in_shape is None or first.in_shape != last.out_shape:
        return False, f"changes shape {first.in_shape} -> {last.out_shape}"
    return True, ""


class ResidualWrap(Remedy):
    """Wrap each shape-preserving block of an ``nn.Sequential`` (a layer with parameters and the
    parameter-free modules after it) as ``x + block(x)``, and each shape-preserving element of
    an ``nn.ModuleList`` (assumed to be applied in sequence, as in transformer stacks). Shapes are
    checked on a real forward pass; blocks already inside a Residual are left.
    """

    id = "residual-wrap"
    summary = "Wrap shape-preserving blocks as y = x + f(x)."

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        edits: list[Edit] = []
        skipped: list[str] = []
        for name, module in model.named_modules():
            # A ModuleList has no forward of its own: only its elements are seen running.
            runs = isinstance(module, nn.ModuleList) or context.probe.ran(name)
            if isinstance(module, Residual) or not runs:
                continue
            prefix = f"{name}." if name else ""
            if isinstance(module, nn.Sequential):
                groups = []
                for start, end in _blocks(module):
                    ok, why = _preserves_shape(context.probe, prefix, start, end)
                    if ok:
                        groups.append([start, end])
                    else:
                        skipped.append(f"{prefix}{start}: {why}")
                if groups:
                    edits.append(Edit("residual-group", name, {"groups": groups}, self.id))
            elif isinstance(module, nn.ModuleList):
                for i, child in enumerate(module):
                    if not _has_params(child) or isinstance(child, Residual):
                        continue
                    ok, why = _preserves_shape(context.probe, prefix, i, i + 1)
                    if ok:
                        edits.append(Edit("residual", f"{prefix}{i}", {}, self.id))
                    else:
                        skipped.append(f"{prefix}{i}: {why}")
        # Inner containers first, so the names an edit refers to are still valid when it runs;
        # for one module that is both grouped (a Sequential) and wrapped whole (an element of a
        # ModuleList), the grouping inside it first: once wrapped it is a Residual.
        edits.sort(
            key=lambda e: (-e.target.count(".") - (1 if e.target else 0), e.op == "residual")
        )
        notes = (f"not wrapped: {'; '.join(skipped[:6])}",) if skipped else ()
        if not edits:
            return NotApplicable(
                self.id,
                "no shape-preserving block in an nn.Sequential or nn.ModuleList"
                + (f" ({'; '.join(skipped[:3])})" if skipped else ""),
            )
        return Proposal(self.id, tuple(edits), notes)
