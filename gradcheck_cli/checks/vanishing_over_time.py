"""The ``vanishing-over-time`` check: early time steps of a recurrent module get no gradient."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import Check, crossed
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import ModelStats, TemporalProfile


class VanishingOverTime(Check):
    """Gradients vanish over time: a recurrent module's last state forgets its first inputs.

    Symptom:
        For each nn.RNN, nn.LSTM and nn.GRU (sequences of 10 steps or more), the gradient of
        the module's last output step (projected on a random direction) with respect to each
        input step is measured. The mean over the first tenth of the steps is below 1e-3
        (warning) or 1e-6 (error) times the mean over the last tenth. For LSTM and GRU cells
        the finding is information between 1e-3 and 1e-12 while more than 1e-3 of the late
        gradient still reaches back half the sequence or more: their gates can learn to keep
        memory, and whether a task needs dependencies that long is not something gradients at
        initialisation show. When it reaches back less than half the sequence it is a warning
        (a default-init GRU over 60 tokens reaches 16: it cannot learn to recall the first
        token, and learns it at 10 tokens; bench/gru_first_token.md). Below 1e-12 it is a
        warning: the first steps' share of each weight
        gradient is then five orders of magnitude under float32's rounding (2^-23 = 1.2e-7),
        so no training signal from them reaches the weights; default-init LSTM and GRU cross
        it at about 70 steps. Measured (bench/rnn_learnability.md: hidden 64, label set by the
        first tenth of the steps, 400-3000 Adam steps, two seeds): no gated cell with a ratio
        of 5e-3 or less learned the task (LSTM/GRU default init at 50-300 steps, forget bias 1,
        bias 2 beyond 100 steps: chance), every one at 6.6e-3 or more did (chrono init at 300
        steps: 72-85%).
        Attention stacks get a profile too (the loss gradient reaching each position of the
        embedding output), which is reported and plotted but not judged: attention reaches every
        position in one step, and how much gradient a position gets follows the attention
        weights, not a product over time steps.

    Why it matters:
        The gradient from step T back to step t is a product of T - t Jacobians of the
        recurrence; when their norms stay below 1 it shrinks exponentially, so the weights
        cannot learn dependencies longer than a few steps (Bengio, Simard & Frasconi 1994;
        Pascanu, Mikolov & Bengio 2013). A vanilla RNN with PyTorch's default init is in this
        regime; so is an LSTM whose forget gates start near 0.5.

    Remedy:
        A cliff (every step before some step gets exactly no gradient, that step a normal
        share) is a cut, not a decay: a hidden state detached in forward. Remove the detach, or
        truncate no shorter than the task's longest dependency; no weight change helps. Else use
        a gated cell (LSTM, Hochreiter & Schmidhuber 1997; GRU, Cho et al. 2014) and start
        its gates remembering: forget-gate bias of 1 or more (Gers et al. 2000; Jozefowicz et
        al. 2015) or chrono initialisation matched to the sequence length (Tallec & Ollivier
        2018). If the task does not need the long range, truncate backpropagation through time
        to the horizon the gradient reaches. Gradient clipping treats the opposite failure,
        exploding gradients (Pascanu et al. 2013); it does not bring vanished gradients back.

    References:
        Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013; Hochreiter &
        Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000; Jozefowicz, Zaremba & Sutskever
        2015; Tallec & Ollivier 2018.
    """

    id = "vanishing-over-time"
    name = "Vanishing gradients over time"
    remedies = ("gated-cell", "gate-bias", "truncate-bptt")

    @dataclass(frozen=True)
    class Options:
        """Thresholds on the early-to-late gradient ratio of a recurrent module."""

        warning: float = 1e-3
        error: float = 1e-6
        gated_warning: float = 1e-12

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        return [
            finding
            for profile in stats.temporal
            if profile.method == "last step"
            for finding in self._judge(profile, options)
        ]

    def _cut(self, profile: TemporalProfile, cut: int, severity: Severity) -> Finding:
        """A cliff in the profile: a cut in the recurrence, named as such, with no remedy that
        changes weights (gate biases and truncation cannot bring back a detached state)."""
        steps = len(profile.norms)
        share = profile.norms[cut] / profile.late
        return Finding(
            id=self.id,
            severity=severity,
            layers=(profile.module or "(model)",),
            message=(
                f"{profile.label}: the gradient stops dead at step {cut + 1} of {steps}: the "
                f"{cut} step(s) before it get exactly none, while step {cut + 1} gets "
                f"{share:.1e} of the late gradient. That is a cut in the recurrence (a hidden "
                "state detached in forward: truncated backpropagation through time), not a slow "
                f"decay: the weights cannot learn from anything before step {cut + 1}; remove "
                "the detach, or truncate no shorter than the longest dependency of the task"
            ),
            evidence={
                "early_to_late": 0.0,
                "steps": steps,
                "reach_steps": profile.reach(),
                "cut_step": cut + 1,
            },
            remedies=(),
            why=self.section("Why it matters"),
        )

    def _judge(self, profile: TemporalProfile, options: Options) -> list[Finding]:
        ratio = profile.early_to_late
        if ratio is None or ratio >= options.warning:
            return []
        steps = len(profile.norms)
        short = profile.reach() < steps / 2
        if profile.gated:
            severity = Severity.WARNING if ratio < options.gated_warning or short else Severity.INFO
            remedies: tuple[str, ...] = ("gate-bias", "truncate-bptt")
        else:
            severity = Severity.ERROR if ratio < options.error else Severity.WARNING
            remedies = self.remedies
        cut = profile.cut_at()
        if cut is not None:
            return [self._cut(profile, cut, severity)]
        share = "none of" if ratio == 0 else f"{ratio:.1e} times"  # 0: underflowed float64
        if not (profile.gated and severity is Severity.WARNING):
            cannot = ""
        elif ratio < options.gated_warning:
            cannot = (
                "; that is below float32's rounding of the weight gradient, so the first steps "
                "cannot train the cell: if the output depends on them, start the gates "
                "remembering (gate-bias)"
            )
        else:
            cannot = (
                ", less than half the sequence: the cell cannot learn a dependency on the "
                "steps before that; if the output depends on them, start the gates "
                "remembering (gate-bias)"
            )
        return [
            Finding(
                id=self.id,
                severity=severity,
                layers=(profile.module or "(model)",),
                message=(
                    f"{profile.label}: the first {profile.window} input steps get {share} the "
                    f"gradient of the last {profile.window}; more than 1e-3 of it reaches back "
                    f"only {profile.reach()} of {steps} steps{cannot}"
                ),
                evidence={
                    "early_to_late": ratio,
                    "steps": steps,
                    "reach_steps": profile.reach(),
                    "threshold": (
                        (
                            options.gated_warning
                            if severity is Severity.WARNING and ratio < options.gated_warning
                            else options.warning
                        )
                        if profile.gated
                        else crossed(severity, options.warning, options.error)
                    ),
                },
                remedies=remedies,
                why=self.section("Why it matters"),
            )
        ]
