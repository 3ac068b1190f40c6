"""`--junit`: a test-local report as JUnit XML, one testcase per check, for CI dashboards."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from cmkit.checks.results import ABORTED, CANCELED, FAILED, SKIPPED

if TYPE_CHECKING:
    from cmkit.report import TestReport


def junit_xml(report: TestReport, name: str = "cmkit test-local") -> str:
    """One testcase per check; failed -> <failure>, warning -> <system-out>, skipped/aborted -> <skipped>."""
    suite = ET.Element("testsuite", name=name, tests=str(len(report.results)))
    failures = skipped = 0
    diagnosis = report.diagnosis
    for check, result in report.results.items():
        case = ET.SubElement(suite, "testcase", classname="cmkit.test_local", name=check, time=f"{result.seconds:.3f}")
        if result.status == FAILED and diagnosis is not None and not failures:
            # The first failure carries the diagnosis: its code as the type CI dashboards group by.
            failures += 1
            evidence = [line for line in diagnosis.evidence if line != result.message]
            text = "\n".join((diagnosis.line(), *evidence, "", result.message))
            ET.SubElement(case, "failure", message=diagnosis.line(), type=diagnosis.code).text = text
        elif result.status == FAILED:
            failures += 1
            ET.SubElement(
                case, "failure", message=result.message.splitlines()[0] if result.message else "failed"
            ).text = result.message
        elif result.status in (SKIPPED, ABORTED, CANCELED):
            skipped += 1
            ET.SubElement(case, "skipped", message=f"{result.status}: {result.message}")
        elif result.message:
            ET.SubElement(case, "system-out").text = f"{result.status}: {result.message}"
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
