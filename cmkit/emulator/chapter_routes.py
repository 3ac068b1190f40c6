"""HTTP for the rest of the custom-models chapter: training data, feature impact, copies and
templates, versions from repositories, conversions, prediction explanation initialisation,
environment sharing and permanent deletion.

Declared with `app.api` like the routes in `app.py` (so the reference checks their queries and
bodies the same way); `app.py` imports this module once, at its end.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from cmkit.emulator import featureimpact, training
from cmkit.emulator.app import api, api_url, json_body, json_response
from cmkit.emulator.service import Emulator


def _accepted(body: dict[str, Any], status_id: str) -> Response:
    return json_response(body, 202, {"Location": api_url(f"status/{status_id}/")})


# -- training data -------------------------------------------------------------------------------


@api("PATCH", "customModels/{customModelId}/trainingData/")
def assign_training_data(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    status_id = training.assign_to_model(emu, customModelId, json_body("DeprecatedTrainingDataForModelsAssignment"))
    return _accepted({}, status_id)


@api("PATCH", "customModels/{customModelId}/versions/withTrainingData/")
def version_with_training_data(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    body = json_body("DeprecatedCustomModelVersionTrainingDataUpdate")
    version = training.version_with_training_data(emu, customModelId, body)
    # The version exists already; its Location is where the assignment is followed.
    location = api_url(f"customModels/{customModelId}/versions/{version['id']}/")
    return json_response(version, 202, {"Location": location})


# -- feature impact ------------------------------------------------------------------------------

VERSION_IMPACT = "customModels/{customModelId}/versions/{customModelVersionId}/featureImpact/"
IMAGE_IMPACT = "customInferenceImages/{imageId}/featureImpact/"


@api("POST", VERSION_IMPACT)
def start_feature_impact(
    emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str
) -> Response:
    body = json_body("FeatureImpactCreatePayload")
    status_id = featureimpact.start(emu, customModelId, customModelVersionId, body)
    return _accepted({"statusId": status_id}, status_id)


@api("GET", VERSION_IMPACT)
def get_feature_impact(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    return json_response(featureimpact.get(emu, customModelId, customModelVersionId))


@api("POST", IMAGE_IMPACT)
def start_image_feature_impact(emu: Emulator, query: dict[str, Any], imageId: str) -> Response:
    body = json_body("FeatureImpactCreatePayload")
    model_id, version_id = featureimpact.version_for_image(emu, imageId)
    status_id = featureimpact.start(emu, model_id, version_id, body)
    return _accepted({"statusId": status_id}, status_id)


@api("GET", IMAGE_IMPACT)
def get_image_feature_impact(emu: Emulator, query: dict[str, Any], imageId: str) -> Response:
    return json_response(featureimpact.get(emu, *featureimpact.version_for_image(emu, imageId)))
