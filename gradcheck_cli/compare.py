"""Baselines: compare two reports layer by layer and finding by finding.

Works on the plain report documents (``Report.to_dict()`` or a YAML/JSON file), so a baseline
written by any earlier run, or by another machine, can be compared. A regression is a finding
that is new or more severe and reaches ``--fail-on``, or a layer whose gradient RMS moved by
more than ``factor`` *away from the healthy band* of the gradient-to-weight ratio. A finding that
disappears or drops in severity, and a layer that moves toward the band, is an improvement: a
cure compared against its broken baseline passes. A move beyond ``factor`` inside the band is
reported, and does not fail. Layers that appear, disappear or were renamed are reported as such.
"""

from __future__ import annotations

import enum
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gradcheck_cli.config import read_text
from gradcheck_cli.errors import UsageError, require_file
from gradcheck_cli.findings import SCHEMA_VERSION, FailOn, Report, Severity, plain_number
from gradcheck_cli.views import Printable


class LayerChange(str, enum.Enum):
    """How one layer's gradient RMS compares with the baseline."""

    UNCHANGED = "unchanged"
    DROPPED = "dropped"
    ROSE = "rose"
    ADDED = "added"
    REMOVED = "removed"
    RENAMED = "renamed"


class Direction(str, enum.Enum):
    """Where a layer's move took its gradient-to-weight ratio, relative to the healthy band."""

    NONE = ""  # not moved beyond the factor, or nothing to compare
    TOWARD = "toward the healthy band"
    AWAY = "away from the healthy band"
    WITHIN = "within the healthy band"


# The healthy band of a layer's gradient-to-weight ratio ||grad W|| / ||W||: the thresholds at
# which ``vanishing`` (median below 1e-5) and ``exploding`` (median above 1) start to warn. A
# report file carries no thresholds and this module reads report files only, hence the copy;
# tests/test_ci.py checks it against the checks' defaults.
HEALTHY_RATIO = (1e-5, 1.0)


def band_distance(ratio: float | None) -> float | None:
    """Decades between a gradient-to-weight ratio and the healthy band (0 inside it); infinite
    for a zero, infinite or NaN ratio; None when unknown."""
    if ratio is None:
        return None
    low, high = HEALTHY_RATIO
    if math.isnan(ratio) or ratio <= 0 or math.isinf(ratio):
        return math.inf
    if ratio < low:
        return math.log10(low / ratio)
    if ratio > high:
        return math.log10(ratio / high)
    return 0.0


class FindingChange(str, enum.Enum):
    """How one finding id compares with the baseline."""

    NEW = "new"
    WORSE = "worse"
    UNCHANGED = "unchanged"
    BETTER = "better"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class LayerDiff:
    """One layer: gradient RMS before and after, and the verdict."""

    name: str
    type: str
    old: float | None
    new: float | None
    change: LayerChange
    old_name: str = ""
    old_ratio: float | None = None
    new_ratio: float | None = None

    @property
    def factor(self) -> float | None:
        """new / old; inf when the gradient appeared, 0 when it vanished."""
        if self.old is None or self.new is None:
            return None
        if self.old == 0:
            return 1.0 if self.new == 0 else math.inf
        return self.new / self.old

    @property
    def direction(self) -> Direction:
        """For a gradient that dropped or rose beyond the factor: whether its ratio moved
        toward, away from or within the healthy band (away when a ratio is unknown)."""
        if self.change not in (LayerChange.DROPPED, LayerChange.ROSE):
            return Direction.NONE
        was, now = band_distance(self.old_ratio), band_distance(self.new_ratio)
        if was is None or now is None:
            return Direction.AWAY
        if now > was:
            return Direction.AWAY
        if now < was:
            return Direction.TOWARD
        return Direction.WITHIN

    @property
    def regression(self) -> bool:
        """A gradient that moved beyond the factor, away from the healthy band."""
        return self.direction is Direction.AWAY

    @property
    def improvement(self) -> bool:
        """A gradient that moved beyond the factor, toward the healthy band."""
        return self.direction is Direction.TOWARD


@dataclass(frozen=True)
class FindingDiff:
    """One finding id: worst severity before and after."""

    id: str
    old: Severity | None
    new: Severity | None
    change: FindingChange
    regression: bool
    message: str = ""
    layers: tuple[str, ...] = ()

    @property
    def improvement(self) -> bool:
        """The finding disappeared or dropped in severity."""
        return self.change in (FindingChange.BETTER, FindingChange.RESOLVED)


@dataclass(frozen=True)
class Comparison(Printable):
    """Everything ``gradcheck compare`` and ``diagnose --baseline`` report."""

    old_model: str
    new_model: str
    old_status: str
    new_status: str
    factor: float
    fail_on: FailOn
    layers: tuple[LayerDiff, ...]
    findings: tuple[FindingDiff, ...]

    @property
    def regressed(self) -> bool:
        """True when any finding or layer regressed: the exit code is then 1."""
        return any(f.regression for f in self.findings) or any(l.regression for l in self.layers)

    @property
    def improvements(self) -> int:
        """How many findings and layers got better."""
        return sum(f.improvement for f in self.findings) + sum(l.improvement for l in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, deterministically ordered."""

        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "comparison",
            "old": {"model": self.old_model, "status": self.old_status},
            "new": {"model": self.new_model, "status": self.new_status},
            "regression_factor": self.factor,
            "fail_on": self.fail_on.value,
            "regressed": self.regressed,
            "improvements": self.improvements,
            "findings": [
                {
                    "id": f.id,
                    "old": f.old.value if f.old else None,
                    "new": f.new.value if f.new else None,
                    "change": f.change.value,
                    "regression": f.regression,
                    "improvement": f.improvement,
                    "message": f.message,
                    "layers": list(f.layers),
                }
                for f in self.findings
            ],
            "layers": [
                {
                    "name": l.name,
                    "type": l.type,
                    "old_grad_rms": plain_number(l.old),
                    "new_grad_rms": plain_number(l.new),
                    "factor": plain_number(l.factor),
                    "old_grad_to_weight": plain_number(l.old_ratio),
                    "new_grad_to_weight": plain_number(l.new_ratio),
                    "change": l.change.value,
                    "direction": l.direction.value,
                    "old_name": l.old_name,
                    "regression": l.regression,
                    "improvement": l.improvement,
                }
                for l in self.layers
            ],
        }


def load_report(path: Path) -> dict[str, Any]:
    """A report document from a YAML or JSON file (a fix report gives its ``after``)."""
    require_file(path, f"report '{path}'")
    text = read_text(path, UsageError)
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise UsageError(
            f"'{path}' is not valid {path.suffix.lstrip('.').upper() or 'YAML'}"
        ) from exc
    if isinstance(data, Mapping) and "after" in data and "layers" not in data:
        data = data["after"]
    if not isinstance(data, Mapping) or "layers" not in data or "findings" not in data:
        raise UsageError(f"'{path}' is not a gradcheck report (no layers and findings)")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(
            f"'{path}' has schema_version {data.get('schema_version')!r}; this gradcheck reads "
            f"{SCHEMA_VERSION}: regenerate the baseline"
        )
    check_report(data, str(path))
    return dict(data)


@functools.cache
def _report_validator() -> Any:
    import jsonschema

    text = resources.files("gradcheck_cli").joinpath("report/schema.json").read_text("utf-8")
    schema = json.loads(text)
    # Types are checked everywhere, but a baseline written before a field was added (run.amp)
    # still compares: only what the comparison reads is required.
    schema["required"] = ["schema_version", "layers", "findings"]
    props = schema["properties"]
    for section in ("tool", "model", "run"):
        props[section]["required"] = []
    props["layers"]["items"]["required"] = ["name", "type"]
    props["findings"]["items"]["required"] = ["id", "severity"]
    return jsonschema.Draft202012Validator(schema)


def check_report(data: Any, source: str) -> None:
    """Refuse a document that does not follow the report schema this gradcheck ships, with
    the first place it differs; so a baseline with wrong types is an error up front, never a
    crash half-way through the comparison. Fields the comparison does not read may be missing
    (an older baseline of the same schema version)."""
    import jsonschema

    try:
        error = jsonschema.exceptions.best_match(_report_validator().iter_errors(data))
    except (TypeError, ValueError, RecursionError) as exc:  # keys no JSON document has
        raise UsageError(
            f"'{source}' is not a valid gradcheck report ({type(exc).__name__})"
        ) from exc
    if error is None:
        return
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    ).lstrip(".")
    message = error.message if len(error.message) <= 120 else error.message[:117] + "..."
    raise UsageError(
        f"'{source}' is not a valid gradcheck report: {where or 'the document'}: {message}"
    )


def _median(stat: Any) -> float | None:
    if not isinstance(stat, Mapping) or "median" not in stat:
        return None
    value = stat["median"]
    try:
        return float(value)  # also 'nan', 'inf', '-inf'
    except OverflowError:  # an integer beyond any float
        return math.inf if value > 0 else -math.inf


def _worst(report: Mapping[str, Any]) -> dict[str, tuple[Severity, Mapping[str, Any]]]:
    worst: dict[str, tuple[Severity, Mapping[str, Any]]] = {}
    for f in report.get("findings", []):
        severity = Severity(f["severity"])
        if f["id"] not in worst or severity.rank > worst[f["id"]][0].rank:
            worst[f["id"]] = (severity, f)
    return worst


def _reaches(severity: Severity, fail_on: FailOn) -> bool:
    return fail_on is not FailOn.NEVER and severity.rank >= Severity(fail_on.value).rank


def compare(
    old: Mapping[str, Any] | Report,
    new: Mapping[str, Any] | Report,
    *,
    factor: float = 10.0,
    fail_on: FailOn = FailOn.ERROR,
) -> Comparison:
    """Compare report documents ``old`` (the baseline) and ``new``: dicts as ``to_dict()`` gives
    them or a report file holds them, or :class:`~gradcheck_cli.findings.Report` objects."""
    old, new = (r.to_dict() if isinstance(r, Report) else r for r in (old, new))
    findings = []
    before, after = _worst(old), _worst(new)
    for finding_id in sorted(set(before) | set(after)):
        was = before.get(finding_id, (None, {}))[0]
        now, data = after.get(finding_id, (None, {}))
        if was is None and now is not None:
            change = FindingChange.NEW
        elif now is None:
            change = FindingChange.RESOLVED
        elif was is not None and now.rank > was.rank:
            change = FindingChange.WORSE
        elif was is not None and now.rank < was.rank:
            change = FindingChange.BETTER
        else:
            change = FindingChange.UNCHANGED
        regression = change in (FindingChange.NEW, FindingChange.WORSE) and _reaches(now, fail_on)  # type: ignore[arg-type]
        findings.append(
            FindingDiff(
                finding_id,
                was,
                now,
                change,
                regression,
                str(data.get("message", ""))
                if data
                else str(before[finding_id][1].get("message", "")),
                tuple(data.get("layers", ())) if data else (),
            )
        )
    return Comparison(
        old_model=str(old.get("model", {}).get("name", "")),
        new_model=str(new.get("model", {}).get("name", "")),
        old_status=str(old.get("status", "")),
        new_status=str(new.get("status", "")),
        factor=factor,
        fail_on=fail_on,
        layers=tuple(_layer_diffs(old, new, factor)),
        findings=tuple(findings),
    )


def _layer_diffs(old: Mapping[str, Any], new: Mapping[str, Any], factor: float) -> list[LayerDiff]:
    old_layers = {l["name"]: l for l in old.get("layers", [])}
    new_layers = {l["name"]: l for l in new.get("layers", [])}
    removed = [l for name, l in old_layers.items() if name not in new_layers]
    diffs: list[LayerDiff] = []
    for name, layer in new_layers.items():
        now = _median(layer.get("grad_rms"))
        if name not in old_layers:
            # Same type at the same position as a layer that disappeared: a rename.
            twin = next(
                (
                    r
                    for r in removed
                    if r["type"] == layer["type"] and r.get("order") == layer.get("order")
                ),
                None,
            )
            if twin is not None:
                removed.remove(twin)
                was = _median(twin.get("grad_rms"))
                change = _moved(was, now, factor)
                diffs.append(
                    LayerDiff(
                        name,
                        layer["type"],
                        was,
                        now,
                        change if change is not LayerChange.UNCHANGED else LayerChange.RENAMED,
                        old_name=twin["name"],
                        old_ratio=_ratio(twin),
                        new_ratio=_ratio(layer),
                    )
                )
            elif now is not None:
                diffs.append(
                    LayerDiff(
                        name,
                        layer["type"],
                        None,
                        now,
                        LayerChange.ADDED,
                        new_ratio=_ratio(layer),
                    )
                )
            continue
        was = _median(old_layers[name].get("grad_rms"))
        if was is None and now is None:
            continue  # an activation: nothing to compare
        diffs.append(
            LayerDiff(
                name,
                layer["type"],
                was,
                now,
                _moved(was, now, factor),
                old_ratio=_ratio(old_layers[name]),
                new_ratio=_ratio(layer),
            )
        )
    for layer in removed:
        was = _median(layer.get("grad_rms"))
        if was is not None:
            diffs.append(
                LayerDiff(
                    layer["name"],
                    layer["type"],
                    was,
                    None,
                    LayerChange.REMOVED,
                    old_ratio=_ratio(layer),
                )
            )
    return diffs


def _ratio(layer: Mapping[str, Any]) -> float | None:
    """A report layer's median gradient-to-weight ratio (None when not measured)."""
    return _median(layer.get("grad_to_weight"))


def _moved(was: float | None, now: float | None, factor: float) -> LayerChange:
    if was is None or now is None:
        return LayerChange.ADDED if was is None and now is not None else LayerChange.UNCHANGED
    if math.isnan(was) or math.isnan(now):
        return LayerChange.UNCHANGED if math.isnan(was) and math.isnan(now) else LayerChange.ROSE
    if was == now:
        return LayerChange.UNCHANGED
    if was == 0:
        return LayerChange.ROSE
    ratio = now / was
    if ratio < 1 / factor:
        return LayerChange.DROPPED
    if ratio > factor:
        return LayerChange.ROSE
    return LayerChange.UNCHANGED
