"""`cmkit test-local`: build and run a bundle, then reproduce DataRobot's model-test checks.

The report means the same as the API's `GET /customModelTests/{id}`: `overallStatus`, and a
`testingStatus` entry `{status, message}` for each of the seven checks, with the same
configuration levels, parameters and defaults. `details` adds what only a local run can tell.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmkit.checks.parameters import CheckParameters, ParameterError, parse_parameters
from cmkit.checks.protocols import PROTOCOL_NAMES
from cmkit.checks.results import (
    ABORTED,
    DEFAULT_CONFIGURATION,
    ERROR_CHECK,
    FAILED,
    LONG_RUNNING_SERVICE,
    PREDICTION_VERIFICATION,
    CheckResult,
    not_started,
)
from cmkit.checks.settings import implied_levels, validate_levels
from cmkit.engine.base import (
    NETWORK_EGRESS,
    RunSpec,
    Server,
    normalise_url_prefix,
    random_url_prefix,
    target_variables,
)
from cmkit.errors import CmkitError, DockerUnavailable, InputError
from cmkit.events import Events, build_log
from cmkit.metadata import load_metadata
from cmkit.paths import default_environment_dir
from cmkit.report import CheckedDataset, Leftovers, ReportDetails, ServerChecks, StartInfo, TestReport
from cmkit.target import TargetSpec, require_target_type
from cmkit_runtime.target import Target

if TYPE_CHECKING:
    from docker import DockerClient

    from cmkit.checks.context import CheckOptions
    from cmkit.checks.dataset import Dataset, ExpectedPredictions
    from cmkit.featureimpact import FeatureImpactOutcome, FeatureImpactResult
    from cmkit.remoteenv import UsedEnvironment

RUNTIMES = ("docker", "process")
LOG_TAIL_LINES = 40


@dataclass
class TestLocalConfig:
    """Everything a run needs. Unset fields fall back to model-metadata.yaml, then to defaults."""

    __test__ = False  # not a pytest test class despite the name

    bundle: Path
    dataset: Path | None = None
    target_type: str | None = None
    target_name: str | None = None
    positive_class_label: str | None = None
    negative_class_label: str | None = None
    class_labels: list[str] | None = None
    environment: Path | None = None
    image: str | None = None
    runtime: str | None = None  # None: Docker when an engine answers, else the process runtime
    checks: dict[str, str] = field(default_factory=dict)
    # The API's `parameters` object: {check: {name: value}} (see cmkit/checks/parameters.py).
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    verification_dataset: Path | None = None  # predictionVerificationCheck's expected predictions
    maximum_memory: int | None = None
    network_egress: str = "PUBLIC"
    url_prefix: str | None = None
    startup_timeout: float = 120.0
    side_effects_rows: int = 1000
    null_rows: str | int = "auto"  # rows per null-column request (cmkit/checks/sampling.py)
    rtol: float = 1e-5
    atol: float = 1e-8
    keep: bool = False
    rebuild: bool = False
    ca_bundle: Path | None = None
    server_environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    protocol: str | None = None  # predict_no_state or drum; None: detected (cmkit/checks/protocols.py)
    # An execution environment on DataRobot (cmkit/remoteenv.py), with push's configuration.
    environment_id: str | None = None
    environment_version_id: str | None = None
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    environment_id_source: str | None = None  # set by resolve_config: "flag" or "model-metadata.yaml"
    feature_impact: bool = False  # also compute permutation feature impact on the same server
    feature_impact_rows: int | None = None


# --- configuration ------------------------------------------------------------------------------


def resolve_config(config: TestLocalConfig, require_target: bool = True) -> TestLocalConfig:
    """Fill unset fields from model-metadata.yaml and validate the combination."""
    bundle = Path(config.bundle)
    if not bundle.is_dir():
        raise InputError("not a bundle folder", file=bundle, hint="pass the folder holding start_server.sh")
    meta = load_metadata(bundle)
    dataset = config.dataset
    if dataset is None and meta and meta.validation_input:
        dataset = bundle / meta.validation_input
    target_type = (config.target_type or (meta.target_type if meta else None) or "").lower() or None
    if target_type is None and require_target:
        raise InputError(
            "no target type", file=bundle, hint="pass --target-type or set targetType in model-metadata.yaml"
        )
    if target_type is not None:
        require_target_type(target_type)
    # The metadata's labels belong to its own target type: a --target-type that differs drops them.
    labels_from = meta if meta and meta.target_type == target_type else None
    environment_id, source = config.environment_id, "flag" if config.environment_id else None
    if environment_id is None and config.environment is None and config.image is None and config.runtime != "process":
        environment_id = meta.environment_id if meta else None  # DRUM's key, honoured like the flag
        source = "model-metadata.yaml" if environment_id else None
    resolved = replace(
        config,
        environment_id=environment_id,
        environment_id_source=source,
        bundle=bundle,
        dataset=dataset,
        target_type=target_type,
        target_name=config.target_name or (meta.target_name if meta else None),
        positive_class_label=config.positive_class_label or (labels_from.positive_class_label if labels_from else None),
        negative_class_label=config.negative_class_label or (labels_from.negative_class_label if labels_from else None),
        class_labels=config.class_labels or (labels_from.class_labels if labels_from else None),
        checks={
            **DEFAULT_CONFIGURATION,
            **implied_levels(config.parameters, config.verification_dataset is not None),
            **config.checks,
        },
        url_prefix=normalise_url_prefix(config.url_prefix) if config.url_prefix is not None else random_url_prefix(),
    )
    _validate(resolved)
    return resolved


def check_parameters(config: TestLocalConfig) -> CheckParameters:
    try:
        return parse_parameters(config.parameters)
    except ParameterError as exc:
        raise InputError(f"bad check parameters: {exc}", hint="see `cmkit test-local --help`") from exc


def _validate(config: TestLocalConfig) -> None:
    check_parameters(config)
    validate_levels(config.checks)
    if config.network_egress not in NETWORK_EGRESS:
        raise InputError(f"bad network egress '{config.network_egress}'", hint="use NONE or PUBLIC")
    given = [
        flag
        for flag, value in (
            ("--environment", config.environment),
            ("--image", config.image),
            ("--environment-id", config.environment_id),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise InputError(f"give {' or '.join(given)}, not {'both' if len(given) == 2 else 'several'}")
    if config.environment_version_id is not None and config.environment_id is None:
        raise InputError("--environment-version-id needs --environment-id")
    if config.environment_id is not None and config.runtime == "process":
        raise InputError("--environment-id builds a docker context: it needs the Docker runtime, not --runtime process")
    if config.protocol is not None and config.protocol not in PROTOCOL_NAMES:
        raise InputError(f"unknown protocol '{config.protocol}'", hint=f"use {' or '.join(PROTOCOL_NAMES)}")
    if config.runtime is not None and config.runtime not in RUNTIMES:
        raise InputError(f"unknown runtime '{config.runtime}'", hint="use docker or process")
    if config.target_type is not None:
        target_spec(config).validate(hint="pass the flags, or set the labels in model-metadata.yaml")
    if config.feature_impact and config.target_type == "anomaly":
        raise InputError(
            "feature impact scores predictions against a target: anomaly models have none",
            hint="drop --feature-impact (DataRobot uses SHAP-based impact for them)",
        )


def target_spec(config: TestLocalConfig) -> TargetSpec:
    return TargetSpec(
        str(config.target_type), config.positive_class_label, config.negative_class_label, config.class_labels
    )


def target_of(config: TestLocalConfig) -> Target:
    return target_spec(config).target(config.target_name)


# --- running ------------------------------------------------------------------------------------


@dataclass
class StartFailed(CmkitError):
    """The image could not be built or the server not started: longRunningService fails.

    `start` holds what was found out before the failure (runtime, warnings, build time, the
    build log's tail), which the report still shows.
    """

    start: StartInfo = field(default_factory=StartInfo, repr=False)


@dataclass
class StartedBundle:
    """A started server and what starting it found out. `server.stop()` removes all of it."""

    server: Server
    start: StartInfo


@dataclass(frozen=True)
class RemoteEnvironment:
    """The config after `--environment-id` (its context as `environment`), and what the report says."""

    config: TestLocalConfig
    environment: UsedEnvironment | None = None
    warnings: tuple[str, ...] = ()


def fetch_remote_environment(config: TestLocalConfig, events: Events) -> RemoteEnvironment:
    """`--environment-id` (or the metadata's `environmentID`): the version's docker context, as `--environment`.

    The flag without credentials is an error; the metadata's key without them is a warning, and
    the default environment is used.
    """
    if config.environment_id is None:
        return RemoteEnvironment(config)
    from cmkit.api.client import DataRobotClient
    from cmkit.api.config import load_api_config
    from cmkit.remoteenv import UsedEnvironment, fetch_environment

    from_flag = config.environment_id_source != "model-metadata.yaml"
    try:
        api_config = load_api_config(config.endpoint, config.token)
    except InputError as exc:
        if from_flag:
            raise
        warning = (
            f"model-metadata.yaml names environmentID {config.environment_id}, but {exc.message}: "
            "using the default environment"
        )
        events.stage(f"warning: {warning}")
        return RemoteEnvironment(replace(config, environment_id=None, environment_version_id=None), None, (warning,))
    api = DataRobotClient(api_config)
    try:
        fetched = fetch_environment(api, config.environment_id, config.environment_version_id, events)
    finally:
        api.close()
    used = UsedEnvironment(fetched, config.environment_id_source or "flag")
    return RemoteEnvironment(replace(config, environment=fetched.context_dir), used)


@dataclass
class RuntimeChoice:
    name: str
    client: DockerClient | None  # Docker: the client the server will own
    warnings: tuple[str, ...] = ()


def _choose_runtime(config: TestLocalConfig, events: Events) -> RuntimeChoice:
    if config.runtime == "process":
        return RuntimeChoice("process", None, _process_warnings(config))
    from cmkit.engine.docker import docker_client  # here: the docker SDK's import costs 0.3 s

    try:
        return RuntimeChoice("docker", docker_client())
    except DockerUnavailable:
        if config.runtime == "docker" or config.image or config.environment:
            raise
        warning = "no Docker engine answers: running start_server.sh as a local process instead"
        events.stage(f"warning: {warning}")
        return RuntimeChoice("process", None, (warning, *_process_warnings(config)))


def _process_warnings(config: TestLocalConfig) -> tuple[str, ...]:
    if config.maximum_memory or config.network_egress == "NONE":
        return ("the process runtime cannot enforce --maximum-memory or --network-egress NONE; use Docker for those",)
    return ()


def start_bundle(config: TestLocalConfig, events: Events, run_id: str, port: int | None = None) -> StartedBundle:
    """Build (Docker) and start a resolved config's bundle; StartFailed when it cannot.

    `port`: the host port to serve on (default: a free one), so a restarted server keeps its URL.
    """
    remote = fetch_remote_environment(config, events)
    config = remote.config
    runtime = _choose_runtime(config, events)
    start = StartInfo(runtime.name, remote.environment, warnings=(*remote.warnings, *runtime.warnings))
    spec = RunSpec(
        url_prefix=str(config.url_prefix),
        environment=config.server_environment,
        contract=contract_variables(config),
        maximum_memory=config.maximum_memory,
        network_egress=config.network_egress,
        labels=config.labels,
    )
    if runtime.client is None:
        return StartedBundle(_start_process(config, spec, start, port), start)
    return _start_docker(runtime.client, config, spec, run_id, events, start, port)


def _start_docker(
    client: DockerClient,
    config: TestLocalConfig,
    spec: RunSpec,
    run_id: str,
    events: Events,
    start: StartInfo,
    port: int | None,
) -> StartedBundle:
    """Build the image and start its container; the server returned owns `client`, which is closed otherwise."""
    from cmkit.engine.builder import ImageBuilder
    from cmkit.engine.docker import ContainerStartFailed, start_container
    from cmkit.engine.images import BuildFailed, BuildSettings

    try:
        builder = ImageBuilder(
            client, BuildSettings.from_environment(config.ca_bundle), build_log(events, "building"), config.labels
        )
        events.stage("building the image (environment, dependencies, code)")
        began = time.monotonic()
        try:
            environment = None if config.image else (config.environment or default_environment_dir())
            image = builder.model(config.bundle, environment=environment, image=config.image, rebuild=config.rebuild)
        except BuildFailed as exc:
            failed = replace(start, build_seconds=_since(began), build_log_tail="\n".join(exc.log[-LOG_TAIL_LINES:]))
            raise StartFailed(f"{exc.message}\n" + "\n".join(exc.log[-10:]), start=failed) from exc
        start = replace(start, build_seconds=_since(began), image=image)
        events.stage(f"starting {image.code.tag}")
        try:
            server = start_container(client, image.code.image_id, spec, run_id, host_port=port)
        except ContainerStartFailed as exc:  # the container is already removed
            builder.finish()
            raise StartFailed(exc.message, start=start) from exc
    except BaseException:
        client.close()
        raise
    server.on_stop(builder.finish)
    return StartedBundle(server, start)


def _start_process(config: TestLocalConfig, spec: RunSpec, start: StartInfo, port: int | None) -> Server:
    from cmkit.engine.process import start_process

    try:
        return start_process(config.bundle, spec, port)
    except OSError as exc:
        raise StartFailed(f"start_server.sh could not be started: {exc.strerror or exc}", start=start) from exc


def _since(began: float) -> float:
    return round(time.monotonic() - began, 3)


def contract_variables(config: TestLocalConfig) -> dict[str, str]:
    """DataRobot's target variables for the container, from the resolved flags and metadata."""
    return target_variables(config.target_type, target_of(config).labels) if config.target_type else {}


def load_datasets(config: TestLocalConfig) -> tuple[Dataset | None, ExpectedPredictions | None]:
    """The config's dataset and predictionVerificationCheck's expected predictions (None when not given)."""
    if config.dataset is None:
        return None, None
    # Imported here: pandas takes a third of a second to import, and this runs on a thread
    # while the image builds and the server starts (see run_test_local).
    from cmkit.checks.dataset import load_dataset, load_expected

    dataset = load_dataset(config.dataset, config.target_name if config.target_type != "anomaly" else None)
    expected = None
    if config.verification_dataset is not None and config.checks.get(PREDICTION_VERIFICATION) != "skip":
        column = (config.parameters.get(PREDICTION_VERIFICATION) or {}).get("predictionsColumn")
        expected = load_expected(config.verification_dataset, column)
    return dataset, expected


def run_test_local(
    config: TestLocalConfig, events: Events | None = None, cancel: threading.Event | None = None
) -> TestReport:
    """Build, start and check a bundle; the server is removed at the end unless `keep`."""
    events = events or Events()
    config = resolve_config(config)
    run_id = uuid.uuid4().hex[:12]
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmkit-dataset") as pool:
        # The dataset loads while the image builds and the server starts: both wait on I/O.
        loading = pool.submit(load_datasets, config)
        try:
            started = start_bundle(config, events, run_id)
        except StartFailed as exc:
            loading.result()  # a bad dataset is the user's first problem (exit 2)
            results = not_started(CheckResult(FAILED, exc.message))
            details = _run_details(run_id, config, exc.start, began)
            return TestReport(results, dict(config.checks), details)
        try:
            dataset, expected = loading.result()
        except BaseException:
            started.server.stop()
            raise
    server = started.server
    try:
        checked = check_server(config, server, dataset, events, cancel, expected)
        impact = (
            _feature_impact(config, server, dataset, checked.results, events, cancel) if config.feature_impact else None
        )
    finally:
        if not config.keep:
            server.stop()
    leftovers = Leftovers.of(server)
    details = replace(
        _run_details(run_id, config, started.start, began),
        checked=checked,
        leftovers=leftovers,
        peak_rss_mib=peak_rss_mib(),
        warnings=leftovers.warnings,
    )
    return TestReport(checked.results, dict(config.checks), details, server if config.keep else None, impact)


def _run_details(run_id: str, config: TestLocalConfig, start: StartInfo, began: float) -> ReportDetails:
    """The report's details of a run up to its checks: ids, durations and what starting found."""
    durations = {**start.durations(), "total": _since(began)}
    return ReportDetails(run_id, config.url_prefix, durations, start)


def _feature_impact(
    config: TestLocalConfig,
    server: Server,
    dataset: Dataset | None,
    results: dict[str, CheckResult],
    events: Events,
    cancel: threading.Event | None,
) -> FeatureImpactOutcome:
    """Feature impact on the server the checks used, when the model predicted the dataset."""
    from cmkit.featureimpact import (
        FeatureImpactFailed,
        FeatureImpactOptions,
        FeatureImpactOutcome,
        check_dataset,
        compute,
    )

    if dataset is None:
        return FeatureImpactOutcome("skipped", "no dataset")
    blocking = [name for name in (LONG_RUNNING_SERVICE, ERROR_CHECK) if results[name].status in (FAILED, ABORTED)]
    if blocking:
        return FeatureImpactOutcome("skipped", f"not run: {blocking[0]} {results[blocking[0]].status}")
    target = target_of(config)
    check_dataset(dataset, target)  # bad input is exit 2, as for the checks
    try:
        result = compute(server.url, dataset, target, FeatureImpactOptions(config.feature_impact_rows), events, cancel)
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
    config = resolve_config(config)
    if config.dataset is None:
        raise InputError("feature impact needs a dataset", hint="pass --dataset")
    target = target_of(config)
    dataset = load_dataset(config.dataset, config.target_name)
    check_dataset(dataset, target)
    try:
        server = start_bundle(config, events, uuid.uuid4().hex[:12]).server
    except StartFailed as exc:
        raise FeatureImpactFailed(exc.message) from exc
    from cmkit.checks.readiness import wait_ready

    try:
        ready = wait_ready(server, config.startup_timeout, cancel)
        if ready.status != "succeeded":
            raise FeatureImpactFailed(f"the model server did not start: {ready.message}\n{server.logs(LOG_TAIL_LINES)}")
        options = FeatureImpactOptions(config.feature_impact_rows)
        return compute(server.url, dataset, target, options, events, cancel)
    finally:
        server.stop()


def check_options(config: TestLocalConfig, expected: ExpectedPredictions | None = None) -> CheckOptions:
    from cmkit.checks.context import CheckOptions

    return CheckOptions(
        configuration=dict(config.checks),
        startup_timeout=config.startup_timeout,
        side_effects_rows=config.side_effects_rows,
        null_rows=config.null_rows,
        rtol=config.rtol,
        atol=config.atol,
        protocol=config.protocol,
        parameters=check_parameters(config),
        expected=expected,
    )


def check_server(
    config: TestLocalConfig,
    server: Server,
    dataset: Dataset | None,
    events: Events,
    cancel: threading.Event | None = None,
    expected: ExpectedPredictions | None = None,
) -> ServerChecks:
    """Run the checks against a started server."""
    # The checks (NumPy, urllib3) are imported once the server is starting, not before: a
    # process server's start then overlaps with these imports instead of waiting for them.
    from cmkit.checks.suite import run_checks

    options = check_options(config, expected)
    results = run_checks(server, dataset, target_of(config), options, events, cancel)
    exit_info = server.exit_info()
    return ServerChecks(
        results,
        dataset=CheckedDataset(str(config.dataset), dataset.rows) if dataset else None,
        parameters=options.parameters,
        server=server.describe(),
        exit=exit_info,
        log_tail=server.logs(LOG_TAIL_LINES),
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (the dataset, its encoded bodies, the answers)."""
    import resource

    # Linux reports kilobytes, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
