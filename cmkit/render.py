"""Human rendering of result objects, on stderr; `--json` documents go to stdout.

Only `cmkit.cli` calls this module: core modules return data and never print.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich import box, filesize
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table

from cmkit.events import BYTES, ITEMS, STEPS, WAITING, Events
from cmkit_runtime.formats import TRANSFORM_ROUTES, UNSTRUCTURED_ROUTES

if TYPE_CHECKING:  # types only: every command imports render, and lint's imports cost 0.2 s
    from pathlib import Path

    from cmkit.checks.protocols import Detected
    from cmkit.diagnosis import Diagnosis
    from cmkit.emulator.server import EmulatorReady
    from cmkit.environments import EnvironmentPushResult
    from cmkit.featureimpact import FeatureImpactOutcome
    from cmkit.lint import LintReport
    from cmkit.predict import PredictResult
    from cmkit.prune import PruneResult
    from cmkit.push import PushResult
    from cmkit.report import TestTable
    from cmkit.repository import Selection
    from cmkit.repositoryrun import ModelOutcome, RepositoryResult
    from cmkit.requirements import DependencyReport
    from cmkit.scaffold import InitResult
    from cmkit.serve import ServeSession
    from cmkit.watch import Serving, WatchRun

console = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(document: Any, one_line: bool = False) -> None:
    """Exactly one JSON document on stdout (on one line for long-running commands to read early)."""
    sys.stdout.write(json.dumps(document, indent=None if one_line else 2, default=str) + "\n")
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


_STATUS_STYLE = {
    "succeeded": "green",
    "warning": "yellow",
    "failed": "bold red",
    "skipped": "dim",
    "aborted": "dim red",
    "canceled": "dim",
}


def _status(status: str, style: str | None = None) -> str:
    """A status word in its style, as markup. A status with no style (in_progress, queued...) is
    plain text: rich reads `[]word[/]` as a closing tag with nothing to close and raises."""
    style = _STATUS_STYLE.get(status, "") if style is None else style
    return f"[{style}]{escape(status)}[/]" if style else escape(status)


class ConsoleEvents(Events):
    """Progress of test-local, serve, predict and push on stderr.

    On a terminal: each build step is one line, drawn with a spinner and its time while it runs
    and left with its time when the next starts; the raw build output only with `verbose` (a
    failed build's tail is in the error). A running check is a spinner that goes away: the
    final table shows each check once. Uploads draw a bar (bytes, speed, time left), polled
    remote builds a spinner.

    Otherwise plain lines, which CI logs keep readable: the build's own output (unless
    `show_build_output` is off, --json: then one line a step), a line per check that ran, uploads at
    0/25/50/75/100 %. A stage ends whatever is drawn. Use as a context manager so nothing
    drawn outlives the command.
    """

    def __init__(self, show_build_output: bool = True, out: Console | None = None, verbose: bool = False) -> None:
        self.console = out or console
        terminal = self.console.is_terminal
        self.show_build_output = verbose if terminal else show_build_output
        self._bars: dict[str, tuple[Progress, TaskID]] = {}
        self._printed: dict[str, int] = {}
        self._step: tuple[str, float] | None = None  # the build step drawn: its line, when it started

    def __enter__(self) -> ConsoleEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for bar, _ in self._bars.values():
            bar.stop()
        self._bars.clear()
        self._printed.clear()
        if self._step is not None:
            text, began = self._step
            self._step = None
            took = time.monotonic() - began
            # No tick: a step that failed ends the same way, and the error below says so.
            self.console.print(f"  [dim]·[/] {escape(text)} [dim]{took:.1f}s[/]", markup=True, **_ONE_LINE)

    def stage(self, text: str) -> None:
        self.close()
        self.console.print(f"[bold cyan]>[/] {escape(text)}", markup=True)

    def log(self, line: str) -> None:
        if self.show_build_output:
            self.console.print(f"  [dim]{escape(line)}[/]", markup=True)

    def step(self, label: str, number: int, total: int, text: str) -> None:
        if not self.console.is_terminal:
            if not self.show_build_output:  # else the build's own "Step N/M" lines say it
                self.console.print(f"  {escape(label)}: step {number}/{total}", markup=True)
            return
        self.close()  # the step before ends: its line stays, with its time
        line = f"{label} {number}/{total}: {text}"
        self._step = (line, time.monotonic())
        self._bar(f"step:{label}:{number}", WAITING, None, transient=True, description=escape(line))

    def check_started(self, name: str) -> None:
        if not self.console.is_terminal:
            super().check_started(name)
            return
        self.close()
        self._bar(f"check:{name}", WAITING, None, transient=True, description=f"running {name}")

    def check(self, name: str, result: object) -> None:
        self.close()
        status = str(getattr(result, "status", ""))
        if self.console.is_terminal or status == "skipped":
            return  # the final table shows each check once, and the skipped ones in one line
        first = str(getattr(result, "message", "")).splitlines()[0:1]
        self.console.print(f"  {name}: {_status(status)} {escape(first[0] if first else '')}", markup=True)

    def progress(self, label: str, done: int, total: int, unit: str = BYTES) -> None:
        if self.console.is_terminal:
            bar, task = self._bar(label, unit, total or None, transient=unit != BYTES)
            bar.update(task, completed=done, total=total or None)
        else:
            self._plain(label, done, total, unit)

    def _bar(
        self, key: str, unit: str, total: int | None, transient: bool, description: str | None = None
    ) -> tuple[Progress, TaskID]:
        if key not in self._bars:
            if self._bars:  # one live display at a time: uploads, build steps and checks never overlap
                for bar, _ in self._bars.values():
                    bar.stop()
                self._bars.clear()
            bar = Progress(*_columns(unit), console=self.console, transient=transient)
            self._bars[key] = (bar, bar.add_task(description or key, total=total))
            bar.start()
        return self._bars[key]

    def _plain(self, label: str, done: int, total: int, unit: str) -> None:
        if unit == WAITING or total <= 0:
            return  # the stage line said what is awaited; ticks would only repeat it
        if unit == STEPS:
            if not self.show_build_output:  # else the build's own "Step N/M" lines say it
                self.console.print(f"  {escape(label)}: step {done + 1}/{total}", markup=True)
            return
        quarter = done * 4 // total
        if self._printed.get(label, -1) < quarter:
            self._printed[label] = quarter
            counted = f"{done} of {total}" if unit == ITEMS else f"{_human_bytes(done)} of {_human_bytes(total)}"
            self.console.print(f"  {escape(label)}: {counted} ({quarter * 25}%)", markup=True)


# A build step's line is cut to the width, never wrapped: a RUN instruction can be very long.
_ONE_LINE: dict[str, Any] = {"overflow": "ellipsis", "no_wrap": True, "crop": True}


def _columns(unit: str) -> list[ProgressColumn]:
    description = TextColumn("[bold cyan]{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis"))
    if unit == BYTES:
        sizes = DownloadColumn(binary_units=True)
        return [description, BarColumn(), sizes, TransferSpeedColumn(), TimeRemainingColumn()]
    if unit in (STEPS, ITEMS):
        counted = TextColumn("{task.completed:.0f}/{task.total:.0f}" + (" steps" if unit == STEPS else ""))
        return [SpinnerColumn(), description, BarColumn(), counted, TimeElapsedColumn()]
    return [SpinnerColumn(), description, TimeElapsedColumn()]


def test_report(table: TestTable) -> None:
    """The final table, of a local report (`TestReport.table()`) or a remote test (`TestTable.from_api`)."""
    grid = Table(title_justify="left", show_lines=False)
    grid.add_column("check")
    grid.add_column("config")
    grid.add_column("status")
    grid.add_column("message", overflow="fold")
    skipped = [row for row in table.rows if row.status == "skipped"]
    for row in table.rows:
        if row.status == "skipped":
            continue  # one line under the table, not a row each
        # With a diagnosis the log's lines are below the table once, not inside a cell.
        message = row.message.splitlines()[0] if table.diagnosis and row.message else row.message
        grid.add_row(escape(row.name), escape(row.level), _status(row.status), escape(message))
    console.print(grid)
    if skipped:
        reasons = sorted({row.message for row in skipped})
        head = reasons[0] if len(reasons) == 1 and reasons[0].startswith("skipped") else "skipped"
        console.print(f"[dim]{escape(head)}: {escape(', '.join(row.name for row in skipped))}[/]", markup=True)
    overall = table.overall
    console.print(f"overall: {_status(overall)}", markup=True)
    if table.protocol:
        name, how = table.protocol
        console.print(f"protocol: {escape(name)} ({escape(how)})", markup=True)
    for warning in table.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", markup=True)
    if table.diagnosis is not None:
        diagnosis(table.diagnosis)
    tail = table.log_tail if overall == "failed" and table.diagnosis is None else None
    if tail:
        console.print("[dim]last server log lines:[/]", markup=True)
        console.print(escape(str(tail)), markup=True)


def diagnosis(found: Diagnosis) -> None:
    """The one line saying what is wrong and what to do, and the evidence under it."""
    console.print(f"[bold red]{escape(found.code)}:[/] {escape(found.line())}", markup=True)
    for line in found.evidence:
        console.print(f"  [dim]{escape(line)}[/]", markup=True)


def prediction(result: PredictResult, output: Path | None) -> None:
    """`cmkit predict`'s verdict on stderr (the predictions went to stdout or --output)."""
    if result.ok:
        where = f" to {output}" if output else ""
        warm = f" on the server of `cmkit serve` at {result.warm_server}" if result.warm_server else ""
        console.print(f"predicted {result.rows} rows{escape(where)}{escape(warm)}", markup=True)
        return
    console.print(f"[red]prediction failed:[/] {escape(result.problem or '')}", markup=True)
    if result.diagnosis is not None:
        diagnosis(result.diagnosis)


BAR_WIDTH = 20


def impact_bar(normalized: float, width: int = BAR_WIDTH) -> str:
    """A feature's normalised impact as a bar of eighth blocks (nothing for no or negative impact)."""
    eighths = round(max(0.0, min(1.0, normalized)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if not rest else " ▏▎▍▌▋▊▉"[rest])


def feature_impact(outcome: FeatureImpactOutcome) -> None:
    """The ranking of `test-local --feature-impact`, most impactful feature first."""
    result = outcome.result
    if outcome.status != "succeeded" or result is None:
        console.print(f"feature impact: {_status(outcome.status)} {escape(outcome.message)}")
        return
    table = Table(title=f"feature impact ({result.metric}, {result.rows} rows)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("feature")
    table.add_column("normalized", justify="right")
    table.add_column("", no_wrap=True)
    table.add_column(f"{result.metric} increase", justify="right")
    for position, item in enumerate(result.shown(), start=1):
        table.add_row(
            str(position),
            escape(item.feature_name),
            f"{item.impact_normalized:.3f}",
            impact_bar(item.impact_normalized),
            f"{item.impact_unnormalized:.4g}",  # one precision for every row, as the normalised column
        )
    console.print(table)
    console.print(f"baseline {result.metric} {result.baseline:.6g}, {round(result.seconds, 3):.2f} s")


def serving(session: ServeSession) -> None:
    """serve: where the server answers and, when known, how to predict."""
    if session.target_type is not None and session.target_type.unstructured:
        _serving_unstructured(session.url, session.server.url_prefix)
        return
    if session.target_type is not None and session.target_type.transforms:
        _serving_transform(session.url, session.server.url_prefix)
        return
    _serving_at(session.url, session.server.url_prefix, session.protocol)
    if session.chat:
        _chat_examples(session.url)


def _chat_examples(url: str) -> None:
    """How to talk to a chat model: OpenAI's API at the served URL, from curl and the openai client."""
    body = '{"model": "any", "messages": [{"role": "user", "content": "Hello"}]}'
    console.print(f"chat: OpenAI's API at {url} (POST chat/completions, GET models); try:", markup=False)
    console.print(f"  curl -s {url}chat/completions -H 'Content-Type: application/json' -d '{body}'", markup=False)
    snippet = (
        f'from openai import OpenAI; client = OpenAI(base_url="{url}", api_key="local"); '
        'print(client.chat.completions.create(model="any", messages=[{"role": "user", "content": "Hello"}])'
        ".choices[0].message.content)"
    )
    console.print(f"  python -c '{snippet}'", markup=False)
    console.print("  (stream=True streams it, as from OpenAI)", markup=False)


def _serving_unstructured(url: str, url_prefix: str | None) -> None:
    """An unstructured model takes any body on DRUM's route, whatever server serves it."""
    console.print(f"[bold green]serving[/] {escape(url)}  (URL_PREFIX={escape(str(url_prefix))})", markup=True)
    route = f"{url.rstrip('/')}{UNSTRUCTURED_ROUTES[0]}"
    console.print(f"unstructured: POST {route} with any body; its Content-Type says what it is", markup=False)
    console.print(f"try: curl -s {route} -H 'Content-Type: text/plain' --data-binary @FILE", markup=False)
    console.print("Ctrl-C to stop and clean up", markup=False)


def _serving_transform(url: str, url_prefix: str | None) -> None:
    """A transform takes a CSV under the form key X on DRUM's route, whatever server serves it."""
    console.print(f"[bold green]serving[/] {escape(url)}  (URL_PREFIX={escape(str(url_prefix))})", markup=True)
    route = f"{url.rstrip('/')}{TRANSFORM_ROUTES[0]}"
    console.print(f"transform: POST {route} with a CSV under the form key X; the answer's X.transformed", markup=False)
    console.print(f"try: curl -s {route} -F X=@FILE.csv", markup=False)
    console.print(f"sparse: curl -s {route} -F X=@FILE.mtx -F X.colnames=@NAMES.txt (DRUM's form)", markup=False)
    console.print("Ctrl-C to stop and clean up", markup=False)


def _serving_at(url: str | None, url_prefix: str | None, detected: Detected | None) -> None:
    console.print(f"[bold green]serving[/] {escape(str(url))}  (URL_PREFIX={escape(str(url_prefix))})", markup=True)
    if detected is not None:
        protocol = detected.protocol
        route = f"{str(url).rstrip('/')}{protocol.route}"
        body = "the dataset as CSV (text/csv)" if protocol.name == "drum" else '{"X": {column: [values]}}'
        console.print(f"protocol: {protocol.name}: POST {route} with {body}", markup=False)
    console.print(f"try: curl {url}  — Ctrl-C to stop and clean up", markup=False)


def _human_bytes(count: int) -> str:
    """Binary units, as the upload bars show them (rich's DownloadColumn(binary_units=True))."""
    unit, suffix = filesize.pick_unit_and_suffix(count, ["B", "KiB", "MiB", "GiB", "TiB"], 1024)
    return f"{count} B" if unit == 1 else f"{count / unit:.1f} {suffix}"


def push_result(result: PushResult) -> None:
    plan = result.plan
    if result.dry_run:
        console.print("[bold]dry run[/]: nothing was sent", markup=True)
        if plan.model_create:
            console.print(f"would create model: {escape(json.dumps(plan.model_create.to_api()))}", markup=True)
        elif plan.model:
            console.print(f"model: {plan.model.id}")
        console.print(f"version: {plan.action} ({escape(plan.reason)})", markup=True)
        for file in plan.upload:
            console.print(f"  upload {escape(file.path)}  {_human_bytes(file.size)}", markup=True)
        for item in plan.delete:
            console.print(f"  delete {escape(item.file_path)}", markup=True)
        console.print(f"  total {_human_bytes(plan.upload_bytes)}")
        deps = ", ".join(d.line for d in plan.bundle.dependencies) or "none"
        console.print(f"dependencies: {escape(deps)}", markup=True)
        return
    if result.build_status == "failed":
        from cmkit.diagnosis import BUILD_FAILED  # push has imported it already

        found = result.diagnosis()
        if found is not None and found.code != BUILD_FAILED:  # recognised: one line and its evidence
            console.print("[bold red]dependency build failed[/]", markup=True)
            diagnosis(found)
        else:
            console.print("[bold red]dependency build failed[/]; last log lines:", markup=True)
            console.print(escape(result.build_log_tail or ""), markup=True)
    test = result.test_table()
    if test is not None:
        test_report(test)
    verdict = (
        "up to date"
        if plan.action == "up-to-date"
        else f"{result.uploaded_files} file(s), " + _human_bytes(result.uploaded_bytes)
    )
    console.print(
        f"model {result.model_id} version {result.version_id} ({result.version_label}): {verdict}; "
        f"build {result.build_status or 'not needed'}; {result.model_url}",
        markup=False,
    )


def prune_result(result: PruneResult) -> None:
    """A table that fits 80 columns: the id under the name, the age instead of the time stamp,
    why it was kept with why it was selected (`--json` has every field in full)."""
    dry_run = result.options.dry_run
    if result.objects:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
        table.add_column("action", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        table.add_column("name", overflow="fold", ratio=2)
        table.add_column("age", justify="right", no_wrap=True)
        table.add_column("size", justify="right", no_wrap=True)
        table.add_column("why", overflow="fold", ratio=1)
        now = time.time()
        for item in result.objects:
            size = _human_bytes(item.size) if item.size is not None else ""
            name = escape(item.name) + (f"\n[dim]{item.short_id}[/]" if item.short_id else "")
            why = escape(item.why) + (f"; [yellow]kept: {escape(item.reason)}[/]" if item.reason else "")
            action = "kept" if item.reason else item.action(dry_run)
            table.add_row(action, item.kind, name, _age(now - item.created), size, why)
        console.print(table)
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} {result.containers} container(s), {result.images} image(s) and {result.files} cache "
        f"entries; kept {result.kept}",
        markup=False,
    )


def _age(seconds: float) -> str:
    """30s, 12m, 5h, 3d: as --older-than spells durations."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def environment_result(result: EnvironmentPushResult) -> None:
    if result.build_log_tail:
        console.print("[bold red]environment build failed[/]; last log lines:", markup=True)
        console.print(escape(result.build_log_tail), markup=True)
    state = "up to date" if result.up_to_date else f"uploaded {_human_bytes(result.context_bytes)}"
    console.print(
        f"environment {result.environment_id} version {result.version_id}: {state}; build {result.build_status}",
        markup=False,
    )


def init_result(result: InitResult) -> None:
    console.print(
        f"[green]Created[/] {escape(str(result.bundle))}: a {result.target_type} model, {len(result.files)} files",
        markup=True,
    )
    for path in result.files:
        console.print(f"  {escape(path)}")
    hooks = next((path for path in result.files if path.startswith("custom.")), "custom.py")
    console.print(f"Next: edit {hooks}, then run", markup=False)
    for command in result.next_commands:
        console.print(f"  {escape(command)}")


def emulator_ready(ready: EmulatorReady) -> None:
    console.print(f"[bold]cmkit emulator[/] serving [cyan]{escape(ready.endpoint)}[/]", markup=True)
    console.print(f"  token:       {escape(ready.token)}", markup=True)
    console.print(f"  data dir:    {escape(ready.data_dir)}", markup=True)
    console.print(f"  runtime:     {escape(ready.runtime)}", markup=True)
    if ready.environment_id:
        console.print(f"  environment: {escape(ready.environment_id)} (Python 3.11, seeded)", markup=True)
    console.print(
        f"  try: DATAROBOT_ENDPOINT={escape(ready.endpoint)} DATAROBOT_API_TOKEN=<token> ... (Ctrl-C stops)",
        markup=True,
    )


def warning_line(text: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(text)}", markup=True)


# --- --watch ------------------------------------------------------------------------------------

WATCH_LOG_LINES = 12  # of a failed run's server log: the traceback's tail


def watching(bundle: str) -> None:
    console.print(f"[bold cyan]>[/] watching {escape(bundle)} (Ctrl-C stops and removes the server)", markup=True)


def _watch_headline(
    action: str | None,
    changed: Sequence[str],
    removed: Sequence[str],
    environment: bool,
    durations: Mapping[str, float],
) -> str:
    if action == "started":
        return "started"
    names = [*changed, *(f"{path} (removed)" for path in removed)]
    if environment:
        names.append("environment")
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    steps = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in durations.items() if name != "total")
    return f"{shown}: {action}" + (f" ({steps})" if steps else "")


def watch_run(run: WatchRun) -> None:
    """test-local --watch: one line per check, the verdict and the time since the save."""
    details = run.report.details
    durations = details.durations or {}
    change = run.change
    headline = _watch_headline(
        run.action,
        change.changed if change else (),
        change.removed if change else (),
        change.environment if change else False,
        durations,
    )
    console.print(f"[bold]{escape(headline)}[/]", markup=True)
    for name, result in run.report.results.items():
        message = result.message.splitlines()
        console.print(f"  {name}: {_status(result.status)} {escape(message[0] if message else '')}", markup=True)
    overall = run.overall_status
    since = run.seconds_since_save
    timing = f"{since:.2f}s after the save" if since is not None else f"in {durations.get('total', 0):.1f}s"
    console.print(f"{_status(overall)}, {timing}", markup=True)
    tail = details.server_log if overall == "failed" else None
    if tail:
        console.print("[dim]last server log lines:[/]", markup=True)
        console.print(escape("\n".join(str(tail).splitlines()[-WATCH_LOG_LINES:])), markup=True)


def watch_serving(served: Serving) -> None:
    """serve --watch: where it serves after the start, and each reload's outcome."""
    if served.action == "started" and served.ready:
        _serving_at(served.url, served.url_prefix, None)  # its readiness client and protocol are not kept
        return
    since = served.seconds_since_save
    timing = f", {since:.2f}s after the save" if since is not None else ""
    change = served.change
    headline = escape(
        _watch_headline(
            served.action,
            change.changed if change else (),
            change.removed if change else (),
            change.environment if change else False,
            served.durations,
        )
    )
    if served.ready:
        console.print(f"[green]{headline}[/]: serving {escape(str(served.url))}{timing}", markup=True)
    else:
        message = str(served.message or "the server is not answering")
        console.print(f"[bold red]{headline}[/]: not serving{timing}", markup=True)
        console.print(escape("\n".join(message.splitlines()[-WATCH_LOG_LINES:])), markup=True)


def watch_error(error: Exception) -> None:
    """A change that cannot be run (broken metadata, an unreadable dataset): watching goes on."""
    error_line(f"{error} (still watching)")


# --- a repository's models (--all, list) ------------------------------------------------------------


def _selected(selection: Selection) -> str:
    narrowed = []
    if selection.changed_since:
        narrowed.append(f"changed since {selection.changed_since}")
    if selection.shard:
        narrowed.append(f"shard {selection.shard[0]}/{selection.shard[1]}")
    how = f" ({', '.join(narrowed)})" if narrowed else ""
    return f"{len(selection.models)} of {selection.found} model(s){how}"


def repository_start(selection: Selection, jobs: int) -> None:
    console.print(f"> {escape(str(selection.root))}: {_selected(selection)}, {jobs} at a time")


def repository_outcome(outcome: ModelOutcome) -> None:
    """One line as each model finishes (in finishing order with --jobs)."""
    model = outcome.model
    why = ""
    if outcome.error:
        why = f": {outcome.error.get('message')}"
    console.print(
        f"  {_status(outcome.status if outcome.status != 'error' else 'failed')} {escape(model.name)}"
        f" ({escape(model.path)}) in {outcome.seconds:.1f}s{escape(why)}"
    )


def repository_result(result: RepositoryResult) -> None:
    table = Table(title=f"cmkit {result.command} --all: {_selected(result.selection)}")
    for column in ("model", "path", "status", "seconds"):
        table.add_column(column)
    for outcome in result.outcomes:
        table.add_row(
            escape(outcome.model.name), escape(outcome.model.path), _status(outcome.status), f"{outcome.seconds:.1f}"
        )
    console.print(table)
    summary = ", ".join(f"{result.count(s)} {s}" for s in ("succeeded", "failed", "error"))
    console.print(f"overall: {_status('succeeded' if result.ok else 'failed')} ({summary}) in {result.seconds:.1f}s")


def model_list(selection: Selection, shards: int | None) -> None:
    for model in selection.models:
        shard = f"  shard {model.shard(shards)}/{shards}" if shards else ""
        described = model.to_dict()["definition"]
        source = f"  {model.name} ({described})" if described else ""
        console.print(f"{escape(model.path)}{escape(source)}{shard}")
    console.print(_selected(selection))
