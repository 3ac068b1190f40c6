"""Training data a new version holds, and whether a dataset can train a model: the rules.

`models.create_version` applies `version_data` inside its transaction; `training` (the model-level
assignment and `withTrainingData`, which build on `models`) checks datasets with `check_dataset`.
This module imports no resource module that builds on `models`, so `models` can import it.
"""

from __future__ import annotations

import csv
import json
from typing import cast

from cmkit.emulator import datasets
from cmkit.emulator.bodies import DataAssignment, VersionFields
from cmkit.emulator.documents import CustomModel, CustomModelVersion, Dataset, VersionTrainingData
from cmkit.emulator.errors import invalid
from cmkit.emulator.service import Emulator
from cmkit.emulator.store import Resource
from cmkit.target import TargetType


def _header(emu: Emulator, dataset_id: str) -> list[str]:
    with datasets.csv_path(emu, dataset_id).open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def check_dataset(
    emu: Emulator, model: Resource[CustomModel], dataset_id: str, partition_column: str | None = None
) -> Dataset:
    """The dataset's catalog entry when it can train `model`; 404/422 naming what is wrong."""
    entry = datasets.get(emu, dataset_id)
    if entry["processingState"] != "COMPLETED":
        raise invalid(
            f"Dataset {dataset_id} ingest must finish before assigning training data "
            f"(processingState {entry['processingState']})",
            {"datasetId": "ingest has not finished"},
        )
    header = _header(emu, dataset_id)
    target = model.doc.get("targetName")
    if target and TargetType.from_api(model.doc["targetType"]).has_target and target not in header:
        raise invalid(
            # DataRobot's wording, which the Action's tests match.
            f"Custom model's target is not found in the provided dataset: dataset {dataset_id} "
            f"has no column {target!r} (custom model {model.id})",
            {"datasetId": f"has no column {target}"},
        )
    if partition_column and partition_column not in header:
        raise invalid(
            f"Dataset {dataset_id} has no partition column {partition_column!r}",
            {"partitionColumn": f"not a column of dataset {dataset_id}"},
        )
    return entry


def _json_field(raw: str | DataAssignment | None, name: str) -> DataAssignment | None:
    """trainingData/holdoutData: JSON text in multipart forms, an object in JSON bodies."""
    if raw is None or isinstance(raw, dict):
        return raw
    try:
        value: object = json.loads(raw)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise invalid(f'{name} must be a JSON object such as {{"datasetId": "..."}}', {name: "must be a JSON object"})
    return cast(DataAssignment, value)  # its fields are checked where they are used


def version_data(
    emu: Emulator, model: Resource[CustomModel], fields: VersionFields, latest: Resource[CustomModelVersion] | None
) -> VersionTrainingData:
    """The `trainingData`/`holdoutData` of a new version, from the request and its predecessor."""
    training = _json_field(fields.get("trainingData"), "trainingData")
    holdout = _json_field(fields.get("holdoutData"), "holdoutData")
    enabled = bool(model.doc.get("isTrainingDataForVersionsPermanentlyEnabled"))
    if (training or holdout) and not enabled:
        raise invalid(
            f"Custom model {model.id} does not assign training data to versions: "
            "set isTrainingDataForVersionsPermanentlyEnabled on the model first",
            {"trainingData": "training data for versions is not enabled on this model"},
        )
    if not enabled:
        return VersionTrainingData()
    keep = fields.get("keepTrainingHoldoutData", True)
    if keep and (training or holdout) and "keepTrainingHoldoutData" in fields:
        raise invalid(
            "keepTrainingHoldoutData cannot be true when new training or holdout data is given",
            {"keepTrainingHoldoutData": "conflicts with trainingData/holdoutData"},
        )
    if holdout and not training:
        raise invalid("holdoutData needs trainingData", {"holdoutData": "given without trainingData"})
    if training:
        return _assigned(emu, model, training, holdout)
    inherited = VersionTrainingData()
    if keep and latest is not None:
        if latest.doc.get("trainingData"):
            inherited["trainingData"] = latest.doc["trainingData"]
        if latest.doc.get("holdoutData"):
            inherited["holdoutData"] = latest.doc["holdoutData"]
    return inherited


def _assigned(
    emu: Emulator, model: Resource[CustomModel], training: DataAssignment, holdout: DataAssignment | None
) -> VersionTrainingData:
    dataset_id = training.get("datasetId")
    if not dataset_id:
        raise invalid("trainingData.datasetId is required", {"trainingData.datasetId": "is required"})
    partition = (holdout or {}).get("partitionColumn")
    entry = check_dataset(emu, model, dataset_id, partition)
    result: VersionTrainingData = {
        "trainingData": {
            "datasetId": dataset_id,
            "datasetVersionId": entry["versionId"],
            "datasetName": training.get("datasetName") or entry["name"],
            "assignmentInProgress": False,
        }
    }
    if holdout:
        holdout_id = holdout.get("datasetId")
        holdout_entry = datasets.get(emu, holdout_id) if holdout_id else None
        result["holdoutData"] = {
            "datasetId": holdout_id,
            "datasetVersionId": holdout_entry["versionId"] if holdout_entry else None,
            "datasetName": holdout.get("datasetName") or (holdout_entry["name"] if holdout_entry else None),
            "partitionColumn": partition,
        }
    return result
