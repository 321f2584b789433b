"""The ``vanishing-over-time`` check: early time steps of a recurrent module get no gradient."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.checks.base import Check, crossed
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import INPUT, ModelStats, TemporalProfile


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
        A cliff (every step before some step gets exactly no gradient) is an error: nothing
        before it can train the model, whatever the task.
        Every model with an embedding also gets a model-level profile: the diagnosis loss's
        gradient reaching each position of the first embedding's output, whatever lies between
        (hand-written cells, scans, convolutions). Judged where no recurrent module was profiled:
        leading positions that get exactly no gradient are an error (the output cannot depend
        on them: a convolution stack's receptive field, a state detached in forward, a crop),
        with the receptive field computed from the 1-D convolutions' kernel sizes and
        dilations; a first tenth below 1e-3 of the last tenth, reaching back less than half the
        sequence, is a warning (a diagonal recurrence decaying at |lambda| = 0.5, a selective
        scan that forgets). Never an error: whether the task needs the early positions is not
        something gradients at initialisation show (a default GRU on a recent-context task
        trains with 1e-21). The decay of an attention stack's profile is reported and plotted
        but not judged: attention reaches every position in one step, and how much gradient a
        position gets follows the attention weights, not a product over time steps. Its
        cliff is judged as above: leading positions with exactly no gradient are masked out
        of the output's view (a local window: two layers of window 8 see 15 positions) or cut.

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
        modules = [p for p in stats.temporal if p.method == "last step"]
        # Where the model-level profile found the positions' gradient dropped, if it did.
        place = next(
            ((p.cut_operation, p.cut_source) for p in stats.temporal if p.cut_operation),
            ("", ""),
        )
        findings = [f for profile in modules for f in self._judge(profile, options, place)]
        for profile in stats.temporal:
            if profile.cell in ("model", "attention"):
                findings.extend(self._judge_model(profile, modules, options))
        return findings

    def _judge_model(
        self, profile: TemporalProfile, modules: list[TemporalProfile], options: Options
    ) -> list[Finding]:
        """The model-level profile (the loss gradient at the embedding output): a cliff is a
        structural cut (unless a recurrent module's profile already named one); a decay is
        judged only where no recurrent module was profiled, which says more, and never for an
        attention stack, where it follows the attention weights. A cliff in an attention stack
        is a mask or window the output cannot see past, or a cut."""
        steps = len(profile.norms)
        place = "the input" if profile.module == INPUT else f"{profile.module} output"
        where = f"{place} ({steps} positions along axis {profile.axis})"
        cut = profile.cut_at()
        if cut is not None:
            if any(p.cut_at() is not None for p in modules):
                return []
            return [self._unseen(profile, cut, where)]
        ratio = profile.early_to_late
        reach = profile.reach()
        if (
            profile.cell == "attention"
            or modules
            or ratio is None
            or ratio >= options.warning
            or reach >= steps / 2
        ):
            return []
        share = "none of" if ratio == 0 else f"{ratio:.1e} times"
        return [
            Finding(
                id=self.id,
                severity=Severity.WARNING,
                layers=(profile.module or "(model)",),
                message=(
                    f"{where}: the first {profile.window} positions get {share} the loss's "
                    f"gradient of the last {profile.window}; more than 1e-3 of it reaches back "
                    f"only {reach} of {steps} positions: the model cannot learn a dependency of "
                    "its output on the positions before that. If it needs one, make the "
                    "recurrence remember (decays near 1: gate biases, eigenvalues near the unit "
                    "circle, Orvieto et al. 2023) or let attention reach back"
                ),
                evidence={
                    "early_to_late": ratio,
                    "steps": steps,
                    "reach_steps": reach,
                    "threshold": options.warning,
                },
                remedies=(),
                why=self.section("Why it matters"),
            )
        ]

    def _unseen(self, profile: TemporalProfile, cut: int, where: str) -> Finding:
        """Leading positions of the model-level profile that get exactly no gradient. An error
        when their values still reach the loss (a cut graph: a state detached in forward);
        else the output never sees them (a receptive field, a crop): a warning when it sees
        less than half the sequence, information otherwise, since whether the task needs the
        positions it does not see is not something gradients show."""
        steps = len(profile.norms)
        reach = steps - cut
        field = profile.receptive_field
        layers: tuple[str, ...] = (profile.module or "(model)",)
        operation, source = profile.cut_operation, profile.cut_source
        if profile.cut_values_reach:
            severity = Severity.ERROR
            at = f" ({source})" if source else ""
            stop = (
                f"the gradient stops at {operation}{at}"
                if operation
                else "a state detached in forward (truncated backpropagation through time) or "
                "a tensor taken out of the graph"
            )
            cause = (
                "their values still reach the loss (noise added to them changes it) while their "
                f"gradient is cut on the way: {stop}. Nothing before position {cut + 1} can "
                "train the model: remove the cut, or truncate no shorter than the longest "
                "dependency of the task"
            )
        else:
            severity = Severity.WARNING if reach < steps / 2 else Severity.INFO
            if field is not None and reach <= field:
                names = ", ".join(profile.convolutions[:4]) + (
                    ", ..." if len(profile.convolutions) > 4 else ""
                )
                cause = (
                    f"the output never sees them: the 1-D convolutions ({names}) see {field} "
                    "steps in series (1 + sum of (kernel size - 1) x dilation). If the task "
                    "depends on anything further back, widen the receptive field past it (more "
                    "layers, dilations doubling per layer: Oord et al. 2016, Bai et al. 2018) or "
                    "pool over every position"
                )
                layers = profile.convolutions
            else:
                cause = (
                    "the output never sees them (a crop of the sequence, a mask, a window). If "
                    "the task depends on them, let the model read them"
                )
        return Finding(
            id=self.id,
            severity=severity,
            layers=layers,
            message=(
                f"{where}: the loss's gradient reaches only the last {reach} of {steps} "
                f"positions; the {cut} before them get exactly none, and {cause}"
            ),
            evidence={
                "early_to_late": 0.0,
                "steps": steps,
                "reach_steps": reach,
                "cut_step": cut + 1,
                "values_reach": bool(profile.cut_values_reach),
                **({"reason": "cut"} if profile.cut_values_reach else {}),
                **({"operation": operation} if operation else {}),
                **({"source": source} if source else {}),
                **({"receptive_field": field} if field is not None else {}),
            },
            remedies=(),
            why=self.section("Why it matters"),
        )

    def _cut(self, profile: TemporalProfile, cut: int, place: tuple[str, str]) -> Finding:
        """A cliff in the profile: a cut in the recurrence, named as such, an error whatever the
        cell, with no remedy that changes weights (gate biases and truncation cannot bring back
        a detached state); ``place`` is where the model-level profile found it, if it did."""
        steps = len(profile.norms)
        share = profile.norms[cut] / profile.late
        operation, source = place
        return Finding(
            id=self.id,
            severity=Severity.ERROR,
            layers=(profile.module or "(model)",),
            message=(
                f"{profile.label}: the gradient stops dead at step {cut + 1} of {steps}: the "
                f"{cut} step(s) before it get exactly none, while step {cut + 1} gets "
                f"{share:.1e} of the late gradient. That is a cut in the recurrence (a hidden "
                "state detached in forward: truncated backpropagation through time"
                + (f"; here {operation}" if operation else "")
                + (f" at {source}" if source else "")
                + "), not a slow "
                f"decay: the weights cannot learn from anything before step {cut + 1}; remove "
                "the detach, or truncate no shorter than the longest dependency of the task"
            ),
            evidence={
                "early_to_late": 0.0,
                "steps": steps,
                "reach_steps": profile.reach(),
                "cut_step": cut + 1,
                "reason": "cut",
                **({"operation": operation} if operation else {}),
                **({"source": source} if source else {}),
            },
            remedies=(),
            why=self.section("Why it matters"),
        )

    def _judge(
        self, profile: TemporalProfile, options: Options, place: tuple[str, str] = ("", "")
    ) -> list[Finding]:
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
            return [self._cut(profile, cut, place)]
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
