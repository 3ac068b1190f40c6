"""Stored jobs the emulator records but cannot compute: version conversions and prediction
explanation initialisation. Their statuses say exactly what happened.

- **Conversions** turn a SAS program of a version into a JAR in DataRobot. The request is
  checked (`mainProgramItemId` must be an item of the version) and recorded; the job ends at once
  with `conversionSucceeded: false` and a `logMessage` saying the emulator has no SAS converter,
  and its async status is `ERROR` with that message. `DELETE` of a conversion that is no longer
  running is 422 ("The given conversion is not active"), as the reference says.
- **Prediction explanation initialisation** (the model-level form, deprecated, and the version
  form) needs a structured inference model with training data (422 otherwise, "not valid for
  prediction explanations"). It is recorded and its status ends `COMPLETED` without a
  redirect: nothing downstream in the emulator reads it (prediction explanations are computed by
  deployments, outside this chapter), and the emulator does not compute their baseline.
"""

from __future__ import annotations

import threading
from typing import TypedDict

from flask import Response

from cmkit.emulator import environments, models, training
from cmkit.emulator.bodies import ConversionCreateQuery, CustomModelPredictionExplanations
from cmkit.emulator.common import new_id, now, shape, truthy
from cmkit.emulator.documents import Conversion, CustomModelVersion, ExplanationsInitialization, Internal
from cmkit.emulator.errors import invalid
from cmkit.emulator.http import Query, Routes, accepted, checked_body, get_or_404, json_response, no_content, page
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import create_status, set_status
from cmkit.emulator.store import Kind, Resource
from cmkit.target import TargetType

KIND: Kind[Conversion] = Kind("conversion")
EXPLANATIONS_KIND: Kind[ExplanationsInitialization] = Kind("predictionExplanationsInitialization")
NO_CONVERTER = (
    "The cmkit emulator has no SAS-to-JAR converter: the conversion was recorded but not performed "
    "(DataRobot's conversion service is not emulated)"
)
EXPLAINED = tuple(kind.api_name for kind in TargetType if kind.explained)


class ConversionStarted(TypedDict):
    """The 202 body of a conversion's start."""

    conversionId: str
    statusId: str


# -- conversions ---------------------------------------------------------------------------------


def start_conversion(emu: Emulator, model_id: str, version_id: str, body: ConversionCreateQuery) -> ConversionStarted:
    version = models.find_version(emu, model_id, version_id)
    item_ids = {item["id"] for item in version.doc["items"]}
    if body["mainProgramItemId"] not in item_ids:
        raise invalid(
            f"mainProgramItemId {body['mainProgramItemId']} is not an item of version {version_id}",
            {"mainProgramItemId": "not an item of this version"},
        )
    conversion_id = new_id()
    doc: Conversion = {
        "id": conversion_id,
        "customModelVersionId": version_id,
        "created": now(),
        "mainProgramItemId": body["mainProgramItemId"],
        "conversionInProgress": True,
        "conversionSucceeded": None,
        "logMessage": None,
        "shouldStop": False,
    }
    status_id = create_status(emu, f"Conversion of custom model version {version_id}", "conversion")
    emu.store.insert(KIND, conversion_id, doc, parent=version_id, internal=Internal(statusId=status_id, model=model_id))
    emu.jobs.submit(
        f"conversion:{conversion_id}", lambda cancel: _convert(emu, conversion_id, status_id, cancel), quick=True
    )
    return {"conversionId": conversion_id, "statusId": status_id}


def _convert(emu: Emulator, conversion_id: str, status_id: str, cancel: threading.Event) -> None:
    ended = Conversion(conversionInProgress=False, conversionSucceeded=False, logMessage=NO_CONVERTER)
    emu.store.update(KIND, conversion_id, ended)
    set_status(emu, status_id, "ERROR", NO_CONVERTER)


def _conversion(emu: Emulator, model_id: str, version_id: str, conversion_id: str) -> Resource[Conversion]:
    models.find_version(emu, model_id, version_id)
    return get_or_404(emu, KIND, conversion_id, "Custom model conversion", parent=version_id)


def get_conversion(emu: Emulator, model_id: str, version_id: str, conversion_id: str) -> Conversion:
    return _shape(emu, _conversion(emu, model_id, version_id, conversion_id))


def _shape(emu: Emulator, conversion: Resource[Conversion]) -> Conversion:
    return shape(conversion.doc, emu.reference.schema("ConversionResponse"))


def list_conversions(emu: Emulator, model_id: str, version_id: str, latest_only: bool) -> list[Conversion]:
    """Newest first: the model's conversions, or (isLatest) the version's latest alone."""
    models.find_version(emu, model_id, version_id)
    if latest_only:
        found = emu.store.list(KIND, version_id)[-1:]
    else:
        version_ids = {v.id for v in emu.store.list(models.VERSION_KIND, model_id)}
        found = [c for c in emu.store.list(KIND) if c.parent in version_ids]
    return [_shape(emu, c) for c in reversed(found)]


def stop_conversion(emu: Emulator, model_id: str, version_id: str, conversion_id: str) -> None:
    with emu.store.transaction():
        conversion = _conversion(emu, model_id, version_id, conversion_id)
        if not conversion.doc["conversionInProgress"]:
            raise invalid(f"The given conversion is not active (conversion {conversion_id})")
        conversion.doc["shouldStop"] = True
        emu.store.save(conversion)


# -- prediction explanation initialisation -------------------------------------------------------


def initialize_explanations(
    emu: Emulator, model_id: str, version_id: str, body: CustomModelPredictionExplanations | None = None
) -> str:
    """Record an initialisation; the status id (which ends COMPLETED, see the module's doc)."""
    model = models.find_model(emu, model_id)
    version = models.find_version(emu, model_id, version_id)
    if model.doc["customModelType"] != "inference" or not TargetType.from_api(model.doc["targetType"]).explained:
        raise invalid(
            f"Specified custom model is not valid for prediction explanations: a {model.doc['targetType']} "
            f"model (they need an inference model of type {' or '.join(EXPLAINED)})"
        )
    training.require_not_in_progress(model)
    dataset_id = training.dataset_for(model, version)
    if dataset_id is None:
        raise invalid("Specified custom model is not valid for prediction explanations: no training data is assigned")
    env_id, env_version_id = _environment(emu, version, body or CustomModelPredictionExplanations())
    status_id = create_status(emu, f"Prediction explanations initialization of {version_id}", "explanations")
    doc: ExplanationsInitialization = {
        "customModelId": model_id,
        "customModelVersionId": version_id,
        "environmentId": env_id,
        "environmentVersionId": env_version_id,
        "datasetId": dataset_id,
        "created": now(),
    }
    emu.store.insert(EXPLANATIONS_KIND, new_id(), doc, parent=version_id, internal=Internal(statusId=status_id))
    set_status(emu, status_id, "COMPLETED", "Recorded; the emulator does not compute explanation baselines")
    return status_id


def _environment(
    emu: Emulator, version: Resource[CustomModelVersion], body: CustomModelPredictionExplanations
) -> tuple[str, str]:
    """The environment to use: the request's (its latest built version by default), else the version's."""
    env_id = body.get("environmentId")
    env_version_id = body.get("environmentVersionId")
    if env_version_id:
        found = environments.find_version(emu, env_version_id)
        if found is None or (env_id and found.parent != env_id):
            raise invalid(f"Environment version {env_version_id} not found", {"environmentVersionId": "not found"})
        return str(found.parent), env_version_id
    if env_id:
        built = environments.latest_successful(emu, env_id)
        if built is None:
            raise invalid(f"Environment {env_id} has no successfully built version", {"environmentId": "not built"})
        return env_id, built.id
    return version.doc["baseEnvironmentId"], version.doc["baseEnvironmentVersionId"]


# -- conversions ---------------------------------------------------------------------------------

ROUTES = Routes()

CONVERSIONS = "customModels/{customModelId}/versions/{customModelVersionId}/conversions/"


@ROUTES.api("POST", CONVERSIONS)
def http_start_conversion(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    body = start_conversion(emu, customModelId, customModelVersionId, checked_body(ConversionCreateQuery))
    return accepted(body, body["statusId"])


@ROUTES.api("GET", CONVERSIONS)
def http_list_conversions(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    latest = truthy(query.get("isLatest", False))
    return page(list_conversions(emu, customModelId, customModelVersionId, latest), query)


@ROUTES.api("GET", CONVERSIONS + "{conversionId}/")
def http_get_conversion(
    emu: Emulator, query: Query, customModelId: str, customModelVersionId: str, conversionId: str
) -> Response:
    return json_response(get_conversion(emu, customModelId, customModelVersionId, conversionId))


@ROUTES.api("DELETE", CONVERSIONS + "{conversionId}/")
def http_stop_conversion(
    emu: Emulator, query: Query, customModelId: str, customModelVersionId: str, conversionId: str
) -> Response:
    stop_conversion(emu, customModelId, customModelVersionId, conversionId)
    return no_content()


# -- prediction explanations initialisation ------------------------------------------------------


@ROUTES.api("POST", "customModels/predictionExplanationsInitialization/")
def http_initialize_explanations(emu: Emulator, query: Query) -> Response:
    body = checked_body(CustomModelPredictionExplanations)
    status_id = initialize_explanations(emu, body["customModelId"], body["customModelVersionId"], body)
    return accepted({}, status_id)


VERSION_EXPLANATIONS = (
    "customModels/{customModelId}/versions/{customModelVersionId}/predictionExplanationsInitialization/"
)


@ROUTES.api("POST", VERSION_EXPLANATIONS)
def http_initialize_version_explanations(
    emu: Emulator, query: Query, customModelId: str, customModelVersionId: str
) -> Response:
    return accepted({}, initialize_explanations(emu, customModelId, customModelVersionId))
