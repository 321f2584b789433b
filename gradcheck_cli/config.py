"""Settings: defaults < ``[tool.gradcheck]`` in pyproject.toml or ``gradcheck.yaml`` < flags.

A config file is found from the working directory upward: the first directory holding a
``gradcheck.yaml``/``gradcheck.yml`` or a ``pyproject.toml`` decides (a pyproject.toml without a
``[tool.gradcheck]`` table means "no config", it is the project's root). ``--config PATH`` names
a file directly. Keys may be written with ``-`` or ``_``; unknown keys and wrong types are
errors, so a typo never silently does nothing.

The library reads the same file as the command line: :func:`project_settings` is what
``diagnose()``, ``fix()``, ``watch()``, ``assert_healthy_gradients`` and the pytest fixture start
from (``config=None`` opts out, ``config=PATH`` names the file), so one project gets one verdict
however it is asked.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gradcheck_cli.checks import CHECKS, Rule, RuleSeverity, default_options
from gradcheck_cli.choices import Amp, Device, LossKind, Optimizer, ShardMode
from gradcheck_cli.errors import ConfigError, require_file
from gradcheck_cli.findings import FailOn
from gradcheck_cli.yaml_files import TooDeep, check_depth, load_user_yaml


@dataclass(frozen=True)
class Settings:
    """Everything that shapes a diagnosis, after defaults, config file and flags are merged."""

    steps: int = 3
    seed: int = 0
    batch_size: int = 16
    device: Device = Device.AUTO
    loss: LossKind = LossKind.AUTO
    fail_on: FailOn = FailOn.ERROR
    amp: Amp = Amp.NONE
    train_steps: int = 0
    optimizer: Optimizer = Optimizer.ADAM
    lr: float | None = None
    momentum: float = 0.0  # SGD's, for --train-steps and --learn
    # The learning probe's steps: None runs it (AUTO_LEARN steps) only when the diagnosis has a
    # finding the probe can refute; 0 never; N always.
    learn: int | None = None
    regression_factor: float = 10.0
    shard: ShardMode = ShardMode.NONE
    # Which axis of the model's input is time, for the model-level temporal profile (None:
    # axis 1 of token inputs through an embedding; float inputs are then not profiled).
    time_axis: int | None = None
    thresholds: Mapping[str, Any] = field(default_factory=default_options)
    rules: Mapping[str, Rule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"{name.replace('_', '-')} must be a positive integer, got {value!r}"
                )
        for name in ("steps", "train_steps", "learn"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_STEPS:
                # A diagnosis measures a few passes; a number this large is a typo that would
                # run until killed.
                raise ConfigError(
                    f"{name.replace('_', '-')} must be at most {MAX_STEPS:,}, got {value:,}"
                )
        if (
            not isinstance(self.seed, int)
            or isinstance(self.seed, bool)
            or not 0 <= self.seed <= MAX_SEED
        ):
            # NumPy takes seeds up to 2**32 - 1, and every step's seed is derived from this one.
            raise ConfigError(f"seed must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        if (
            not isinstance(self.train_steps, int)
            or isinstance(self.train_steps, bool)
            or self.train_steps < 0
        ):
            raise ConfigError(
                f"train-steps must be 0 or a positive integer, got {self.train_steps!r}"
            )
        if self.learn is not None and (
            not isinstance(self.learn, int) or isinstance(self.learn, bool) or self.learn < 0
        ):
            raise ConfigError(f"learn must be 0 or a positive integer, got {self.learn!r}")
        if (
            isinstance(self.momentum, bool)
            or not isinstance(self.momentum, (int, float))
            or not 0 <= self.momentum < 1
        ):
            raise ConfigError(f"momentum must be a number from 0 to below 1, got {self.momentum!r}")
        if self.momentum and self.optimizer is not Optimizer.SGD:
            raise ConfigError(
                f"momentum applies to --optimizer sgd; {self.optimizer.value} keeps its own "
                "moment estimates: drop --momentum or use --optimizer sgd"
            )
        if self.lr is not None and (
            isinstance(self.lr, bool)
            or not isinstance(self.lr, (int, float))
            or not 0 < self.lr < math.inf
        ):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}")
        if self.time_axis is not None and (
            not isinstance(self.time_axis, int)
            or isinstance(self.time_axis, bool)
            or not 0 <= self.time_axis <= MAX_TIME_AXIS
        ):
            raise ConfigError(
                f"time-axis must be an input axis from 0 to {MAX_TIME_AXIS} (0 is the first, "
                f"usually the batch), got {self.time_axis!r}"
            )
        factor = self.regression_factor
        if (
            isinstance(factor, bool)
            or not isinstance(factor, (int, float))
            or not 1 < factor < math.inf
        ):
            raise ConfigError(f"regression-factor must be a finite number above 1, got {factor!r}")


MAX_SEED = 2**32 - 1


MAX_STEPS = 100_000
MAX_TIME_AXIS = 7


_SCALARS = {
    "steps": int,
    "seed": int,
    "batch_size": int,
    "train_steps": int,
    "time_axis": int,
    "learn": int,
}
_ENUMS: dict[str, type[enum.Enum]] = {
    "device": Device,
    "loss": LossKind,
    "fail_on": FailOn,
    "amp": Amp,
    "optimizer": Optimizer,
    "shard": ShardMode,
}


def _key(raw: str) -> str:
    return raw.replace("-", "_")


def apply_mapping(settings: Settings, data: Mapping[str, Any], *, source: str) -> Settings:
    """Settings with the values of a config mapping applied on top; validated."""
    changes: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for raw, value in data.items():
        key = _key(str(raw))
        if key in spelled:
            raise ConfigError(f"{source}: '{raw}' and '{spelled[key]}' are the same setting")
        spelled[key] = str(raw)
        if key in ("regression_factor", "lr", "momentum"):
            value = _yaml_number(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: '{raw}' must be a number, got {value!r}")
            changes[key] = float(value)
        elif key in _SCALARS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{source}: '{raw}' must be an integer, got {value!r}")
            changes[key] = value
        elif key in _ENUMS:
            changes[key] = parse_enum(_ENUMS[key], value, f"{source}: '{raw}'")
        elif key == "thresholds":
            changes[key] = threshold_options(value, source=source, base=settings.thresholds)
        elif key == "checks":
            changes["rules"] = check_rules(value, source=source, base=settings.rules)
        elif key == "ignore_layers":
            rules = dict(changes.get("rules", settings.rules))
            rules["*"] = Rule(ignore_layers=_patterns(value, f"{source}: '{raw}'"))
            changes["rules"] = rules
        else:
            allowed = ", ".join(
                sorted(
                    [
                        *_SCALARS,
                        *_ENUMS,
                        "thresholds",
                        "checks",
                        "ignore_layers",
                        "regression_factor",
                        "lr",
                        "momentum",
                    ]
                )
            )
            raise ConfigError(f"{source}: unknown key '{raw}'; known keys are {allowed}")
    return dataclasses.replace(settings, **changes)


def parse_enum(kind: type[enum.Enum], value: Any, label: str) -> Any:
    """``kind(value)`` with a one-line error listing the choices."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        choices = "|".join(str(m.value) for m in kind)
        raise ConfigError(f"{label} must be one of {choices}, got {value!r}") from None


def threshold_options(
    data: Any, *, source: str, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Per-check Options from ``{finding-id: {option: value}}`` on top of ``base``."""
    merged = dict(base or default_options())
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: 'thresholds' must be a table of finding ids")
    for check_id, values in data.items():
        if check_id not in CHECKS:
            raise ConfigError(
                f"{source}: unknown finding id '{check_id}' in thresholds; known: "
                + ", ".join(CHECKS)
            )
        current = merged[check_id]
        if dataclasses.is_dataclass(values) and isinstance(values, type(current)):
            merged[check_id] = values
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: thresholds.{check_id} must be a table")
        fields = {f.name: f for f in dataclasses.fields(current)}
        changes: dict[str, Any] = {}
        for raw, value in values.items():
            name = _key(str(raw))
            if name not in fields:
                known = ", ".join(n.replace("_", "-") for n in fields) or "none"
                raise ConfigError(
                    f"{source}: '{check_id}' has no threshold '{raw}'; its thresholds: {known}"
                )
            label = f"{source}: thresholds.{check_id}.{raw}"
            changes[name] = _threshold(
                value, integer=isinstance(getattr(current, name), int), label=label
            )
            if name in CHECKS[check_id].fractions and changes[name] > 1:
                raise ConfigError(f"{label} is a fraction, 0 to 1, got {changes[name]!r}")
            if name == "min_layers" and changes[name] < 2:
                raise ConfigError(
                    f"{label} must be 2 or more (first and last layers are compared), "
                    f"got {changes[name]!r}"
                )
        merged[check_id] = dataclasses.replace(current, **changes)
        _check_order(merged[check_id], type(current)(), f"{source}: thresholds.{check_id}")
    return merged


def _check_order(options: Any, defaults: Any, label: str) -> None:
    """A warning threshold must be crossed before its error threshold, in the direction the
    defaults give (``depth-warning`` 1e-2 above ``depth-error`` 1e-3; ``magnitude-warning`` 1
    below ``magnitude-error`` 10); thresholds the other way round leave the warning unreachable."""
    for f in dataclasses.fields(options):
        if not f.name.endswith("warning"):
            continue
        partner = f.name[: -len("warning")] + "error"
        if not hasattr(options, partner):
            continue
        warn, err = getattr(options, f.name), getattr(options, partner)
        falling = getattr(defaults, f.name) > getattr(defaults, partner)
        if (falling and warn < err) or (not falling and warn > err):
            side = "at or above" if falling else "at or below"
            raise ConfigError(
                f"{label}.{f.name.replace('_', '-')} ({warn:g}) must be {side} "
                f"{partner.replace('_', '-')} ({err:g}), or the warning is never reached"
            )


# YAML 1.1 (PyYAML) reads 1e-4 and 1.0e+3 without a dot or a signed exponent as strings; a
# string that is a plain decimal number in any spelling is taken as that number.
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _yaml_number(value: Any) -> Any:
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        number = float(value)
        return (
            int(number)
            if number.is_integer() and "." not in value and "e" not in value.lower()
            else number
        )
    return value


def _threshold(value: Any, *, integer: bool, label: str) -> int | float:
    """A threshold: a finite number, not negative; a whole number where it counts layers.

    NaN would switch the rule off without saying so (every comparison with it is false), and a
    count of 2.7 layers would silently become 2.
    """
    value = _yaml_number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{label} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"{label} must be a finite number, 0 or more, got {value!r}; to switch a check "
            "off, set its severity to off"
        )
    if integer:
        if value != int(value):
            raise ConfigError(f"{label} must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def _patterns(value: Any, label: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{label} must be a list of glob patterns of layer names")
    return tuple(value)


def check_rules(data: Any, *, source: str, base: Mapping[str, Rule]) -> dict[str, Rule]:
    """Per-check rules from ``{finding-id: {severity: ..., ignore-layers: [...]}}``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: 'checks' must be a table of finding ids")
    merged = dict(base)
    for check_id, values in data.items():
        if check_id not in CHECKS:
            raise ConfigError(
                f"{source}: unknown finding id '{check_id}' in checks; known: " + ", ".join(CHECKS)
            )
        if isinstance(values, Rule):
            merged[check_id] = values
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: checks.{check_id} must be a table")
        rule = merged.get(check_id, Rule())
        for raw, value in values.items():
            key = _key(str(raw))
            label = f"{source}: checks.{check_id}.{raw}"
            if key == "severity":
                # YAML reads a bare `off` as False
                text = "off" if value is False else value
                rule = dataclasses.replace(rule, severity=parse_enum(RuleSeverity, text, label))
            elif key == "ignore_layers":
                rule = dataclasses.replace(rule, ignore_layers=_patterns(value, label))
            else:
                raise ConfigError(f"{label}: unknown key; use severity or ignore-layers")
        merged[check_id] = rule
    return merged


def find_config(start: Path) -> Path | None:
    """The config file that applies in ``start``: searched from there upward."""
    for folder in (start, *start.parents):
        for name in ("gradcheck.yaml", "gradcheck.yml"):
            if (folder / name).is_file():
                return folder / name
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
    return None


def read_config(path: Path) -> dict[str, Any]:
    """The gradcheck settings in ``path`` (YAML, or pyproject.toml's ``[tool.gradcheck]``)."""
    require_file(path, f"config file '{path}'", ConfigError)
    text = read_text(path, ConfigError)
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
            check_depth(data)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        except (RecursionError, TooDeep):
            raise ConfigError(f"{path}: invalid TOML: {TooDeep()}; fix the file") from None
        if path.name == "pyproject.toml":
            tool = data.get("tool", {})
            if not isinstance(tool, Mapping):
                raise ConfigError(f"{path}: 'tool' must be a table, [tool]; fix the file")
            data = tool.get("gradcheck", {})
    else:
        try:
            data = load_user_yaml(text)
        except TooDeep as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}; fix the file") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None)
            what = f": {problem}" if problem else ""
            raise ConfigError(f"{path}: invalid YAML{where}{what}; fix the file") from exc
        data = data or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the gradcheck settings must be a table of keys")
    return dict(data)


def read_text(path: Path, error: type[Exception] = ConfigError) -> str:
    """A UTF-8 text file the user names (config, plan, report): any failure is ``error``."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"'{path}' is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise error(f"cannot read '{path}': {exc.strerror or exc}") from None


class _Discover(enum.Enum):
    AUTO = "auto"


# ``config=AUTO`` (the API's default): the config file found from the working directory upward.
AUTO = _Discover.AUTO
ConfigChoice = Path | str | None | _Discover


def project_settings(settings: Settings | None, config: ConfigChoice) -> Settings:
    """What the API starts from: ``settings`` when given (complete: the config is not read),
    else the defaults merged with ``config`` (found from the working directory with
    :data:`AUTO`, none with None)."""
    if settings is not None:
        return settings
    if config is None:
        return Settings()
    if isinstance(config, str) and not config:
        raise ConfigError("config='' names no file; give a path, or config=None for none")
    path = None if isinstance(config, _Discover) else Path(config)
    return load_settings(path, cwd=Path.cwd())[0]


def load_settings(config: Path | None, *, cwd: Path) -> tuple[Settings, Path | None]:
    """Defaults merged with the named config file, or with the one found from ``cwd``."""
    path = config if config is not None else find_config(cwd)
    if path is None:
        return Settings(), None
    data = read_config(path)
    return apply_mapping(Settings(), data, source=str(path)), path
