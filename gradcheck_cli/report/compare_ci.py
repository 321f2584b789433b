"""CI renderings of a comparison: GitHub annotations, JUnit XML, Markdown.

They share one idea, so they share one file: each regression is a failure naming the layer or the
finding, each improvement is listed as such, everything else is context.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TextIO

from gradcheck_cli.compare import Comparison, LayerDiff
from gradcheck_cli.findings import FailOn
from gradcheck_cli.report.escape import markdown_text, xml_safe
from gradcheck_cli.report.github import escape_data, escape_property


def _layer_line(l: LayerDiff) -> str:
    factor = l.factor
    moved = f"x{factor:.3g}" if factor is not None else "?"
    old = "-" if l.old is None else f"{l.old:.3g}"
    new = "-" if l.new is None else f"{l.new:.3g}"
    where = f", {l.direction.value}" if l.direction.value else ""
    return f"gradient RMS of {l.name} ({l.type}) {l.change.value} {moved}{where}: {old} -> {new}"


def _improvements(comparison: Comparison) -> list[str]:
    """One line per finding gone or less severe and per layer moved toward the healthy band."""
    lines = [
        f"{f.id} {f.change.value}: {f.old.value if f.old else '-'} -> {f.new.value if f.new else 'gone'}"
        for f in comparison.findings
        if f.improvement
    ]
    return lines + [_layer_line(l) for l in comparison.layers if l.improvement]


def render_github(
    comparison: Comparison, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """One ``::error`` per regression, a notice listing the improvements, one with the verdict."""
    for f in comparison.findings:
        if f.regression:
            title = escape_property(f"gradcheck regression: {f.id}")
            severity = f.new.value if f.new else "-"
            text = f"{f.change.value} {f.id} ({severity}): {f.message}"
            out.write(f"::error title={title}::{escape_data(text)}\n")
    for l in comparison.layers:
        if l.regression:
            out.write(
                f"::error title={escape_property(f'gradcheck regression in {l.name}')}::{escape_data(_layer_line(l))}\n"
            )
    better = _improvements(comparison)
    if better:
        title = escape_property(f"gradcheck improvements: {len(better)}")
        out.write(f"::notice title={title}::{escape_data(chr(10).join(better))}\n")
    verdict = "regression" if comparison.regressed else "no regression"
    if better:
        verdict += f", {len(better)} improvement(s)"
    out.write(
        f"::notice title=gradcheck baseline::{escape_data(f'{comparison.new_model}: {verdict} against the baseline')}\n"
    )


def render_junit(
    comparison: Comparison, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """A test case per finding id and per compared layer; regressions fail, improvements say so
    in the case's output."""
    suite = ET.Element("testsuite", name=f"gradcheck baseline {comparison.new_model}")
    failures = 0
    for f in comparison.findings:
        case = ET.SubElement(suite, "testcase", classname="gradcheck.baseline.findings", name=f.id)
        if f.regression:
            failures += 1
            ET.SubElement(
                case,
                "failure",
                message=f"{f.change.value}: {f.message}",
                type=f.new.value if f.new else "",
            )
        elif f.improvement:
            old = f.old.value if f.old else "-"
            ET.SubElement(
                case, "system-out"
            ).text = f"improvement: {f.change.value} ({old} -> {f.new.value if f.new else 'gone'})"
    for l in comparison.layers:
        case = ET.SubElement(suite, "testcase", classname="gradcheck.baseline.layers", name=l.name)
        if l.regression:
            failures += 1
            ET.SubElement(case, "failure", message=_layer_line(l), type=l.change.value)
        elif l.improvement:
            ET.SubElement(case, "system-out").text = f"improvement: {_layer_line(l)}"
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    root = ET.Element("testsuites", name="gradcheck", tests=str(len(suite)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    xml_safe(root)  # names from a report file may hold control characters
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    )


def render_markdown(
    comparison: Comparison, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """A Markdown section: verdict, regressions first, then every difference."""
    verdict = "🔴 regression" if comparison.regressed else "✅ no regression"
    if comparison.improvements:
        verdict += f", {comparison.improvements} improvement(s)"
    out.write(f"## gradcheck baseline: {verdict}\n\n")
    out.write(
        f"{markdown_text(comparison.old_model)} ({markdown_text(comparison.old_status)}) → {markdown_text(comparison.new_model)} ({markdown_text(comparison.new_status)}); layers may move up to x{comparison.factor:g}.\n\n"
    )
    rows = [f for f in comparison.findings if f.change.value != "unchanged"]
    if rows:
        out.write("| finding | baseline | now | change |\n|---|---|---|---|\n")
        for f in rows:
            out.write(
                f"| `{f.id}` | {f.old.value if f.old else '–'} | {f.new.value if f.new else '–'} | {_md_change(f.change.value, f.regression, f.improvement)} |\n"
            )
        out.write("\n")
    moved = [l for l in comparison.layers if l.change.value != "unchanged"]
    if moved:
        out.write("| layer | change | baseline | now |\n|---|---|---:|---:|\n")
        for l in moved:
            out.write(
                f"| {markdown_text(l.name)} | {_md_change(l.change.value + (', ' + l.direction.value if l.direction.value else ''), l.regression, l.improvement)} | {l.old if l.old is not None else '–'} | {l.new if l.new is not None else '–'} |\n"
            )
        out.write("\n")


def _md_change(change: str, regression: bool, improvement: bool) -> str:
    if regression:
        return f"**{change}: regression**"
    if improvement:
        return f"{change}: improvement"
    return change
