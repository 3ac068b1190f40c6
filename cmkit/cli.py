"""The click layer: parse arguments, call the core, render the result, choose the exit code.

Conventions for every command: `--json` prints one JSON document on stdout and human progress
goes to stderr; exit 0 success, 1 the checked thing failed, 2 bad usage or input (3: Docker was
required and is missing). Errors are one line; `--debug` shows the traceback.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from cmkit import __version__, render
from cmkit.engine.installers import INSTALLERS, UV
from cmkit.errors import CmkitError, InputError
from cmkit.params import ENV_VAR, HEADER, KEY_VALUE, LABEL_LIST, MEMORY_SIZE, merge
from cmkit.target import TARGET_TYPES, read_labels_file

if TYPE_CHECKING:
    from cmkit.push import PushOptions
    from cmkit.resolvedrun import TestLocalConfig

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloat(click.FloatRange):
    """A float in a range that is a real number: click lets 'nan' and 'inf' through FloatRange."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


SECONDS = FiniteFloat(min=0, min_open=True)
TOLERANCE = FiniteFloat(min=0)


def _fail(exc: BaseException, as_json: bool, code: int, hint: str = "") -> None:
    render.error_line(f"{exc}{hint}")
    if as_json:
        details = exc.to_dict() if isinstance(exc, CmkitError) else {"message": str(exc)}
        render.emit_json({"error": details})
    sys.exit(code)


def _finish(
    as_json: bool, document: Any, show: Callable[[], None], failed: bool, show_with_json: bool = True
) -> NoReturn:
    """Every command's tail: the JSON document on stdout (--json), the human rendering on stderr
    (with --json too, unless `show_with_json` is off), then exit 1 if the checked thing failed.
    The rendering goes first: should it fail, the error's document is then the only one on stdout."""
    if show_with_json or not as_json:
        show()
    if as_json:
        render.emit_json(document)
    sys.exit(1 if failed else 0)


# `--help` shows a command's options in these sections, in this order (by the option's name;
# one table for every command, so that an option is in the same section wherever it appears).
OPTION_SECTIONS: dict[str, tuple[str, ...]] = {
    "Repository": ("all_models", "changed_since", "shard", "jobs"),
    "Target": (
        "target_type",
        "target_name",
        "positive_class_label",
        "negative_class_label",
        "class_labels",
        "class_labels_file",
        "runtime_params_file",
    ),
    "Data and checks": (
        "input_csv",
        "output",
        "dataset",
        "sparse_column_file",
        "dataset_id",
        "check",
        "verification_dataset",
        "predictions_column",
        "comparison_precision",
        "matching_rate",
        "check_parameters",
        "side_effects_rows",
        "null_rows",
        "rtol",
        "atol",
        "feature_impact",
        "feature_impact_rows",
    ),
    "Server": (
        "reuse",
        "runtime",
        "isolate",
        "installer",
        "rebuild",
        "environment",
        "image",
        "environment_id",
        "environment_version_id",
        "protocol",
        "url_prefix",
        "header",
        "headers",
        "env",
        "maximum_memory",
        "network_egress",
        "startup_timeout",
        "ca_bundle",
        "labels",
    ),
    "DataRobot": (
        "endpoint",
        "token",
        "model_id",
        "namespace",
        "minor",
        "allow_secret",
        "no_wait",
        "timeout",
        "dry_run",
    ),
    "Output": ("as_json", "junit", "html", "verbose", "keep", "watch", "debug"),
}
_SECTION_OF = {name: section for section, names in OPTION_SECTIONS.items() for name in names}
SECTIONED_FROM = 15  # options; test-local, serve, predict and push have 20-50
_ORDER = {name: index for names in OPTION_SECTIONS.values() for index, name in enumerate(names)}


class SectionedCommand(click.Command):
    """A command whose `--help` groups its options (OPTION_SECTIONS); a command with few options keeps one list."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        options = [param for param in self.get_params(ctx) if isinstance(param, click.Option)]  # arguments: in Usage
        if len(options) <= SECTIONED_FROM:  # a short list reads better whole
            super().format_options(ctx, formatter)
            return
        records: dict[str, list[tuple[str, str]]] = {}
        for param in sorted(options, key=lambda param: _ORDER.get(param.name or "", len(_ORDER))):
            record = param.get_help_record(ctx)
            if record is not None:
                section = _SECTION_OF.get(param.name or "", "Options")
                records.setdefault("Output" if param is self.get_help_option(ctx) else section, []).append(record)
        for section in (*OPTION_SECTIONS, "Options"):
            if section in records:
                with formatter.section(section):
                    formatter.write_dl(records[section])


def command(group: click.Group, name: str | None = None, **settings: Any) -> Callable[[F], F]:
    """Register a command with the shared `--json`/`--debug` options and error handling."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, as_json: bool, debug: bool, **kwargs: Any) -> Any:
            # CMKIT_DEBUG=1 is --debug for every cmkit a script or CI job runs (bench/run sets it):
            # an internal error then reaches the job's log with its traceback.
            debug = debug or os.environ.get("CMKIT_DEBUG") == "1"
            try:
                return func(*args, as_json=as_json, **kwargs)
            except CmkitError as exc:
                if debug:
                    raise
                _fail(exc, as_json, exc.exit_code)
            except KeyboardInterrupt as exc:
                terminated = isinstance(exc, Terminated)
                render.error_line("terminated" if terminated else "interrupted")
                sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))  # as a shell reports them
            except (click.exceptions.Exit, click.ClickException):
                raise
            except Exception as exc:  # an unexpected failure is still one line unless --debug
                if debug:
                    raise
                _fail(exc, as_json, 1, " (internal error; rerun with --debug for the traceback)")

        run = click.option("--debug", is_flag=True, help="Show tracebacks of errors (also CMKIT_DEBUG=1).")(run)
        run = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(run)
        return group.command(name, cls=SectionedCommand, **settings)(run)  # type: ignore[return-value]

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cmkit")
def main() -> None:
    """Package, validate, test and upload DataRobot custom inference models."""


def run() -> None:
    """The `cmkit` program: credentials out of the process environment (cmkit/secretenv.py), where
    a model it runs as a local process could read them, then the command line."""
    from cmkit.secretenv import take_secrets

    take_secrets()
    main()


# test-local's, serve's and predict's: the one readiness deadline (checks/readiness.py).
_startup_timeout = click.option(
    "--startup-timeout",
    type=SECONDS,
    default=120.0,
    show_default=True,
    help="Seconds the server has to answer GET {URL_PREFIX}/ with 200.",
)


def _repository_options(func: F) -> F:
    """--all and what narrows it: every model of a repository (cmkit/repository.py)."""
    options = [
        click.option(
            "--all",
            "all_models",
            is_flag=True,
            help="Every model of the repository at PATH (default: .): bundles, model.yaml and models.yaml.",
        ),
        click.option(
            "--changed-since",
            metavar="REF",
            help="With --all: only models whose files changed since this git ref (and uncommitted changes).",
        ),
        click.option(
            "--shard",
            metavar="I/N",
            help="With --all: only shard I of N (stable: a model's shard depends on its identity alone).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _selection(paths: tuple[Any, ...], changed_since: str | None, shard: str | None) -> Any:
    """The models --all takes from the one PATH given (default: the current folder)."""
    from cmkit.repository import select_models

    if len(paths) > 1:
        raise InputError("--all takes one PATH: the repository's folder")
    return select_models(Path(paths[0]) if paths else Path("."), changed_since, shard)


def _no_repository_flags(changed_since: str | None, shard: str | None) -> None:
    if changed_since or shard:
        raise InputError("--changed-since and --shard select among a repository's models", hint="add --all")


def _finish_repository(as_json: bool, result: Any, junit: Path | None = None) -> NoReturn:
    """--all's tail: the aggregated document and JUnit file, the summary, exit 0, 1 or 2."""
    if junit is not None:
        junit.write_text(result.junit_xml(), encoding="utf-8")
    render.repository_result(result)
    if as_json:
        render.emit_json(result.to_dict())
    sys.exit(result.exit_code)


@command(main, "list", short_help="The models of a repository, for a CI matrix")
@click.argument("path", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--changed-since", metavar="REF", help="Only models whose files changed since this git ref.")
@click.option("--shard", metavar="I/N", help="Only shard I of N.")
@click.option("--shards", type=click.IntRange(1, 256), help="Give each model its shard of N (and list the N shards).")
def list_command(
    path: Path | None, changed_since: str | None, shard: str | None, shards: int | None, as_json: bool
) -> None:
    """List every model of the repository at PATH (default: .), as test-local --all finds them.

    \b
    Examples:
      cmkit list
      cmkit list --json --shards 4 | jq -c .shards        # a GitHub Actions matrix
      cmkit list --changed-since origin/main --json
    """
    from cmkit.repository import parse_shard, select_models

    selection = select_models(path or Path("."), changed_since, shard)
    total = shards or (parse_shard(shard)[1] if shard else None)
    document = {
        "selection": selection.to_dict(),
        "shards": [f"{i}/{total}" for i in range(1, total + 1)] if total else [],
        "models": [m.to_dict(total) for m in selection.models],
    }
    _finish(as_json, document, lambda: render.model_list(selection, total), False, show_with_json=False)


@command(main, "deps", short_help="requirements.txt as DataRobot's dependencies")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
def deps_command(paths: tuple[str, ...], as_json: bool) -> None:
    """Map requirements.txt onto DataRobot's dependency structure.

    PATHS are requirements files or bundle folders (default: the current folder).

    \b
    Examples:
      cmkit deps sample_models/regression_diabetes
      cmkit deps my_model/requirements.txt --json
    """
    from cmkit.requirements import deps_document, parse_requirements_file

    reports = [parse_requirements_file(p) for p in (paths or (".",))]

    def show() -> None:
        for report in reports:
            render.deps_report(report)

    _finish(as_json, deps_document(reports), show, not all(r.ok for r in reports), show_with_json=False)


@command(main, "lint", short_help="Static checks of a bundle, for pre-commit")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--from-files",
    is_flag=True,
    help="PATHS are files (as pre-commit passes them): lint each bundle that holds one.",
)
@click.option(
    "--environment",
    type=click.Path(path_type=Path, file_okay=False),
    help="The environment folder the bundle runs on, for its packages (default: cmkit's python3 one).",
)
@_repository_options
def lint_command(
    paths: tuple[str, ...],
    from_files: bool,
    environment: Path | None,
    all_models: bool,
    changed_since: str | None,
    shard: str | None,
    as_json: bool,
) -> None:
    """Check bundles statically (no Docker): code, hooks, imports, requirements, metadata, files.

    \b
    Examples:
      cmkit lint my_model
      cmkit lint --json sample_models/*/
      cmkit lint my_model --environment my_environment
      cmkit lint --all --changed-since origin/main
    """
    from cmkit.lint import bundles_of_files, lint_bundle, lint_document

    if all_models:
        folders = {m.folder: None for m in _selection(paths, changed_since, shard).models}
        bundles: list[Any] = list(folders)
    else:
        _no_repository_flags(changed_since, shard)
        bundles = bundles_of_files(paths) if from_files else list(paths or (".",))
    reports = [lint_bundle(b, environment) for b in bundles]

    def show() -> None:
        for report in reports:
            render.lint_report(report)

    _finish(as_json, lint_document(reports), show, not all(r.ok for r in reports), show_with_json=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so that the same cleanup runs; exits 143, not 130."""


def _interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so cleanup (containers, processes) runs either way."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, handler)


def _sparse_column_option(func: F) -> F:
    """DRUM's column file of a sparse (.mtx) input: test-local's and predict's."""
    return click.option(
        "--sparse-column-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Column names of a .mtx input, one a line (DRUM's flag; sent as the X.colnames file).",
    )(func)


def _test_options(func: F) -> F:
    """Options shared by `test-local` and `serve`: what to run and how."""
    options = [
        click.option(
            "--target-type",
            type=click.Choice(TARGET_TYPES),
            help="What the model predicts (default: targetType of model-metadata.yaml).",
        ),
        click.option("--target-name", help="Target column, removed from the dataset before predicting."),
        click.option(
            "--runtime-params-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Values of the metadata's runtimeParameterDefinitions (YAML, NAME: value; DRUM's flag and format).",
        ),
        click.option("--positive-class-label", help="Binary: the positive class (default: the metadata's)."),
        click.option("--negative-class-label", help="Binary: the negative class (default: the metadata's)."),
        click.option(
            "--class-labels", type=LABEL_LIST, help="Multiclass labels, comma-separated, in the model's order."
        ),
        click.option(
            "--class-labels-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Multiclass labels, one per line (DRUM's flag; labels may hold spaces or commas).",
        ),
        click.option("--environment", type=click.Path(path_type=Path, file_okay=False), help="Environment folder."),
        click.option("--image", help="A ready environment image instead of --environment."),
        click.option(
            "--environment-id",
            help="An execution environment on DataRobot: its docker context is downloaded and built "
            "(push's endpoint and token; default: environmentID of model-metadata.yaml).",
        ),
        click.option("--environment-version-id", help="That environment's version (default: the latest built)."),
        click.option("--token", help="API token for --environment-id (else DATAROBOT_API_TOKEN or drconfig.yaml)."),
        click.option("--endpoint", help="DataRobot endpoint for --environment-id (else DATAROBOT_ENDPOINT)."),
        click.option("--runtime", type=click.Choice(["docker", "process"]), help="Default: Docker if it answers."),
        click.option(
            "--protocol",
            type=click.Choice(["predict_no_state", "drum"]),
            help="The server's prediction protocol (default: detected; DRUM's server is 'drum').",
        ),
        click.option("--maximum-memory", type=MEMORY_SIZE, help="Hard memory limit, e.g. 512M (Docker)."),
        click.option(
            "--network-egress",
            type=click.Choice(["NONE", "PUBLIC"]),
            help="NONE cuts the model off the network, as DataRobot's setting does (Docker; default: model.yaml's "
            "egress_network_policy, else PUBLIC).",
        ),
        click.option("--url-prefix", help="URL_PREFIX for the server (default: a random one holding '/')."),
        click.option("--rebuild", is_flag=True, help="Rebuild every image layer."),
        click.option(
            "--installer",
            type=click.Choice(INSTALLERS),
            default=UV,
            show_default=True,
            help="Who installs requirements.txt: uv from cmkit's shared wheel cache, or pip from the index "
            "exactly as DataRobot builds.",
        ),
        click.option(
            "--isolate/--host-python",
            default=None,
            help="Process runtime: serve from a venv holding only the bundle's requirements and the serving "
            "stack (default when requirements.txt names packages), or from cmkit's own Python.",
        ),
        click.option("--ca-bundle", type=click.Path(path_type=Path, dir_okay=False), help="CA bundle for builds."),
        click.option(
            "--label",
            "labels",
            multiple=True,
            type=KEY_VALUE,
            callback=merge,
            help="Extra label on Docker objects (CI cleanup).",
        ),
        click.option(
            "--env",
            "env",
            multiple=True,
            type=ENV_VAR,
            callback=merge,
            help="Pass a variable to the model server (repeatable; KEY alone: its value here). "
            "Nothing else of this environment reaches the model but PATH, HOME, locale, proxies and CA bundles.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# test-local, serve and predict: a server behind its own auth (a custom_flask.py) gets the header on
# every request, the readiness polls included.
_header_option = click.option(
    "--header",
    "headers",
    multiple=True,
    type=HEADER,
    callback=merge,
    help="Send this header with every request to the model, e.g. for a custom_flask.py's auth "
    "(repeatable; never printed).",
)


_verbose_option = click.option(
    "--verbose", "-v", is_flag=True, help="On a terminal, also show the raw docker build output (plain lines show it)."
)


def _null_rows(value: str) -> str | int:
    from cmkit.checks.sampling import parse_null_rows

    try:
        return parse_null_rows(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use auto, all or a positive number of rows") from None


def _check_parameter_options(func: F) -> F:
    """Settings of predictionVerificationCheck, performanceCheck and stabilityCheck (test-local, push)."""
    options = [
        click.option(
            "--verification-dataset",
            type=click.Path(path_type=Path, dir_okay=False),
            help="CSV of expected predictions, row by row with the dataset (turns predictionVerificationCheck on).",
        ),
        click.option("--predictions-column", help="The expected predictions' column in --verification-dataset."),
        click.option("--comparison-precision", type=click.FloatRange(min=0), help="Largest difference that matches."),
        click.option("--matching-rate", type=click.FloatRange(0, 1), help="Fraction of rows that must match."),
        click.option(
            "--check-parameter",
            "check_parameters",
            multiple=True,
            metavar="CHECK.NAME=VALUE",
            help="A check's parameter by its API name, e.g. performanceCheck.maxResponseTime=5; repeatable.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _pop_parameters(flags: dict[str, Any], check: bool = True) -> dict[str, Any]:
    """The check parameters' flags as the API's `parameters`; checked now unless the run resolves them later."""
    from cmkit.checks.settings import parameter_settings, parse_parameter_settings

    read = parse_parameter_settings if check else parameter_settings
    return read(
        flags.pop("check_parameters", ()),
        flags.pop("predictions_column", None),
        flags.pop("comparison_precision", None),
        flags.pop("matching_rate", None),
    )


def _config(bundle: Path, **flags: Any) -> TestLocalConfig:
    """The request of test-local and serve, as the flags give it: resolve_config reads and checks it."""
    from cmkit.checks.settings import parse_check_settings
    from cmkit.modeldefs import definition_for
    from cmkit.resolvedrun import TestLocalConfig

    labels = flags.pop("class_labels", None)
    labels_file = flags.pop("class_labels_file", None)
    if labels_file is not None:
        if labels:
            raise InputError("give --class-labels or --class-labels-file, not both")
        labels = read_labels_file(labels_file)
    checks = flags.pop("check", ())
    if "check_parameters" in flags:
        flags["parameters"] = _pop_parameters(flags, check=False)
    if "definition" not in flags:
        flags["definition"] = definition_for(bundle) if Path(bundle).is_dir() else None
    return TestLocalConfig(
        server_environment=flags.pop("env"),
        bundle=bundle,
        class_labels=list(labels or ()) or None,
        checks=parse_check_settings(checks),
        **flags,
    )


@command(main, "test-local", short_help="Run DataRobot's model-test checks locally")
@click.argument("bundle", required=False, type=click.Path(path_type=Path))
@_repository_options
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="With --all: models tested at once, each in a worker process, on the one engine.",
)
@click.option(
    "--dataset",
    type=click.Path(path_type=Path),
    help="Test CSV (default: validation.input); a transform model also takes a sparse .mtx (Matrix Market).",
)
@_sparse_column_option
@_test_options
@_header_option
@click.option("--check", multiple=True, metavar="NAME=LEVEL", help="fail|warn|skip for a check; repeatable.")
@_check_parameter_options
@_startup_timeout
@click.option(
    "--side-effects-rows",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows sideEffects predicts one at a time and compares with the batch.",
)
@click.option(
    "--null-rows",
    default="auto",
    show_default=True,
    callback=lambda _ctx, _param, value: _null_rows(value),
    metavar="auto|all|N",
    help="Rows in each nullValueImputation request: auto samples wide datasets, all sends every row.",
)
@click.option("--rtol", type=TOLERANCE, default=1e-5, show_default=True, help="sideEffects: relative tolerance.")
@click.option("--atol", type=TOLERANCE, default=1e-8, show_default=True, help="sideEffects: absolute tolerance.")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), help="Also write a JUnit XML report.")
@click.option(
    "--html",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained HTML report (checks, diagnosis, latencies, feature impact).",
)
@_verbose_option
@click.option("--keep", is_flag=True, help="Leave the server running and print its URL.")
@click.option("--watch", is_flag=True, help="Keep the server up and rerun the checks after every save (Ctrl-C ends).")
@click.option("--feature-impact", is_flag=True, help="Also rank features by permutation impact (RMSE / log loss).")
@click.option(
    "--feature-impact-rows",
    type=click.IntRange(10, 100_000),
    help="Rows sampled for feature impact (implies --feature-impact; default: up to 2500, as DataRobot).",
)
def test_local_command(
    bundle: Path | None,
    junit: Path | None,
    html: Path | None,
    as_json: bool,
    watch: bool,
    verbose: bool,
    all_models: bool,
    changed_since: str | None,
    shard: str | None,
    jobs: int,
    **flags: Any,
) -> None:
    """Build and run BUNDLE, then run DataRobot's model-test checks against it.

    \b
    Examples:
      cmkit test-local sample_models/regression_diabetes
      cmkit test-local my_model --runtime process --json > report.json
      cmkit test-local my_model --check performanceCheck=fail --html report.html --junit junit.xml
      cmkit test-local --all --jobs 2 --shard 1/4 --junit junit.xml --json > report.json
    """
    from cmkit.htmlreport import html_report
    from cmkit.junit import junit_xml
    from cmkit.testlocal import run_test_local
    from cmkit.textfiles import check_writable

    _interrupt_on_sigterm()
    flags["feature_impact"] = flags["feature_impact"] or flags["feature_impact_rows"] is not None
    if all_models:
        _test_repository(bundle, junit, as_json, watch, html, changed_since, shard, jobs, flags)
    _no_repository_flags(changed_since, shard)
    if bundle is None:
        raise click.UsageError("give a BUNDLE folder, or --all for every model of a repository")
    config = _config(bundle, **flags)
    for report_file in (junit, html):
        if report_file:
            check_writable(report_file)  # before the run, not after minutes of it
    if watch:
        _watch_test_local(config, junit, as_json, verbose)
    with render.ConsoleEvents(show_build_output=not as_json, verbose=verbose) as events:
        report = run_test_local(config, events)
    document = report.to_dict()
    if junit:
        junit.write_text(junit_xml(report), encoding="utf-8")
    if html:
        html.write_text(html_report(document, f"cmkit test-local {bundle}"), encoding="utf-8")

    def show() -> None:
        render.test_report(report.table())
        if report.feature_impact is not None:
            render.feature_impact(report.feature_impact)
        if report.server is not None:
            render.console.print(f"server kept running at {report.server.url}/ ({report.server.describe()})")

    impact_failed = report.feature_impact is not None and report.feature_impact.failed
    _finish(as_json, document, show, report.overall_status == "failed" or impact_failed)


def _test_repository(
    path: Path | None,
    junit: Path | None,
    as_json: bool,
    watch: bool,
    html: Path | None,
    changed_since: str | None,
    shard: str | None,
    jobs: int,
    flags: dict[str, Any],
) -> NoReturn:
    """test-local --all: every selected model, `jobs` at a time; one document, one JUnit file."""
    from cmkit.repositoryrun import test_repository
    from cmkit.textfiles import check_writable

    if watch or html or flags.get("keep"):
        raise InputError("--all runs each model once and reports them together", hint="drop --watch, --html and --keep")
    one_model = [
        f"--{name.replace('_', '-')}"
        for name in (
            "dataset",
            "verification_dataset",
            "target_type",
            "target_name",
            "positive_class_label",
            "negative_class_label",
            "class_labels",
            "class_labels_file",
            "sparse_column_file",
        )
        if flags.get(name)
    ]
    if one_model:
        raise InputError(
            f"{', '.join(one_model)} describe one model, not every model of a repository",
            hint="set them in each model's model-metadata.yaml or model.yaml, or test that model alone",
        )
    if junit:
        check_writable(junit)
    selection = _selection((path,) if path else (), changed_since, shard)
    template = _config(Path("."), definition=None, **flags)
    render.repository_start(selection, jobs)
    result = test_repository(selection, template, jobs, render.repository_outcome)
    _finish_repository(as_json, result, junit)


def _watch_test_local(config: TestLocalConfig, junit: Path | None, as_json: bool, verbose: bool) -> None:
    """test-local --watch: one compact result per run (a JSON line each with --json), until Ctrl-C."""
    from cmkit.junit import junit_xml
    from cmkit.watch import Watch, WatchRun

    last: list[str] = []

    def on_run(run: WatchRun) -> None:
        if junit:
            junit.write_text(junit_xml(run.report), encoding="utf-8")
        if as_json:
            render.emit_json_line(run.to_dict())
        render.watch_run(run)
        last[:] = [run.overall_status]

    watch = Watch(config, render.ConsoleEvents(show_build_output=not as_json, verbose=verbose))
    render.watching(str(config.bundle))
    try:
        watch.test_local(on_run, render.watch_error)
    except KeyboardInterrupt:
        render.console.print("stopped watching; removed the server it started")
    sys.exit(1 if last == ["failed"] else 0)


def _watch_serve(config: TestLocalConfig, as_json: bool, startup_timeout: float, verbose: bool) -> None:
    """serve --watch: the server's logs as they come, and a line (JSON with --json) after each reload."""
    import threading
    from dataclasses import replace

    from cmkit.watch import Serving, Watch

    def stream_logs(server: Any) -> None:
        def pump() -> None:
            for line in server.follow_logs():
                render.console.print(line, markup=False, highlight=False)

        threading.Thread(target=pump, name="cmkit-logs", daemon=True).start()

    def on_ready(served: Serving) -> None:
        if as_json:
            render.emit_json_line(served.to_dict())
        render.watch_serving(served)

    watch = Watch(
        replace(config, startup_timeout=startup_timeout),
        render.ConsoleEvents(verbose=verbose),
        on_server=stream_logs,
        serve_only=True,
    )
    try:
        watch.serve(on_ready, render.watch_error)
    except KeyboardInterrupt:
        render.console.print("stopping")
    sys.exit(0)


@command(main, "serve", short_help="Run a bundle's model server and stream its log")
@click.argument("bundle", type=click.Path(path_type=Path))
@_test_options
@_header_option
@_startup_timeout
@_verbose_option
@click.option(
    "--watch", is_flag=True, help="Bring every save to the running server (reload, or rebuild what needs it)."
)
def serve_command(
    bundle: Path, as_json: bool, startup_timeout: float, watch: bool, verbose: bool, **flags: Any
) -> None:
    """Build and run BUNDLE, print its URL, stream its logs until Ctrl-C, then clean up.

    \b
    Examples:
      cmkit serve sample_models/regression_diabetes
      cmkit serve my_model --runtime process --watch
      cmkit serve my_model --header 'Authorization: Bearer TOKEN' --json
    """
    from cmkit.serve import serve_bundle

    _interrupt_on_sigterm()
    config = _config(bundle, **flags)
    if watch:
        _watch_serve(config, as_json, startup_timeout, verbose)
    with render.ConsoleEvents(verbose=verbose) as events:
        session = serve_bundle(config, events, startup_timeout)
    try:
        if as_json:
            render.emit_json(session.to_dict(), one_line=True)
        render.serving(session)
        for line in session.server.follow_logs():
            render.console.print(line, markup=False, highlight=False)
    except KeyboardInterrupt:
        render.console.print("stopping")
    finally:
        session.close()
    survivors = session.survivors()
    if survivors:
        render.warning_line(f"processes started by the server are still running: {survivors}")
    sys.exit(1 if session.failed else 0)


@command(main, "predict", short_help="Predict a CSV, in drum score's columns")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "input_csv",
    default="-",
    show_default=True,
    help="CSV of rows to predict (every column is sent as a feature), or a transform model's sparse .mtx; "
    "'-' reads standard input.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the predictions CSV here (default: standard output).",
)
@_sparse_column_option
@_test_options
@_header_option
@_startup_timeout
@_verbose_option
@click.option(
    "--reuse/--no-reuse",
    default=True,
    show_default=True,
    help="Predict on the server `cmkit serve` runs for this bundle (same target and parameters, files "
    "unchanged) instead of starting one.",
)
def predict_command(
    bundle: Path, input_csv: str, output: Path | None, as_json: bool, verbose: bool, reuse: bool, **flags: Any
) -> None:
    """Predict a CSV with BUNDLE, as `drum score` does: its columns, through test-local's runtime.

    \b
    Examples:
      cmkit predict sample_models/regression_diabetes --input sample_models/regression_diabetes/data/test.csv
      cat rows.csv | cmkit predict my_model --runtime process > predictions.csv
      cmkit predict my_model --input rows.csv --output predictions.csv --json
    """
    import tempfile

    from cmkit.predict import predict_bundle

    _interrupt_on_sigterm()
    config = _config(bundle, **flags)
    with tempfile.TemporaryDirectory(prefix="cmkit-predict-") as folder:
        source = Path(input_csv)
        if input_csv == "-":
            source = Path(folder) / "input.csv"
            source.write_bytes(sys.stdin.buffer.read())
        with render.ConsoleEvents(verbose=verbose) as events:
            result = predict_bundle(config, source, events, reuse=reuse)
    if result.predictions is not None:
        text = result.predictions.to_csv(index=False)
        if output is not None:
            output.write_text(text, encoding="utf-8")
        elif not as_json:
            click.echo(text, nl=False)
    _finish(as_json, result.to_dict(), lambda: render.prediction(result, output), not result.ok)


def _api_options(func: F) -> F:
    func = click.option("--token", help="API token (else DATAROBOT_API_TOKEN or drconfig.yaml).")(func)
    return click.option("--endpoint", help="e.g. https://app.datarobot.com/api/v2 (else DATAROBOT_ENDPOINT).")(func)


@command(main, "push", short_help="Upload a bundle as a new model version")
@click.argument("bundle", required=False, type=click.Path(path_type=Path))
@_api_options
@_repository_options
@click.option(
    "--namespace",
    help="The GitHub Action's namespace for model.yaml's user_provided_model_id (default: GITHUB_REPOSITORY_ID/).",
)
@click.option("--model-id", help="Push to this model (else modelID, else found or created from the metadata).")
@click.option("--environment-id", help="Execution environment of the new version.")
@click.option("--environment-version-id", help="That environment's version (default: its latest).")
@click.option("--minor", is_flag=True, help="Create a minor version (default: major).")
@click.option("--dataset", type=click.Path(path_type=Path, dir_okay=False), help="Run DataRobot's test on this CSV.")
@click.option("--dataset-id", help="Run DataRobot's test on this existing dataset.")
@click.option("--check", multiple=True, metavar="NAME=LEVEL", help="fail|warn|skip for a check of the remote test.")
@_check_parameter_options
@click.option("--allow-secret", multiple=True, metavar="PATH", help="Upload this file although it looks secret.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the dependency build and the test.")
@click.option(
    "--timeout", type=SECONDS, default=1800.0, show_default=True, help="Seconds to wait for builds and tests."
)
@click.option("--dry-run", is_flag=True, help="Show what would be created and uploaded; send nothing.")
@click.option(
    "--html",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the remote test's report as one self-contained HTML page.",
)
def push_command(
    bundle: Path | None,
    all_models: bool,
    changed_since: str | None,
    shard: str | None,
    endpoint: str | None,
    token: str | None,
    dataset: Path | None,
    dataset_id: str | None,
    check: tuple[str, ...],
    allow_secret: tuple[str, ...],
    minor: bool,
    no_wait: bool,
    dry_run: bool,
    as_json: bool,
    html: Path | None,
    **flags: Any,
) -> None:
    """Upload BUNDLE as a new version of its DataRobot model (only what changed), build, test.

    A model.yaml or models.yaml of DataRobot's GitHub Action describing BUNDLE makes the push
    create and update the model the Action would (its namespaced user_provided_model_id, its
    settings, its version's resources and files, its test).

    \b
    Examples:
      cmkit push my_model --dry-run
      cmkit push my_model --dataset my_model/data/sample.csv --html report.html
      cmkit push my_model --endpoint http://127.0.0.1:8080/api/v2 --token TOKEN --json
    """
    from cmkit.checks.settings import parse_check_settings
    from cmkit.htmlreport import push_html_report
    from cmkit.modeldefs import definition_for
    from cmkit.push import PushOptions, push_bundle

    if html and (dry_run or no_wait or all_models):
        raise InputError("--html reports the remote test push waits for", hint="drop --dry-run, --no-wait or --all")
    if all_models and flags.get("model_id"):
        raise InputError("--model-id names one model", hint="drop it with --all")
    if not all_models:
        _no_repository_flags(changed_since, shard)
        if bundle is None:
            raise click.UsageError("give a BUNDLE folder, or --all for every model of a repository")
    options = PushOptions(
        bundle=bundle or Path("."),  # --all: each selected model's folder replaces it
        definition=definition_for(bundle) if bundle and bundle.is_dir() and not all_models else None,
        major=not minor,
        dataset=dataset,
        dataset_id=dataset_id,
        checks=parse_check_settings(check),
        parameters=_pop_parameters(flags),
        wait=not no_wait,
        **flags,
    )
    if all_models:
        _push_repository(bundle, changed_since, shard, options, allow_secret, endpoint, token, dry_run, as_json)
    with render.ConsoleEvents() as events:
        result = push_bundle(options, allow_secret, endpoint, token, dry_run, events)
    document = result.to_dict()
    if html:
        html.write_text(push_html_report(document, f"cmkit push {bundle}"), encoding="utf-8")
    _finish(as_json, document, lambda: render.push_result(result), result.failed)


def _push_repository(
    path: Path | None,
    changed_since: str | None,
    shard: str | None,
    template: PushOptions,
    allow_secret: tuple[str, ...],
    endpoint: str | None,
    token: str | None,
    dry_run: bool,
    as_json: bool,
) -> NoReturn:
    """push --all: each selected model in turn, as `cmkit push` pushes it alone; one document."""
    from cmkit.repositoryrun import push_repository

    selection = _selection((path,) if path else (), changed_since, shard)
    render.repository_start(selection, 1)
    with render.ConsoleEvents() as events:
        result = push_repository(
            selection, template, allow_secret, endpoint, token, dry_run, events, render.repository_outcome
        )
    _finish_repository(as_json, result)


@main.group("env", short_help="Execution environments on DataRobot")
def env_group() -> None:
    """Execution environments."""


@command(env_group, "push", short_help="Upload an execution environment and build it")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@_api_options
@click.option("--name", help="Environment name (default: the folder's name).")
@click.option("--environment-id", help="Add a version to this environment.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the image build.")
@click.option("--timeout", type=SECONDS, default=1800.0, show_default=True, help="Seconds to wait for the image build.")
def env_push_command(
    folder: Path,
    endpoint: str | None,
    token: str | None,
    name: str | None,
    environment_id: str | None,
    no_wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Upload FOLDER (a docker context with a Dockerfile) as an execution environment version.

    \b
    Examples:
      cmkit env push templates/environments/python3
      cmkit env push my_environment --name 'My Python 3.11' --no-wait --json
    """
    from cmkit.api.connect import with_client
    from cmkit.environments import push_environment

    with render.ConsoleEvents() as events:
        wait = not no_wait
        result = with_client(
            endpoint, token, lambda api: push_environment(api, folder, name, environment_id, wait, timeout, events)
        )
    _finish(as_json, result.to_dict(), lambda: render.environment_result(result), result.build_status == "failed")


@command(main, "prune", short_help="Remove the Docker objects cmkit left")
@click.option("--older-than", metavar="DURATION", help="Only objects created more than this ago (30m, 12h, 7d).")
@click.option(
    "--all", "everything", is_flag=True, help="Also running containers, the layer cache, wheel cache and venvs."
)
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    type=KEY_VALUE,
    callback=merge,
    help="Only objects also carrying this label (repeatable).",
)
def prune_command(
    older_than: str | None, everything: bool, dry_run: bool, labels: dict[str, str], as_json: bool
) -> None:
    """Remove the Docker objects cmkit left behind (label cmkit=1): containers, images, build leftovers.

    By default: stopped containers, untagged build leftovers, code images and what killed installs
    left in cmkit's cache. --all adds running containers (--keep, serve), the environment and
    dependency images (the layer cache), the shared wheel cache and the process runtime's venvs.

    \b
    Examples:
      cmkit prune --dry-run
      cmkit prune --older-than 7d
      cmkit prune --all
    """
    from cmkit.prune import PruneOptions, parse_duration, prune_engine

    options = PruneOptions(
        older_than=parse_duration(older_than) if older_than else None,
        everything=everything,
        dry_run=dry_run,
        labels=labels,
    )
    result = prune_engine(options)
    _finish(as_json, result.to_dict(), lambda: render.prune_result(result), result.failed)


@command(main, "init", short_help="Write a new model bundle")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--target-type",
    type=click.Choice(TARGET_TYPES),
    help="What the model predicts (prompted for when stdin is a terminal).",
)
@click.option("--template", default="python", show_default=True, help="Bundle template in templates/bundles/.")
@click.option(
    "--language",
    type=click.Choice(["python", "r"]),
    help="r: custom.R hooks, served in R (regression, binary, multiclass, unstructured); the r template.",
)
@click.option("--name", help="Model name in model-metadata.yaml (default: the folder's name).")
@click.option("--target-name", help="Target column name (default: the sample data's).")
@click.option("--positive-class-label", help='Binary: the positive class (default "1").')
@click.option("--negative-class-label", help='Binary: the negative class (default "0").')
@click.option("--class-labels", type=LABEL_LIST, help="Multiclass: the labels in order, comma-separated (2 or more).")
@click.option("--force", is_flag=True, help="Write into a non-empty folder, overwriting the template's files.")
def init_command(
    directory: str,
    target_type: str | None,
    template: str,
    language: str | None,
    name: str | None,
    target_name: str | None,
    positive_class_label: str | None,
    negative_class_label: str | None,
    class_labels: tuple[str, ...] | None,
    force: bool,
    as_json: bool,
) -> None:
    """Write a new model bundle into DIRECTORY: hooks (custom.py, or custom.R), example model, metadata, sample data.

    \b
    Examples:
      cmkit init my_model --target-type binary
      cmkit init churn --target-type multiclass --class-labels low,mid,high
      cmkit init prices --language r --target-type regression
    """
    from pathlib import Path

    from cmkit.scaffold import init_bundle, make_spec

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
        class_labels=class_labels or (),
    )
    if language is not None and template not in ("python", language):
        raise InputError(f"--language {language} and --template {template} name two templates", hint="pass one")
    result = init_bundle(directory, spec, template=language or template, force=force)
    _finish(as_json, result.to_dict(), lambda: render.init_result(result), False, show_with_json=False)


@command(main, "emulator", short_help="Serve a local DataRobot custom-models API")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where state lives (default: a per-user data folder, cmkit/emulator).",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help="An API token to accept (repeatable; shown by ps: prefer --token-file or CMKIT_EMULATOR_TOKEN).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of API tokens to accept, one a line. Without any token: CMKIT_EMULATOR_TOKEN, else a random one.",
)
@click.option(
    "--runtime",
    type=click.Choice(["docker", "process"]),
    help="How builds and model tests run (default: docker when an engine answers).",
)
@click.option("--fault-rate", default=0.0, type=click.FloatRange(0, 1), help="Fraction of API requests to fail.")
@click.option("--fault-status", default=503, show_default=True, type=click.IntRange(400, 599), help="Their status.")
@click.option("--fault-seed", type=int, help="Seed the fault dice, for reproducible runs.")
@click.option(
    "--docker-label",
    "docker_labels",
    multiple=True,
    type=KEY_VALUE,
    callback=merge,
    help="Extra label on Docker objects.",
)
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 256), help="Request worker threads.")
def emulator_command(
    host: str,
    port: int,
    data_dir: Path | None,
    tokens: tuple[str, ...],
    token_file: Path | None,
    runtime: str | None,
    fault_rate: float,
    fault_status: int,
    fault_seed: int | None,
    docker_labels: dict[str, str],
    threads: int,
    as_json: bool,
) -> None:
    """Serve a local DataRobot custom-models API at http://HOST:PORT/api/v2/ until Ctrl-C.

    Rehearse pushes and CI pipelines offline: DataRobot's own client and `cmkit push` work
    against it. Prints the endpoint and the token to use (`--json`: one JSON document).

    \b
    Examples:
      cmkit emulator
      cmkit emulator --port 0 --runtime process --json
      CMKIT_EMULATOR_TOKEN=local-token cmkit emulator --data-dir /tmp/emulator
    """
    import logging

    from cmkit.emulator.server import EmulatorOptions, EmulatorReady, accepted_tokens, run

    logging.basicConfig(level=logging.WARNING, format="cmkit emulator: %(levelname)s: %(message)s")
    options = EmulatorOptions(
        host=host,
        port=port,
        data_dir=data_dir,
        tokens=accepted_tokens(tokens, token_file),
        runtime=runtime,
        fault_rate=fault_rate,
        fault_status=fault_status,
        fault_seed=fault_seed,
        docker_labels=docker_labels,
        threads=threads,
    )

    def on_ready(ready: EmulatorReady) -> None:
        if as_json:
            render.emit_json_line(ready.to_dict())
        else:
            render.emulator_ready(ready)

    run(options, on_ready=on_ready, warn=render.warning_line)
