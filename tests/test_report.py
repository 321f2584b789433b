"""Report data, the exit-code function, and the renderers."""

from __future__ import annotations

import io
import json
import math

import pytest
import yaml

from gradcheck_cli.findings import (
    ExitCode,
    FailOn,
    Finding,
    ModelInfo,
    Report,
    RunInfo,
    Severity,
    Status,
    exit_code,
)
from gradcheck_cli.report import FILE_FORMATS, RENDERERS, OutputFormat
from gradcheck_cli.stats import LayerKind, LayerStats, Skipped, Summary


def _layer(name: str) -> LayerStats:
    s = Summary(1.23456789e-3, 1e-3, math.inf)
    return LayerStats(
        name=name,
        type="Linear",
        kind=LayerKind.WEIGHT,
        order=0,
        calls=1,
        params=10,
        trainable=10,
        grad_rms=s,
        grad_norm=s,
        weight_norm=s,
        grad_to_weight=s,
        act_rms=s,
        out_grad_rms=s,
        dead_fraction=Skipped("not a ReLU"),
        saturated_fraction=Skipped("no"),
    )


IDS = ["vanishing", "exploding", "saturation"]


def _report(*severities: Severity) -> Report:
    findings = tuple(
        Finding(id=IDS[i], severity=s, layers=("a[0]",), message="m", evidence={"x": 0.1234567})
        for i, s in enumerate(severities)
    )
    return Report(
        model=ModelInfo("m.py", "Net", 10, 10),
        run=RunInfo(3, 16, "cpu", "mse", 0, 0.5, "inferred 4:float32", "2.13.0"),
        findings=findings,
        layers=(_layer("a[0]"),),
        losses=(1.0, math.nan, 2.0),
        tool_version="0.1.0",
    )


@pytest.mark.parametrize(
    "severities,fail_on,code",
    [
        ((), FailOn.ERROR, ExitCode.OK),
        ((), FailOn.INFO, ExitCode.OK),
        ((Severity.INFO,), FailOn.ERROR, ExitCode.OK),
        ((Severity.INFO,), FailOn.INFO, ExitCode.FINDINGS),
        ((Severity.WARNING,), FailOn.ERROR, ExitCode.OK),
        ((Severity.WARNING,), FailOn.WARNING, ExitCode.FINDINGS),
        ((Severity.ERROR,), FailOn.ERROR, ExitCode.FINDINGS),
        ((Severity.ERROR,), FailOn.NEVER, ExitCode.OK),
    ],
)
def test_exit_code(severities: tuple[Severity, ...], fail_on: FailOn, code: ExitCode) -> None:
    assert exit_code(_report(*severities), fail_on) is code


def test_status_is_worst_severity() -> None:
    assert _report().status is Status.HEALTHY
    assert _report(Severity.INFO).status is Status.HEALTHY
    assert _report(Severity.INFO, Severity.WARNING).status is Status.WARNING
    assert _report(Severity.WARNING, Severity.ERROR).status is Status.ERROR
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 130]  # 130: interrupted, as shells say


def test_to_dict_rounds_and_spells_out_nonfinite(validate_report) -> None:
    data = _report(Severity.INFO, Severity.ERROR).to_dict()
    validate_report(data)
    assert data["layers"][0]["grad_rms"] == {"median": 0.001235, "min": 0.001, "max": "inf"}
    assert data["run"]["losses"] == [1.0, "nan", 2.0]
    assert [f["severity"] for f in data["findings"]] == ["error", "info"]  # sorted by severity
    assert data["findings"][0]["evidence"] == {"x": 0.1235}
    assert list(data)[:3] == ["schema_version", "tool", "model"]


def test_every_format_has_a_renderer() -> None:
    from gradcheck_cli.report import COMPARE_RENDERERS, FIX_RENDERERS

    assert set(RENDERERS) == set(OutputFormat)
    assert set(COMPARE_RENDERERS) == set(OutputFormat)
    assert set(FIX_RENDERERS) == {OutputFormat.RICH, OutputFormat.YAML, OutputFormat.JSON}
    assert set(FILE_FORMATS.values()) <= set(OutputFormat)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_renderers_write_the_same_report(fmt: OutputFormat) -> None:
    out = io.StringIO()
    RENDERERS[fmt](_report(Severity.WARNING), out, color=False)
    text = out.getvalue()
    if fmt is OutputFormat.YAML:
        assert yaml.safe_load(text)["status"] == "warning"
    elif fmt is OutputFormat.JSON:
        assert json.loads(text)["findings"][0]["id"] == "vanishing"
    elif fmt is OutputFormat.GITHUB:
        assert text.splitlines()[0].startswith("::warning title=gradcheck vanishing in a[0]::m")
    elif fmt is OutputFormat.JUNIT:
        assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>') and "<testsuites" in text
    elif fmt is OutputFormat.MARKDOWN:
        assert text.startswith("## gradcheck: 🟡 warning") and "| `vanishing` |" in text
    else:
        assert "WARNING" in text and "a[0]" in text  # markup-like names are printed verbatim
        assert "\x1b[" not in text


def test_rich_renderer_colours_only_when_asked() -> None:
    out = io.StringIO()
    RENDERERS[OutputFormat.RICH](_report(Severity.ERROR), out, color=True)
    assert "\x1b[" in out.getvalue()


def test_schema_lists_every_finding_id() -> None:
    from importlib import resources

    from gradcheck_cli.checks import CHECKS

    schema = json.loads(
        resources.files("gradcheck_cli").joinpath("report/schema.json").read_text("utf-8")
    )
    ids = schema["properties"]["findings"]["items"]["properties"]["id"]["enum"]
    assert sorted(ids) == sorted(CHECKS)


def test_a_fix_and_a_comparison_print_and_render_in_a_notebook_as_their_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import html as html_lib
    import re

    import torch
    from torch import nn

    from gradcheck_cli import api
    from gradcheck_cli.compare import compare
    from gradcheck_cli.report import compare_rich, fix_rich

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(8):
        layers += [nn.Linear(16, 16), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(16, 2))
    result = api.fix(model, torch.randn(8, 16), remedies=["relu-swap"], learn=0, steps=1)
    assert result.chosen is not None and result.chosen.remedies == ("relu-swap",)
    comparison = compare(result.before, result.after)  # Report objects, or their dicts
    assert comparison == compare(result.before.to_dict(), result.after.to_dict())
    assert comparison.improvements > 0 and not comparison.regressed
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal: the stable width
    for value, render, marks in (
        (result, fix_rich.render, ("relu-swap", "error -> healthy")),
        (comparison, compare_rich.render, ("NO REGRESSION", "vanishing")),
    ):
        out = io.StringIO()
        render(value, out, color=False, width=120)  # type: ignore[operator]
        text = str(value)
        assert text == out.getvalue().rstrip("\n") and "\x1b[" not in text
        assert all(mark in text for mark in marks), text
        page = value._repr_html_()
        assert page.startswith("<pre style=") and page.endswith("</pre>") and "color: " in page
        shown = html_lib.unescape(re.sub(r"<[^>]+>", "", page))
        assert all(mark in shown for mark in marks)


def test_a_fix_report_writes_hostile_layer_names_out_and_never_cuts_them() -> None:
    import torch
    from torch import nn

    from gradcheck_cli import api

    names = ["\x1b[31mred\x1b[0m", "\u202eevil", "new\nline", "z\x00", "x" * 300]
    torch.manual_seed(0)
    model = nn.Sequential()
    for i, name in enumerate(names):
        model.add_module(name, nn.Linear(8, 8))
        model.add_module(f"act{i}", nn.Sigmoid())
    model.add_module("head", nn.Linear(8, 2))
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(0.05)  # small init: vanishing, for gain-init to act on
    result = api.fix(model, torch.randn(8, 8), remedies=["gain-init"], learn=0, steps=1)
    assert result.chosen is not None
    for shown in (str(result), result._repr_html_()):
        assert not any(c in shown for c in ("\x1b", "\u202e", "\x00")), shown[:200]
        assert "\\x1b[31mred\\x1b[0m" in shown and "\\u202eevil" in shown
        assert "new\\nline" in shown and "…" not in shown
    text = str(result)
    assert sum(line.count("x") for line in text.splitlines()) >= 300  # folded, not cut


def test_a_report_renders_as_html_in_a_notebook() -> None:
    import html as html_lib
    import re

    import torch
    from torch import nn

    from gradcheck_cli import api

    torch.manual_seed(0)
    model = nn.Sequential()
    for i in range(8):
        model.add_module(f"<b>{i}</b>" if i == 0 else str(i), nn.Linear(16, 16))
        model.add_module(f"act{i}", nn.Sigmoid())
    model.add_module("head", nn.Linear(16, 2))
    report = api.diagnose(model, torch.randn(8, 16), steps=1)
    page = report._repr_html_()
    assert page.startswith("<pre style=") and page.endswith("</pre>")
    assert "<b>" not in page and "&lt;b&gt;0&lt;/b&gt;" in page  # names are escaped, not markup
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", page))
    assert "<b>0</b>" in text and "head" in text
    (finding,) = [f for f in report.findings if f.severity.value == "error"]
    assert finding.id == "vanishing" and "vanishing" in text and "ERROR" in text
    assert "color: " in page  # coloured, as in a terminal
