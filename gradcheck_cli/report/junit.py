"""The JUnit XML renderer: one test case per check, failed by its findings at ``--fail-on``.

CI test-report views (GitHub, GitLab, Jenkins) read this format. Findings below ``--fail-on``
are listed in the test case's ``system-out`` so they are visible without failing it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TextIO

from gradcheck_cli.checks import CHECKS
from gradcheck_cli.findings import FailOn, Report, Severity
from gradcheck_cli.report.escape import xml_safe


def _fails(severity: Severity, fail_on: FailOn) -> bool:
    return fail_on is not FailOn.NEVER and severity.rank >= Severity(fail_on.value).rank


def render(
    report: Report, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write a ``<testsuites>`` document with one ``<testsuite>`` for the model."""
    suite_name = f"gradcheck {report.model.name}"
    failures = 0
    cases = []
    for check_id, cls in CHECKS.items():
        case = ET.Element(
            "testcase", classname=f"gradcheck.{report.model.type}", name=f"{check_id}: {cls.name}"
        )
        case.set("time", "0")
        found = [f for f in report.findings if f.id == check_id]
        failing = [f for f in found if _fails(f.severity, fail_on)]
        if failing:
            failures += 1
            worst = max(failing, key=lambda f: f.severity.rank)
            failure = ET.SubElement(
                case, "failure", message=worst.message, type=worst.severity.value
            )
            failure.text = "\n\n".join(
                f"[{f.severity.value}] {f.message}\nlayers: {', '.join(f.layers) or '-'}\n"
                f"remedies: {', '.join(f.remedies) or '-'}\n{f.why}"
                for f in failing
            )
        passing = [f for f in found if f not in failing]
        if passing:
            out_text = ET.SubElement(case, "system-out")
            out_text.text = "\n".join(f"[{f.severity.value}] {f.message}" for f in passing)
        cases.append(case)
    root = ET.Element("testsuites", name="gradcheck", tests=str(len(cases)), failures=str(failures))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{report.run.seconds:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for key, val in (
        ("status", report.status.value),
        ("device", report.run.device),
        ("seed", str(report.run.seed)),
        ("fail_on", fail_on.value),
    ):
        ET.SubElement(props, "property", name=key, value=val)
    suite.extend(cases)
    ET.indent(root)
    xml_safe(root)  # a module name may hold control characters
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")
