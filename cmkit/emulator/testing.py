"""Custom model tests: cmkit's test-local engine run on a stored version, in the background.

The async status of a test ends COMPLETED (303 to the test) when the checks ran and passed or
warned, ERROR when a check failed (DataRobot's client then reads the test itself), ABORTED when
the test was cancelled or the emulator stopped during it.

Besides the seed's four checks, `configuration` accepts the three the service also runs
(predictionVerificationCheck, performanceCheck, stabilityCheck) and `parameters` their settings
(cmkit/checks/parameters.py); the reference's request schema lists neither.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Response

from cmkit.checks.parameters import ParameterError, parse_parameters
from cmkit.checks.results import CHECK_NAMES, FAILED, LEVELS, PREDICTION_VERIFICATION, CheckResult, not_started
from cmkit.checks.results import DEFAULT_CONFIGURATION as CHECK_DEFAULTS
from cmkit.diagnosis import Diagnosis
from cmkit.emulator import datasets, environments, leftovers, models
from cmkit.emulator.bodies import CustomModelTests
from cmkit.emulator.common import USER, new_id, now, shape
from cmkit.emulator.documents import (
    CheckStatus,
    CustomModel,
    CustomModelVersion,
    Internal,
    ModelTest,
    TestingOutcome,
    settings,
)
from cmkit.emulator.errors import ErrorResponse, invalid, not_found
from cmkit.emulator.http import Query, Routes, api_url, checked_body, get_or_404, json_response, no_content, page
from cmkit.emulator.jobs import JobCancelled, JobFailed
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import INTERRUPTED, create_status, set_status
from cmkit.emulator.store import Kind, Resource
from cmkit.resolvedrun import TestLocalConfig
from cmkit.target import TargetType

KIND: Kind[ModelTest] = Kind("customModelTest")
CHECKS = (
    "errorCheck",
    "longRunningService",
    "nullValueImputation",
    "sideEffects",
    "predictionVerificationCheck",
    "performanceCheck",
    "stabilityCheck",
)
assert set(CHECKS) == set(CHECK_NAMES)
DEFAULT_CONFIGURATION = {name: CHECK_DEFAULTS[name] for name in CHECKS}
TERMINAL = ("succeeded", "failed", "warning", "canceled", "aborted", "skipped", "not_tested")
STATUS_VALUES = (
    "not_tested",
    "queued",
    "failed",
    "canceled",
    "succeeded",
    "in_progress",
    "aborted",
    "warning",
    "skipped",
)
SETTINGS = ("maximumMemory", "networkEgressPolicy", "replicas", "desiredMemory", "requiresHa", "resourceBundleId")


def create(emu: Emulator, body: CustomModelTests) -> str:
    """Start a test; the status id to poll."""
    model = models.find_model(emu, body["customModelId"])
    version = models.find_version(emu, model.id, body["customModelVersionId"])
    dataset_id = body.get("datasetId")
    if dataset_id is None and TargetType.from_api(model.doc["targetType"]).structured:
        raise invalid("datasetId is required to test a structured model", {"datasetId": "is required"})
    if dataset_id is not None:
        datasets.csv_path(emu, dataset_id)  # 404 or 422 now rather than a failed test later
    env_version = environments.find_version(emu, version.doc["baseEnvironmentVersionId"])
    environment = emu.store.get(environments.KIND, version.doc["baseEnvironmentId"], include_deleted=True)
    if env_version is None or environment is None:  # versions only name built environments: never
        raise invalid(f"The environment of version {version.id} is missing")
    configuration: dict[str, object] = {**DEFAULT_CONFIGURATION, **(body.get("configuration") or {})}
    parameters = _parameters(emu, body, configuration)
    # Every level is a string now: the reference's schema checked the seed's four, _parameters the rest.
    levels = {name: level for name, level in configuration.items() if isinstance(level, str)}
    test_id = new_id()
    doc: ModelTest = {
        "id": test_id,
        "created": now(),
        "completedAt": "",
        "createdBy": USER.username,
        "customModel": {"id": model.id, "name": model.doc["name"]},
        "customModelVersion": {"id": version.id, "label": version.doc["label"]},
        "executionEnvironment": {"id": environment.id, "name": environment.doc["name"]},
        "executionEnvironmentVersion": {"id": env_version.id, "label": env_version.doc["label"]},
        "customModelImageId": _image_id(version.id, env_version.id),
        "imageType": "customModelVersion",
        "datasetId": dataset_id,
        "datasetVersionId": _dataset_version(emu, dataset_id),
        "overallStatus": "queued",
        "testingStatus": {name: _check("queued" if configuration[name] != "skip" else "skipped") for name in CHECKS},
        **settings(body, version.doc, SETTINGS),
    }
    status_id = create_status(emu, f"Testing custom model {model.id} version {version.id}", "customModelTest")
    with emu.store.transaction():
        # One test at a time per model, as DataRobot does (422 while one is in progress).
        running = [t for t in emu.store.list(KIND, model.id) if t.doc["overallStatus"] not in TERMINAL]
        if running:
            raise invalid(f"Testing is already in progress for custom model {model.id} (test {running[0].id})")
        internal = Internal(statusId=status_id, configuration=levels, parameters=parameters)
        emu.store.insert(KIND, test_id, doc, parent=model.id, internal=internal)
    emu.jobs.submit(_job_key(test_id), lambda cancel: _run(emu, test_id, cancel))
    return status_id


def _parameters(
    emu: Emulator, body: CustomModelTests, configuration: Mapping[str, object]
) -> dict[str, dict[str, object]]:
    """The later checks' levels and `parameters`, checked as the service would (422 otherwise)."""
    errors = {
        f"configuration.{name}": f"must be one of: {', '.join(LEVELS)}"
        for name in ("predictionVerificationCheck", "performanceCheck", "stabilityCheck")
        if configuration.get(name) not in LEVELS
    }
    errors.update(
        {f"configuration.{name}": "is not a check" for name in configuration if name not in DEFAULT_CONFIGURATION}
    )
    raw = body.get("parameters") or {}
    parsed = None
    if not isinstance(raw, dict):
        errors["parameters"] = "must be an object"
    else:
        try:
            parsed = parse_parameters(raw)
        except ParameterError as exc:
            errors.update({f"parameters.{name}": reason for name, reason in exc.errors.items()})
    if errors:
        raise invalid("Invalid field data: " + "; ".join(f"{k} {v}" for k, v in list(errors.items())[:5]), errors)
    assert parsed is not None and isinstance(raw, dict)
    verification = parsed.verification
    if configuration[PREDICTION_VERIFICATION] != "skip":
        if not verification.datasetId or not verification.predictionsColumn:
            raise invalid(
                "predictionVerificationCheck needs parameters.predictionVerificationCheck.datasetId and "
                "predictionsColumn",
                {"parameters.predictionVerificationCheck": "datasetId and predictionsColumn are required"},
            )
        header = _header(datasets.csv_path(emu, verification.datasetId))  # 404 for an unknown dataset
        if verification.predictionsColumn not in header:
            raise invalid(
                f"Column {verification.predictionsColumn!r} is not in dataset {verification.datasetId}",
                {"parameters.predictionVerificationCheck.predictionsColumn": "not a column of the dataset"},
            )
    return dict(raw)


def _header(path: Path) -> list[str]:
    from cmkit.checks.datasetfile import read_shape  # test-local's reader, without pandas

    return read_shape(path).header


def _check(status: str, message: str = "") -> CheckStatus:
    return {"status": status, "message": message}


def _image_id(version_id: str, env_version_id: str) -> str:
    """A stable id for "this version on this environment version", DataRobot's model image."""
    return hashlib.sha256(f"{version_id}:{env_version_id}".encode()).hexdigest()[:24]


def _dataset_version(emu: Emulator, dataset_id: str | None) -> str | None:
    return datasets.get(emu, dataset_id)["versionId"] if dataset_id else None


def _job_key(test_id: str) -> str:
    return f"model-test:{test_id}"


def _run(emu: Emulator, test_id: str, cancel: threading.Event) -> None:
    log = emu.logs.writer(KIND, test_id)
    test = emu.store.get(KIND, test_id)
    if test is None or not _advance(emu, test_id, {"overallStatus": "in_progress"}, running=True):
        return
    set_status(emu, test.internal["statusId"], "RUNNING")
    try:
        request = _request(emu, test)
        log(f"testing version {test.doc['customModelVersion']['label']} with the {emu.engine.runtime} runtime")
        leftovers.record(emu, test_id, emu.engine.runtime)
        # test-local's report document (`TestLocalReport.to_dict`), whose outcome a test records.
        report = emu.engine.run_test(request, log, cancel)
    except JobCancelled:
        report = _ended_report("aborted", INTERRUPTED)
    except JobFailed as exc:
        log(f"error: {exc}")
        report = _not_started_report(str(exc))
    except Exception as exc:  # an engine error is the test's failure, reported on the test
        log(f"error: {exc}")
        report = _not_started_report(f"The test could not run: {exc}")
    finally:
        leftovers.forget(emu, test_id)
        shutil.rmtree(emu.dir("tests", test_id), ignore_errors=True)
    if cancel.is_set():
        # A DELETE already recorded "canceled" (and _record will leave it); otherwise the
        # emulator is stopping and the test did not get to finish.
        report = _ended_report("aborted", INTERRUPTED)
    _record(emu, test_id, report, log)


def copy_dataset(emu: Emulator, dataset_id: str, target: Path) -> Path:
    """A stored dataset's CSV copied where a run reads it."""
    shutil.copyfile(datasets.csv_path(emu, dataset_id), target)
    return target


def model_request(
    emu: Emulator,
    model: Resource[CustomModel],
    version: Resource[CustomModelVersion],
    workdir: Path,
    environment_version_id: str,
    **run: Any,
) -> TestLocalConfig:
    """test-local's request for a run of a stored model version: its files and target settings.

    Tests and feature impact add what they run (`run`); the job engine adds its runtime. The API
    spells target types its own way (Regression, TextGeneration): the request takes DRUM's name.
    """
    fields: dict[str, Any] = {"target_name": model.doc.get("targetName"), **run}
    return TestLocalConfig(
        bundle=models.materialize(emu, version, workdir / "bundle"),
        target_type=TargetType.from_api(model.doc["targetType"]).drum_name,
        positive_class_label=model.doc.get("positiveClassLabel"),
        negative_class_label=model.doc.get("negativeClassLabel"),
        class_labels=model.doc.get("classLabels"),
        environment=environments.context_dir(emu, environment_version_id),
        **fields,
    )


def _request(emu: Emulator, test: Resource[ModelTest]) -> TestLocalConfig:
    doc, test_id = test.doc, test.id
    model = models.find_model(emu, doc["customModel"]["id"])
    version = models.find_version(emu, model.id, doc["customModelVersion"]["id"])
    workdir = emu.dir("tests", test_id)
    dataset = None
    if doc["datasetId"]:
        dataset = copy_dataset(emu, doc["datasetId"], workdir / datasets.run_name(emu, doc["datasetId"]))
    parameters = test.internal.get("parameters") or {}
    verification_id = (parameters.get(PREDICTION_VERIFICATION) or {}).get("datasetId")
    verification = None
    if isinstance(verification_id, str) and test.internal["configuration"].get(PREDICTION_VERIFICATION) != "skip":
        verification = copy_dataset(emu, verification_id, workdir / f"expected-{verification_id}.csv")
    environment = {leftovers.MARKER_ENV: leftovers.marker(emu, test_id)}
    target_name = model.doc.get("targetName")
    run_target: dict[str, Any] = {}
    if dataset is not None and target_name and target_name not in _header(dataset):
        # DataRobot tests on a prediction dataset: its target column is dropped when present,
        # not required. test-local requires a named target in its dataset, so the run names
        # none; the model is still told its target, as DataRobot tells it (TARGET_NAME).
        run_target["target_name"] = None
        environment["TARGET_NAME"] = target_name
    return model_request(
        emu,
        model,
        version,
        workdir,
        doc["executionEnvironmentVersion"]["id"],
        **run_target,
        dataset=dataset,
        checks=dict(test.internal["configuration"]),
        parameters=parameters,
        verification_dataset=verification,
        maximum_memory=doc.get("maximumMemory"),
        network_egress=doc.get("networkEgressPolicy") or "PUBLIC",
        # The emulator's marker, which lets the next start find a server that outlived a killed
        # emulator (leftovers.py), on top of the contract's variables.
        server_environment=environment,
    )


def _ended_report(overall: str, message: str) -> TestingOutcome:
    """A report for a test that was stopped before its checks ended: every check `overall`."""
    return {"overallStatus": overall, "testingStatus": {name: _check(overall, message) for name in CHECKS}}


def _not_started_report(message: str) -> TestingOutcome:
    """A report for a test whose model never got to run: test-local's rule (`results.not_started`)."""
    results = not_started(CheckResult(FAILED, message))
    return {"overallStatus": FAILED, "testingStatus": {name: _check(**results[name].to_api()) for name in CHECKS}}


def _record(emu: Emulator, test_id: str, report: TestingOutcome, log: Any) -> None:
    overall = report.get("overallStatus", "failed")
    checks = report.get("testingStatus") or {}
    testing_status: dict[str, CheckStatus] = {}
    for name in CHECKS:
        entry: Mapping[str, object] = checks.get(name) or {}
        status = str(entry["status"]) if entry.get("status") in STATUS_VALUES else "not_tested"
        testing_status[name] = _check(status, str(entry.get("message") or ""))
    for line in _tail(report):
        log(line)
    for name, check in testing_status.items():
        log(f"{name}: {check['status']}" + (f": {check['message']}" if check["message"] else ""))
    log(f"overallStatus: {overall}")
    diagnosis = report.get("diagnosis")
    if isinstance(diagnosis, Mapping):
        found = Diagnosis.from_dict(diagnosis)
        for line in (f"diagnosis [{found.code}]: {found.line()}", *(f"  {e}" for e in found.evidence)):
            log(line)
    if not _advance(emu, test_id, ModelTest(overallStatus=overall, testingStatus=testing_status, completedAt=now())):
        return  # cancelled meanwhile: the DELETE already recorded the outcome
    details = report.get("details")
    if details is not None and isinstance(diagnosis, Mapping):  # push's remote test reads it there
        details = {**details, "diagnosis": diagnosis}
    emu.store.update(KIND, test_id, internal=Internal(details=details))
    _finish_status(emu, test_id, overall, testing_status)


def _tail(report: TestingOutcome) -> list[str]:
    details = report.get("details") or {}
    tail = details.get("logTail") or details.get("log_tail") or ""
    if isinstance(tail, str):
        lines = tail.splitlines()
    else:
        lines = [str(line) for line in tail] if isinstance(tail, list) else []
    return ["--- model server log (tail) ---", *lines] if lines else []


def _finish_status(emu: Emulator, test_id: str, overall: str, testing_status: dict[str, CheckStatus]) -> None:
    test = emu.store.get(KIND, test_id)
    if test is None:
        return
    status_id = test.internal["statusId"]
    if overall in ("succeeded", "warning", "skipped"):
        set_status(emu, status_id, "COMPLETED", location=f"customModelTests/{test_id}/")
    elif overall in ("canceled", "aborted"):
        set_status(emu, status_id, "ABORTED", f"Testing {overall}")
    else:
        problems = [f"{name}: {c['message']}" for name, c in testing_status.items() if c["status"] == "failed"]
        set_status(emu, status_id, "ERROR", "Testing failed. " + "; ".join(problems))


def _advance(emu: Emulator, test_id: str, doc: ModelTest, running: bool = False) -> bool:
    """Update a test unless it already ended (a DELETE may have cancelled it meanwhile)."""
    with emu.store.transaction():
        test = emu.store.get(KIND, test_id)
        if test is None or test.doc["overallStatus"] in TERMINAL:
            return False
        test.doc.update(doc)
        if running:
            for check in test.doc["testingStatus"].values():
                if check["status"] == "queued":
                    check["status"] = "in_progress"
        emu.store.save(test)
        return True


def _test(emu: Emulator, test_id: str) -> Resource[ModelTest]:
    return get_or_404(emu, KIND, test_id, "Custom model test")


def render(emu: Emulator, test: Resource[ModelTest]) -> ModelTest:
    return shape(test.doc, emu.reference.schema("CustomModelTestsResponse"))


def get(emu: Emulator, test_id: str) -> ModelTest:
    return render(emu, _test(emu, test_id))


def list_tests(emu: Emulator, model_id: str) -> list[ModelTest]:
    """Newest first (DataRobot's client takes the first entry as the test it just started)."""
    return [render(emu, t) for t in reversed(emu.store.list(KIND, model_id))]


def cancel(emu: Emulator, test_id: str) -> None:
    with emu.store.transaction():
        test = _test(emu, test_id)
        if test.doc["overallStatus"] in TERMINAL:
            raise ErrorResponse(409, f"Test {test_id} has already ended ({test.doc['overallStatus']})")
        report = _ended_report("canceled", "The test was cancelled")
        test.doc.update(
            ModelTest(
                overallStatus="canceled",
                completedAt=now(),
                testingStatus={
                    name: check if check["status"] in TERMINAL else report["testingStatus"][name]
                    for name, check in test.doc["testingStatus"].items()
                },
            )
        )
        emu.store.save(test)
    emu.logs.writer(KIND, test_id)("test cancelled")
    emu.jobs.cancel(_job_key(test_id))
    set_status(emu, test.internal["statusId"], "ABORTED", "Testing canceled")


def log_text(emu: Emulator, test_id: str) -> str:
    _test(emu, test_id)
    if not emu.logs.exists(KIND, test_id):
        raise not_found("Testing log of test", test_id)
    return emu.logs.read(KIND, test_id)


def log_tail(emu: Emulator, test_id: str, lines: int) -> dict[str, str]:
    _test(emu, test_id)
    return {"log": emu.logs.tail(KIND, test_id, lines)}


def recover(emu: Emulator) -> None:
    for test in emu.store.list(KIND):
        if test.doc["overallStatus"] not in TERMINAL:
            report = _ended_report("aborted", INTERRUPTED)
            test.doc.update(
                ModelTest(overallStatus="aborted", completedAt=now(), testingStatus=report["testingStatus"])
            )
            emu.store.save(test)
            emu.logs.writer(KIND, test.id)(f"error: {INTERRUPTED}")
            set_status(emu, test.internal["statusId"], "ABORTED", INTERRUPTED)


# -- custom model tests --------------------------------------------------------------------------

ROUTES = Routes()


@ROUTES.api("POST", "customModelTests/")
def http_create_test(emu: Emulator, query: Query) -> Response:
    status_id = create(emu, checked_body(CustomModelTests))
    return json_response({"statusId": status_id}, 202, {"Location": api_url(f"status/{status_id}/")})


@ROUTES.api("GET", "customModelTests/")
def http_list_tests(emu: Emulator, query: Query) -> Response:
    return page(list_tests(emu, query["customModelId"]), query)


@ROUTES.api("GET", "customModelTests/{customModelTestId}/")
def http_get_test(emu: Emulator, query: Query, customModelTestId: str) -> Response:
    return json_response(get(emu, customModelTestId))


@ROUTES.api("DELETE", "customModelTests/{customModelTestId}/")
def http_cancel_test(emu: Emulator, query: Query, customModelTestId: str) -> Response:
    cancel(emu, customModelTestId)
    return no_content()


@ROUTES.api("GET", "customModelTests/{customModelTestId}/log/")
def http_get_test_log(emu: Emulator, query: Query, customModelTestId: str) -> Response:
    text = log_text(emu, customModelTestId)
    disposition = f"attachment;filename=testing-{customModelTestId}.log"
    return Response(text, mimetype="text/plain", headers={"Content-Disposition": disposition})


@ROUTES.api("GET", "customModelTests/{customModelTestId}/tail/")
def http_get_test_tail(emu: Emulator, query: Query, customModelTestId: str) -> Response:
    return json_response(log_tail(emu, customModelTestId, query["lines"]))
