"""The click layer: parse arguments, call the core, render the result, choose the exit code.

Conventions for every command: `--json` prints one JSON document on stdout and human progress
goes to stderr; exit 0 success, 1 the checked thing failed, 2 bad usage or input (3: Docker was
required and is missing). Errors are one line; `--debug` shows the traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cmkit import __version__, render
from cmkit.errors import CmkitError

F = TypeVar("F", bound=Callable[..., Any])


def _fail(exc: BaseException, as_json: bool, code: int, hint: str = "") -> None:
    render.error_line(f"{exc}{hint}")
    if as_json:
        details = exc.to_dict() if isinstance(exc, CmkitError) else {"message": str(exc)}
        render.emit_json({"error": details})
    sys.exit(code)


def command(group: click.Group, name: str | None = None, **settings: Any) -> Callable[[F], F]:
    """Register a command with the shared `--json`/`--debug` options and error handling."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, as_json: bool, debug: bool, **kwargs: Any) -> Any:
            try:
                return func(*args, as_json=as_json, **kwargs)
            except CmkitError as exc:
                if debug:
                    raise
                _fail(exc, as_json, exc.exit_code)
            except (KeyboardInterrupt, click.exceptions.Exit, click.ClickException):
                raise
            except Exception as exc:  # an unexpected failure is still one line unless --debug
                if debug:
                    raise
                _fail(exc, as_json, 1, " (internal error; rerun with --debug for the traceback)")

        run = click.option("--debug", is_flag=True, help="Show tracebacks of errors.")(run)
        run = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(run)
        return group.command(name, **settings)(run)  # type: ignore[return-value]

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cmkit")
def main() -> None:
    """Package, validate, test and upload DataRobot custom inference models."""


@command(main, "deps")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
def deps_command(paths: tuple[str, ...], as_json: bool) -> None:
    """Map requirements.txt onto DataRobot's dependency structure.

    PATHS are requirements files or bundle folders (default: the current folder).
    """
    from cmkit.requirements import parse_requirements_file

    reports = [parse_requirements_file(p) for p in (paths or (".",))]
    if as_json:
        documents = [{"file": r.source, **r.to_dict()} for r in reports]
        render.emit_json(reports[0].to_dict() if len(reports) == 1 else {"files": documents})
    else:
        for report in reports:
            render.deps_report(report)
    sys.exit(0 if all(r.ok for r in reports) else 1)


@command(main, "lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--from-files",
    is_flag=True,
    help="PATHS are files (as pre-commit passes them): lint each bundle that holds one.",
)
def lint_command(paths: tuple[str, ...], from_files: bool, as_json: bool) -> None:
    """Check bundles statically (no Docker): start script, requirements, metadata, files."""
    from cmkit.lint import bundles_of_files, lint_bundle

    bundles = bundles_of_files(paths) if from_files else list(paths or (".",))
    reports = [lint_bundle(b) for b in bundles]
    if as_json:
        single = len(reports) == 1 and not from_files
        render.emit_json(reports[0].to_dict() if single else {"bundles": [r.to_dict() for r in reports]})
    else:
        for report in reports:
            render.lint_report(report)
    sys.exit(0 if all(r.ok for r in reports) else 1)


@command(main, "emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where state lives (default: a per-user data folder, cmkit/emulator).",
)
@click.option("--token", "tokens", multiple=True, help="An API token to accept (repeatable; default: a random one).")
@click.option(
    "--runtime",
    type=click.Choice(["docker", "process"]),
    help="How builds and model tests run (default: docker when an engine answers).",
)
@click.option("--fault-rate", default=0.0, type=click.FloatRange(0, 1), help="Fraction of API requests to fail.")
@click.option("--fault-status", default=503, show_default=True, type=click.IntRange(400, 599), help="Their status.")
@click.option("--fault-seed", type=int, help="Seed the fault dice, for reproducible runs.")
@click.option(
    "--docker-label", "docker_labels", multiple=True, metavar="KEY=VALUE", help="Extra label on Docker objects."
)
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 256), help="Request worker threads.")
def emulator_command(
    host: str,
    port: int,
    data_dir: Path | None,
    tokens: tuple[str, ...],
    runtime: str | None,
    fault_rate: float,
    fault_status: int,
    fault_seed: int | None,
    docker_labels: tuple[str, ...],
    threads: int,
    as_json: bool,
) -> None:
    """Serve a local DataRobot custom-models API at http://HOST:PORT/api/v2/ until Ctrl-C.

    Rehearse pushes and CI pipelines offline: DataRobot's own client and `cmkit push` work
    against it. Prints the endpoint and the token to use (`--json`: one JSON document).
    """
    import logging

    from cmkit.emulator.server import EmulatorOptions, parse_labels, run

    logging.basicConfig(level=logging.WARNING, format="cmkit emulator: %(levelname)s: %(message)s")
    options = EmulatorOptions(
        host=host,
        port=port,
        data_dir=data_dir,
        tokens=tokens,
        runtime=runtime,
        fault_rate=fault_rate,
        fault_status=fault_status,
        fault_seed=fault_seed,
        docker_labels=parse_labels(docker_labels),
        threads=threads,
    )
    run(options, on_ready=render.emit_json_line if as_json else render.emulator_ready, warn=render.warning_line)
