"""HTTP for the rest of the custom-models chapter: training data, feature impact, copies and
templates, versions from repositories, conversions, prediction explanation initialisation,
environment sharing and permanent deletion.

Declared with `app.api` like the routes in `app.py` (so the reference checks their queries and
bodies the same way); `app.py` imports this module once, at its end.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from cmkit.emulator import training
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
