"""The terminal report at real widths: columns go before names or numbers are cut, repeated
healthy structure folds, findings hang under their text, and real terminal captures stay so.

Reports come from :func:`gradcheck_cli.api.diagnose` on the models under ``tests/screens/models``
(a 60-layer ReLU MLP with one dead layer, a 24-layer ``nn.TransformerEncoder``, a two-head
net) and a 60-layer sigmoid MLP whose findings name many layers; each is rendered at 80 and 200
columns, with and without colour, and the text is read back as a user would read it.
"""

from __future__ import annotations

import importlib.util
import io
import re
from pathlib import Path
from types import ModuleType
from typing import IO

import pytest
import yaml
from click.testing import CliRunner
from rich.cells import cell_len
from torch import nn

from gradcheck_cli.api import diagnose
from gradcheck_cli.cli import main
from gradcheck_cli.findings import Report
from gradcheck_cli.report import console as console_module
from gradcheck_cli.report.console import PLAIN_WIDTH, plain_width, sci
from gradcheck_cli.report.rich_text import (
    COMPACT_BELOW,
    FOLD_ABOVE,
    Fold,
    fold_layers,
    render,
    short_type,
)
from gradcheck_cli.seeding import seeded
from gradcheck_cli.stats import LayerStats, value

SCREENS = Path(__file__).parent / "screens"
MODELS = SCREENS / "models"
ANSI = re.compile(r"\x1b\[[0-9;:?]*[A-Za-z]")
NUMBER = re.compile(r"\d\.\d\de[+-]\d\d")  # a complete number as the report writes it
NUMBER_START = re.compile(r"\d\.\d*e[-+]?\d*")  # anything that starts like one
RULE = "─"
AFTER_ROWS = r"\d+ healthy layers folded|Findings$|No findings"  # what follows the table's rows

# The rows each model's table shows at any width (folded): forward order, names whole.
ROWS = {
    "mlp60": ["net.0-69", "net.70", "net.71", "net.72-119", "head"],
    "transformer24": ["encoder.layers.0-23", "head", "encoder.layers.0-23.self_attn.out_proj"],
    "two_heads": [
        *(f"image_encoder.{i}" for i in range(4)),
        *(f"tabular_encoder.{i}" for i in range(4)),
        "fuse.0",
        "fuse.1",
        "classification_head",
        "regression_head",
    ],
}
FINDING_LAYERS = {"mlp60": {"net.71"}, "transformer24": set(), "two_heads": set()}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"screens_{name}", MODELS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _diagnose(name: str) -> Report:
    module = _load(name)
    with seeded(0):  # as the CLI builds a model file
        model = module.build_model()
    return diagnose(
        model,
        getattr(module, "example_inputs", None),
        getattr(module, "loss_fn", None),
        model_name=name,
    )


def _deep_sigmoid() -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(30):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(32, 10))


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    built = {name: _diagnose(name) for name in ROWS}
    with seeded(0):
        built["sigmoid60"] = diagnose(_deep_sigmoid(), model_name="sigmoid60")
    return built


def _render(report: Report, width: int, *, color: bool = False, all_layers: bool = False) -> str:
    out = io.StringIO()
    render(report, out, color=color, width=width, all_layers=all_layers)
    text = out.getvalue()
    assert ("\x1b[" in text) is color
    return ANSI.sub("", text)


def _table(text: str) -> tuple[str, list[str], list[str]]:
    """The table's header line, its rows, and its lines from the title to the caption."""
    lines = text.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("Per-layer gradients"))
    rule = next(i for i in range(title, len(lines)) if lines[i].startswith(RULE))
    end = next(i for i in range(rule + 1, len(lines)) if re.match(AFTER_ROWS, lines[i]))
    caption = end + 1 if lines[end][0].isdigit() else end
    return lines[rule - 1], lines[rule + 1 : end], lines[title:caption]


def _names(header: str, rows: list[str]) -> list[str]:
    at = 1 if header.split()[0] == "#" else 0
    return [row.split()[at] for row in rows]


def _check_screen(text: str, width: int, *, rows: list[str], statuses: set[str]) -> list[str]:
    """What every rendering must satisfy; returns the table's rows."""
    for line in text.splitlines():
        assert cell_len(line.rstrip()) <= width, line
    assert "…" not in text
    header, shown, table = _table(text)
    assert _names(header, shown) == rows  # one line per row, in forward order, names whole
    for row in shown:
        assert row.split()[-1] in statuses, row  # the row ends on its status: nothing wrapped
    for match in NUMBER_START.finditer("\n".join(table)):
        assert NUMBER.fullmatch(match.group()), match.group()
    return shown


def _layer(report: Report, name: str) -> LayerStats:
    return next(layer for layer in report.layers if layer.display_name == name)


@pytest.mark.parametrize("color", [False, True], ids=["plain", "color"])
@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("name", list(ROWS))
def test_table_fits_and_shows_whole_names_and_numbers(
    reports: dict[str, Report], name: str, width: int, color: bool
) -> None:
    report = reports[name]
    text = _render(report, width, color=color)
    statuses = {"ok"} | {f.id for f in report.findings}
    shown = _check_screen(text, width, rows=ROWS[name], statuses=statuses)
    folds = {
        fold.label: fold
        for fold in fold_layers(report.layers, FINDING_LAYERS[name])
        if isinstance(fold, Fold)
    }
    for row in shown:
        label = next(token for token in row.split() if token in ROWS[name])
        if label in folds:  # the range of grad/weight over the folded layers, both ends whole
            ratios = [value(layer.grad_to_weight) for layer in folds[label].layers]
            known = [r for r in ratios if r is not None]
            assert f"{sci(min(known))} – {sci(max(known))}" in row
        else:
            assert sci(value(_layer(report, label).grad_to_weight)) in row.split()
    for layer in FINDING_LAYERS[name]:
        row = next(r for r in shown if layer in r.split())
        assert "dead-units" in row.split()


@pytest.mark.parametrize("width", [80, 200])
def test_the_folded_60_layer_mlp_fits_in_40_lines(reports: dict[str, Report], width: int) -> None:
    report = reports["mlp60"]
    assert len(report.layers) == 121
    text = _render(report, width)
    _, rows, table = _table(text)
    assert len(table) <= 40 and len(rows) == 5
    assert "118 healthy layers folded into 2 rows; --all-layers lists each" in text
    assert {name for f in report.findings for name in f.layers} == {"net.71"}
    # The unit's types where the type column has room for them, else its length.
    assert ("35 x (Linear, ReLU)" if width == 200 else "35 x 2 layers") in text


@pytest.mark.parametrize("width", [80, 200])
def test_every_layer_named_by_a_finding_is_shown(reports: dict[str, Report], width: int) -> None:
    report = reports["sigmoid60"]
    named = {name for f in report.findings for name in f.layers}
    assert len(named) >= 10  # vanishing and no-gradient name many of its Linear layers
    text = _render(report, width)
    header, rows, _ = _table(text)
    shown = _names(header, rows)
    assert named <= set(shown)
    assert len(rows) < len(report.layers)  # the healthy tail still folds
    assert "…" not in text
    for line in text.splitlines():
        assert cell_len(line) <= width


@pytest.mark.parametrize("color", [False, True], ids=["plain", "color"])
@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("name", ["mlp60", "transformer24"])
def test_all_layers_lists_every_layer(
    reports: dict[str, Report], name: str, width: int, color: bool
) -> None:
    report = reports[name]
    layers = sorted(report.layers, key=lambda layer: layer.order)
    text = _render(report, width, color=color, all_layers=True)
    statuses = {"ok"} | {f.id for f in report.findings}
    rows = _check_screen(
        text, width, rows=[layer.display_name for layer in layers], statuses=statuses
    )
    assert len(rows) == {"mlp60": 121, "transformer24": 145}[name]
    for layer, row in zip(layers, rows, strict=True):
        assert sci(value(layer.grad_to_weight)) in row.split()
    assert "folded" not in text


@pytest.mark.slow
def test_columns_go_in_order_as_the_width_shrinks(reports: dict[str, Report]) -> None:
    report = reports["mlp60"]
    seen = []
    for width in range(200, 39, -4):
        text = _render(report, width, all_layers=True)
        header, rows, _ = _table(text)
        assert len(rows) == 121  # never a wrapped row
        for line in text.splitlines():
            assert cell_len(line) <= width
        columns = (
            any("█" in row for row in rows),
            "act RMS" in header,
            "dead/sat" in header,
            " type " in f" {header} ",
            header.split()[0] == "#",
        )
        seen.append(columns)
        if width < COMPACT_BELOW:
            assert header.split() == ["layer", "grad/weight", "status"]
    # Each column, once gone, stays gone; the bar goes first, then act RMS, dead/sat, type.
    by_column = list(zip(*seen, strict=True))
    for shown in by_column:
        assert list(shown) == sorted(shown, reverse=True)
    dropped_at = [shown.index(False) for shown in by_column]
    assert dropped_at == sorted(dropped_at)
    assert seen[0] == (True, True, True, True, True) and seen[-1] == (False,) * 5


def test_types_are_short_in_the_terminal_only(reports: dict[str, Report]) -> None:
    report = reports["transformer24"]
    out_proj = [layer for layer in report.layers if layer.name.endswith("out_proj")]
    assert len(out_proj) == 24
    assert {layer.type for layer in out_proj} == {"NonDynamicallyQuantizableLinear"}
    assert short_type("NonDynamicallyQuantizableLinear") == "Linear"
    assert short_type("ParametrizationList") == "ModuleList"  # torch.nn.utils.parametrize
    assert short_type("Linear") == "Linear"
    assert short_type("TransformerBlock") == "TransformerBlock"  # a user's class keeps its name
    text = _render(report, 200, all_layers=True)
    assert "NonDynamicallyQuantizableLinear" not in text
    row = next(r for r in text.splitlines() if "encoder.layers.5.self_attn.out_proj" in r)
    assert row.split()[2] == "Linear"
    assert "24 x Linear" in _render(report, 200)
    # Machine output keeps the full class name.
    types = {layer["type"] for layer in yaml.safe_load(report.to_yaml())["layers"]}
    assert "NonDynamicallyQuantizableLinear" in types


def test_folds_split_around_a_finding(reports: dict[str, Report]) -> None:
    layers = reports["mlp60"].layers
    rows = fold_layers(layers, {"net.30"})
    labels = [row.label if isinstance(row, Fold) else row.display_name for row in rows]
    assert labels == ["net.0-29", "net.30", "net.31-118", "net.119", "head"]
    first = rows[0]
    assert isinstance(first, Fold) and first.repeats == 15 and first.unit == ("Linear", "ReLU")
    assert [layer.name for layer in first.layers] == [f"net.{i}" for i in range(30)]
    # Nothing folds when every layer is named, and short tables are never folded.
    everything = {layer.display_name for layer in layers}
    assert all(not isinstance(row, Fold) for row in fold_layers(layers, everything))
    assert len(reports["two_heads"].layers) <= FOLD_ABOVE


def test_findings_hang_under_their_text(reports: dict[str, Report]) -> None:
    text = _render(reports["mlp60"], 80)
    findings = text.split("\nFindings\n", 1)[1].splitlines()
    indent = 0
    continued = 0
    for line in findings:
        if not line.strip():
            continue
        starts = {
            "WARNING dead-units  ": 20,
            "        layers: ": 16,
            "        remedy ": 15,
            "        why: ": 13,
        }
        head = next((s for s in starts if line.startswith(s)), None)
        if head is not None:
            indent = starts[head]
            continue
        assert len(line) - len(line.lstrip()) == indent, line
        continued += 1
    assert continued >= 8
    assert "        remedy kaiming-init: Re-initialise" in text


def test_plain_width_follows_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert plain_width(io.StringIO()) == PLAIN_WIDTH == 120
    monkeypatch.setenv("COLUMNS", "80")
    assert plain_width(io.StringIO()) == 80
    assert console_module.make_console(io.StringIO(), color=False).width == 80
    assert console_module.make_console(io.StringIO(), color=False, width=61).width == 61
    monkeypatch.setenv("COLUMNS", "wide")
    assert plain_width(io.StringIO()) == 120


@pytest.mark.parametrize("color", [False, True])
def test_a_terminal_narrower_than_the_report_gets_sixty_columns_it_wraps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, color: bool
) -> None:
    # At COLUMNS=10 every panel and table cut its labels to a letter and an ellipsis.
    monkeypatch.setenv("COLUMNS", "10")
    assert console_module.make_console(io.StringIO(), color=color).width == 60
    assert console_module.make_console(io.StringIO(), color=color, width=30).width == 30
    monkeypatch.chdir(tmp_path)
    env = {"COLUMNS": "10", **({} if color else {"NO_COLOR": "1"})}
    result = CliRunner().invoke(main, ["diagnose", str(MODELS / "mlp60.py")], env=env)
    assert result.exit_code == 0
    lines = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).splitlines()
    assert max(len(line) for line in lines) == 60
    assert any("params" in line and "trainable" in line for line in lines)


@pytest.mark.parametrize("all_layers", [False, True])
def test_cli_no_color_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, all_layers: bool
) -> None:
    monkeypatch.chdir(tmp_path)  # no config file of this repository
    args = ["diagnose", str(MODELS / "mlp60.py"), *(["--all-layers"] if all_layers else [])]
    result = CliRunner().invoke(
        main, args, env={"COLUMNS": "80", "NO_COLOR": "1"}, catch_exceptions=False
    )
    assert result.exit_code == 0  # a warning; --fail-on error
    assert "\x1b[" not in result.stdout
    _check_screen(
        result.stdout,
        80,
        rows=[f"net.{i}" for i in range(120)] + ["head"] if all_layers else ROWS["mlp60"],
        statuses={"ok", "dead-units"},
    )
    data = CliRunner().invoke(main, [*args, "--format", "yaml"], catch_exceptions=False)
    assert len(yaml.safe_load(data.stdout)["layers"]) == 121  # YAML is always complete


CAPTURES = sorted(SCREENS.glob("*-*-*.txt"))


def test_every_capture_is_there() -> None:
    assert {p.name for p in CAPTURES} == {
        f"{name}-{width}-{mode}.txt"
        for name in ROWS
        for width in (80, 200)
        for mode in ("color", "plain")
    }


@pytest.mark.parametrize("path", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_captured_screens(path: Path) -> None:
    name, width, mode = path.stem.rsplit("-", 2)
    raw = path.read_text(encoding="utf-8")
    assert ("\x1b[" in raw) is (mode == "color")
    # capture.sh joins wrapped lines (tmux capture-pane -J): a wrapped row is a long line here.
    statuses = {"ok", "dead-units"}
    _check_screen(ANSI.sub("", raw), int(width), rows=ROWS[name], statuses=statuses)


def _piped_diagnosis(stdout: int | IO[bytes], columns: int) -> None:
    """``gradcheck diagnose mlp60.py`` in a new process whose stderr is a terminal of
    ``columns`` columns (a pseudo-terminal) and whose stdout is ``stdout``."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
        done = subprocess.run(
            [sys.executable, "-m", "gradcheck_cli", "diagnose", str(MODELS / "mlp60.py")],
            stdout=stdout, stderr=follower, env=env, timeout=300, start_new_session=True,
        )  # fmt: skip
        assert done.returncode == 0
    finally:
        os.close(follower)
        os.close(leader)


@pytest.mark.skipif(not hasattr(__import__("os"), "openpty"), reason="needs a POSIX pty")
@pytest.mark.slow
def test_piped_output_takes_the_width_of_the_terminal_it_lands_in(tmp_path: Path) -> None:
    # `gradcheck diagnose m.py | less` in an 80-column terminal: stdout is a pipe, stderr the
    # terminal. The report is laid out at 80 columns (a new session: no controlling terminal,
    # so the width comes from stderr). Redirected to a file it keeps the stable 120.
    import os
    import threading

    read, write = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(os.fdopen(read, "rb").read()))
    reader.start()
    try:
        _piped_diagnosis(write, 80)
    finally:
        os.close(write)
        reader.join(timeout=60)
    piped = b"".join(chunks).decode()
    assert "\x1b[" not in piped  # a pipe gets no colour
    _check_screen(piped, 80, rows=ROWS["mlp60"], statuses={"ok", "dead-units"})
    with open(tmp_path / "report.txt", "wb") as file:
        _piped_diagnosis(file, 80)
    saved = (tmp_path / "report.txt").read_text()
    _check_screen(saved, PLAIN_WIDTH, rows=ROWS["mlp60"], statuses={"ok", "dead-units"})
    assert max(cell_len(line.rstrip()) for line in saved.splitlines()) > 80


def test_print_of_a_report_is_the_plain_text_report(
    reports: dict[str, Report], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = reports["mlp60"]
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal: the stable width
    text = str(report)
    assert text == _render(report, PLAIN_WIDTH, color=False).rstrip("\n")
    assert not text.startswith("Report(") and "\x1b[" not in text
    _check_screen(text, PLAIN_WIDTH, rows=ROWS["mlp60"], statuses={"ok", "dead-units"})
    monkeypatch.setenv("COLUMNS", "80")
    _check_screen(str(report), 80, rows=ROWS["mlp60"], statuses={"ok", "dead-units"})
