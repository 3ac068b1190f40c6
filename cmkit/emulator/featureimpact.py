"""Feature impact of custom model versions, computed for real in the background.

`POST .../versions/{vid}/featureImpact/` (and the deprecated `customInferenceImages/{imageId}/`
form, whose image is a version on its environment version) starts a job that serves the version
exactly as its model tests do (Docker or process runtime) and runs cmkit's permutation impact
(`cmkit.featureimpact`) on the version's training data: the version's own, else its model's.
One result per version; a new `rowCount` computes it again.

As the reference says: 422 when the model is not an inference model with a target, when no
training data is assigned (or its assignment is in progress), or `rowCount` exceeds the training
data's rows; 404 on `POST` when the same computation was already submitted (with its `jobId`);
`GET` is 404 before any result and 422 while the job runs.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Response

from cmkit.emulator import datasets, models, testing, training
from cmkit.emulator.bodies import FeatureImpactCreatePayload
from cmkit.emulator.common import now
from cmkit.emulator.documents import CustomModel, CustomModelVersion, FeatureImpact, FeatureImpactResult, Internal
from cmkit.emulator.errors import ErrorResponse, invalid, not_found
from cmkit.emulator.http import Query, Routes, accepted, checked_body, json_response
from cmkit.emulator.jobs import JobCancelled
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import INTERRUPTED, create_status, set_status
from cmkit.emulator.store import Kind, Resource
from cmkit.target import TargetType

if TYPE_CHECKING:
    from cmkit.resolvedrun import TestLocalConfig

KIND: Kind[FeatureImpact] = Kind("featureImpact")
SCORED = tuple(kind.api_name for kind in TargetType if kind.impact_metric)
RUNNING, COMPLETED, FAILED = "RUNNING", "COMPLETED", "ERROR"
CANCELLED = "cancelled: a computation with another rowCount replaced it, or the emulator stopped"


def _job_key(version_id: str, status_id: str) -> str:
    # One key per computation: a superseded job ending must not unregister its successor.
    return f"feature-impact:{version_id}:{status_id}"


def _scored_model(model: Resource[CustomModel]) -> None:
    if model.doc["customModelType"] != "inference" or not TargetType.from_api(model.doc["targetType"]).impact_metric:
        raise invalid(
            f"Custom model {model.id} is a {model.doc['customModelType']} {model.doc['targetType']} model: "
            f"feature impact needs an inference model of type {', '.join(SCORED)}"
        )


def _training_rows(
    emu: Emulator, model: Resource[CustomModel], version: Resource[CustomModelVersion]
) -> tuple[str, int]:
    training.require_not_in_progress(model)
    dataset_id = training.dataset_for(model, version)
    if dataset_id is None:
        raise invalid(
            f"Training data is not assigned to custom model {model.id} or its version {version.id}",
            {"trainingData": "assign training data first"},
        )
    entry = datasets.get(emu, dataset_id)
    return dataset_id, int(entry.get("rowCount") or 0)


def version_for_image(emu: Emulator, image_id: str) -> tuple[str, str]:
    """(model id, version id) of a custom inference image: a version on its environment version."""
    for version in emu.store.list(models.VERSION_KIND):
        if testing._image_id(version.id, version.doc["baseEnvironmentVersionId"]) == image_id:
            return str(version.parent), version.id
    raise not_found("Custom inference image", image_id)


def start(emu: Emulator, model_id: str, version_id: str, body: FeatureImpactCreatePayload) -> str:
    """Submit the computation; the status id to poll."""
    model = models.find_model(emu, model_id)
    version = models.find_version(emu, model_id, version_id)
    _scored_model(model)
    dataset_id, rows = _training_rows(emu, model, version)
    row_count = body.get("rowCount")
    if row_count is not None and row_count > rows:
        raise invalid(
            f"rowCount {row_count} exceeds the {rows} rows of the training data (dataset {dataset_id})",
            {"rowCount": f"must be at most {rows}"},
        )
    status_id = create_status(emu, f"Feature impact of custom model version {version_id}", "featureImpact")
    with emu.store.transaction():
        existing = emu.store.get(KIND, version_id)
        if existing and existing.doc["status"] != FAILED and existing.internal["rowCount"] == row_count:
            job_id = existing.internal["statusId"]
            raise ErrorResponse(
                404, f"Feature impact of version {version_id} was already submitted (jobId {job_id})", {"jobId": job_id}
            )
        doc = FeatureImpact(status=RUNNING, message="", started=now(), result=None)
        internal = Internal(statusId=status_id, rowCount=row_count, datasetId=dataset_id)
        superseded = existing.internal["statusId"] if existing else None
        if existing:
            existing.doc, existing.internal = doc, internal
            emu.store.save(existing)
        else:
            emu.store.insert(KIND, version_id, doc, parent=model_id, internal=internal)
    if superseded:  # a computation with another rowCount still running is replaced
        emu.jobs.cancel(_job_key(version_id, superseded))
    key = _job_key(version_id, status_id)
    emu.jobs.submit(key, lambda cancel: _run(emu, model_id, version_id, status_id, cancel))
    return status_id


def _run(emu: Emulator, model_id: str, version_id: str, status_id: str, cancel: threading.Event) -> None:
    log = emu.logs.writer(KIND, version_id)
    record = emu.store.get(KIND, version_id)
    if record is None or record.internal["statusId"] != status_id:
        return
    set_status(emu, status_id, "RUNNING")
    workdir = emu.dir("featureImpact", status_id)
    try:
        request = _request(emu, model_id, version_id, record.internal["datasetId"], workdir)
        log(f"feature impact of {model_id}/{version_id} with the {emu.engine.runtime} runtime")
        # The document `cmkit.featureimpact` computes: FeatureImpactResponse.
        result = emu.engine.feature_impact(request, record.internal["rowCount"], log, cancel)
    except Exception as exc:  # every failure is the job's, recorded with its reason
        cancelled = cancel.is_set() or isinstance(exc, JobCancelled)
        message = CANCELLED if cancelled else f"Feature impact failed: {exc}"
        log(f"error: {message}")
        _record(emu, version_id, status_id, FeatureImpact(status=FAILED, message=message))
        set_status(emu, status_id, "ABORTED" if cancelled else "ERROR", message)
        return
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if _record(emu, version_id, status_id, FeatureImpact(status=COMPLETED, result=result, completed=now())):
        location = f"customModels/{model_id}/versions/{version_id}/featureImpact/"
        set_status(emu, status_id, "COMPLETED", location=location)


def _record(emu: Emulator, version_id: str, status_id: str, doc: FeatureImpact) -> bool:
    """Store the outcome unless a newer computation replaced this one meanwhile."""
    with emu.store.transaction():
        record = emu.store.get(KIND, version_id)
        if record is None or record.internal["statusId"] != status_id:
            return False
        record.doc.update(doc)
        emu.store.save(record)
        return True


def _request(emu: Emulator, model_id: str, version_id: str, dataset_id: str, workdir: Path) -> TestLocalConfig:
    model = models.find_model(emu, model_id)
    version = models.find_version(emu, model_id, version_id)
    dataset = testing.copy_dataset(emu, dataset_id, workdir / datasets.run_name(emu, dataset_id))
    return testing.model_request(
        emu,
        model,
        version,
        workdir,
        version.doc["baseEnvironmentVersionId"],
        dataset=dataset,
        checks={},
        maximum_memory=version.doc.get("maximumMemory"),
        network_egress=version.doc.get("networkEgressPolicy") or "PUBLIC",
    )


def get(emu: Emulator, model_id: str, version_id: str) -> FeatureImpactResult:
    model = models.find_model(emu, model_id)
    version = models.find_version(emu, model_id, version_id)
    _scored_model(model)
    record = emu.store.get(KIND, version_id)
    if record is None:
        _training_rows(emu, model, version)  # 422 without training data, as the reference says
        raise not_found("Feature impact data of custom model version", version_id)
    if record.doc["status"] == RUNNING:
        raise invalid(f"The feature impact job of version {version_id} is in progress")
    if record.doc["status"] == FAILED:
        raise ErrorResponse(404, f"No feature impact data for version {version_id}: {record.doc['message']}")
    return FeatureImpactResult(**record.doc["result"] or {})


def recover(emu: Emulator) -> None:
    for record in emu.store.list(KIND):
        if record.doc["status"] == RUNNING:
            emu.store.update(KIND, record.id, FeatureImpact(status=FAILED, message=INTERRUPTED))


# -- feature impact ------------------------------------------------------------------------------

ROUTES = Routes()

VERSION_IMPACT = "customModels/{customModelId}/versions/{customModelVersionId}/featureImpact/"
IMAGE_IMPACT = "customInferenceImages/{imageId}/featureImpact/"


@ROUTES.api("POST", VERSION_IMPACT)
def http_start_feature_impact(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    body = checked_body(FeatureImpactCreatePayload)
    status_id = start(emu, customModelId, customModelVersionId, body)
    return accepted({"statusId": status_id}, status_id)


@ROUTES.api("GET", VERSION_IMPACT)
def http_get_feature_impact(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    return json_response(get(emu, customModelId, customModelVersionId))


@ROUTES.api("POST", IMAGE_IMPACT)
def http_start_image_feature_impact(emu: Emulator, query: Query, imageId: str) -> Response:
    body = checked_body(FeatureImpactCreatePayload)
    model_id, version_id = version_for_image(emu, imageId)
    status_id = start(emu, model_id, version_id, body)
    return accepted({"statusId": status_id}, status_id)


@ROUTES.api("GET", IMAGE_IMPACT)
def http_get_image_feature_impact(emu: Emulator, query: Query, imageId: str) -> Response:
    return json_response(get(emu, *version_for_image(emu, imageId)))
