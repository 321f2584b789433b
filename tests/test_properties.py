"""Property-based tests: whatever structure a config, plan or report file holds, loading it is a
valid result or a user error (exit 2), never an internal error (exit 3).

Hypothesis writes arbitrary YAML, JSON and TOML documents, both free-form and close to the real
thing (known keys with values of any type, valid reports with one part replaced), and each goes
through the same error handling as the command line (:func:`gradcheck_cli.cli.errors.user_errors`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from gradcheck_cli import api
from gradcheck_cli.checks import CHECKS, default_options
from gradcheck_cli.cli import main
from gradcheck_cli.cli.errors import user_errors
from gradcheck_cli.compare import compare, load_report
from gradcheck_cli.config import Settings, load_settings
from gradcheck_cli.findings import ExitCode
from gradcheck_cli.remedies.plan import Plan, apply_plan
from gradcheck_cli.report import COMPARE_RENDERERS
from gradcheck_cli.specs import parse_spec

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)


ANY_KEY = st.text(max_size=8)


def values(keys: st.SearchStrategy[str] = ANY_KEY) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=12,
    )


def outcome(load: Any) -> int:
    """The exit code the command line would give: 0 when ``load()`` returns."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), user_errors(debug=False):
            load()
    except SystemExit as exit_:
        event(f"exit {int(exit_.code or 0)}")  # --hypothesis-show-statistics: both outcomes
        return int(exit_.code or 0)
    event("exit 0")
    return 0


# --- TOML has no writer in the standard library: a small one for generated values ------------


class NotToml(Exception):
    """A value TOML cannot hold (None)."""


def toml_value(value: Any) -> str:
    if value is None:
        raise NotToml
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return (
        "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    )


# --- config -------------------------------------------------------------------------------------

SETTING_KEYS = [
    "steps", "seed", "batch-size", "batch_size", "device", "loss", "fail-on", "amp",
    "train-steps", "optimizer", "lr", "regression-factor", "thresholds", "checks",
    "ignore-layers",
]  # fmt: skip
OPTION_KEYS = sorted(
    {f.replace("_", "-") for o in default_options().values() for f in vars(o)}
    | {"severity", "ignore-layers"}
)
config_keys = st.sampled_from(SETTING_KEYS + list(CHECKS) + OPTION_KEYS) | st.text(max_size=6)
check_tables = st.dictionaries(
    st.sampled_from(list(CHECKS)) | st.text(max_size=4),
    st.dictionaries(st.sampled_from(OPTION_KEYS), values(), max_size=3) | values(),
    max_size=3,
)
configs = st.dictionaries(
    config_keys,
    values(config_keys) | check_tables | scalars,
    max_size=5,
) | values(config_keys)


@FAST
@given(data=configs, form=st.sampled_from(["yaml", "json", "toml", "pyproject"]))
def test_any_config_is_settings_or_exit_2(tmp_path: Path, data: Any, form: str) -> None:
    if form in ("toml", "pyproject"):
        if not isinstance(data, dict):
            data = {"tool": data} if form == "pyproject" else {"x": data}
        try:
            body = "\n".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in data.items())
        except NotToml:
            return
        path = tmp_path / ("pyproject.toml" if form == "pyproject" else "c.toml")
        header = "[tool.gradcheck]\n" if form == "pyproject" and "tool" not in data else ""
        path.write_text(header + body + "\n", encoding="utf-8")
    else:
        path = tmp_path / "c.yaml"
        text = json.dumps(data) if form == "json" else yaml.safe_dump(data)
        path.write_text(text, encoding="utf-8")
    found: list[Settings] = []
    code = outcome(lambda: found.append(load_settings(path, cwd=tmp_path)[0]))
    assert code in (ExitCode.OK, ExitCode.USAGE_ERROR)
    if code == ExitCode.OK:
        (chosen,) = found
        assert isinstance(chosen, Settings) and 0 <= chosen.seed < 2**32
        for options in chosen.thresholds.values():
            assert all(math.isfinite(v) and v >= 0 for v in vars(options).values())


# --- plan ---------------------------------------------------------------------------------------

OPS = ["replace-activation", "init", "insert-norm", "residual-group", "residual", "gate-bias",
       "gated-cell", "wrap-grad-clip", "pre-norm", "scale-output", "scale"]  # fmt: skip
ARG_KEYS = ["module", "scheme", "nonlinearity", "negative_slope", "norm", "features", "groups",
            "steps", "max_norm"]  # fmt: skip
ARG_VALUES = st.sampled_from(
    ["ReLU", "GELU", "kaiming_normal", "xavier_uniform", "relu", "tanh", "LayerNorm",
     "BatchNorm1d", 16, 8, 2, 0.5, [[0, 2]], [[1, 3], [0, 1]]]
)  # fmt: skip
TARGETS = st.sampled_from(["", "0", "1", "2", "3", "4", "rnn", "0.weight", "9"])
edits = st.fixed_dictionaries(
    {"op": st.sampled_from(OPS) | scalars, "target": TARGETS | scalars},
    optional={
        "args": st.dictionaries(st.sampled_from(ARG_KEYS), ARG_VALUES | values(), max_size=3)
        | values(),
        "remedy": scalars,
    },
)
plans = (
    st.fixed_dictionaries(
        {"plan_version": st.just(1) | scalars},
        optional={
            "edits": st.lists(edits, max_size=3) | values(),
            "seed": st.integers(min_value=-5, max_value=2**40) | scalars,
            "remedies": st.lists(st.text(max_size=6), max_size=2) | values(),
            "source": scalars,
        },
    )
    | values()
)


class Small(nn.Module):
    """A Sequential with an RNN beside it: a target for every op."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh())
        self.rnn = nn.RNN(4, 4)


@FAST
@given(data=plans, as_json=st.booleans())
def test_any_plan_applies_or_exits_2(tmp_path: Path, data: Any, as_json: bool) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps(data) if as_json else yaml.safe_dump(data), encoding="utf-8")
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), Small())
    result: list[nn.Module] = []
    code = outcome(lambda: result.append(apply_plan(model, Plan.load(path))))
    assert code in (ExitCode.OK, ExitCode.USAGE_ERROR)
    if code == ExitCode.OK:
        assert isinstance(result[0], nn.Module)
        assert sum(p.numel() for p in result[0].parameters()) < 10**6  # nothing huge allocated


def spellings(x: float) -> list[str]:
    """The ways people write a positive float in YAML, YAML 1.1 and 1.2 alike."""
    mantissa, exponent = f"{x:e}".split("e")
    short = mantissa.rstrip("0").rstrip(".")
    return [
        repr(x),
        f"{x:e}",
        f"{x:E}",
        f"{short}e{int(exponent)}",  # 1e-4: a string to YAML 1.1
        f"{short}e+{int(exponent)}" if int(exponent) >= 0 else f"{short}e{exponent}",
        f"{short}E{int(exponent)}",
    ]


@FAST
@given(x=st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_every_float_spelling_is_a_number_in_config_and_plan(tmp_path: Path, x: float) -> None:
    for spelled in spellings(x):
        want = float(spelled)
        config = tmp_path / "gradcheck.yaml"
        config.write_text(
            f"lr: {spelled}\nthresholds:\n  vanishing:\n"
            f"    depth-warning: {spelled}\n    depth-error: {spelled}\n",
            encoding="utf-8",
        )
        settings, _ = load_settings(config, cwd=tmp_path)
        assert settings.lr == want
        assert settings.thresholds["vanishing"].depth_error == want
        plan = tmp_path / "plan.yaml"
        plan.write_text(
            "plan_version: 1\nsource: m.py\nseed: 0\nremedies: [grad-clip]\nedits:\n"
            f"- op: wrap-grad-clip\n  target: ''\n  args: {{max_norm: {spelled}}}\n"
            "  remedy: grad-clip\n",
            encoding="utf-8",
        )
        (edit,) = Plan.load(plan).edits
        assert edit.args["max_norm"] == want


# --- reports (compare, --baseline) ------------------------------------------------------------


@pytest.fixture(scope="module")
def report_doc() -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Sigmoid(), nn.Linear(16, 2))
    return api.diagnose(model, torch.randn(8, 8), steps=1).to_dict()


def replace_somewhere(doc: Any, data: st.DataObject) -> Any:
    """``doc`` with one value, anywhere in it, replaced by an arbitrary one."""
    if not isinstance(doc, (dict, list)) or not doc or data.draw(st.integers(0, 3)) == 0:
        return data.draw(
            values(st.sampled_from(["median", "name", "type", "id"]) | st.text(max_size=5))
        )
    key = data.draw(st.sampled_from(list(doc.keys()) if isinstance(doc, dict) else range(len(doc))))
    doc[key] = replace_somewhere(doc[key], data)
    return doc


@FAST
@given(data=st.data(), form=st.sampled_from(["json", "yaml", "fix-yaml"]))
@pytest.mark.slow
def test_any_report_compares_or_exits_2(
    tmp_path: Path, report_doc: dict[str, Any], data: st.DataObject, form: str
) -> None:
    doc = replace_somewhere(copy.deepcopy(report_doc), data)
    if form == "fix-yaml":
        doc = {"schema_version": 1, "after": doc}
    path = tmp_path / ("r.json" if form == "json" else "r.yaml")
    path.write_text(json.dumps(doc) if form == "json" else yaml.safe_dump(doc), encoding="utf-8")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(report_doc), encoding="utf-8")

    def both_ways() -> None:
        loaded = load_report(path)
        for old, new in ((loaded, report_doc), (report_doc, loaded)):
            comparison = compare(old, new)
            for render in COMPARE_RENDERERS.values():
                render(comparison, io.StringIO())

    code = outcome(both_ways)
    assert code in (ExitCode.OK, ExitCode.USAGE_ERROR)
    cli = CliRunner().invoke(main, ["compare", str(good), str(path)], catch_exceptions=False)
    assert cli.exit_code in (ExitCode.OK, ExitCode.FINDINGS, ExitCode.USAGE_ERROR), cli.stderr
    assert (cli.exit_code == ExitCode.USAGE_ERROR) == (code == ExitCode.USAGE_ERROR)


@FAST
@given(
    data=values(
        st.sampled_from(["layers", "findings", "schema_version", "after"]) | st.text(max_size=5)
    )
)
def test_free_form_report_documents(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    code = outcome(lambda: compare(load_report(path), load_report(path)))
    assert code in (ExitCode.OK, ExitCode.USAGE_ERROR)


# --- deep nesting and lone surrogates, in every document and spec the user writes ---------------

SURROGATES = st.text(st.characters(categories=["Cs"]) | st.characters(), max_size=6)


def _nested(depth: int, leaf: str) -> str:
    """JSON text of ``leaf`` inside ``depth`` alternating objects and arrays, written without
    recursion (json.dumps recurses). JSON's \\uXXXX escapes write a lone surrogate that no
    UTF-8 file can hold; JSON is YAML too."""
    opening = "".join("[" if i % 2 else '{"k": ' for i in range(depth))
    closing = "".join("]" if i % 2 else "}" for i in reversed(range(depth)))
    return opening + json.dumps(leaf) + closing


@settings(FAST, max_examples=60)
@given(
    depth=st.integers(0, 80) | st.integers(900, 6000),
    leaf=SURROGATES,
    what=st.sampled_from(["config-yaml", "config-toml", "pyproject", "plan", "baseline", "spec"]),
)
@pytest.mark.slow
def test_deep_documents_and_surrogates_are_results_or_exit_2(
    tmp_path: Path, depth: int, leaf: str, what: str
) -> None:
    doc = _nested(depth, leaf)
    text = '{"seed": ' + doc + "}" if what.startswith("config") else doc
    if what in ("config-toml", "pyproject"):
        text = (
            ("[tool.gradcheck]\n" if what == "pyproject" else "")
            + "seed = "
            + ("[" * depth + json.dumps(leaf) + "]" * depth)
        )
    path = tmp_path / {"config-toml": "c.toml", "pyproject": "pyproject.toml"}.get(what, "d.yaml")
    path.write_text(text, encoding="utf-8")
    load: Any = {
        "plan": lambda: Plan.load(path),
        "baseline": lambda: load_report(path),
        "spec": lambda: parse_spec(f"m.py:Net({'[' * depth}{json.dumps(leaf)}{']' * depth})"),
    }.get(what, lambda: load_settings(path, cwd=tmp_path))
    assert outcome(load) in (ExitCode.OK, ExitCode.USAGE_ERROR)


# Pieces of a spec's argument text as a shell may pass them: Python tokens, config calls, raw
# characters (lone surrogates are how Python holds an undecodable byte of argv, NUL included).
_SPEC_PIECES = st.sampled_from(
    ["(", ")", "[", "]", ",", "=", "1", "-", "+", "'a'", "Cfg(", "k=", "x.y", "**", "*", " "]
) | st.characters(categories=["Cs", "Cc", "Lo", "Po"])


@settings(FAST, max_examples=150)
@given(
    pieces=st.lists(_SPEC_PIECES, max_size=40),
    repeat=st.integers(1, 1) | st.integers(200, 30000),
    head=st.sampled_from(["m.py:Net(", "pkg.mod:Net(", "m.py:Net(Cfg("]),
)
def test_any_spec_argument_text_is_a_spec_or_exit_2(
    pieces: list[str], repeat: int, head: str
) -> None:
    # Whatever follows NAME( (deep expressions, raw control and surrogate characters, calls,
    # attribute access) parses to a spec or is refused: ast.parse's own limits are bad input too.
    text = head + "".join(pieces) * repeat + ")"
    assert outcome(lambda: parse_spec(text)) in (ExitCode.OK, ExitCode.USAGE_ERROR)
