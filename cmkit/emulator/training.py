"""Training (and holdout) data of custom models: on the model (deprecated) and on versions.

Two places hold training data, as in DataRobot:

- the model (`PATCH customModels/{id}/trainingData/`, deprecated): `trainingDatasetId`,
  `trainingDatasetVersionId`, `trainingDataFileName`, `trainingDataPartitionColumn`; refused once
  the model has `isTrainingDataForVersionsPermanentlyEnabled`;
- a version (`trainingData`/`holdoutData` of `POST`/`PATCH customModels/{id}/versions/`, or
  `PATCH customModels/{id}/versions/withTrainingData/`, which bumps the minor version): only once
  the model has that flag. Versions inherit their predecessor's data unless
  `keepTrainingHoldoutData` is false or new data is given.

An assignment is checked at once against the stored CSV (ingested, and holding the model's target
and the partition column): DataRobot answers 422 for an incompatible dataset. The assignment
itself then ends in the background, so the model's `trainingDataAssignmentInProgress` and the
version's `trainingData.assignmentInProgress` are honest about the moment in between.

The rules a version's data follows, and the dataset check, are `training_data`'s: `models`
applies them when it creates a version, and this module builds on `models`.
"""

from __future__ import annotations

import threading

from flask import Response

from cmkit.emulator import models
from cmkit.emulator.bodies import (
    DeprecatedCustomModelVersionTrainingDataUpdate,
    DeprecatedTrainingDataForModelsAssignment,
    VersionFields,
)
from cmkit.emulator.common import now
from cmkit.emulator.documents import CustomModel, CustomModelVersion, VersionResponse
from cmkit.emulator.errors import ErrorResponse, invalid
from cmkit.emulator.http import Query, Routes, accepted, checked_body
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import create_status, set_status
from cmkit.emulator.store import Resource
from cmkit.emulator.training_data import check_dataset

MODEL_FIELDS = ("trainingDatasetId", "trainingDatasetVersionId", "trainingDataFileName", "trainingDataPartitionColumn")


# -- the model level (deprecated) ----------------------------------------------------------------


def assign_to_model(emu: Emulator, model_id: str, body: DeprecatedTrainingDataForModelsAssignment) -> str:
    """`PATCH customModels/{id}/trainingData/`: the status id to poll."""
    model = models.find_model(emu, model_id)
    if model.doc.get("isTrainingDataForVersionsPermanentlyEnabled"):
        raise invalid(
            f"Custom model {model_id} assigns training data at the version level only "
            "(isTrainingDataForVersionsPermanentlyEnabled); use POST or PATCH customModels/{id}/versions/"
        )
    dataset_id = body.get("datasetId")
    if not dataset_id:
        raise invalid("datasetId is required", {"datasetId": "is required"})
    entry = check_dataset(emu, model, dataset_id, body.get("partitionColumn"))
    version_id = body.get("datasetVersionId") or entry["versionId"]
    if version_id != entry["versionId"]:
        raise invalid(f"Dataset {dataset_id} has no version {version_id}", {"datasetVersionId": "not found"})
    status_id = create_status(emu, f"Training data assignment of custom model {model_id}", "trainingData")
    doc: CustomModel = {
        "trainingDatasetId": dataset_id,
        "trainingDatasetVersionId": version_id,
        "trainingDataFileName": body.get("datasetName") or entry["name"],
        "trainingDataPartitionColumn": body.get("partitionColumn"),
        "trainingDataAssignmentInProgress": True,
        "updated": now(),
    }
    emu.store.update(models.KIND, model_id, doc)
    emu.jobs.submit(
        f"training-data:{model_id}:{status_id}", lambda cancel: _finish(emu, model_id, status_id, cancel), quick=True
    )
    return status_id


def _finish(emu: Emulator, model_id: str, status_id: str, cancel: threading.Event) -> None:
    emu.store.update(models.KIND, model_id, CustomModel(trainingDataAssignmentInProgress=False))
    set_status(emu, status_id, "COMPLETED", location=f"customModels/{model_id}/")


# -- the version level ---------------------------------------------------------------------------


def version_with_training_data(
    emu: Emulator, model_id: str, body: DeprecatedCustomModelVersionTrainingDataUpdate
) -> VersionResponse:
    """`PATCH customModels/{id}/versions/withTrainingData/`: a minor version with the data."""
    model = models.find_model(emu, model_id)
    if not model.doc.get("isTrainingDataForVersionsPermanentlyEnabled"):
        raise invalid(
            f"Custom model {model_id} does not assign training data to versions: "
            "set isTrainingDataForVersionsPermanentlyEnabled on the model first"
        )
    if emu.store.latest(models.VERSION_KIND, model_id) is None:
        raise invalid(f"Custom model {model_id} has no version to add training data to")
    fields: VersionFields = {
        "isMajorUpdate": "false",
        "trainingData": body["trainingData"],
        "holdoutData": body.get("holdoutData"),
        "keepTrainingHoldoutData": False,
    }
    if body.get("gitModelVersion"):
        fields["gitModelVersion"] = body["gitModelVersion"]
    return models.create_version(emu, model_id, fields, [], from_latest=True)


def dataset_for(model: Resource[CustomModel], version: Resource[CustomModelVersion]) -> str | None:
    """The training dataset a version is evaluated on: its own, else its model's."""
    own = (version.doc.get("trainingData") or {}).get("datasetId")
    return own or model.doc.get("trainingDatasetId")


def require_not_in_progress(model: Resource[CustomModel]) -> None:
    if model.doc.get("trainingDataAssignmentInProgress"):
        raise ErrorResponse(422, f"Training data assignment of custom model {model.id} is in progress")


# -- training data -------------------------------------------------------------------------------

ROUTES = Routes()


@ROUTES.api("PATCH", "customModels/{customModelId}/trainingData/")
def http_assign_training_data(emu: Emulator, query: Query, customModelId: str) -> Response:
    status_id = assign_to_model(emu, customModelId, checked_body(DeprecatedTrainingDataForModelsAssignment))
    return accepted({}, status_id)


@ROUTES.api("PATCH", "customModels/{customModelId}/versions/withTrainingData/")
def http_version_with_training_data(emu: Emulator, query: Query, customModelId: str) -> Response:
    body = checked_body(DeprecatedCustomModelVersionTrainingDataUpdate)
    version = version_with_training_data(emu, customModelId, body)
    # The reference words this as `PATCH trainingData/`: the Location is a status to poll (the
    # Action polls it for `status`), which redirects to the new version once COMPLETED. The
    # version exists already, so the status is born completed.
    status_id = create_status(emu, f"Training data of custom model {customModelId}", "trainingData")
    set_status(emu, status_id, "COMPLETED", location=f"customModels/{customModelId}/versions/{version['id']}/")
    return accepted(version, status_id)
