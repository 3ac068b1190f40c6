"""`cmkit test-local`: build and run a bundle, then reproduce DataRobot's model-test checks.

The report means the same as the API's `GET /customModelTests/{id}`: `overallStatus`, and a
`testingStatus` entry `{status, message}` for each of the seven checks, with the same
configuration levels, parameters and defaults. `details` adds what only a local run can tell.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cmkit.checks.results import (
    ABORTED,
    ERROR_CHECK,
    FAILED,
    LONG_RUNNING_SERVICE,
    PREDICTION_VERIFICATION,
    CheckResult,
    not_started,
    overall_status,
)
from cmkit.diagnosis import Diagnosis, FailureEvidence, diagnose, save_log, strip_ansi
from cmkit.engine.base import RunSpec, Server
from cmkit.errors import CmkitError, InputError
from cmkit.events import Events, build_log
from cmkit.paths import cache_dir, default_environment_for, r_environment_dir
from cmkit.report import CheckedDataset, Leftovers, ReportDetails, ServerChecks, StartInfo, TestReport
from cmkit.resolvedrun import ResolvedRun, ServerSettings

# Re-exported: test-local's callers build the request and resolve it through this module too.
from cmkit.resolvedrun import TestLocalConfig as TestLocalConfig
from cmkit.resolvedrun import resolve_config as resolve_config
from cmkit_runtime.formats import is_r_bundle

if TYPE_CHECKING:
    from docker import DockerClient

    from cmkit.checks.context import CheckOptions
    from cmkit.checks.dataset import Dataset, ExpectedPredictions
    from cmkit.checks.datasetfile import CsvShape
    from cmkit.checks.sparse import SparseDataset
    from cmkit.checks.unstructured import RawDataset
    from cmkit.featureimpact import FeatureImpactOutcome, FeatureImpactResult
    from cmkit.remoteenv import UsedEnvironment

LOG_TAIL_LINES = 40


# --- running ------------------------------------------------------------------------------------


@dataclass
class StartFailed(CmkitError):
    """The image could not be built or the server not started: longRunningService fails.

    `start` holds what was found out before the failure (runtime, warnings, build time, the
    build log's tail), which the report still shows.
    """

    start: StartInfo = field(default_factory=StartInfo, repr=False)
    build_log: str | None = field(default=None, repr=False)  # the whole build log when the build failed


@dataclass
class StartedBundle:
    """A started server and what starting it found out. `server.stop()` removes all of it."""

    server: Server
    start: StartInfo


def fetch_remote_environment(settings: ServerSettings, events: Events) -> UsedEnvironment | None:
    """The DataRobot environment version the settings name, its docker context downloaded (or cached)."""
    remote = settings.remote
    if remote is None:
        return None
    from cmkit.api.client import DataRobotClient
    from cmkit.remoteenv import UsedEnvironment, fetch_environment

    api = DataRobotClient(remote.api)
    try:
        fetched = fetch_environment(api, remote.environment_id, remote.version_id, events)
    finally:
        api.close()
    return UsedEnvironment(fetched, remote.source)


def start_bundle(settings: ServerSettings, events: Events, run_id: str, port: int | None = None) -> StartedBundle:
    """Build (Docker) and start a resolved run's server; StartFailed when it cannot.

    `port`: the host port to serve on (default: a free one), so a restarted server keeps its URL.
    """
    from cmkit.requirements import bundle_requirements

    bundle_requirements(settings.bundle)  # an unusable requirements.txt is exit 2 before any build
    for warning in settings.announced:
        events.stage(f"warning: {warning}")
    remote = fetch_remote_environment(settings, events)
    start = StartInfo(settings.runtime.name, remote, warnings=settings.warnings)
    spec = RunSpec(
        url_prefix=settings.url_prefix,
        environment=settings.server_environment,
        contract=settings.contract,
        contract_files=settings.contract_files,
        maximum_memory=settings.maximum_memory,
        network_egress=settings.network_egress,
        labels=settings.labels,
    )
    if not settings.runtime.docker:
        return StartedBundle(_start_process(settings, spec, start, port), start)
    from cmkit.engine.docker import docker_client  # here: the docker SDK's import costs 0.3 s

    context = remote.fetched.context_dir if remote else None
    environment = (
        None if settings.image else (context or settings.environment or default_environment_for(settings.bundle))
    )
    return _start_docker(docker_client(), settings, environment, spec, run_id, events, start, port)


def _start_docker(
    client: DockerClient,
    settings: ServerSettings,
    environment: Path | None,
    spec: RunSpec,
    run_id: str,
    events: Events,
    start: StartInfo,
    port: int | None,
) -> StartedBundle:
    """Build the image and start its container (cmkit/engine/docker.py); what failed is a StartFailed."""
    from cmkit.engine.builder import ImageBuilder
    from cmkit.engine.docker import ModelRequest, ModelStartFailed, start_model
    from cmkit.engine.images import BuildSettings

    try:
        builder = ImageBuilder(
            client,
            BuildSettings.from_environment(settings.ca_bundle, installer=settings.installer),
            build_log(events, "building"),
            settings.labels,
        )
    except BaseException:
        client.close()
        raise
    request = ModelRequest(settings.bundle, environment, settings.image, settings.rebuild, spec, run_id, port)
    try:
        started = start_model(client, builder, request, events.stage)
    except ModelStartFailed as exc:
        found = replace(start, build_seconds=exc.build_seconds, image=exc.image)
        if exc.build_log is not None:  # the build failed: its message with its last lines, and the tail for the report
            lines = strip_ansi("\n".join(exc.build_log)).splitlines()
            found = replace(found, build_log_tail="\n".join(lines[-LOG_TAIL_LINES:]))
            message = f"{exc.message}\n" + "\n".join(lines[-10:])
            raise StartFailed(message, start=found, build_log="\n".join(lines)) from exc
        raise StartFailed(exc.message, start=found) from exc
    return StartedBundle(started.server, replace(start, build_seconds=started.build_seconds, image=started.image))


def _start_process(settings: ServerSettings, spec: RunSpec, start: StartInfo, port: int | None) -> Server:
    from cmkit.engine.process import start_process
    from cmkit.engine.rhost import RLibraryFailed, host_problem
    from cmkit.engine.venvs import VenvFailed

    own_script = (settings.bundle / "start_server.sh").exists()
    problem = None if own_script else host_problem(settings.bundle, settings.server_environment)
    if problem:  # an R bundle on a machine without R, rpy2 or its R packages: one line, before any start
        raise StartFailed(problem, start=start)
    venv = None
    if settings.isolate:
        try:
            venv, spec = _isolation(settings, spec, own_script)
        except (VenvFailed, RLibraryFailed) as exc:
            raise StartFailed(exc.message, start=start) from exc
    try:
        return start_process(settings.bundle, spec, port, venv)
    except OSError as exc:
        raise StartFailed(f"start_server.sh could not be started: {exc.strerror or exc}", start=start) from exc


def _isolation(settings: ServerSettings, spec: RunSpec, own_script: bool) -> tuple[Path, RunSpec]:
    """--isolate: the venv the server runs from, and the spec with what else isolates it.

    A Python bundle: a venv of the serving stack and its requirements.txt. An R bundle served by the
    runtime: a venv of the R environment's requirements.txt (the serving stack and rpy2), and an R
    library of the R environment's packages and requirements.txt's (`rhost.isolated_r_environment`).
    """
    from cmkit.engine.rhost import isolated_r_environment
    from cmkit.engine.venvs import ensure_venv

    if is_r_bundle(settings.bundle) and not own_script:
        # the R library first: it takes a second, the venv's first build several
        variables = isolated_r_environment(settings.bundle, {**os.environ, **settings.server_environment})
        serving = (r_environment_dir() / "requirements.txt").read_text(encoding="utf-8")
        venv = ensure_venv("", settings.installer, serving=serving).path
        return venv, replace(spec, environment={**variables, **spec.environment})
    requirements = settings.bundle / "requirements.txt"
    text = requirements.read_text(encoding="utf-8") if requirements.is_file() else ""
    return ensure_venv(text, settings.installer).path, spec


def _since(began: float) -> float:
    return round(time.monotonic() - began, 3)


def check_dataset_file(run: ResolvedRun) -> CsvShape | None:
    """The run's dataset checked as a file (limits, header, row lengths, target), without pandas:
    README promises its errors before the image is built, which may take minutes."""
    from cmkit.checks.datasetfile import check_csv

    if run.dataset is None or run.target.type.unstructured:  # an unstructured model's file is any bytes
        return None
    if _sparse_input(run):  # checked by load_sparse, which reads only its size line
        return None
    return check_csv(run.dataset, _target_column(run))


def _sparse_input(run: ResolvedRun) -> bool:
    """A Matrix Market (.mtx) dataset: a transform's sparse rows, as DRUM takes them."""
    from cmkit.checks.sparse import sparse_input

    return run.dataset is not None and sparse_input(run.dataset, run.target.type)


def _target_column(run: ResolvedRun) -> str | None:
    return run.target.name if run.target.type.has_target else None


def load_datasets(
    run: ResolvedRun, shape: CsvShape | None = None
) -> tuple[Dataset | RawDataset | SparseDataset | None, ExpectedPredictions | None]:
    """The run's dataset and predictionVerificationCheck's expected predictions (None when not given)."""
    if run.dataset is None:
        return None, None
    # Imported here: pandas takes a third of a second to import, and this runs on a thread
    # while the image builds and the server starts (see run_test_local).
    if run.target.type.unstructured:  # one file, sent as one request body (checks/unstructured.py)
        from cmkit.checks.unstructured import load_raw

        return load_raw(run.dataset), None
    if _sparse_input(run):  # sent as it is (checks/transform.py), with DRUM's column file
        from cmkit.checks.sparse import load_sparse

        return load_sparse(run.dataset, run.sparse_column_file), None
    from cmkit.checks.dataset import load_dataset, load_expected

    dataset = load_dataset(run.dataset, _target_column(run), shape)
    expected = None
    if run.verification_dataset is not None and run.checks.get(PREDICTION_VERIFICATION) != "skip":
        expected = load_expected(run.verification_dataset, run.parameters.verification.predictionsColumn)
    return dataset, expected


def run_test_local(
    config: TestLocalConfig, events: Events | None = None, cancel: threading.Event | None = None
) -> TestReport:
    """Build, start and check a bundle; the server is removed at the end unless `keep`."""
    events = events or Events()
    run = resolve_config(config)
    run_id = uuid.uuid4().hex[:12]
    began = time.monotonic()
    shape = check_dataset_file(run)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmkit-dataset") as pool:
        # The dataset loads while the image builds and the server starts: both wait on I/O.
        loading = pool.submit(load_datasets, run, shape)
        try:
            started = start_bundle(run.server, events, run_id)
        except StartFailed as exc:
            loading.result()  # a bad dataset is the user's first problem (exit 2)
            results = not_started(CheckResult(FAILED, exc.message))
            details = _run_details(run_id, run, exc.start, began)
            evidence = FailureEvidence(exc.message, exc.build_log, checks=_verdicts(results))
            found = _diagnosis(evidence, exc.build_log or exc.message, run_id)
            return TestReport(results, dict(run.checks), details, diagnosis=found)
        try:
            dataset, expected = loading.result()
        except BaseException:
            started.server.stop()
            raise
    server = started.server
    try:
        checked = check_server(run, server, dataset, events, cancel, expected)
        impact = _feature_impact(run, server, dataset, checked.results, events, cancel) if run.feature_impact else None
    finally:
        if not run.keep:
            server.stop()
    leftovers = Leftovers.of(server)
    whole_log = server.logs(None)
    exit_info = checked.exit
    evidence = FailureEvidence(
        server_log=whole_log,
        exit_code=exit_info.exit_code if exit_info else None,
        oom_killed=bool(
            (exit_info and exit_info.oom_killed) or checked.results[LONG_RUNNING_SERVICE].details.get("oomKilled")
        ),
        checks=_verdicts(checked.results),
        prediction=run.target.type.prediction,
    )
    found = _diagnosis(evidence, whole_log, run_id) if overall_status(checked.results) == FAILED else None
    details = replace(
        _run_details(run_id, run, started.start, began),
        checked=checked,
        leftovers=leftovers,
        peak_rss_mib=peak_rss_mib(),
        warnings=leftovers.warnings,
    )
    return TestReport(checked.results, dict(run.checks), details, server if run.keep else None, impact, found)


def _verdicts(results: dict[str, CheckResult]) -> dict[str, tuple[str, str]]:
    return {name: (result.status, result.message) for name, result in results.items()}


def _diagnosis(evidence: FailureEvidence, whole_log: str, run_id: str) -> Diagnosis | None:
    """The failure recognised, with the whole log saved where the diagnosis says."""
    found = diagnose(evidence)
    if found is None:
        return None
    return save_log(found, whole_log, cache_dir() / "logs", f"test-local-{run_id}")


def _run_details(run_id: str, run: ResolvedRun, start: StartInfo, began: float) -> ReportDetails:
    """The report's details of a run up to its checks: ids, durations and what starting found."""
    durations = {**start.durations(), "total": _since(began)}
    return ReportDetails(run_id, run.server.url_prefix, durations, start)


def _feature_impact(
    run: ResolvedRun,
    server: Server,
    dataset: Dataset | RawDataset | SparseDataset | None,
    results: dict[str, CheckResult],
    events: Events,
    cancel: threading.Event | None,
) -> FeatureImpactOutcome:
    """Feature impact on the server the checks used, when the model predicted the dataset."""
    from cmkit.checks.sparse import SparseDataset
    from cmkit.checks.unstructured import RawDataset
    from cmkit.featureimpact import (
        FeatureImpactFailed,
        FeatureImpactOptions,
        FeatureImpactOutcome,
        check_dataset,
        compute,
    )

    if dataset is None or isinstance(dataset, RawDataset | SparseDataset):
        return FeatureImpactOutcome("skipped", "no dataset of rows")
    blocking = [name for name in (LONG_RUNNING_SERVICE, ERROR_CHECK) if results[name].status in (FAILED, ABORTED)]
    if blocking:
        return FeatureImpactOutcome("skipped", f"not run: {blocking[0]} {results[blocking[0]].status}")
    check_dataset(dataset, run.target)  # bad input is exit 2, as for the checks
    try:
        options = FeatureImpactOptions(run.feature_impact_rows, headers=run.headers)
        result = compute(server.url, dataset, run.target, options, events, cancel)
    except FeatureImpactFailed as exc:
        return FeatureImpactOutcome("failed", exc.message)
    return FeatureImpactOutcome("succeeded", "", result)


def run_feature_impact(
    config: TestLocalConfig, events: Events | None = None, cancel: threading.Event | None = None
) -> FeatureImpactResult:
    """Start a bundle, compute feature impact on `config.dataset` through it, stop it.

    The emulator's featureImpact jobs run this; FeatureImpactFailed when the server does not
    start or the model fails on the data.
    """
    from cmkit.checks.dataset import load_dataset
    from cmkit.featureimpact import FeatureImpactFailed, FeatureImpactOptions, check_dataset, compute

    events = events or Events()
    run = resolve_config(config)
    if run.dataset is None:
        raise InputError("feature impact needs a dataset", hint="pass --dataset")
    target = run.target
    dataset = load_dataset(run.dataset, target.name)
    check_dataset(dataset, target)
    try:
        server = start_bundle(run.server, events, uuid.uuid4().hex[:12]).server
    except StartFailed as exc:
        raise FeatureImpactFailed(exc.message) from exc
    from cmkit.checks.readiness import wait_ready

    try:
        ready = wait_ready(server, run.server.startup_timeout, cancel, headers=run.headers)
        if ready.status != "succeeded":
            raise FeatureImpactFailed(f"the model server did not start: {ready.message}\n{server.logs(LOG_TAIL_LINES)}")
        options = FeatureImpactOptions(run.feature_impact_rows, headers=run.headers)
        return compute(server.url, dataset, target, options, events, cancel)
    finally:
        server.stop()


def check_options(run: ResolvedRun, expected: ExpectedPredictions | None = None) -> CheckOptions:
    from cmkit.checks.context import CheckOptions

    return CheckOptions(
        configuration=dict(run.checks),
        startup_timeout=run.server.startup_timeout,
        side_effects_rows=run.side_effects_rows,
        null_rows=run.null_rows,
        rtol=run.rtol,
        atol=run.atol,
        protocol=run.server.protocol,
        headers=dict(run.headers),
        parameters=run.parameters,
        expected=expected,
    )


def check_server(
    run: ResolvedRun,
    server: Server,
    dataset: Dataset | RawDataset | SparseDataset | None,
    events: Events,
    cancel: threading.Event | None = None,
    expected: ExpectedPredictions | None = None,
) -> ServerChecks:
    """Run the checks against a started server."""
    # The checks (NumPy, urllib3) are imported once the server is starting, not before: a
    # process server's start then overlaps with these imports instead of waiting for them.
    from cmkit.checks.suite import run_checks

    options = check_options(run, expected)
    results = run_checks(server, dataset, run.target, options, events, cancel)
    exit_info = server.exit_info()
    return ServerChecks(
        results,
        dataset=CheckedDataset(str(run.dataset), dataset.rows) if dataset else None,
        parameters=options.parameters,
        server=server.describe(),
        exit=exit_info,
        log_tail=strip_ansi(server.logs(LOG_TAIL_LINES)),
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (the dataset, its encoded bodies, the answers)."""
    import resource

    # Linux reports kilobytes, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
