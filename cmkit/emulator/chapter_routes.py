"""HTTP for the rest of the custom-models chapter: training data, feature impact, copies and
templates, versions from repositories, conversions, prediction explanation initialisation,
environment sharing and permanent deletion.

Declared with `app.api` like the routes in `app.py` (so the reference checks their queries and
bodies the same way); `app.py` imports this module once, at its end.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from cmkit.emulator import (
    conversions,
    copies,
    environment_admin,
    featureimpact,
    repositories,
    training,
)
from cmkit.emulator.app import ADMIN_PREFIX, _emu, api, api_url, json_body, json_response, no_content, page
from cmkit.emulator.common import truthy
from cmkit.emulator.errors import invalid
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


# -- copies and templates ------------------------------------------------------------------------


@api("POST", "customModels/fromCustomModel/")
def copy_model(emu: Emulator, query: dict[str, Any]) -> Response:
    return json_response(copies.copy_model(emu, json_body("CustomModelCopy")["customModelId"]), 201)


@api("POST", "customModels/fromModelTemplate/")
def model_from_template(emu: Emulator, query: dict[str, Any]) -> Response:
    return json_response(copies.from_template(emu, json_body("CustomModelCreateFromTemplatePayload")), 201)


@api("GET", "customTemplates/", documented=False)
def list_templates(emu: Emulator, query: dict[str, Any]) -> Response:
    return page(copies.list_templates(emu, request.args.get("search")), _paging())


@api("GET", "customTemplates/{templateId}/", documented=False)
def get_template(emu: Emulator, query: dict[str, Any], templateId: str) -> Response:
    return json_response(copies.get_template(emu, templateId))


def _paging() -> dict[str, int]:
    """offset/limit of a route outside the reference (defaults 0 and 20, as documented routes)."""
    values = {}
    for name, default in (("offset", 0), ("limit", 20)):
        raw = request.args.get(name, str(default))
        if not raw.isdigit():
            raise invalid(f"{name} must be a non-negative integer", {name: "must be a non-negative integer"})
        values[name] = int(raw)
    return values


# -- versions from repositories ------------------------------------------------------------------

FROM_REPOSITORY = "customModels/{customModelId}/versions/fromRepository/"


@api("POST", FROM_REPOSITORY)
def version_from_repository(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    body = json_body("CustomModelVersionCreateFromRepository")
    return _accepted({}, repositories.create_version(emu, customModelId, body, from_latest=False))


@api("PATCH", FROM_REPOSITORY)
def version_from_repository_over_latest(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    body = json_body("CustomModelVersionCreateFromRepository")
    return _accepted({}, repositories.create_version(emu, customModelId, body, from_latest=True))


def register_admin(app: Flask) -> None:
    app.add_url_rule(f"{ADMIN_PREFIX}repositories", "admin repositories", _admin_repositories, methods=["GET", "POST"])


def _admin_repositories() -> Response:
    emu = _emu()
    if request.method == "GET":
        return json_response({"data": repositories.list_repositories(emu)})
    return json_response(repositories.register(emu, json_body()), 201)


# -- conversions ---------------------------------------------------------------------------------

CONVERSIONS = "customModels/{customModelId}/versions/{customModelVersionId}/conversions/"


@api("POST", CONVERSIONS)
def start_conversion(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    body = conversions.start_conversion(emu, customModelId, customModelVersionId, json_body("ConversionCreateQuery"))
    return _accepted(body, body["statusId"])


@api("GET", CONVERSIONS)
def list_conversions(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    latest = truthy(query.get("isLatest", False))
    return page(conversions.list_conversions(emu, customModelId, customModelVersionId, latest), query)


@api("GET", CONVERSIONS + "{conversionId}/")
def get_conversion(
    emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str, conversionId: str
) -> Response:
    return json_response(conversions.get_conversion(emu, customModelId, customModelVersionId, conversionId))


@api("DELETE", CONVERSIONS + "{conversionId}/")
def stop_conversion(
    emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str, conversionId: str
) -> Response:
    conversions.stop_conversion(emu, customModelId, customModelVersionId, conversionId)
    return no_content()


# -- prediction explanations initialisation ------------------------------------------------------


@api("POST", "customModels/predictionExplanationsInitialization/")
def initialize_explanations(emu: Emulator, query: dict[str, Any]) -> Response:
    body = json_body("CustomModelPredictionExplanations")
    status_id = conversions.initialize_explanations(emu, body["customModelId"], body["customModelVersionId"], body)
    return _accepted({}, status_id)


@api("POST", "customModels/{customModelId}/versions/{customModelVersionId}/predictionExplanationsInitialization/")
def initialize_version_explanations(
    emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str
) -> Response:
    return _accepted({}, conversions.initialize_explanations(emu, customModelId, customModelVersionId))


# -- execution environments: sharing and permanent deletion --------------------------------------


@api("GET", "executionEnvironments/{environmentId}/accessControl/")
def get_environment_access(emu: Emulator, query: dict[str, Any], environmentId: str) -> Response:
    found = environment_admin.access_list(emu, environmentId, query.get("username"), query.get("userId"))
    return page(found, query)


@api("PATCH", "executionEnvironments/{environmentId}/accessControl/")
def share_environment(emu: Emulator, query: dict[str, Any], environmentId: str) -> Response:
    environment_admin.share(emu, environmentId, json_body("SharingUpdateOrRemoveWithGrant"))
    return no_content()


@api("POST", "executionEnvironmentsPermadelete/")
def permadelete_environments(emu: Emulator, query: dict[str, Any]) -> Response:
    environment_admin.permadelete(emu, json_body("ExecutionEnvironmentPermadelete")["executionEnvironmentIds"])
    return no_content()
