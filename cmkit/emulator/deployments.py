"""Deployments of model packages: created, listed, changed, replaced, challenged, deleted, and
predicting.

Outside the custom-models chapter; shaped after what DataRobot's official client
(`Deployment.create_from_registered_model_version`, `Deployment.get`) and the custom-models
Action send and read. What is computed and what is only stored:

- **computed**: a deployment launches its model package's custom model version on the job
  engine (`serving.launch`) and keeps it running; its creation's status ends COMPLETED when the
  model answers, ERROR (with the server's words in the deployment's logs) when it does not.
  Replacing the model launches the new version first and swaps it in only when it answers.
  Predictions (`predApi/v1.0/deployments/{id}/predictions`, and the serverless
  `deployments/{id}/predictions` under /api/v2/) are the running model's.
- **stored only**: settings (drift, segment analysis, challengers, data collection, association
  ids), challengers (listed after the champion, never run), actuals (the dataset and columns are
  checked, nothing is scored), importance, label and description.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from flask import Response, request

from cmkit.emulator import datasets, modelpackages, models, serving
from cmkit.emulator.common import USER, new_id, now
from cmkit.emulator.documents import (
    Challenger,
    CustomModel,
    CustomModelImage,
    DeployedModel,
    Deployment,
    Internal,
    ModelPackage,
    PredictionEnvironment,
)
from cmkit.emulator.errors import ErrorResponse, invalid, not_found
from cmkit.emulator.http import (
    PREDICTION_PREFIX,
    Query,
    Routes,
    accepted,
    get_or_404,
    json_body,
    json_response,
    no_content,
    page,
    paging,
)
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import create_status, set_status
from cmkit.emulator.store import Kind, Resource

KIND: Kind[Deployment] = Kind("deployment")
_RELAUNCH = threading.Lock()
MAX_PREDICTION_BYTES = 50 * 2**20  # the real-time prediction API's limit on a request
IMPORTANCE = ("CRITICAL", "HIGH", "MODERATE", "LOW")
REPLACEMENT_REASONS = ("ACCURACY", "DATA_DRIFT", "ERRORS", "SCHEDULED_REFRESH", "SCORING_SPEED", "DEPRECATION", "OTHER")
# The one prediction environment: the emulator's own runtime, for custom models.
PREDICTION_ENVIRONMENT: PredictionEnvironment = {
    "id": "00000000000000000000e001",
    "name": "cmkit emulator",
    "description": "The emulator's job engine: deployed custom models run in its runtime",
    "platform": "datarobotServerless",
    "supportedModelFormats": ["customModel"],
    "isManagedByManagementAgent": False,
    "isDeleted": False,
    "importance": "LOW",
}
DEFAULT_SETTINGS: dict[str, Any] = {
    "associationId": {"columnNames": [], "requiredInPredictionRequests": False, "autoGenerateId": False},
    "challengerModels": {"enabled": False},
    "featureDrift": {"enabled": False},
    "targetDrift": {"enabled": False},
    "predictionsDataCollection": {"enabled": False},
    "segmentAnalysis": {"enabled": False, "attributes": []},
    "predictionIntervals": {"enabled": False, "percentiles": []},
    "predictionWarning": {"enabled": False},
    "humility": {"enabled": False},
}


# -- creation and launch -------------------------------------------------------------------------


def deployed_model(emu: Emulator, package: ModelPackage) -> DeployedModel:
    """A deployment's (or challenger's) `model`: the custom model version its package holds."""
    _, version = serving.model_and_version(emu, package["modelId"])
    image: CustomModelImage = {
        "customModelId": package["customModelId"],
        "customModelVersionId": package["modelId"],
        "executionEnvironmentId": version.doc["baseEnvironmentId"],
        "executionEnvironmentVersionId": version.doc["baseEnvironmentVersionId"],
    }
    return {
        "id": package["modelId"],
        "type": package["name"],
        "targetName": package["target"].get("name"),
        "targetType": package["target"]["type"],
        "customModelImage": image,
        "deployedAt": now(),
    }


def create(emu: Emulator, body: dict[str, Any]) -> tuple[str, str]:
    """`POST deployments/fromModelPackage/`: (deployment id, status id); the model launches in
    the background."""
    package = modelpackages.find(emu, _text(body, "modelPackageId", required=True) or "")
    label = _text(body, "label", required=True) or ""
    environment_id = _text(body, "predictionEnvironmentId")
    if environment_id and environment_id != PREDICTION_ENVIRONMENT["id"]:
        raise invalid(f"Prediction environment {environment_id} not found", {"predictionEnvironmentId": "not found"})
    importance = _importance(body.get("importance", "LOW"))
    user_provided_id = _text(body, "userProvidedId")
    doc: Deployment = {
        "id": new_id(),
        "label": label,
        "description": _text(body, "description"),
        "importance": importance,
        "status": "launching",
        "userProvidedId": user_provided_id,
        "model": deployed_model(emu, package),
        "modelPackage": {
            "id": package["id"],
            "name": package["name"],
            "registeredModelId": package["registeredModelId"],
        },
        "predictionEnvironment": {
            "id": PREDICTION_ENVIRONMENT["id"],
            "name": PREDICTION_ENVIRONMENT["name"],
            "platform": PREDICTION_ENVIRONMENT["platform"],
            "isManagedByManagementAgent": False,
        },
        "defaultPredictionServer": {"id": PREDICTION_ENVIRONMENT["id"], "url": _prediction_root(), "datarobot-key": ""},
        "serviceHealth": {"status": "unknown"},
        "modelHealth": {"status": "unknown"},
        "accuracyHealth": {"status": "unavailable"},
        "permissions": ["CAN_VIEW", "CAN_EDIT", "CAN_MAKE_PREDICTIONS", "CAN_DELETE"],
        "createdAt": now(),
        "creator": {"id": USER.id, "username": USER.username},
    }
    status_id = create_status(emu, f"Deployment {label}", "deployment")
    with emu.store.transaction():
        if user_provided_id and emu.store.find(KIND, "userProvidedId", user_provided_id):
            raise invalid(
                f"A deployment with the user provided ID {user_provided_id} already exists",
                {"userProvidedId": "must be unique"},
            )
        emu.store.insert(KIND, doc["id"], doc, internal=Internal(settings=dict(DEFAULT_SETTINGS), challengers=[]))
        _count_deployment(emu, package["customModelId"], +1)
    deployment_id = doc["id"]
    emu.jobs.submit(
        f"deployment:{deployment_id}:{status_id}",
        lambda cancel: _launch(emu, deployment_id, package["modelId"], status_id, cancel),
    )
    return deployment_id, status_id


def _package_ref(package: ModelPackage) -> dict[str, str]:
    return {"id": package["id"], "name": package["name"], "registeredModelId": package["registeredModelId"]}


def _prediction_root() -> str:
    """The prediction server's URL, as DataRobot gives it: its host; the route adds /predApi/v1.0/."""
    return request.host_url.rstrip("/")


def _launch(emu: Emulator, deployment_id: str, version_id: str, status_id: str, cancel: threading.Event) -> None:
    log = emu.logs.writer(KIND, deployment_id)
    set_status(emu, status_id, "RUNNING")
    try:
        live = serving.launch(emu, _package_model(emu, version_id), version_id, log, cancel)
    except serving.LaunchFailed as exc:
        log(f"ERROR: the model did not start: {exc}")
        emu.store.update(KIND, deployment_id, Deployment(status="errored"))
        set_status(emu, status_id, "ERROR", f"The deployment's model did not start: {exc}")
        return
    if emu.store.get(KIND, deployment_id) is None:  # deleted while it launched
        live.close()
        set_status(emu, status_id, "ABORTED", "the deployment was deleted")
        return
    emu.served.put(deployment_id, live)
    emu.store.update(KIND, deployment_id, Deployment(status="active"))
    set_status(emu, status_id, "COMPLETED", location=f"deployments/{deployment_id}/")


def _package_model(emu: Emulator, version_id: str) -> str:
    model, _ = serving.model_and_version(emu, version_id)
    return model.id


def live_model(emu: Emulator, deployment_id: str) -> serving.Live:
    """The deployment's running model; launched again first when the emulator restarted since."""
    live = emu.served.get(deployment_id)
    if isinstance(live, serving.Live):
        return live
    # One relaunch at a time: two first predictions after a restart must not both launch (the
    # second's put would stop the server the first is using).
    with _RELAUNCH:
        return _relaunch(emu, deployment_id)


def _relaunch(emu: Emulator, deployment_id: str) -> serving.Live:
    live = emu.served.get(deployment_id)
    if isinstance(live, serving.Live):
        return live
    deployment = _deployment(emu, deployment_id)
    if deployment.doc["status"] != "active":
        raise invalid(f"Deployment {deployment_id} is {deployment.doc['status']}: it cannot make predictions")
    version_id = deployment.doc["model"]["id"]
    try:
        live = serving.launch(emu, _package_model(emu, version_id), version_id, emu.logs.writer(KIND, deployment_id))
    except serving.LaunchFailed as exc:
        raise invalid(f"Deployment {deployment_id}'s model did not start: {exc}") from exc
    emu.served.put(deployment_id, live)
    return live


# -- reads and changes ---------------------------------------------------------------------------


def _deployment(emu: Emulator, deployment_id: str) -> Resource[Deployment]:
    return get_or_404(emu, KIND, deployment_id, "Deployment")


def list_deployments(emu: Emulator) -> list[Deployment]:
    docs = [resource.doc for resource in emu.store.list(KIND)]
    search = request.args.get("search")
    if search:
        docs = [doc for doc in docs if search.lower() in doc["label"].lower()]
    return docs


def update(emu: Emulator, deployment_id: str, body: dict[str, Any]) -> None:
    """`PATCH deployments/{id}/`: label, description, importance (204)."""
    _deployment(emu, deployment_id)
    changes = Deployment()
    unknown = sorted(set(body) - {"label", "description", "importance"})
    if unknown:
        raise invalid(
            f"Unknown fields: {', '.join(unknown)}", {name: "not a field of a deployment" for name in unknown}
        )
    if "label" in body:
        changes["label"] = _text(body, "label", required=True) or ""
    if "description" in body:
        changes["description"] = body["description"] if body["description"] is None else _text(body, "description")
    if "importance" in body:
        changes["importance"] = _importance(body["importance"])
    emu.store.update(KIND, deployment_id, changes)


def delete(emu: Emulator, deployment_id: str) -> None:
    with emu.store.transaction():
        deployment = _deployment(emu, deployment_id)
        emu.store.delete(KIND, deployment_id)
        _count_deployment(emu, deployment.doc["model"]["customModelImage"]["customModelId"], -1)
    emu.served.close(deployment_id)


def _count_deployment(emu: Emulator, model_id: str, change: int) -> None:
    """A custom model's `deploymentsCount` (and so the `isDeployed` filter) follows its deployments."""
    model = emu.store.get(models.KIND, model_id, include_deleted=True)
    if model is not None:
        count = max(0, int(model.doc.get("deploymentsCount") or 0) + change)
        emu.store.update(models.KIND, model_id, CustomModel(deploymentsCount=count))


def settings(emu: Emulator, deployment_id: str) -> dict[str, Any]:
    return dict(_deployment(emu, deployment_id).internal.get("settings") or DEFAULT_SETTINGS)


def update_settings(emu: Emulator, deployment_id: str, body: dict[str, Any]) -> str:
    """`PATCH deployments/{id}/settings/`: each section merged; the status id (202)."""
    with emu.store.transaction():
        current = settings(emu, deployment_id)
        for section, value in body.items():
            if section not in DEFAULT_SETTINGS:
                raise invalid(f"Unknown setting {section}", {section: "not a deployment setting"})
            if not isinstance(value, dict):
                raise invalid(f"{section} must be an object", {section: "must be an object"})
            current[section] = {**current[section], **value}
        emu.store.update(KIND, deployment_id, internal=Internal(settings=current))
    status_id = create_status(emu, f"Settings of deployment {deployment_id}", "deploymentSettings")
    # The finished job leads to the deployment (the Action reads it from there), not the settings.
    set_status(emu, status_id, "COMPLETED", location=f"deployments/{deployment_id}/")
    return status_id


def validate_replacement(emu: Emulator, deployment_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """`POST deployments/{id}/model/validation/`: can this package replace the model?"""
    current = _deployment(emu, deployment_id).doc["model"]
    package = modelpackages.find(emu, _text(body, "modelPackageId", required=True) or "")
    checks = {
        "targetType": package["target"]["type"] == current["targetType"],
        "target": package["target"].get("name") == current.get("targetName"),
    }
    failing = [name for name, ok in checks.items() if not ok]
    status = "failing" if failing else "passing"
    message = (
        f"The model package differs from the deployed model in {', '.join(failing)}"
        if failing
        else "Model can be used to replace the current model"
    )
    return {
        "status": status,
        "message": message,
        "checks": {name: {"status": "passing" if ok else "failing"} for name, ok in checks.items()},
    }


def replace_model(emu: Emulator, deployment_id: str, body: dict[str, Any]) -> str:
    """`PATCH deployments/{id}/model/`: the new version launches, then takes over; the status id."""
    _deployment(emu, deployment_id)
    package = modelpackages.find(emu, _text(body, "modelPackageId", required=True) or "")
    reason = body.get("reason") or "OTHER"
    if reason not in REPLACEMENT_REASONS:
        raise invalid(f"reason must be one of {', '.join(REPLACEMENT_REASONS)}", {"reason": "not a replacement reason"})
    if validate_replacement(emu, deployment_id, body)["status"] == "failing":
        raise invalid(validate_replacement(emu, deployment_id, body)["message"])
    status_id = create_status(emu, f"Model replacement of deployment {deployment_id}", "deployment")
    emu.jobs.submit(
        f"deployment-replace:{deployment_id}:{status_id}",
        lambda cancel: _replace(emu, deployment_id, package, status_id, cancel),
    )
    return status_id


def _replace(emu: Emulator, deployment_id: str, package: ModelPackage, status_id: str, cancel: threading.Event) -> None:
    log = emu.logs.writer(KIND, deployment_id)
    set_status(emu, status_id, "RUNNING")
    version_id = package["modelId"]
    try:
        live = serving.launch(emu, _package_model(emu, version_id), version_id, log, cancel)
    except serving.LaunchFailed as exc:
        log(f"ERROR: the replacement model did not start: {exc}")
        set_status(emu, status_id, "ERROR", f"The replacement model did not start: {exc}")
        return
    emu.served.put(deployment_id, live)  # closes the replaced model's server
    replaced = emu.store.get(KIND, deployment_id)
    if replaced is not None and replaced.doc["model"]["customModelImage"]["customModelId"] != package["customModelId"]:
        _count_deployment(emu, replaced.doc["model"]["customModelImage"]["customModelId"], -1)
        _count_deployment(emu, package["customModelId"], +1)
    changes = Deployment(model=deployed_model(emu, package), modelPackage=_package_ref(package), status="active")
    emu.store.update(KIND, deployment_id, changes)
    set_status(emu, status_id, "COMPLETED", location=f"deployments/{deployment_id}/")


def add_challenger(emu: Emulator, deployment_id: str, body: dict[str, Any]) -> str:
    """`POST deployments/{id}/challengers/`: recorded (challengers are stored, never run)."""
    deployment = _deployment(emu, deployment_id)
    package = modelpackages.find(emu, _text(body, "modelPackageId", required=True) or "")
    challenger: Challenger = {
        "id": new_id(),
        "name": _text(body, "name") or package["name"],
        "model": deployed_model(emu, package),
        "modelPackage": {"id": package["id"], "name": package["name"]},
        "predictionEnvironment": {"id": PREDICTION_ENVIRONMENT["id"], "name": PREDICTION_ENVIRONMENT["name"]},
    }
    stored = list(deployment.internal.get("challengers") or [])
    emu.store.update(KIND, deployment_id, internal=Internal(challengers=[*stored, dict(challenger)]))
    status_id = create_status(emu, f"Challenger of deployment {deployment_id}", "challenger")
    set_status(emu, status_id, "COMPLETED", location=f"deployments/{deployment_id}/challengers/{challenger['id']}/")
    return status_id


def challengers(emu: Emulator, deployment_id: str) -> list[Challenger]:
    """The champion first (DataRobot lists the deployed model among the challengers), then the
    challengers in the order they were added."""
    deployment = _deployment(emu, deployment_id)
    champion: Challenger = {
        "id": deployment.doc["modelPackage"]["id"],
        "name": deployment.doc["modelPackage"]["name"],
        "model": deployment.doc["model"],
        "modelPackage": deployment.doc["modelPackage"],
        "predictionEnvironment": {"id": PREDICTION_ENVIRONMENT["id"], "name": PREDICTION_ENVIRONMENT["name"]},
    }
    stored = [cast(Challenger, entry) for entry in deployment.internal.get("challengers") or []]
    return [champion, *stored]


def submit_actuals(emu: Emulator, deployment_id: str, body: dict[str, Any]) -> str:
    """`POST deployments/{id}/actuals/fromDataset/`: the dataset and its columns checked, stored."""
    _deployment(emu, deployment_id)
    dataset_id = _text(body, "datasetId", required=True) or ""
    path = datasets.csv_path(emu, dataset_id)
    with path.open(encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\r\n").split(",")
    for field in ("actualValueColumn", "associationIdColumn"):
        column = _text(body, field, required=True) or ""
        if column not in [name.strip('"') for name in header]:
            raise invalid(f"Dataset {dataset_id} has no column {column!r}", {field: "not a column of the dataset"})
    status_id = create_status(emu, f"Actuals of deployment {deployment_id}", "actuals")
    set_status(emu, status_id, "COMPLETED", location=f"deployments/{deployment_id}/")
    return status_id


def custom_model_deployments(emu: Emulator, model_ids: list[str]) -> list[dict[str, Any]]:
    """`GET customModelDeployments/`: deployments of custom models, filtered by `customModelIds`."""
    found = []
    for resource in emu.store.list(KIND):
        image = resource.doc["model"]["customModelImage"]
        if model_ids and image["customModelId"] not in model_ids:
            continue
        model, version = serving.model_and_version(emu, image["customModelVersionId"])
        found.append(
            {
                "id": resource.id,
                "label": resource.doc["label"],
                "status": resource.doc["status"],
                "customModel": {"id": model.id, "name": model.doc["name"]},
                "customModelVersion": {"id": version.id, "label": version.doc["label"]},
                "executionEnvironment": {"id": image["executionEnvironmentId"]},
                "executionEnvironmentVersion": {"id": image["executionEnvironmentVersionId"]},
                "deployed": resource.doc["createdAt"],
                "deployedBy": USER.username,
                "imageType": "customModelImage",
            }
        )
    return found


def _text(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise invalid(f"{key} must be a non-empty string", {key: "must be a non-empty string"})
    return value


def _importance(value: Any) -> str:
    if value not in IMPORTANCE:
        raise invalid(f"importance must be one of {', '.join(IMPORTANCE)}", {"importance": "not an importance level"})
    return str(value)


def _model_ids() -> list[str]:
    """`customModelIds` from the query or a JSON body (the Action sends it as the body of a GET)."""
    ids = request.args.getlist("customModelIds")
    if request.get_data(cache=True):
        sent = json_body().get("customModelIds") or []
        ids.extend(str(ident) for ident in (sent if isinstance(sent, list) else [sent]))
    return ids


# -- deployments, prediction environments, predictions (outside the custom-models chapter) -------

ROUTES = Routes()


@ROUTES.api("GET", "predictionEnvironments/", documented=False)
def http_list_prediction_environments(emu: Emulator, query: Query) -> Response:
    search = (request.args.get("search") or "").lower()
    formats = request.args.getlist("supportedModelFormats")
    matches = search in PREDICTION_ENVIRONMENT["name"].lower() and all(
        name in PREDICTION_ENVIRONMENT["supportedModelFormats"] for name in formats
    )
    return page([PREDICTION_ENVIRONMENT] if matches else [], paging(blank_is_default=True))


@ROUTES.api("GET", "predictionEnvironments/{predictionEnvironmentId}/", documented=False)
def http_get_prediction_environment(emu: Emulator, query: Query, predictionEnvironmentId: str) -> Response:
    if predictionEnvironmentId != PREDICTION_ENVIRONMENT["id"]:
        raise not_found("Prediction environment", predictionEnvironmentId)
    return json_response(PREDICTION_ENVIRONMENT)


@ROUTES.api("POST", "deployments/fromModelPackage/", documented=False)
def http_create_deployment(emu: Emulator, query: Query) -> Response:
    deployment_id, status_id = create(emu, json_body())
    return accepted({"id": deployment_id}, status_id)


@ROUTES.api("GET", "deployments/", documented=False)
def http_list_deployments(emu: Emulator, query: Query) -> Response:
    return page(list_deployments(emu), paging(blank_is_default=True))


@ROUTES.api("GET", "deployments/{deploymentId}/", documented=False)
def http_get_deployment(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return json_response(_deployment(emu, deploymentId).doc)


@ROUTES.api("PATCH", "deployments/{deploymentId}/", documented=False)
def http_update_deployment(emu: Emulator, query: Query, deploymentId: str) -> Response:
    update(emu, deploymentId, json_body())
    return no_content()


@ROUTES.api("DELETE", "deployments/{deploymentId}/", documented=False)
def http_delete_deployment(emu: Emulator, query: Query, deploymentId: str) -> Response:
    delete(emu, deploymentId)
    return no_content()


@ROUTES.api("GET", "deployments/{deploymentId}/settings/", documented=False)
def http_get_settings(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return json_response(settings(emu, deploymentId))


@ROUTES.api("PATCH", "deployments/{deploymentId}/settings/", documented=False)
def http_update_settings(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return accepted({}, update_settings(emu, deploymentId, json_body()))


@ROUTES.api("POST", "deployments/{deploymentId}/model/validation/", documented=False)
def http_validate_replacement(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return json_response(validate_replacement(emu, deploymentId, json_body()))


@ROUTES.api("PATCH", "deployments/{deploymentId}/model/", documented=False)
def http_replace_model(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return accepted({}, replace_model(emu, deploymentId, json_body()))


@ROUTES.api("GET", "deployments/{deploymentId}/challengers/", documented=False)
def http_list_challengers(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return json_response({"data": challengers(emu, deploymentId)})


@ROUTES.api("POST", "deployments/{deploymentId}/challengers/", documented=False)
def http_add_challenger(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return accepted({}, add_challenger(emu, deploymentId, json_body()))


@ROUTES.api("GET", "deployments/{deploymentId}/challengers/{challengerId}/", documented=False)
def http_get_challenger(emu: Emulator, query: Query, deploymentId: str, challengerId: str) -> Response:
    for challenger in challengers(emu, deploymentId):
        if challenger["id"] == challengerId:
            return json_response(challenger)
    raise not_found("Challenger", challengerId)


@ROUTES.api("POST", "deployments/{deploymentId}/actuals/fromDataset/", documented=False)
def http_submit_actuals(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return accepted({}, submit_actuals(emu, deploymentId, json_body()))


@ROUTES.api("GET", "customModelDeployments/", documented=False)
def http_list_custom_model_deployments(emu: Emulator, query: Query) -> Response:
    return page(custom_model_deployments(emu, _model_ids()), paging(blank_is_default=True))


@ROUTES.api("GET", "customModelDeployments/{deploymentId}/logs/", documented=False)
def http_deployment_log(emu: Emulator, query: Query, deploymentId: str) -> Response:
    """The deployment's persistent log: its model launches, as the job engine reported them."""
    if emu.store.get(KIND, deploymentId, include_deleted=True) is None:  # a deleted one keeps its log
        raise not_found("Deployment", deploymentId)
    return _text_response(emu.logs.read(KIND, deploymentId))


@ROUTES.api("POST", "customModelDeployments/{deploymentId}/logs/", documented=False)
def http_request_runtime_log(emu: Emulator, query: Query, deploymentId: str) -> Response:
    """Runtime logs: what the running model server printed, gathered at once."""
    _deployment(emu, deploymentId)
    status_id = create_status(emu, f"Runtime log of deployment {deploymentId}", "deploymentLogs")
    set_status(emu, status_id, "COMPLETED", location=f"customModelDeployments/{deploymentId}/logs/{status_id}/")
    return accepted({}, status_id)


@ROUTES.api("GET", "customModelDeployments/{deploymentId}/logs/{logId}/", documented=False)
def http_runtime_log(emu: Emulator, query: Query, deploymentId: str, logId: str) -> Response:
    _deployment(emu, deploymentId)
    live = emu.served.get(deploymentId)
    return _text_response(live.session.server.logs(None) if isinstance(live, serving.Live) else "")


def _text_response(text: str) -> Response:
    return Response(text, 200, content_type="text/plain; charset=utf-8")


def _predictions(emu: Emulator, deployment_id: str) -> Response:
    if (request.content_length or 0) > MAX_PREDICTION_BYTES:
        raise ErrorResponse(413, f"A prediction request is at most {MAX_PREDICTION_BYTES} bytes (50 MB)")
    live = live_model(emu, deployment_id)
    files = {name: storage.read() for name, storage in request.files.items()}
    rows = serving.rows_csv(request.get_data(cache=True) if not files else b"", request.content_type or "", files)
    data = serving.predict(live, rows, emu.dir("tmp"))
    return json_response({"data": data})


def _unstructured(emu: Emulator, deployment_id: str) -> Response:
    if (request.content_length or 0) > MAX_PREDICTION_BYTES:
        raise ErrorResponse(413, f"A prediction request is at most {MAX_PREDICTION_BYTES} bytes (50 MB)")
    live = live_model(emu, deployment_id)
    if not live.target.type.unstructured:
        raise invalid("The deployment's model is structured: send its rows to predictions")
    body, content_type = serving.predict_unstructured(live, request.get_data(cache=True), request.content_type)
    return Response(body, 200, content_type=content_type or "application/octet-stream")


@ROUTES.api("POST", "deployments/{deploymentId}/predictionsUnstructured", documented=False, prefix=PREDICTION_PREFIX)
def http_predict_unstructured(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return _unstructured(emu, deploymentId)


@ROUTES.api("POST", "deployments/{deploymentId}/predictions", documented=False, prefix=PREDICTION_PREFIX)
def http_predict(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return _predictions(emu, deploymentId)


@ROUTES.api("POST", "deployments/{deploymentId}/predictions/", documented=False)
def http_predict_serverless(emu: Emulator, query: Query, deploymentId: str) -> Response:
    return _predictions(emu, deploymentId)


def recover(emu: Emulator) -> None:
    """A launch the emulator's stop interrupted: the deployment errored (its status says why)."""
    for resource in emu.store.list(KIND):
        if resource.doc["status"] == "launching":
            emu.store.update(KIND, resource.id, Deployment(status="errored"))
