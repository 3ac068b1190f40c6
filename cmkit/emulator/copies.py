"""New custom models from existing ones (`fromCustomModel/`) and from templates (`fromModelTemplate/`).

A copy carries the model's metadata and every version, in order, with the same numbers, files
(the same blobs: "associates the new versions with files owned by the custom model"),
environments, settings and training data; it gets new ids, a fresh access list, and no
`userProvidedId` (which must stay unique).

The templates are cmkit's own: every target type of every folder of `templates/bundles/`, listed
by `GET customTemplates/` (DataRobot's template catalogue, outside this chapter) with stable ids.
A model made from one has a first version holding the bundle `cmkit init` writes for it, on the
seeded environment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypedDict

from flask import Response, request

from cmkit.emulator import environments, models
from cmkit.emulator.bodies import CustomModelCopy, CustomModelCreateFromTemplatePayload, VersionFields
from cmkit.emulator.common import new_id, now
from cmkit.emulator.documents import (
    BlobRef,
    CustomModel,
    CustomModelResponse,
    CustomModelVersion,
    EnvironmentVersion,
    Internal,
    Item,
    ModelTemplate,
)
from cmkit.emulator.errors import invalid, not_found
from cmkit.emulator.http import Query, Routes, checked_body, json_response, page, paging
from cmkit.emulator.models import Upload
from cmkit.emulator.service import Emulator
from cmkit.emulator.store import Resource
from cmkit.paths import templates_dir
from cmkit.target import SERVED, LabelKind, TargetType

# Labels for the template models that need them (cmkit init's own defaults for binary).
TEMPLATE_CLASS_LABELS = ("setosa", "versicolor", "virginica")
R_TEMPLATE = "r"  # `cmkit init --language r`'s folder of templates/bundles/, and the environments' language


def upload_bytes(emu: Emulator, path: str, content: bytes) -> Upload:
    """An in-memory file as the version upload code takes it (hashed into the staging folder)."""
    staged = emu.store.blobs.new_upload()
    staged.write(content)
    return Upload(path, path.rsplit("/", 1)[-1], staged)


# -- copies --------------------------------------------------------------------------------------


def copy_model(emu: Emulator, source_id: str) -> CustomModelResponse:
    with emu.store.transaction():
        source = models.find_model(emu, source_id)
        model_id = new_id()
        created = now()
        doc: CustomModel = {
            **source.doc,
            "id": model_id,
            "created": created,
            "updated": created,
            "userProvidedId": None,
        }
        emu.store.insert(models.KIND, model_id, doc)
        for version in emu.store.list(models.VERSION_KIND, source_id):
            _copy_version(emu, version.doc, version.internal, model_id)
    return models.get(emu, model_id)


def _copy_version(emu: Emulator, doc: CustomModelVersion, internal: Internal, model_id: str) -> None:
    version_id = new_id()
    items: list[Item] = []
    blobs: dict[str, BlobRef] = {}
    for item in doc["items"]:
        item_id = new_id()
        items.append({**item, "id": item_id, "storagePath": f"{item['workspaceId']}/{item_id}"})
        blobs[item_id] = internal["blobs"][item["id"]]
    copied_doc: CustomModelVersion = {**doc, "id": version_id, "customModelId": model_id, "items": items}
    emu.store.insert(models.VERSION_KIND, version_id, copied_doc, parent=model_id, internal=Internal(blobs=blobs))


# -- templates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleTemplate:
    id: str
    template: str  # the folder of templates/bundles/
    target_type: TargetType

    @property
    def api_target_type(self) -> str:
        return self.target_type.api_name

    @property
    def name(self) -> str:
        return f"cmkit {self.template} {self.target_type} model"


def bundle_templates() -> list[BundleTemplate]:
    root = templates_dir() / "bundles"
    found = []
    for folder in sorted(p for p in root.iterdir() if (p / "common").is_dir()):
        for target in SERVED:
            if (folder / target.drum_name).is_dir():
                ident = hashlib.sha256(f"cmkit-template:{folder.name}/{target}".encode()).hexdigest()[:24]
                found.append(BundleTemplate(ident, folder.name, target))
    return found


def _template(template_id: str) -> BundleTemplate:
    for template in bundle_templates():
        if template.id == template_id:
            return template
    raise invalid(
        f"Invalid template data: no template {template_id} (GET customTemplates/ lists them)",
        {"templateId": "unknown template"},
    )


def _environment(emu: Emulator, template: BundleTemplate) -> tuple[str, Resource[EnvironmentVersion]] | None:
    """The environment a template's model is made on, and its build: the seeded (Python) one, or for
    `cmkit init --language r`'s templates the newest R environment uploaded (none is seeded)."""
    if template.template == R_TEMPLATE:
        return environments.newest_built(emu, R_TEMPLATE)
    env_id = environments.seeded_environment_id(emu)
    built = environments.latest_successful(emu, env_id) if env_id else None
    return (env_id, built) if env_id and built else None


def _spec(template: BundleTemplate) -> Any:
    from cmkit.scaffold import make_spec

    labels = TEMPLATE_CLASS_LABELS if template.target_type.label_kind is LabelKind.LIST else ()
    return make_spec(template.target_type, template.name.replace(" ", "-"), class_labels=labels)


class TemplateEntry(TypedDict):
    """An entry of `customTemplates/` (DataRobot's template catalogue, outside the reference)."""

    id: str
    name: str
    description: str
    enabled: bool
    isHidden: bool
    templateType: str
    templateSubType: str
    defaultEnvironment: dict[str, str]
    defaultResourceBundleId: str | None
    items: list[dict[str, str]]
    templateMetadata: dict[str, str | list[str] | None]


class ModelFromTemplate(TypedDict):
    """The 201 body of `fromModelTemplate/`."""

    customModelId: str
    customModelVersionId: str


def render_template(emu: Emulator, template: BundleTemplate) -> TemplateEntry:
    """The catalogue entry, shaped as DataRobot's client reads `customTemplates/`."""
    from cmkit.scaffold import render_bundle

    found = _environment(emu, template)
    env_id, built = found if found else ("", None)
    files = render_bundle(_spec(template), template.template)
    return {
        "id": template.id,
        "name": template.name,
        "description": f"The bundle `cmkit init --template {template.template} --target-type "
        f"{template.target_type}` writes: a working {template.target_type} model served by gunicorn",
        "enabled": True,
        "isHidden": False,
        "templateType": "customModel",
        "templateSubType": template.api_target_type,
        "defaultEnvironment": {"environmentId": env_id, "environmentVersionId": built.id if built else ""},
        "defaultResourceBundleId": None,
        "items": [{"id": hashlib.sha256(f.path.encode()).hexdigest()[:24], "name": f.path} for f in files],
        "templateMetadata": {"readme": None, "tags": ["cmkit", template.target_type.drum_name], "source": None},
    }


def list_templates(emu: Emulator, search: str | None) -> list[TemplateEntry]:
    """The templates whose environment has built: DataRobot's client refuses an entry without one
    (`cmkit init --language r`'s are listed once an R environment is uploaded and built)."""
    found = [render_template(emu, t) for t in bundle_templates()]
    usable = [t for t in found if t["defaultEnvironment"]["environmentVersionId"]]
    return [t for t in usable if not search or search.lower() in f"{t['name']} {t['description']}".lower()]


def get_template(emu: Emulator, template_id: str) -> TemplateEntry:
    for template in bundle_templates():
        if template.id == template_id:
            return render_template(emu, template)
    raise not_found("Custom template", template_id)


def from_template(emu: Emulator, body: CustomModelCreateFromTemplatePayload) -> ModelFromTemplate:
    """A model and its first version from a template: `{customModelId, customModelVersionId}`."""
    from cmkit.scaffold import render_bundle

    template = _template(body["templateId"])
    found = _environment(emu, template)
    if found is None and template.template == R_TEMPLATE:
        raise invalid(
            "No R environment has built yet: upload one with `cmkit env push templates/environments/r` "
            "(an environment whose programmingLanguage is r)"
        )
    if found is None:
        raise invalid("The seeded environment has not been built yet: retry once it has")
    env_id = found[0]
    spec = _spec(template)
    model = models.create(
        emu,
        {
            "customModelType": "inference",
            "name": template.name,
            "description": f"Made from template {template.id}",
            "language": "r" if template.template == R_TEMPLATE else "python",
            "targetType": template.api_target_type,
            "targetName": spec.target_name,
            "positiveClassLabel": spec.positive_class_label,
            "negativeClassLabel": spec.negative_class_label,
            "classLabels": list(spec.class_labels) or None,
            "resourceBundleId": body["resourceBundleId"],
        },
    )
    # The reference's template `modelType` knows only NIM models ("nimModel") and "invalid".
    emu.store.update(
        models.KIND,
        model["id"],
        CustomModel(template=ModelTemplate(templateId=template.id, modelType="invalid")),
        Internal(secretConfigId=body["secretConfigId"]),
    )
    uploads = [upload_bytes(emu, f.path, f.content) for f in render_bundle(spec, template.template)]
    fields = VersionFields(isMajorUpdate="true", baseEnvironmentId=env_id, resourceBundleId=body["resourceBundleId"])
    version = models.create_version(emu, model["id"], fields, uploads, from_latest=False)
    return {"customModelId": model["id"], "customModelVersionId": version["id"]}


# -- copies and templates ------------------------------------------------------------------------

ROUTES = Routes()


@ROUTES.api("POST", "customModels/fromCustomModel/")
def http_copy_model(emu: Emulator, query: Query) -> Response:
    return json_response(copy_model(emu, checked_body(CustomModelCopy)["customModelId"]), 201)


@ROUTES.api("POST", "customModels/fromModelTemplate/")
def http_model_from_template(emu: Emulator, query: Query) -> Response:
    return json_response(from_template(emu, checked_body(CustomModelCreateFromTemplatePayload)), 201)


@ROUTES.api("GET", "customTemplates/", documented=False)
def http_list_templates(emu: Emulator, query: Query) -> Response:
    return page(list_templates(emu, request.args.get("search")), paging())


@ROUTES.api("GET", "customTemplates/{templateId}/", documented=False)
def http_get_template(emu: Emulator, query: Query, templateId: str) -> Response:
    return json_response(get_template(emu, templateId))
