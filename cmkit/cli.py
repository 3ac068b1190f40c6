"""The click layer: parse arguments, call the core, render the result, choose the exit code.

Conventions for every command: `--json` prints one JSON document on stdout and human progress
goes to stderr; exit 0 success, 1 the checked thing failed, 2 bad usage or input (3: Docker was
required and is missing). Errors are one line; `--debug` shows the traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
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


@command(main, "init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--target-type",
    type=click.Choice(["regression", "binary", "multiclass", "anomaly"]),
    help="What the model predicts (prompted for when stdin is a terminal).",
)
@click.option("--template", default="python", show_default=True, help="Bundle template in templates/bundles/.")
@click.option("--name", help="Model name in model-metadata.yaml (default: the folder's name).")
@click.option("--target-name", help="Target column name (default: the sample data's).")
@click.option("--positive-class-label", help='Binary: the positive class (default "1").')
@click.option("--negative-class-label", help='Binary: the negative class (default "0").')
@click.option("--class-labels", help="Multiclass: the labels in order, comma-separated (2 or more).")
@click.option("--force", is_flag=True, help="Write into a non-empty folder, overwriting the template's files.")
def init_command(
    directory: str,
    target_type: str | None,
    template: str,
    name: str | None,
    target_name: str | None,
    positive_class_label: str | None,
    negative_class_label: str | None,
    class_labels: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Write a new model bundle into DIRECTORY: server, example model, metadata, sample data."""
    from pathlib import Path

    from cmkit.errors import InputError
    from cmkit.scaffold import TARGET_TYPES, init_bundle, make_spec, parse_class_labels

    if target_type is None:
        if not sys.stdin.isatty():
            raise InputError("missing --target-type", hint=f"pass --target-type {'|'.join(TARGET_TYPES)}")
        target_type = click.prompt("Target type", type=click.Choice(TARGET_TYPES), err=True)
    spec = make_spec(
        str(target_type),
        name if name is not None else Path(directory).resolve().name,
        target_name=target_name,
        positive_class_label=positive_class_label,
        negative_class_label=negative_class_label,
        class_labels=parse_class_labels(class_labels),
    )
    result = init_bundle(directory, spec, template=template, force=force)
    if as_json:
        render.emit_json(result.to_dict())
    else:
        render.init_result(result)
