"""What ``fix`` produces and how it is saved: per-remedy verdicts, trials, the
:class:`FixResult`, and :func:`save_fix`, which writes the output folder atomically.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from gradcheck_cli.atomic import ordinary_mode, write_error
from gradcheck_cli.errors import OutputError, UsageError
from gradcheck_cli.findings import SCHEMA_VERSION, Report, plain_number
from gradcheck_cli.remedies.ops import overwrites
from gradcheck_cli.remedies.plan import Plan
from gradcheck_cli.remedies.verdict import Verdict, score
from gradcheck_cli.specs import spec_relative_to
from gradcheck_cli.stats import LearningProbe
from gradcheck_cli.views import Printable


def _learned(probe: LearningProbe) -> dict[str, Any]:
    """A trial's learning probe in the fix report: its verdict and held-out losses."""
    return {
        "verdict": probe.verdict,
        "heldout_start": plain_number(probe.start),
        "heldout_end": plain_number(probe.end),
        "input_blind": plain_number(probe.blind) if probe.blind is not None else None,
        "steps": probe.taken,
    }


@dataclass(frozen=True)
class RemedyOutcome:
    """One remedy: its verdict when tried alone, its notes, or why it did not apply."""

    remedy: str
    verdict: Verdict
    reason: str = ""
    notes: tuple[str, ...] = ()
    edits: int = 0


@dataclass(frozen=True)
class Trial:
    """A set of remedies applied together and the diagnosis of the result."""

    remedies: tuple[str, ...]
    plan: Plan
    report: Report
    verdict: Verdict

    @property
    def score(self) -> int:
        """100 per error, 10 per warning in the trial's diagnosis."""
        return score(self.report)


@dataclass(frozen=True)
class FixResult(Printable):
    """What ``fix`` found: before, the chosen trial (or none), every outcome and trial."""

    before: Report
    chosen: Trial | None
    outcomes: tuple[RemedyOutcome, ...]
    trials: tuple[Trial, ...]
    model: nn.Module
    message: str
    probe_losses: dict[str, list[float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def after(self) -> Report:
        """The diagnosis of the returned model (the original's when nothing was applied)."""
        return self.chosen.report if self.chosen is not None else self.before

    @property
    def plan(self) -> Plan:
        """The chosen plan (empty when nothing was applied)."""
        return self.chosen.plan if self.chosen is not None else Plan(edits=())

    def to_dict(self) -> dict[str, Any]:
        """The fix report: before and after in the diagnose schema, plus the verdicts."""
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "gradcheck", "version": self.before.tool_version},
            "message": self.message,
            "notes": list(self.notes),
            "chosen": list(self.chosen.remedies) if self.chosen else [],
            # Every value of the model that the chosen plan replaces, edit by edit.
            "overwritten": [
                {
                    "remedy": e.remedy,
                    "op": e.op,
                    "target": e.target or "(root)",
                    "what": overwrites(e),
                }
                for e in self.plan.edits
            ],
            "remedies": [
                {
                    "remedy": o.remedy,
                    "verdict": o.verdict.value,
                    "reason": o.reason,
                    "notes": list(o.notes),
                    "edits": o.edits,
                }
                for o in self.outcomes
            ],
            "trials": [
                {
                    "remedies": list(t.remedies),
                    "verdict": t.verdict.value,
                    "status": t.report.status.value,
                    "score": t.score,
                    "findings": [f"{f.id}:{f.severity.value}" for f in t.report.findings],
                    **(
                        {"learning": _learned(t.report.learning)}
                        if t.report.learning is not None
                        else {}
                    ),
                }
                for t in self.trials
            ],
            "probe_losses": {
                k: [plain_number(v) for v in vs] for k, vs in self.probe_losses.items()
            },
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }

    def to_yaml(self) -> str:
        """The fix report as YAML (report.yaml in the output folder)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)


def memory_note(model: nn.Module, device: torch.device) -> str:
    """A warning when the copies that ``fix`` makes may not fit: "" when they do.

    ``diagnose`` never copies the model; ``fix`` holds the original, one trial copy and the
    chosen copy at once, so it needs about twice the model's size free.
    """
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    free = _free_bytes(device)
    if free is None or 2 * size <= 0.5 * free:
        return ""
    return (
        f"memory is short: fix copies the model ({size / 2**20:.0f} MiB) for each trial and "
        f"about {free / 2**20:.0f} MiB is free on {device}; use --remedy to try fewer remedies"
    )


def _free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_output(output: Path) -> Path:
    """Refuse an output folder that exists and is not empty, or whose parent is missing.

    Returns the parent folder. Called before any work, and again right before writing.
    """
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UsageError(f"--output '{output}' exists and is not empty; name a new folder")
    parent = output.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"--output '{output}': folder '{parent}' does not exist")
    return parent


class _Discard(io.RawIOBase):
    """A binary sink: what is written is counted and dropped."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


class _ShapesOnly(pickle.Pickler):
    """Pickles a model as ``torch.save`` would, with tensors replaced by a reference: the check
    costs no copy of the weights."""

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, (torch.Tensor, torch.UntypedStorage, torch.TypedStorage)):
            return id(obj)
        return None


def check_picklable(model: nn.Module) -> None:
    """Refuse, before any trial, a model that ``--output`` could not save as model.pt.

    ``torch.save`` pickles the module: its classes must be importable by name, so a class
    defined inside ``build_model`` cannot be saved, and a TorchScript module is saved with
    ``torch.jit.save`` instead.
    """
    advice = "drop --output to see the verdicts, or define the model's classes at module level"
    if isinstance(model, torch.jit.ScriptModule):
        raise UsageError(
            "fix --output cannot save a TorchScript model as model.pt (fixing rewrites its Python "
            "modules); pass the model's code (FILE.py or package.module:NAME)"
        )
    try:
        _ShapesOnly(_Discard(), protocol=pickle.DEFAULT_PROTOCOL).dump(model)
    except Exception as exc:  # pickle raises PicklingError, AttributeError, TypeError, ...
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"fix --output cannot save this model ({detail}); {advice}") from exc


def save_fix(result: FixResult, output: Path, source: str = "") -> None:
    """Write model.pt, state_dict.pt, plan.yaml and report.yaml into a new folder, atomically.

    ``source`` is the model spec, for the plan when no remedy was applied (an empty plan still
    says where the saved model's classes come from).

    Everything is written into a temporary folder beside ``output`` and renamed into place at
    the end, so a failure leaves nothing behind. An existing non-empty folder is refused. A
    symbolic link to an empty folder is written through: the folder it points to is filled
    and the link kept.
    """
    parent = check_output(output)
    output = output.resolve() if output.is_symlink() else output
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=parent))
    except OSError as exc:
        raise write_error(output, exc) from exc
    try:
        _save(result.model, staging / "model.pt", output)
        _save(result.model.state_dict(), staging / "state_dict.pt", output)
        # The source relative to the plan, so DIR/model.pt reloads from any folder.
        plan = replace(result.plan, source=spec_relative_to(result.plan.source or source, output))
        (staging / "plan.yaml").write_text(plan.to_yaml(), encoding="utf-8")
        (staging / "report.yaml").write_text(result.to_yaml(), encoding="utf-8")
        for path in staging.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        staging.chmod(ordinary_mode(folder=True))  # mkdtemp makes it private
        if output.exists():
            output.rmdir()
        os.replace(staging, output)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise write_error(output, exc) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _save(obj: Any, path: Path, output: Path) -> None:
    """``torch.save`` with its write failures as an :class:`OutputError`.

    torch writes through its own C++ writer, which reports a short write (a full disk, a
    file-size limit) as a RuntimeError such as "unexpected pos 64 vs 0" or "iostream error"
    rather than as an OSError. Whether the model pickles was checked before the trials, so a
    RuntimeError here is the file that could not be written.
    """
    try:
        torch.save(obj, path)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutputError(
            f"cannot write '{output}': saving {path.name} failed ({detail}); is the disk full?"
        ) from exc
    # torch 2.4 and older do not check their last buffered write: a full disk can leave the
    # archive cut short without an error. A whole one ends in its zip directory.
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        raise OutputError(
            f"cannot write '{output}': saving {path.name} failed (cut short at {size} bytes);"
            " is the disk full?"
        )
