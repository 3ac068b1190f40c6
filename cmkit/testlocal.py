"""`cmkit test-local`: build and run a bundle, then reproduce DataRobot's model-test checks.

The report means the same as the API's `GET /customModelTests/{id}`: `overallStatus`, and a
`testingStatus` entry `{status, message}` for each of the four checks, with the same
configuration levels and defaults. `details` adds what only a local run can tell.
"""

from __future__ import annotations

import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docker.errors import DockerException
from docker.utils import parse_bytes

from cmkit.checks.results import (
    ABORTED,
    CHECK_NAMES,
    DEFAULT_CONFIGURATION,
    FAILED,
    LEVELS,
    LONG_RUNNING_SERVICE,
    CheckResult,
    overall_status,
)
from cmkit.checks.suite import CheckOptions, run_checks, wait_ready
from cmkit.errors import CmkitError, DockerUnavailable, InputError
from cmkit.events import Events
from cmkit.metadata import load_metadata
from cmkit.paths import default_environment_dir
from cmkit.runtime.base import (
    NETWORK_EGRESS,
    RunSpec,
    Server,
    normalise_url_prefix,
    random_url_prefix,
    signals_deferred,
    target_variables,
)
from cmkit.target import TargetSpec, require_target_type
from cmkit_runtime.target import Target

if TYPE_CHECKING:
    from cmkit.checks.dataset import Dataset

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
    maximum_memory: int | None = None
    network_egress: str = "PUBLIC"
    url_prefix: str | None = None
    startup_timeout: float = 120.0
    side_effects_rows: int = 1000
    rtol: float = 1e-5
    atol: float = 1e-8
    keep: bool = False
    rebuild: bool = False
    ca_bundle: Path | None = None
    server_environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class TestReport:
    __test__ = False

    results: dict[str, CheckResult]
    configuration: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)
    server: Server | None = None  # still running when `keep` was asked

    @property
    def overall_status(self) -> str:
        return overall_status(self.results)

    def to_dict(self) -> dict[str, Any]:
        checks = {name: {**r.details, "seconds": r.seconds} for name, r in self.results.items()}
        return {
            "overallStatus": self.overall_status,
            "testingStatus": {name: r.to_api() for name, r in self.results.items()},
            "configuration": dict(self.configuration),
            "details": {**self.details, "checks": checks},
        }


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
    resolved = replace(
        config,
        bundle=bundle,
        dataset=dataset,
        target_type=target_type,
        target_name=config.target_name or (meta.target_name if meta else None),
        positive_class_label=config.positive_class_label or (labels_from.positive_class_label if labels_from else None),
        negative_class_label=config.negative_class_label or (labels_from.negative_class_label if labels_from else None),
        class_labels=config.class_labels or (labels_from.class_labels if labels_from else None),
        checks={**DEFAULT_CONFIGURATION, **config.checks},
        url_prefix=normalise_url_prefix(config.url_prefix) if config.url_prefix is not None else random_url_prefix(),
    )
    _validate(resolved)
    return resolved


def _validate(config: TestLocalConfig) -> None:
    for name, level in config.checks.items():
        if name not in CHECK_NAMES or level not in LEVELS:
            raise InputError(
                f"bad check setting '{name}={level}'", hint=f"use NAME=fail|warn|skip, NAME in {CHECK_NAMES}"
            )
    if config.checks[LONG_RUNNING_SERVICE] != "fail":
        raise InputError("longRunningService can only be 'fail' (as in the API)")
    if config.network_egress not in NETWORK_EGRESS:
        raise InputError(f"bad network egress '{config.network_egress}'", hint="use NONE or PUBLIC")
    if config.environment is not None and config.image is not None:
        raise InputError("give --environment or --image, not both")
    if config.runtime is not None and config.runtime not in RUNTIMES:
        raise InputError(f"unknown runtime '{config.runtime}'", hint="use docker or process")
    if config.target_type is not None:
        target_spec(config).validate(hint="pass the flags, or set the labels in model-metadata.yaml")


def target_spec(config: TestLocalConfig) -> TargetSpec:
    return TargetSpec(
        str(config.target_type), config.positive_class_label, config.negative_class_label, config.class_labels
    )


def target_of(config: TestLocalConfig) -> Target:
    return target_spec(config).target(config.target_name)


# --- running ------------------------------------------------------------------------------------


class StartFailed(CmkitError):
    """The image could not be built or the server not started: longRunningService fails."""


def _all_aborted(message: str) -> dict[str, CheckResult]:
    results = {LONG_RUNNING_SERVICE: CheckResult(FAILED, message)}
    results.update({name: CheckResult(ABORTED, f"not run: {LONG_RUNNING_SERVICE} failed") for name in CHECK_NAMES[1:]})
    return {name: results[name] for name in CHECK_NAMES}


def _choose_runtime(config: TestLocalConfig, events: Events, details: dict[str, Any]) -> tuple[str, Any]:
    from cmkit.runtime.docker import docker_client

    if config.runtime == "process":
        return "process", None
    try:
        return "docker", docker_client()
    except DockerUnavailable:
        if config.runtime == "docker" or config.image or config.environment:
            raise
        warning = "no Docker engine answers: running start_server.sh as a local process instead"
        details.setdefault("warnings", []).append(warning)
        events.stage(f"warning: {warning}")
        return "process", None


def _start_docker(
    client: Any, config: TestLocalConfig, spec: RunSpec, run_id: str, events: Events, details: dict[str, Any]
) -> Server:
    from cmkit.runtime.docker import ContainerStartFailed, start_container
    from cmkit.runtime.images import BuildFailed, BuildSettings, ImageBuilder

    builder = ImageBuilder(client, BuildSettings.from_environment(config.ca_bundle), events.log, config.labels)
    events.stage("building the image (environment, dependencies, code)")
    started = time.monotonic()
    try:
        environment = None if config.image else (config.environment or default_environment_dir())
        image = builder.model(config.bundle, environment=environment, image=config.image, rebuild=config.rebuild)
    except BuildFailed as exc:
        details["buildLogTail"] = "\n".join(exc.log[-LOG_TAIL_LINES:])
        raise StartFailed(f"{exc.message}\n" + "\n".join(exc.log[-10:])) from exc
    finally:
        details["durations"]["build"] = round(time.monotonic() - started, 3)
    details["image"] = image.to_dict()
    events.stage(f"starting {image.code.tag}")
    try:
        server = start_container(client, image.code.image_id, spec, run_id)
    except ContainerStartFailed as exc:  # the container is already removed
        builder.finish()
        raise StartFailed(exc.message) from exc
    server.on_stop(builder.finish)
    return server


def _start_process(config: TestLocalConfig, spec: RunSpec, details: dict[str, Any]) -> Server:
    from cmkit.runtime.process import start_process

    if config.maximum_memory or config.network_egress == "NONE":
        details.setdefault("warnings", []).append(
            "the process runtime cannot enforce --maximum-memory or --network-egress NONE; use Docker for those"
        )
    try:
        return start_process(config.bundle, spec)
    except OSError as exc:
        raise StartFailed(f"start_server.sh could not be started: {exc.strerror or exc}") from exc


def start_bundle(config: TestLocalConfig, events: Events, details: dict[str, Any], run_id: str) -> tuple[Server, Any]:
    """Build (Docker) and start a resolved config's bundle; returns the server and the Docker client."""
    runtime, client = _choose_runtime(config, events, details)
    details["runtime"] = runtime
    spec = RunSpec(
        url_prefix=str(config.url_prefix),
        environment=config.server_environment,
        contract=_target_variables(config),
        maximum_memory=config.maximum_memory,
        network_egress=config.network_egress,
        labels=config.labels,
    )
    try:
        if runtime == "docker":
            return _start_docker(client, config, spec, run_id, events, details), client
        return _start_process(config, spec, details), client
    except BaseException:
        if client is not None:
            client.close()
        raise


def _target_variables(config: TestLocalConfig) -> dict[str, str]:
    """DataRobot's target variables for the container, from the resolved flags and metadata."""
    return target_variables(config.target_type, target_of(config).labels) if config.target_type else {}


def stop_server(server: Server, client: Any) -> None:
    with signals_deferred():
        server.stop()
        if hasattr(server, "cleanup"):
            server.cleanup()
        if client is not None:
            client.close()


def _load_dataset(config: TestLocalConfig) -> Dataset | None:
    if config.dataset is None:
        return None
    # Imported here: pandas takes a third of a second to import, and this runs on a thread
    # while the image builds and the server starts (see run_test_local).
    from cmkit.checks.dataset import load_dataset

    return load_dataset(config.dataset, config.target_name if config.target_type != "anomaly" else None)


def _report_leftovers(server: Server, details: dict[str, Any]) -> None:
    """Say what escaped the server's process group, and above all what could not be ended."""
    leftovers = server.leftovers()
    if leftovers is None:
        return
    details["processes"] = leftovers
    if leftovers["survived"]:
        details.setdefault("warnings", []).append(
            f"processes started by the server are still running after the run: {leftovers['survived']}"
        )
    elif leftovers["tracking"] == "process-group":
        details.setdefault("warnings", []).append(
            "processes that leave the server's process group cannot be found on this system; "
            "check that nothing the server started is still running"
        )


def run_test_local(
    config: TestLocalConfig, events: Events | None = None, cancel: threading.Event | None = None
) -> TestReport:
    """Build, start and check a bundle; the server is removed at the end unless `keep`."""
    events = events or Events()
    config = resolve_config(config)
    run_id = uuid.uuid4().hex[:12]
    details: dict[str, Any] = {"runId": run_id, "urlPrefix": config.url_prefix, "durations": {}}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmkit-dataset") as pool:
        # The dataset loads while the image builds and the server starts: both wait on I/O.
        loading = pool.submit(_load_dataset, config)
        try:
            server, client = start_bundle(config, events, details, run_id)
        except StartFailed as exc:
            loading.result()  # a bad dataset is the user's first problem (exit 2)
            details["durations"]["total"] = round(time.monotonic() - started, 3)
            return TestReport(_all_aborted(exc.message), dict(config.checks), details)
        try:
            dataset = loading.result()
        except BaseException:
            stop_server(server, client)
            raise
    details["dataset"] = {"path": str(config.dataset), "rows": dataset.rows} if dataset else None
    try:
        options = CheckOptions(
            configuration=dict(config.checks),
            startup_timeout=config.startup_timeout,
            side_effects_rows=config.side_effects_rows,
            rtol=config.rtol,
            atol=config.atol,
        )
        results = run_checks(server, dataset, target_of(config), options, events, cancel)
        details["server"] = server.describe()
        exit_info = server.exit_info()
        details["exit"] = exit_info.to_dict() if exit_info else None
        details["logTail"] = server.logs(LOG_TAIL_LINES)
    finally:
        if not config.keep:
            stop_server(server, client)
    _report_leftovers(server, details)
    details["durations"]["total"] = round(time.monotonic() - started, 3)
    return TestReport(results, dict(config.checks), details, server if config.keep else None)


@dataclass
class ServeSession:
    server: Server
    client: Any

    def close(self) -> None:
        stop_server(self.server, self.client)


def serve_bundle(config: TestLocalConfig, events: Events | None = None, startup_timeout: float = 120.0) -> ServeSession:
    """Build and start a bundle for interactive use; returns once it answers 200 (or raises)."""
    events = events or Events()
    config = resolve_config(config, require_target=False)
    details: dict[str, Any] = {"durations": {}}
    server, client = start_bundle(config, events, details, uuid.uuid4().hex[:12])
    session = ServeSession(server, client)
    try:
        ready = wait_ready(server, startup_timeout)
    except BaseException:
        session.close()
        raise
    if ready.status != "succeeded":
        session.close()
        raise StartFailed(ready.message)
    return session


# --- JUnit --------------------------------------------------------------------------------------


def junit_xml(report: TestReport, name: str = "cmkit test-local") -> str:
    """One testcase per check; failed -> <failure>, warning -> <system-out>, skipped/aborted -> <skipped>."""
    suite = ET.Element("testsuite", name=name, tests=str(len(report.results)))
    failures = skipped = 0
    for check, result in report.results.items():
        case = ET.SubElement(suite, "testcase", classname="cmkit.test_local", name=check, time=f"{result.seconds:.3f}")
        if result.status == FAILED:
            failures += 1
            ET.SubElement(
                case, "failure", message=result.message.splitlines()[0] if result.message else "failed"
            ).text = result.message
        elif result.status in ("skipped", ABORTED, "canceled"):
            skipped += 1
            ET.SubElement(case, "skipped", message=f"{result.status}: {result.message}")
        elif result.message:
            ET.SubElement(case, "system-out").text = f"{result.status}: {result.message}"
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def parse_check_settings(values: Mapping[str, str] | list[str] | tuple[str, ...]) -> dict[str, str]:
    """`NAME=LEVEL` strings (the `--check` flag) -> {name: level}."""
    if isinstance(values, Mapping):
        return dict(values)
    settings = {}
    for value in values:
        name, sep, level = value.partition("=")
        if not sep or name not in CHECK_NAMES or level not in LEVELS:
            raise InputError(
                f"bad --check '{value}'", hint=f"use NAME=fail|warn|skip with NAME in {', '.join(CHECK_NAMES)}"
            )
        settings[name] = level
    return settings




def parse_memory(text: str) -> int:
    """`512M`, `1G`, `1.5Gi` or plain bytes -> bytes, in binary units, read as Docker reads them."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("i")  # 512MiB and 512Mi as 512M
    try:
        value = int(parse_bytes(cleaned)) if cleaned else 0
    except DockerException as exc:
        raise InputError(f"bad memory size '{text}'", hint="use e.g. 512M or 2G") from exc
    if value <= 0:
        raise InputError(f"bad memory size '{text}'", hint="use e.g. 512M or 2G")
    return value
