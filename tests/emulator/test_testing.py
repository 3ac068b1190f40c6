"""Custom model tests (cmkit/emulator/testing.py) through Flask's test client, with real model runs.

The emulator's process runtime runs cmkit's test-local engine on the stored version: the
version's start_server.sh is started as a real process and the real checks talk to it. The
model is write_stdlib_bundle's (tests/support/bundles.py: a standard-library server that starts in
milliseconds), so a whole test takes a fraction of a second. What needs a served emulator (a stop or a kill during
a test) is in tests/emulator/test_state.py (slow tier).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from cmkit.report import TestTable
from tests.emulator.test_api import assert_conforms, create_model, create_version
from tests.support.bundles import stdlib_files
from tests.support.emulator_support import ended, wait_for
from tests.support.flask_transport import InProcessEmulator

ABSENT = "0123456789abcdef01234567"


@pytest.fixture(scope="module")
def dataset(stdlib_dataset: str) -> str:
    return stdlib_dataset


def model_with_version(emulator: InProcessEmulator, api: requests.Session, behaviour: str = "good") -> tuple[str, str]:
    model = create_model(api, emulator)
    env_id = str(emulator.info["environmentId"])
    version = create_version(api, emulator, model["id"], stdlib_files(behaviour), baseEnvironmentId=env_id)
    assert version.status_code == 201, version.text
    return str(model["id"]), str(version.json()["id"])


def start_test(emulator: InProcessEmulator, api: requests.Session, **body: Any) -> requests.Response:
    return api.post(emulator.url("customModelTests/"), json=body)


def test_a_good_model_passes_and_its_test_log_and_tail_are_kept(
    emulator: InProcessEmulator, api: requests.Session, dataset: str
) -> None:
    model_id, version_id = model_with_version(emulator, api)
    # The model's exact predictions are the training data's target column y: verification passes.
    verification = {"predictionVerificationCheck": {"datasetId": dataset, "predictionsColumn": "y"}}
    started = start_test(
        emulator,
        api,
        customModelId=model_id,
        customModelVersionId=version_id,
        datasetId=dataset,
        # The two checks that send a request per column or several batches are test-local's
        # (tests/checks/test_seven_checks.py); here they are skipped, and the test says so.
        configuration={"predictionVerificationCheck": "fail", "nullValueImputation": "skip", "sideEffects": "skip"},
        parameters=verification,
    )
    assert started.status_code == 202 and started.headers["Location"].endswith(f"status/{started.json()['statusId']}/")
    done = ended(api, started.headers["Location"])
    assert done.status_code == 303, done.text
    test = api.get(done.headers["Location"]).json()
    assert_conforms(test, "CustomModelTestsResponse")
    assert test["overallStatus"] == "succeeded" and test["completedAt"]
    assert (test["customModel"]["id"], test["customModelVersion"]["id"], test["datasetId"]) == (
        model_id,
        version_id,
        dataset,
    )
    statuses = {name: check["status"] for name, check in test["testingStatus"].items()}
    assert statuses == {
        "errorCheck": "succeeded",
        "longRunningService": "succeeded",
        "nullValueImputation": "skipped",
        "sideEffects": "skipped",
        "predictionVerificationCheck": "succeeded",
        "performanceCheck": "skipped",
        "stabilityCheck": "skipped",
    }
    listed = api.get(emulator.url(f"customModelTests/?customModelId={model_id}")).json()["data"]
    assert [t["id"] for t in listed] == [test["id"]]
    log = api.get(emulator.url(f"customModelTests/{test['id']}/log/"))
    assert log.headers["Content-Disposition"] == f"attachment;filename=testing-{test['id']}.log"
    assert "with the process runtime" in log.text and "overallStatus: succeeded" in log.text
    assert "model loaded" in log.text  # the model server's own output, from the report's log tail
    tail = api.get(emulator.url(f"customModelTests/{test['id']}/tail/?lines=1")).json()["log"]
    assert tail.strip() == "overallStatus: succeeded"
    # An ended test cannot be cancelled.
    refused = api.delete(emulator.url(f"customModelTests/{test['id']}/"))
    assert refused.status_code == 409 and "already ended (succeeded)" in refused.json()["message"]


def test_a_model_that_fails_to_predict_ends_in_error_with_the_failed_checks(
    emulator: InProcessEmulator, api: requests.Session, dataset: str
) -> None:
    model_id, version_id = model_with_version(emulator, api, "fails")
    body = {"customModelId": model_id, "customModelVersionId": version_id, "datasetId": dataset}
    status = ended(api, start_test(emulator, api, **body).headers["Location"]).json()
    assert status["status"] == "ERROR" and status["message"].startswith("Testing failed. errorCheck: ")
    test = api.get(emulator.url(f"customModelTests/?customModelId={model_id}")).json()["data"][0]
    assert test["overallStatus"] == "failed" and test["testingStatus"]["errorCheck"]["status"] == "failed"
    assert "500" in test["testingStatus"]["errorCheck"]["message"]
    # The test log names the diagnosis, as test-local does (issue 26); push's table recognises it
    # from the resource alone, which is all DataRobot gives.
    log = api.get(emulator.url(f"customModelTests/{test['id']}/log/")).text
    assert "diagnosis [predict-error]: the model fails on the test data (HTTP 500): fix predict()" in log
    table = TestTable.from_api(test)
    assert table.diagnosis is not None and table.diagnosis.code == "predict-error"


def test_a_server_that_never_answers_is_cancelled_and_one_test_runs_at_a_time(
    emulator: InProcessEmulator, api: requests.Session, dataset: str
) -> None:
    model_id, version_id = model_with_version(emulator, api, "hangs")
    body = {"customModelId": model_id, "customModelVersionId": version_id, "datasetId": dataset}
    started = start_test(emulator, api, **body)
    tests_url = emulator.url(f"customModelTests/?customModelId={model_id}")
    test = wait_for(lambda: (t := api.get(tests_url).json()["data"][0])["overallStatus"] == "in_progress" and t)
    assert test["testingStatus"]["errorCheck"]["status"] == "in_progress"
    busy = start_test(emulator, api, **body)
    assert busy.status_code == 422 and f"already in progress for custom model {model_id}" in busy.json()["message"]
    assert api.delete(emulator.url(f"customModelTests/{test['id']}/")).status_code == 204
    cancelled = api.get(emulator.url(f"customModelTests/{test['id']}/")).json()
    assert cancelled["overallStatus"] == "canceled"
    assert {c["status"] for c in cancelled["testingStatus"].values()} <= {"canceled", "skipped"}
    status = ended(api, started.headers["Location"]).json()
    assert (status["status"], status["message"]) == ("ABORTED", "Testing canceled")
    # The job notices the cancel, stops the server and leaves the DELETE's outcome as it is.
    wait_for(lambda: f"model-test:{test['id']}" not in emulator.flask.core.jobs.active(), timeout=30, interval=0.02)
    assert api.get(emulator.url(f"customModelTests/{test['id']}/")).json()["overallStatus"] == "canceled"
    assert "test cancelled" in api.get(emulator.url(f"customModelTests/{test['id']}/log/")).text


def test_requests_the_service_would_refuse_are_refused_before_anything_runs(
    emulator: InProcessEmulator, api: requests.Session, dataset: str
) -> None:
    model_id, version_id = model_with_version(emulator, api)
    base = {"customModelId": model_id, "customModelVersionId": version_id}

    def refused(status: int, **body: Any) -> dict[str, Any]:
        response = start_test(emulator, api, **{**base, **body})
        assert response.status_code == status, (body, response.text)
        return dict(response.json())

    assert refused(404, customModelId=ABSENT, datasetId=dataset)
    assert refused(404, customModelVersionId=ABSENT, datasetId=dataset)
    assert refused(422)["errors"] == {"datasetId": "is required"}  # a structured model needs data
    assert refused(404, datasetId=ABSENT)
    bad_level = refused(422, datasetId=dataset, configuration={"performanceCheck": "loud"})
    assert bad_level["errors"]["configuration.performanceCheck"].startswith("must be one of: ")
    assert "is not a check" in refused(422, datasetId=dataset, configuration={"myCheck": "fail"})["message"]
    assert refused(422, datasetId=dataset, parameters=[1])["errors"] == {"parameters": "must be an object"}
    unknown = refused(422, datasetId=dataset, parameters={"stabilityCheck": {"numPredictions": -1}})
    assert any(name.startswith("parameters.stabilityCheck") for name in unknown["errors"])
    verification = {"configuration": {"predictionVerificationCheck": "fail"}, "datasetId": dataset}
    needs = refused(422, **verification)
    assert needs["errors"] == {"parameters.predictionVerificationCheck": "datasetId and predictionsColumn are required"}
    parameters = {"predictionVerificationCheck": {"datasetId": dataset, "predictionsColumn": "nope"}}
    column = refused(422, **verification, parameters=parameters)
    assert "'nope' is not in dataset" in column["message"]
    assert api.get(emulator.url(f"customModelTests/?customModelId={model_id}")).json()["data"] == []
