"""Severity, findings, the report, and the pure function from report to exit code.

Every stage hands frozen data to the next: checks produce :class:`Finding` objects, the API wraps
them with the layer statistics in a :class:`Report`, and renderers only read ``Report.to_dict()``.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from gradcheck_cli.choices import Optimizer
from gradcheck_cli.stats import (
    LayerStats,
    LearningProbe,
    Measured,
    Skipped,
    Summary,
    TemporalProfile,
)
from gradcheck_cli.views import Printable

SCHEMA_VERSION = 1
SIGNIFICANT_DIGITS = 4


class Severity(str, enum.Enum):
    """How bad a finding is; ordered info < warning < error."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for error."""
        return [Severity.INFO, Severity.WARNING, Severity.ERROR].index(self)


class FailOn(str, enum.Enum):
    """The lowest severity that makes ``gradcheck diagnose`` exit with 1."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    NEVER = "never"


class Status(str, enum.Enum):
    """The model's overall verdict: the highest severity among the findings."""

    HEALTHY = "healthy"
    WARNING = "warning"
    ERROR = "error"


class ExitCode(enum.IntEnum):
    """Process exit codes, as in linters: 0 clean, 1 findings, 2 usage error."""

    OK = 0
    FINDINGS = 1
    USAGE_ERROR = 2
    INTERNAL_ERROR = 3
    INTERRUPTED = 130  # SIGINT (Ctrl-C), as shells report it: 128 + 2


Evidence = Mapping[str, float | int | str | list[Any] | Mapping[str, float]]


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem: what, how bad, where, the numbers behind it, and what to try."""

    id: str
    severity: Severity
    layers: tuple[str, ...]
    message: str
    evidence: Evidence
    remedies: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """What was diagnosed."""

    name: str
    type: str
    parameters: int
    trainable: int
    # Frozen parameters (requires_grad=False) by module (``encoder.*``) and how many values each.
    frozen: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class RunInfo:
    """How the measurement was run."""

    steps: int
    batch_size: int
    device: str
    loss: str
    seed: int
    seconds: float
    inputs: str
    torch: str
    amp: str = "none"
    shard: str = "none"  # under torchrun: ddp; batch_size is then the global batch
    world_size: int = 1


@dataclass(frozen=True)
class Checkpoint:
    """One measurement during training: after ``step`` optimizer steps."""

    step: int
    loss: float
    findings: tuple[tuple[str, Severity], ...]


@dataclass(frozen=True)
class Training:
    """What ``--train-steps`` did: the steps taken, checkpoints, trends and notes."""

    optimizer: Optimizer
    lr: float
    requested: int
    taken: int
    losses: tuple[float, ...]
    checkpoints: tuple[Checkpoint, ...]
    trends: dict[str, tuple[float | None, ...]]
    notes: tuple[str, ...] = ()
    stopped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the report's ``training`` key."""

        return {
            "optimizer": self.optimizer.value,
            "lr": self.lr,
            "requested_steps": self.requested,
            "steps_taken": self.taken,
            "stopped": self.stopped,
            "losses": [plain_number(v) for v in self.losses],
            "checkpoints": [
                {
                    "step": c.step,
                    "loss": plain_number(c.loss),
                    "findings": [f"{i}:{s.value}" for i, s in c.findings],
                }
                for c in self.checkpoints
            ],
            "grad_rms_trends": {
                name: [plain_number(v) for v in series] for name, series in self.trends.items()
            },
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Report(Printable):
    """The result of a diagnosis: findings plus the per-layer statistics they rest on."""

    model: ModelInfo
    run: RunInfo
    findings: tuple[Finding, ...]
    layers: tuple[LayerStats, ...]
    losses: tuple[float, ...] = field(default=())
    tool_version: str = ""
    training: Training | None = None  # after --train-steps
    temporal: tuple[TemporalProfile, ...] = ()  # sequence models: gradient per time step
    learning: LearningProbe | None = None  # after --learn N

    @property
    def status(self) -> Status:
        """``error`` if any finding is an error, else ``warning`` if any is, else ``healthy``."""
        worst = max((f.severity.rank for f in self.findings), default=-1)
        if worst >= Severity.ERROR.rank:
            return Status.ERROR
        if worst >= Severity.WARNING.rank:
            return Status.WARNING
        return Status.HEALTHY

    def to_dict(self) -> dict[str, Any]:
        """Builtin types only, deterministically ordered, floats rounded to 4 significant digits."""
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "gradcheck", "version": self.tool_version},
            "model": {
                "name": self.model.name,
                "type": self.model.type,
                "parameters": self.model.parameters,
                "trainable": self.model.trainable,
                **(
                    {"frozen": [{"name": n, "parameters": c} for n, c in self.model.frozen]}
                    if self.model.frozen
                    else {}
                ),
            },
            "run": {
                "steps": self.run.steps,
                "batch_size": self.run.batch_size,
                "device": self.run.device,
                "loss": self.run.loss,
                "seed": self.run.seed,
                "seconds": plain_number(self.run.seconds),
                "inputs": self.run.inputs,
                "torch": self.run.torch,
                "amp": self.run.amp,
                "shard": self.run.shard,
                "world_size": self.run.world_size,
                "losses": [plain_number(v) for v in self.losses],
            },
            "status": self.status.value,
            "findings": [_finding_dict(f) for f in _sorted_findings(self.findings)],
            "layers": [_layer_dict(layer) for layer in self.layers],
            **({"temporal": [_temporal_dict(t) for t in self.temporal]} if self.temporal else {}),
            **({"training": self.training.to_dict()} if self.training is not None else {}),
            **({"learning": _learning_dict(self.learning)} if self.learning is not None else {}),
        }

    def to_yaml(self) -> str:
        """The report as YAML (the format of ``--format yaml`` and ``--report *.yaml``)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    def to_json(self) -> str:
        """The report as JSON (the format of ``--format json`` and ``--report *.json``)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


def exit_code(report: Report, fail_on: FailOn) -> ExitCode:
    """1 when a finding reaches ``fail_on``, else 0. Pure, so it is unit-tested directly."""
    if fail_on is FailOn.NEVER:
        return ExitCode.OK
    threshold = Severity(fail_on.value).rank
    if any(f.severity.rank >= threshold for f in report.findings):
        return ExitCode.FINDINGS
    return ExitCode.OK


def _sorted_findings(findings: tuple[Finding, ...]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.id, f.layers))


def plain_number(x: float | None) -> float | int | str | None:
    """Round to fixed significant digits; NaN and Inf become the strings 'nan', 'inf', '-inf'.

    Every machine-readable document (report, comparison, training record) goes through this,
    so numbers look the same everywhere and JSON stays strict. None passes through.
    """
    if x is None:
        return None
    if isinstance(x, bool) or isinstance(x, int):
        return x
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return plain_number(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "id": f.id,
        "severity": f.severity.value,
        "layers": list(f.layers),
        "message": f.message,
        "evidence": _plain(f.evidence),
        "remedies": list(f.remedies),
        "why": f.why,
    }


def _measured(stat: Measured) -> dict[str, Any]:
    if isinstance(stat, Skipped):
        return {"skipped": stat.reason}
    assert isinstance(stat, Summary)
    return {
        "median": plain_number(stat.median),
        "min": plain_number(stat.low),
        "max": plain_number(stat.high),
    }


def _layer_dict(layer: LayerStats) -> dict[str, Any]:
    return {
        "name": layer.display_name,
        "type": layer.type,
        "kind": layer.kind.value,
        "order": layer.order,
        "calls": layer.calls,
        "params": layer.params,
        "trainable": layer.trainable,
        "grad_rms": _measured(layer.grad_rms),
        "grad_norm": _measured(layer.grad_norm),
        "weight_norm": _measured(layer.weight_norm),
        "grad_to_weight": _measured(layer.grad_to_weight),
        "act_rms": _measured(layer.act_rms),
        "in_rms": _measured(layer.in_rms),
        "out_grad_rms": _measured(layer.out_grad_rms),
        "dead_fraction": _measured(layer.dead_fraction),
        "saturated_fraction": _measured(layer.saturated_fraction),
        "underflow_fraction": _measured(layer.underflow_fraction),
        "nonfinite": {
            "activations": layer.nonfinite.activations,
            "output_grads": layer.nonfinite.output_grads,
            "param_grads": layer.nonfinite.param_grads,
        },
        "grad_none_steps": layer.grad_none_steps,
        "grad_zero_steps": layer.grad_zero_steps,
        "zero_weights": layer.zero_weights,
        "near_zero_weights": layer.near_zero_weights,
        "feeds_norm": layer.feeds_norm,
        "depth": layer.depth,
        "successor": layer.successor,
        "residual_scale": layer.residual_scale,
        "attention_score": layer.attention_score,
    }


# Longer profiles are averaged over buckets of consecutive steps to keep reports small.
PROFILE_POINTS = 64


def _learning_dict(probe: LearningProbe) -> dict[str, Any]:
    return {
        "verdict": probe.verdict,
        "asked": probe.asked,
        "reason": probe.reason,
        "optimizer": probe.optimizer,
        "lr": probe.lr,
        "momentum": probe.momentum,
        "requested_steps": probe.requested,
        "steps_taken": probe.taken,
        "seconds": plain_number(probe.seconds),
        "heldout_start": plain_number(probe.start),
        "heldout_end": plain_number(probe.end),
        "input_blind": plain_number(probe.blind),
        "still_layers": list(probe.still),
    }


def _temporal_dict(profile: TemporalProfile) -> dict[str, Any]:
    stride, means = profile.buckets(PROFILE_POINTS)
    ratio = profile.early_to_late
    return {
        "module": profile.module or "(model)",
        "cell": profile.cell,
        "method": profile.method,
        "steps": len(profile.norms),
        "early_to_late": plain_number(ratio) if ratio is not None else None,
        "reach_steps": profile.reach(),
        **({"axis": profile.axis} if profile.axis is not None else {}),
        "stride": stride,
        "profile": [plain_number(m) for m in means],
    }
