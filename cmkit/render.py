"""Human rendering of result objects, on stderr; `--json` documents go to stdout.

Only `cmkit.cli` calls this module: core modules return data and never print.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cmkit.lint import LintReport
from cmkit.requirements import DependencyReport

console = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_json_line(document: Any) -> None:
    """One JSON document on one line: a readiness signal that long-running commands print once."""
    sys.stdout.write(json.dumps(document, default=str) + "\n")
    sys.stdout.flush()


def error_line(text: str) -> None:
    console.print(f"[bold red]error:[/] {escape(text)}", markup=True)


def deps_report(report: DependencyReport) -> None:
    table = Table(title=f"Dependencies in {report.source}", title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("package")
    table.add_column("constraints")
    table.add_column("extras")
    for dep in report.dependencies:
        constraints = ", ".join(f"{c.constraint_type}{c.version}" for c in dep.constraints) or "any"
        table.add_row(str(dep.line_number), dep.package_name, constraints, dep.extras or "")
    if report.dependencies:
        console.print(table)
    else:
        console.print(f"{report.source}: no dependencies")
    for err in report.errors:
        console.print(
            f"[red]{escape(report.source)}:{err.line_number}:[/] {escape(repr(err.line))}: {escape(err.message)}",
            markup=True,
        )
    if report.errors:
        console.print(f"[bold red]{len(report.errors)} line(s) cannot be mapped[/]", markup=True)


def lint_report(report: LintReport) -> None:
    for finding in report.findings:
        where = f"{report.bundle}/{finding.file}" + (f":{finding.line}" if finding.line else "")
        colour = "red" if finding.severity == "error" else "yellow"
        console.print(
            f"[{colour}]{escape(where)}: {finding.severity} \\[{finding.rule}][/{colour}] {escape(finding.message)}",
            markup=True,
        )
    verdict = "[green]ok[/]" if report.ok else f"[bold red]{len(report.errors)} error(s)[/]"
    console.print(f"{escape(report.bundle)}: {report.files} files, {report.bytes} bytes: {verdict}", markup=True)


def emulator_ready(info: dict[str, Any]) -> None:
    console.print(f"[bold]cmkit emulator[/] serving [cyan]{escape(info['endpoint'])}[/]", markup=True)
    console.print(f"  token:       {escape(info['token'])}", markup=True)
    console.print(f"  data dir:    {escape(info['dataDir'])}", markup=True)
    console.print(f"  runtime:     {escape(info['runtime'])}", markup=True)
    if info.get("environmentId"):
        console.print(f"  environment: {escape(info['environmentId'])} (Python 3.11, seeded)", markup=True)
    console.print(
        f"  try: DATAROBOT_ENDPOINT={escape(info['endpoint'])} DATAROBOT_API_TOKEN=<token> ... (Ctrl-C stops)",
        markup=True,
    )


def warning_line(text: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(text)}", markup=True)
