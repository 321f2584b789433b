"""The ``no-gradient`` check: trainable parameters that received no gradient."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import Check
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import LayerStats, ModelStats


class NoGradient(Check):
    """Trainable parameters that received no gradient, or an exactly zero one, in every step.

    Symptom:
        A layer with trainable parameters ends every step with ``.grad`` None (it is not
        connected to the loss) or exactly zero (the path is connected but blocked). Blocked
        layers are an error, unless the model holds a layer whose weights are all exactly zero:
        a deliberately zero-initialised head or residual branch (Goyal et al. 2017, ReZero,
        Fixup) blocks the gradient only until the first optimizer step, so that is reported as
        info. Layers that run but do not reach the loss used are info; layers that never run
        are a warning.

    Why it matters:
        A parameter without gradient never trains. When it is blocked (every unit above it
        dead, a zero multiplier, a detach) it is a bug; when it is unused, optimizers still
        keep state for it and DistributedDataParallel needs find_unused_parameters=True.

    Remedy:
        Look for dead units or a stray detach()/no_grad above the named layers; freeze unused
        parameters (requires_grad_(False)) or remove them; give loss_fn every output that
        should train.

    References:
        Goyal et al. 2017 (zero-init residual gamma); Zhang et al. 2019 (Fixup); Bachlechner et
        al. 2020 (ReZero).
    """

    id = "no-gradient"
    name = "Parameters without gradient"
    remedies = ("kaiming-init",)

    @dataclass(frozen=True)
    class Options:
        """No thresholds: a gradient missing in every step is reported."""

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        every = stats.steps
        trainable = [l for l in stats.layers if l.trainable and l.nonfinite.total == 0]
        blocked = [l for l in trainable if every and l.grad_zero_steps == every]
        detached = [l for l in trainable if every and l.grad_none_steps == every]
        zero_init = [l.display_name for l in stats.layers if l.zero_weights]
        why = self.section("Why it matters")
        findings = []
        if blocked:
            if zero_init:
                findings.append(
                    self._finding(
                        Severity.INFO,
                        blocked,
                        f"{len(blocked)} layer(s) get an exactly zero gradient, blocked by "
                        f"the zero-initialised layer(s) {_names(zero_init)}; this lasts only "
                        "until the first optimizer step updates those weights",
                        {"reason": "zero-init", "zero_initialised": zero_init},
                        why,
                        remedies=(),
                    )
                )
            else:
                findings.append(
                    self._finding(
                        Severity.ERROR,
                        blocked,
                        f"{len(blocked)} layer(s) get an exactly zero gradient in every step: "
                        f"{_names([l.display_name for l in blocked])}",
                        {"reason": "blocked"},
                        why,
                    )
                )
        called = [l for l in detached if l.calls > 0]
        unused = [l for l in detached if l.calls == 0]
        if called:
            findings.append(
                self._finding(
                    Severity.INFO,
                    called,
                    f"{len(called)} layer(s) run but do not reach the loss used: "
                    f"{_names([l.display_name for l in called])}",
                    {"reason": "not-in-loss"},
                    why,
                    remedies=(),
                )
            )
        if unused:
            findings.append(
                self._finding(
                    Severity.WARNING,
                    unused,
                    f"{len(unused)} layer(s) with trainable parameters never run in forward: "
                    f"{_names([l.display_name for l in unused])}",
                    {"reason": "unused"},
                    why,
                    remedies=(),
                )
            )
        return findings

    def _finding(
        self,
        severity: Severity,
        layers: list[LayerStats],
        message: str,
        evidence: dict[str, object],
        why: str,
        remedies: tuple[str, ...] | None = None,
    ) -> Finding:
        return Finding(
            id=self.id,
            severity=severity,
            layers=tuple(l.display_name for l in layers),
            message=message,
            evidence={"layers": len(layers), **evidence},  # type: ignore[dict-item]
            remedies=self.remedies if remedies is None else remedies,
            why=why,
        )


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:4])
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")
