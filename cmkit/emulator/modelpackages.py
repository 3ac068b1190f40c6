"""The model registry: model packages made from custom model versions, and registered models.

Outside the custom-models chapter; shaped after what DataRobot's official client
(`RegisteredModelVersion.create_for_custom_model_version`, `RegisteredModel`) and the
custom-models Action send and read. A model package is what DataRobot also calls a registered
model version: every package belongs to a registered model (a new one named after the package
unless `registeredModelId` or `registeredModelName` says otherwise) and is numbered in it.

Packaging a version freezes it, as DataRobot does: the model's next version is a major one
(`models._next_number` reads the version's `packaged` mark). Nothing is built: a package is a
record, and its 201 carries a status Location that is already COMPLETED.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from cmkit.emulator import models
from cmkit.emulator.common import USER, new_id, now
from cmkit.emulator.documents import (
    CustomModel,
    CustomModelVersion,
    Internal,
    ModelPackage,
    PackageTarget,
    RegisteredModel,
)
from cmkit.emulator.errors import invalid
from cmkit.emulator.http import Query, Routes, api_url, get_or_404, json_body, json_response, page, paging
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import create_status, set_status
from cmkit.emulator.store import Kind, Resource

KIND: Kind[ModelPackage] = Kind("modelPackage")
REGISTERED_KIND: Kind[RegisteredModel] = Kind("registeredModel")


def target_of(model: CustomModel) -> PackageTarget:
    """A package's target: the custom model's target settings, in the registry's words."""
    return {
        "name": model.get("targetName"),
        "type": model["targetType"],
        "classNames": model.get("classLabels"),
        "positiveClassLabel": model.get("positiveClassLabel"),
        "negativeClassLabel": model.get("negativeClassLabel"),
        "predictionThreshold": model.get("predictionThreshold"),
    }


def create_from_version(emu: Emulator, body: dict[str, Any]) -> tuple[ModelPackage, str]:
    """`POST modelPackages/fromCustomModelVersion/`: the package and the status id to poll."""
    version_id = _text(body, "customModelVersionId", required=True) or ""
    version = _find_version(emu, version_id)
    model = models.find_model(emu, str(version.parent))
    name = _text(body, "name") or f"{model.doc['name']} (v{version.doc['versionMajor']}.{version.doc['versionMinor']})"
    with emu.store.transaction():
        registered = _registered_for(emu, body, name, model.doc)
        number = registered.doc["lastVersionNum"] + 1
        doc: ModelPackage = {
            "id": new_id(),
            "name": name,
            "modelId": version.id,
            "registeredModelId": registered.id,
            "registeredModelVersion": number,
            "modelExecutionType": "custom_inference_model",
            "isArchived": False,
            "isDeprecated": False,
            "importMeta": {"creatorUsername": USER.username, "dateCreated": now()},
            "sourceMeta": {"customModelDetails": {"id": model.id, "versionLabel": version.doc["label"]}},
            "modelKind": {"isTimeSeries": False, "isUnsupervisedLearning": False},
            "target": target_of(model.doc),
            "modelDescription": {"description": _text(body, "description") or model.doc.get("description") or ""},
            "datasets": {},
            "timeseries": {},
            "permissions": ["CAN_VIEW", "CAN_DEPLOY"],
            "activeDeploymentCount": 0,
            "buildStatus": "complete",
            "userProvidedId": None,
            "createdAt": now(),
            "customModelId": model.id,
        }
        emu.store.insert(KIND, doc["id"], doc, parent=registered.id)
        emu.store.update(REGISTERED_KIND, registered.id, RegisteredModel(lastVersionNum=number, modifiedAt=now()))
        emu.store.update(models.VERSION_KIND, version.id, internal=Internal(packaged=True))
    status_id = create_status(emu, f"Model package of custom model version {version_id}", "modelPackage")
    set_status(emu, status_id, "COMPLETED", location=f"modelPackages/{doc['id']}/")
    return doc, status_id


def _find_version(emu: Emulator, version_id: str) -> Resource[CustomModelVersion]:
    version = emu.store.get(models.VERSION_KIND, version_id)
    if version is None:
        raise invalid(f"Custom model version {version_id} not found", {"customModelVersionId": "not found"})
    return version


def _registered_for(emu: Emulator, body: dict[str, Any], name: str, model: CustomModel) -> Resource[RegisteredModel]:
    registered_id = _text(body, "registeredModelId")
    registered_name = _text(body, "registeredModelName")
    if registered_id and registered_name:
        raise invalid(
            "registeredModelId and registeredModelName are mutually exclusive",
            {"registeredModelName": "give it or registeredModelId, not both"},
        )
    if registered_id:
        return get_or_404(emu, REGISTERED_KIND, registered_id, "Registered model")
    if registered_name and emu.store.find(REGISTERED_KIND, "name", registered_name):
        raise invalid(
            f"A registered model named {registered_name!r} already exists", {"registeredModelName": "must be unique"}
        )
    new_name = registered_name or _unique_name(emu, name)
    doc: RegisteredModel = {
        "id": new_id(),
        "name": new_name,
        "description": _text(body, "registeredModelDescription") or "",
        "createdAt": now(),
        "modifiedAt": now(),
        "createdBy": {"id": USER.id, "name": USER.username},
        "target": target_of(model),
        "lastVersionNum": 0,
        "isArchived": False,
        "isGlobal": False,
    }
    return emu.store.insert(REGISTERED_KIND, doc["id"], doc)


def _unique_name(emu: Emulator, name: str) -> str:
    """The package's name for a registered model nobody named: numbered when already taken
    (packages of different models may share a name; registered models may not)."""
    candidate, number = name, 1
    while emu.store.find(REGISTERED_KIND, "name", candidate):
        number += 1
        candidate = f"{name} ({number})"
    return candidate


def _text(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise invalid(f"{key} must be a non-empty string", {key: "must be a non-empty string"})
    return value


def get(emu: Emulator, package_id: str) -> ModelPackage:
    return get_or_404(emu, KIND, package_id, "Model package").doc


def find(emu: Emulator, package_id: str, field: str = "modelPackageId") -> ModelPackage:
    """A package a request names in its body: 422 (not 404) when there is none, as DataRobot."""
    package = emu.store.get(KIND, package_id)
    if package is None:
        raise invalid(f"Model package {package_id} not found", {field: "not found"})
    return package.doc


def list_packages(emu: Emulator, filters: dict[str, Any]) -> list[ModelPackage]:
    """Newest first, filtered by `modelId` (the custom model version) or the version's model."""
    docs = [resource.doc for resource in reversed(emu.store.list(KIND))]
    model_id = filters.get("modelId")
    if model_id:
        docs = [doc for doc in docs if model_id in (doc["modelId"], doc.get("customModelId"))]
    search = filters.get("search")
    if search:
        docs = [doc for doc in docs if str(search).lower() in doc["name"].lower()]
    return docs


def list_registered(emu: Emulator, search: str | None) -> list[RegisteredModel]:
    docs = [resource.doc for resource in emu.store.list(REGISTERED_KIND)]
    if search:
        docs = [doc for doc in docs if search.lower() in doc["name"].lower()]
    return docs


def update_registered(emu: Emulator, registered_id: str, body: dict[str, Any]) -> RegisteredModel:
    get_or_404(emu, REGISTERED_KIND, registered_id, "Registered model")
    changes = RegisteredModel(modifiedAt=now())
    for key in ("name", "description"):
        if key in body:
            if not isinstance(body[key], str):
                raise invalid(f"{key} must be a string", {key: "must be a string"})
            changes[key] = body[key]
    if "isGlobal" in body:
        if not isinstance(body["isGlobal"], bool):
            raise invalid("isGlobal must be a boolean", {"isGlobal": "must be a boolean"})
        changes["isGlobal"] = body["isGlobal"]
    updated = emu.store.update(REGISTERED_KIND, registered_id, changes)
    assert updated is not None  # checked above, and nothing deletes registered models
    return updated.doc


def filters() -> dict[str, Any]:
    """A list's filters from the query, or from a JSON body: the Action sends its filters as the
    body of its GETs (requests' `json=`), and DataRobot reads them there too."""
    found: dict[str, Any] = dict(request.args.items())
    if request.get_data(cache=True):
        found.update(json_body())
    return found


# -- model packages and registered models (outside the custom-models chapter) --------------------

ROUTES = Routes()


@ROUTES.api("POST", "modelPackages/fromCustomModelVersion/", documented=False)
def http_create_package(emu: Emulator, query: Query) -> Response:
    doc, status_id = create_from_version(emu, json_body())
    return json_response(doc, 201, {"Location": api_url(f"status/{status_id}/")})


@ROUTES.api("GET", "modelPackages/", documented=False)
def http_list_packages(emu: Emulator, query: Query) -> Response:
    return page(list_packages(emu, filters()), paging(blank_is_default=True))


@ROUTES.api("GET", "modelPackages/{modelPackageId}/", documented=False)
def http_get_package(emu: Emulator, query: Query, modelPackageId: str) -> Response:
    return json_response(get(emu, modelPackageId))


@ROUTES.api("GET", "registeredModels/", documented=False)
def http_list_registered(emu: Emulator, query: Query) -> Response:
    return page(list_registered(emu, request.args.get("search")), paging(blank_is_default=True))


@ROUTES.api("GET", "registeredModels/{registeredModelId}/", documented=False)
def http_get_registered(emu: Emulator, query: Query, registeredModelId: str) -> Response:
    return json_response(get_or_404(emu, REGISTERED_KIND, registeredModelId, "Registered model").doc)


@ROUTES.api("PATCH", "registeredModels/{registeredModelId}/", documented=False)
def http_update_registered(emu: Emulator, query: Query, registeredModelId: str) -> Response:
    return json_response(update_registered(emu, registeredModelId, json_body()))


@ROUTES.api("GET", "registeredModels/{registeredModelId}/versions/", documented=False)
def http_list_registered_versions(emu: Emulator, query: Query, registeredModelId: str) -> Response:
    get_or_404(emu, REGISTERED_KIND, registeredModelId, "Registered model")
    versions = [resource.doc for resource in reversed(emu.store.list(KIND, parent=registeredModelId))]
    return page(versions, paging(blank_is_default=True))


@ROUTES.api("GET", "registeredModels/{registeredModelId}/versions/{versionId}/", documented=False)
def http_get_registered_version(emu: Emulator, query: Query, registeredModelId: str, versionId: str) -> Response:
    return json_response(get_or_404(emu, KIND, versionId, "Registered model version", parent=registeredModelId).doc)
