"""The ``nothing-measured`` check: a run that measured no training step is not healthy."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import Check
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import LayerStats, ModelStats, Summary


class NothingMeasured(Check):
    """Nothing was measured: no step was recorded, or no layer got a gradient or an activation.

    Symptom:
        The run recorded no step at all: ``watch()`` around a loop whose model was in
        ``eval()`` mode or ran under ``torch.no_grad()``, whose backward pass did not go
        through the model's output, or an empty ``with watch(...)`` block (with
        ``manual=True``: no ``begin_step()`` before an ``end_step()``). Or steps were recorded
        but not one measured layer received a gradient or produced an output in any of them.

    Why it matters:
        Every other check reads measured statistics. Without any, each of them stays silent
        and the report would say healthy about a model it never saw train: a CI gate would
        pass on nothing. The finding is an error so that such a run fails like a sick one.

    Remedy:
        Put the model in training mode (``model.train()``) before the loop, run the loop
        inside the ``with watch(...)`` block, call ``backward()`` on a loss computed from the
        model's output, and with ``manual=True`` call ``begin_step()`` before the step's
        forward pass and ``end_step()`` after its backward pass.

    References:
        PyTorch documentation: ``nn.Module.train``/``eval``, ``torch.no_grad`` and the
        autograd mechanics note (hooks fire only in passes that record a graph).
    """

    id = "nothing-measured"
    name = "Nothing measured"

    @dataclass(frozen=True)
    class Options:
        """No thresholds: a run without a single measurement is an error."""

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        if stats.steps and (not stats.layers or any(_measured(l) for l in stats.layers)):
            return []
        if stats.steps == 0:
            what = "no training step was recorded"
        else:
            what = (
                f"{stats.steps} step(s) were recorded, but no layer got a gradient or produced "
                "an output in any of them"
            )
        cause = f" ({stats.unmeasured})" if stats.unmeasured else ""
        return [
            Finding(
                id=self.id,
                severity=Severity.ERROR,
                layers=(),
                message=(
                    f"nothing was measured: {what}{cause}; without a statistic the model cannot "
                    "be called healthy: measure training steps (model.train(), a backward pass "
                    "through the model's output, inside the with block)"
                ),
                evidence={"steps": stats.steps, "layers": len(stats.layers)},
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]


def _measured(layer: LayerStats) -> bool:
    return isinstance(layer.grad_norm, Summary) or isinstance(layer.act_rms, Summary)
