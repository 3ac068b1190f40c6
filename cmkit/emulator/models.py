"""Custom models, their versions (files + dependencies), dependency builds and access control."""

from __future__ import annotations

import json
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from flask import Response, request, send_file

from cmkit.archives import write_zip
from cmkit.bundle import API_MAX_FILE_BYTES, API_MAX_FILES
from cmkit.emulator import environments, sharing
from cmkit.emulator.bodies import (
    CustomModelCreate,
    CustomModelUpdate,
    CustomModelVersionMetadataUpdate,
    SharingUpdateOrRemoveWithGrant,
    VersionFields,
)
from cmkit.emulator.common import USER, new_id, now, shape
from cmkit.emulator.documents import (
    BlobRef,
    CustomModel,
    CustomModelResponse,
    CustomModelVersion,
    Dependency,
    DependencyBuild,
    EnvironmentVersion,
    GitModelVersion,
    Internal,
    Item,
    MetadataValue,
    VersionResponse,
    changes,
    settings,
)
from cmkit.emulator.errors import ErrorResponse, invalid, not_found
from cmkit.emulator.http import (
    JSON,
    Query,
    Routes,
    api_url,
    checked_body,
    current_emulator,
    get_or_404,
    json_body,
    json_response,
    no_content,
    page,
)
from cmkit.emulator.jobs import JobFailed
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import INTERRUPTED
from cmkit.emulator.store import Blob, HashingFile, Kind, Resource
from cmkit.emulator.training_data import version_data
from cmkit.emulator.validation import Limits, check_body, check_file_path, check_path_set, coerce_form, file_name
from cmkit.requirements import REQUIREMENTS_FILE, parse_requirements_text
from cmkit.target import API_FIELDS, TargetSpec, TargetType
from cmkit_runtime.formats import is_r_file_set

KIND: Kind[CustomModel] = Kind("model")
VERSION_KIND: Kind[CustomModelVersion] = Kind("version")
BUILD_KIND: Kind[DependencyBuild] = Kind("dependencyBuild")
# The supports* flags older clients send instead of targetType.
LEGACY_FLAGS = {TargetType.BINARY: "supportsBinaryClassification", TargetType.REGRESSION: "supportsRegression"}
VERSION_SETTINGS = (
    "networkEgressPolicy",
    "maximumMemory",
    "replicas",
    "desiredMemory",
    "requiresHa",
    "resourceBundleId",
)
BUILD_FINAL = ("success", "failed")


# -- custom models -------------------------------------------------------------------------------


def create(emu: Emulator, body: CustomModelCreate) -> CustomModelResponse:
    target_type = _target_type(body)
    kind = TargetType.from_api(target_type)
    created = now()
    doc: CustomModel = {
        "id": new_id(),
        "name": body["name"],
        "description": body.get("description", ""),
        "language": body.get("language", ""),
        "customModelType": body["customModelType"],
        "targetType": target_type,
        "targetName": body.get("targetName"),
        "positiveClassLabel": body.get("positiveClassLabel"),
        "negativeClassLabel": body.get("negativeClassLabel"),
        # DataRobot answers a threshold on Regression models too (0.5 unless given), and the
        # Action compares its setting with it.
        "predictionThreshold": body.get(
            "predictionThreshold", 0.5 if kind in (TargetType.BINARY, TargetType.REGRESSION) else None
        ),
        "classLabels": body.get("classLabels"),
        "userProvidedId": body.get("userProvidedId"),
        "created": created,
        "createdBy": USER.username,
        "deploymentsCount": 0,
        "supportsBinaryClassification": kind is TargetType.BINARY,
        "supportsRegression": kind is TargetType.REGRESSION,
        "supportsAnomalyDetection": kind is TargetType.ANOMALY,
        "trainingDataAssignmentInProgress": False,
        "isTrainingDataForVersionsPermanentlyEnabled": body.get("isTrainingDataForVersionsPermanentlyEnabled", False),
        "calibratePredictions": body.get("calibratePredictions"),
        "gitModelVersion": body.get("gitModelVersion"),
        "playgroundId": body.get("playgroundId"),
        "template": None,
        "trainingDatasetId": None,
        "trainingDatasetVersionId": None,
        "trainingDataFileName": None,
        "trainingDataPartitionColumn": None,
        **settings(body, {}, VERSION_SETTINGS),
        "updated": created,
    }
    _check_target(doc)
    with emu.store.transaction():
        # Checked and inserted in one transaction: two racing creates cannot both pass.
        if doc["userProvidedId"] and emu.store.find(KIND, "userProvidedId", doc["userProvidedId"]):
            # DataRobot's own wording: clients (the custom-models Action) match this text to
            # fall back to the existing model.
            raise invalid(
                f"Cannot create a custom model with a user provided ID {doc['userProvidedId']}, "
                "since a custom model with the same user provided ID already exists",
                {"userProvidedId": "must be unique"},
            )
        emu.store.insert(KIND, doc["id"], doc)
    return get(emu, doc["id"])


def _target_type(body: CustomModelCreate) -> str:
    """targetType, or the legacy supports* flags older clients send instead."""
    flagged = [kind.api_name for kind, flag in LEGACY_FLAGS.items() if body.get(flag)]
    target_type = body.get("targetType")
    if len(flagged) > 1:
        raise invalid("A model supports one target type", {"targetType": "conflicting supports* flags"})
    if target_type and flagged and flagged[0] != target_type:
        raise invalid(
            f"targetType {target_type} conflicts with supports{flagged[0]}", {"targetType": "conflicts with flags"}
        )
    if not target_type and not flagged:
        raise invalid("targetType is required", {"targetType": "is required"})
    return str(target_type or flagged[0])


def _check_target(doc: CustomModel) -> None:
    """The rules DataRobot applies to a model's target settings, as field errors."""
    target_type = TargetType.from_api(doc["targetType"])
    errors: dict[str, str] = {}
    if doc["customModelType"] == "inference" and target_type.needs_target_name and not doc.get("targetName"):
        errors["targetName"] = f"targetName is required for {target_type.api_name} models"
    spec = TargetSpec(target_type, doc.get("positiveClassLabel"), doc.get("negativeClassLabel"), doc.get("classLabels"))
    for problem in spec.problems():
        errors[problem.field] = problem.text(API_FIELDS)
    if errors:
        raise invalid("Invalid target settings: " + "; ".join(errors.values()), errors)


def _model(emu: Emulator, model_id: str) -> Resource[CustomModel]:
    return get_or_404(emu, KIND, model_id, "Custom model")


def render(emu: Emulator, resource: Resource[CustomModel]) -> CustomModelResponse:
    latest = emu.store.latest(VERSION_KIND, resource.id)
    doc = CustomModelResponse(**resource.doc, latestVersion=render_version(emu, latest, latest.id) if latest else None)
    return shape(doc, emu.reference.schema("CustomModelResponse"))


def get(emu: Emulator, model_id: str) -> CustomModelResponse:
    return render(emu, _model(emu, model_id))


def list_models(emu: Emulator, query: Query) -> list[CustomModelResponse]:
    order = query.get("orderBy") or "-created"
    key = order.lstrip("-")
    found = [r for r in emu.store.list(KIND) if _matches(r.doc, query)]
    # Newest first by default; seq breaks ties between equal timestamps.
    found.sort(key=lambda r: (_order_value(r.doc, key), r.seq), reverse=order.startswith("-"))
    return [render(emu, r) for r in found]


def _order_value(doc: CustomModel, name: str) -> Any:
    """The field `orderBy` names: the API documents created and updated, any field sorts."""
    fields: Mapping[str, Any] = doc
    return fields[name]


def _matches(doc: CustomModel, query: Query) -> bool:
    if query.get("customModelType") and doc["customModelType"] != query["customModelType"]:
        return False
    if query.get("targetType") and doc["targetType"] != query["targetType"]:
        return False
    deployed = str(query.get("isDeployed", "")).lower()
    if deployed in ("true", "false") and (doc.get("deploymentsCount", 0) > 0) != (deployed == "true"):
        return False
    search = (query.get("searchFor") or "").lower()
    texts = (doc.get("name"), doc.get("description"), doc.get("language"))
    return not search or any(search in (text or "").lower() for text in texts)


def update(emu: Emulator, model_id: str, body: CustomModelUpdate) -> CustomModelResponse:
    with emu.store.transaction():
        resource = _model(emu, model_id)
        doc: CustomModel = {**resource.doc, **changes(CustomModel, body), "updated": now()}
        _check_target(doc)
        resource.doc = doc
        emu.store.save(resource)
    return get(emu, model_id)


def delete(emu: Emulator, model_id: str) -> None:
    with emu.store.transaction():
        model = _model(emu, model_id)
        deployed = int(model.doc.get("deploymentsCount") or 0)
        if deployed:
            # DataRobot keeps a deployed model: its deployments must go first (the Action checks
            # customModelDeployments/ before it deletes a model, for this reason).
            raise invalid(f"Custom model {model_id} is used by {deployed} deployment(s): delete them first")
        emu.store.delete(KIND, model_id)


# -- versions ------------------------------------------------------------------------------------


@dataclass
class Upload:
    """One file/filePath pair of a multipart version upload."""

    file_path: str
    file_name: str
    content: HashingFile


def create_version(
    emu: Emulator,
    model_id: str,
    fields: VersionFields,
    uploads: list[Upload],
    from_latest: bool,
) -> VersionResponse:
    """A new version: POST starts from no files, PATCH from the latest version's files."""
    _model(emu, model_id)
    paths = _check_uploads(uploads, emu.settings.limits)
    blobs = {
        path: (upload, emu.store.blobs.ingest(upload.content)) for path, upload in zip(paths, uploads, strict=True)
    }
    # Parsed before the transaction: a long requirements.txt must not hold up every request.
    uploaded_requirements = _uploaded_dependencies(emu, blobs)
    with emu.store.transaction():
        # Numbering, inheritance and the file set are decided inside one transaction, so
        # concurrent creations get distinct, gap-free numbers and each sees its true predecessor.
        model = _model(emu, model_id)
        latest = emu.store.latest(VERSION_KIND, model_id)
        items, item_blobs = _version_items(latest, blobs, fields.get("filesToDelete") or [], from_latest)
        check_path_set(item["filePath"] for item in items)  # carried-over files count too
        env_id, env_version_id = _environment_for(emu, fields, latest)
        major, minor = _next_number(latest, fields["isMajorUpdate"])
        inherited: Mapping[str, object] = latest.doc if latest else model.doc
        version_id = new_id()
        doc: CustomModelVersion = {
            "id": version_id,
            "customModelId": model_id,
            "versionMajor": major,
            "versionMinor": minor,
            "label": f"v{major}.{minor}",
            "description": None,
            "created": now(),
            "baseEnvironmentId": env_id,
            "baseEnvironmentVersionId": env_version_id,
            "items": items,
            "dependencies": _dependencies(items, item_blobs, uploaded_requirements, latest),
            "gitModelVersion": fields.get("gitModelVersion"),
            "requiredMetadataValues": _metadata_values(fields.get("requiredMetadataValues")),
            **settings(fields, inherited, VERSION_SETTINGS),
            **version_data(emu, model, fields, latest),
        }
        emu.store.insert(VERSION_KIND, version_id, doc, parent=model_id, internal=Internal(blobs=item_blobs))
        emu.store.update(KIND, model_id, CustomModel(updated=doc["created"]))
    return get_version(emu, model_id, version_id)


def _metadata_values(raw: str | list[MetadataValue] | None) -> list[MetadataValue] | None:
    """requiredMetadataValues arrive as a JSON text field in multipart uploads."""
    if raw is None or isinstance(raw, list):
        return raw
    try:
        values: object = json.loads(raw)
    except ValueError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, dict) and "fieldName" in v for v in values):
        raise invalid(
            "requiredMetadataValues must be a JSON list of {fieldName, value} objects",
            {"requiredMetadataValues": "must be a JSON list of {fieldName, value}"},
        )
    return values


def _check_uploads(uploads: list[Upload], limits: Limits) -> list[str]:
    paths: list[str] = []
    for upload in uploads:
        path = check_file_path(upload.file_path)
        if path in paths:
            raise invalid(f"filePath {path!r} is given twice", {"filePath": f"duplicate path {path}"})
        if upload.content.size > API_MAX_FILE_BYTES:
            raise ErrorResponse(413, f"{path} is larger than the {API_MAX_FILE_BYTES} bytes a file may hold")
        if path == REQUIREMENTS_FILE and upload.content.size > limits.requirements_bytes:
            raise ErrorResponse(
                413,
                f"{REQUIREMENTS_FILE} is larger than the {limits.requirements_bytes} bytes the emulator accepts",
                {"file": f"{REQUIREMENTS_FILE} over {limits.requirements_bytes} bytes"},
            )
        paths.append(path)
    check_path_set(paths)
    return paths


def _version_items(
    latest: Resource[CustomModelVersion] | None,
    blobs: dict[str, tuple[Upload, Blob]],
    files_to_delete: list[str],
    from_latest: bool,
) -> tuple[list[Item], dict[str, BlobRef]]:
    """The new version's file items: carried over (same item ids), deleted, replaced, added."""
    items: dict[str, Item] = {}
    item_blobs: dict[str, BlobRef] = {}
    if from_latest and latest is not None:
        known = {item["id"]: item for item in latest.doc["items"]}
        unknown = [ident for ident in files_to_delete if ident not in known]
        if unknown:
            raise invalid(
                f"filesToDelete names items that are not in the latest version: {', '.join(unknown)}",
                {"filesToDelete": "unknown item id"},
            )
        for kept in latest.doc["items"]:
            if kept["id"] not in files_to_delete:
                items[kept["filePath"]] = kept
                item_blobs[kept["id"]] = latest.internal["blobs"][kept["id"]]
    elif files_to_delete:
        raise invalid("filesToDelete needs a previous version", {"filesToDelete": "no previous version"})
    workspace = latest.doc["items"][0]["workspaceId"] if latest and latest.doc["items"] else new_id()
    created = now()
    for path, (upload, blob) in blobs.items():
        replaced = items.pop(path, None)
        if replaced:
            item_blobs.pop(replaced["id"], None)
        item_id = new_id()
        item: Item = {
            "id": item_id,
            "fileName": file_name(upload.file_name, posixpath.basename(path)),
            "filePath": path,
            "fileSource": "local",
            "created": created,
            "workspaceId": workspace,
            "commitSha": None,
            "ref": None,
            "repositoryFilePath": None,
            "repositoryLocation": None,
            "repositoryName": None,
            "storagePath": f"{workspace}/{item_id}",
        }
        items[path] = item
        item_blobs[item["id"]] = {"sha256": blob.sha256, "size": blob.size}
    if len(items) > API_MAX_FILES:
        raise invalid(
            f"A version may hold at most {API_MAX_FILES} files; this one would hold {len(items)}",
            {"file": f"at most {API_MAX_FILES} files"},
        )
    return sorted(items.values(), key=lambda i: i["filePath"]), item_blobs


def _next_number(latest: Resource[CustomModelVersion] | None, is_major_update: str) -> tuple[int, int]:
    """DataRobot's numbering: the first version is 1.0; a major update, or any version after a
    frozen one (made into a model package), is the next major; otherwise the next minor."""
    if latest is None:
        return 1, 0
    major, minor = latest.doc["versionMajor"], latest.doc["versionMinor"]
    if is_major_update.lower() == "true" or latest.internal.get("packaged"):
        return major + 1, 0
    return major, minor + 1


def _environment_for(
    emu: Emulator, fields: VersionFields, latest: Resource[CustomModelVersion] | None
) -> tuple[str, str]:
    """(baseEnvironmentId, baseEnvironmentVersionId) as the reference describes their defaults."""
    env_id = fields.get("baseEnvironmentId")
    version_id = fields.get("baseEnvironmentVersionId")
    if version_id:
        version = environments.find_version(emu, version_id)
        if version is None:
            raise invalid(f"Environment version {version_id} not found", {"baseEnvironmentVersionId": "not found"})
        if env_id and version.parent != env_id:
            raise invalid(
                f"Environment version {version_id} does not belong to environment {env_id}",
                {"baseEnvironmentVersionId": "belongs to another environment"},
            )
        _require_built(version)
        return str(version.parent), version_id
    if env_id:
        if emu.store.get(environments.KIND, env_id) is None:
            raise invalid(f"Environment {env_id} not found", {"baseEnvironmentId": "not found"})
        if latest and latest.doc["baseEnvironmentId"] == env_id:
            return env_id, latest.doc["baseEnvironmentVersionId"]
        built = environments.latest_successful(emu, env_id)
        if built is None:
            raise invalid(
                f"Environment {env_id} has no successfully built version yet", {"baseEnvironmentId": "not built"}
            )
        return env_id, built.id
    if latest:
        return latest.doc["baseEnvironmentId"], latest.doc["baseEnvironmentVersionId"]
    raise invalid(
        "baseEnvironmentId or baseEnvironmentVersionId is required for a model's first version",
        {"baseEnvironmentId": "is required"},
    )


def _require_built(version: Resource[EnvironmentVersion]) -> None:
    status = version.doc["buildStatus"]
    if status != "success":
        raise invalid(
            f"Environment version {version.id} is not built (buildStatus {status})",
            {"baseEnvironmentVersionId": f"buildStatus is {status}"},
        )


def _uploaded_dependencies(emu: Emulator, blobs: dict[str, tuple[Upload, Blob]]) -> tuple[str, list[Dependency]] | None:
    """(sha256, dependencies) of an uploaded requirements.txt, parsed by cmkit; None without one.

    The list only when every line is valid, else empty ("if the version has a valid
    requirements.txt file").
    """
    if REQUIREMENTS_FILE not in blobs:
        return None
    blob = blobs[REQUIREMENTS_FILE][1]
    try:
        text = emu.store.blobs.read_text(blob.sha256)
    except UnicodeDecodeError:
        return blob.sha256, []
    report = parse_requirements_text(text)
    return blob.sha256, [d.to_api() for d in report.dependencies] if report.ok else []


def _dependencies(
    items: list[Item],
    item_blobs: dict[str, BlobRef],
    uploaded: tuple[str, list[Dependency]] | None,
    latest: Resource[CustomModelVersion] | None,
) -> list[Dependency]:
    """The version's dependencies: from the uploaded requirements.txt, or the predecessor's."""
    for item in items:
        if item["filePath"] == REQUIREMENTS_FILE:
            if uploaded and item_blobs[item["id"]]["sha256"] == uploaded[0]:
                return uploaded[1]
            # Carried over unchanged from the latest version, which parsed this very file.
            return list(latest.doc.get("dependencies") or []) if latest else []
    return []


def requirements_text(emu: Emulator, items: list[Item], item_blobs: dict[str, BlobRef]) -> str | None:
    for item in items:
        if item["filePath"] == REQUIREMENTS_FILE:
            try:
                return emu.store.blobs.read_text(item_blobs[item["id"]]["sha256"])
            except UnicodeDecodeError:
                return ""
    return None


def _top_level(items: list[Item]) -> list[str]:
    """The names of a version's files at the top of the bundle, where DRUM looks for its model."""
    return [item["filePath"] for item in items if "/" not in item["filePath"]]


def _version(emu: Emulator, model_id: str, version_id: str) -> Resource[CustomModelVersion]:
    _model(emu, model_id)
    return get_or_404(emu, VERSION_KIND, version_id, "Custom model version", parent=model_id)


def render_version(emu: Emulator, resource: Resource[CustomModelVersion], latest_id: str) -> VersionResponse:
    # Frozen: superseded, or made into a model package (which DataRobot freezes).
    frozen = resource.id != latest_id or bool(resource.internal.get("packaged"))
    doc = VersionResponse(**resource.doc, isFrozen=frozen)
    return shape(doc, emu.reference.schema("CustomModelVersionResponse"))


def get_version(emu: Emulator, model_id: str, version_id: str) -> VersionResponse:
    resource = _version(emu, model_id, version_id)
    latest = emu.store.latest(VERSION_KIND, model_id)
    return render_version(emu, resource, latest.id if latest else resource.id)


def list_versions(emu: Emulator, model_id: str, commit_sha: str | None) -> list[VersionResponse]:
    """Newest first."""
    _model(emu, model_id)
    versions = emu.store.list(VERSION_KIND, model_id)
    latest_id = versions[-1].id if versions else ""
    found = []
    for resource in reversed(versions):
        git = resource.doc.get("gitModelVersion") or GitModelVersion()
        if commit_sha and git.get("mainBranchCommitSha") != commit_sha:
            continue
        found.append(render_version(emu, resource, latest_id))
    return found


def update_version(
    emu: Emulator, model_id: str, version_id: str, body: CustomModelVersionMetadataUpdate
) -> VersionResponse:
    _version(emu, model_id, version_id)
    emu.store.update(VERSION_KIND, version_id, changes(CustomModelVersion, body))
    return get_version(emu, model_id, version_id)


def version_zip(emu: Emulator, model_id: str, version_id: str | None = None) -> tuple[IO[bytes], str]:
    """A zip of a version's files (the latest without `version_id`), spooled to disk when large."""
    if version_id is None:
        _model(emu, model_id)
        resource = emu.store.latest(VERSION_KIND, model_id)
        if resource is None:
            raise invalid(f"Custom model {model_id} has no versions to download")
    else:
        resource = _version(emu, model_id, version_id)
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024, dir=str(emu.dir("tmp")))  # noqa: SIM115
    blobs = resource.internal["blobs"]
    # Paths are checked again on the way out: a data dir from an older emulator may hold any path.
    members = (
        (emu.store.blobs.path(blobs[item["id"]]["sha256"]), check_file_path(item["filePath"]))
        for item in resource.doc["items"]
    )
    return write_zip(members, spool), f"model-{model_id}-{resource.doc['label']}.zip"


def materialize(emu: Emulator, version: Resource[CustomModelVersion], target: Path) -> Path:
    """Write a version's files to a folder, as a bundle test-local can run.

    Uploads carry no file modes, so scripts (files starting with `#!`, start_server.sh
    included) are made executable: the environment's entrypoint executes start_server.sh.
    """
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for item in version.doc["items"]:
        destination = target.joinpath(*check_file_path(item["filePath"]).split("/"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(emu.store.blobs.path(version.internal["blobs"][item["id"]]["sha256"]), destination)
        with destination.open("rb") as handle:
            if handle.read(2) == b"#!":
                destination.chmod(0o755)
    return target


def find_version(emu: Emulator, model_id: str, version_id: str) -> Resource[CustomModelVersion]:
    return _version(emu, model_id, version_id)


def find_model(emu: Emulator, model_id: str) -> Resource[CustomModel]:
    return _model(emu, model_id)


# -- dependency builds ---------------------------------------------------------------------------


def start_build(emu: Emulator, model_id: str, version_id: str, base_url: str) -> DependencyBuild:
    version = _version(emu, model_id, version_id)
    if requirements_text(emu, version.doc["items"], version.internal["blobs"]) is None:
        raise invalid(f"Custom model version {version_id} has no requirements.txt: there is nothing to build")
    with emu.store.transaction():
        existing = emu.store.get(BUILD_KIND, version_id, include_deleted=True)
        if existing and not existing.deleted and existing.doc["buildStatus"] != "failed":
            return render_build(existing, base_url)  # already built or building: nothing new to start
        doc = DependencyBuild(buildStatus="submitted", buildStart=now(), buildEnd=None, buildLogLocation=None)
        token = new_id()
        if existing:
            existing.doc, existing.internal, existing.deleted = doc, Internal(token=token), False
            emu.store.save(existing)
        else:
            emu.store.insert(BUILD_KIND, version_id, doc, parent=model_id, internal=Internal(token=token))
        emu.logs.path(BUILD_KIND, version_id).unlink(missing_ok=True)
        started = render_build(Resource(BUILD_KIND, version_id, model_id, 0, doc), base_url)
    # Answer what was submitted: a quick build may already be over by the time we reply.
    emu.jobs.submit(f"dependency-build:{version_id}", lambda cancel: _build(emu, model_id, version_id, token, cancel))
    return started


def _build(emu: Emulator, model_id: str, version_id: str, token: str, cancel: threading.Event) -> None:
    log = emu.logs.writer(BUILD_KIND, version_id)
    if not _advance(emu, version_id, token, DependencyBuild(buildStatus="processing")):
        return
    version = emu.store.get(VERSION_KIND, version_id)
    if version is None:
        return
    text = requirements_text(emu, version.doc["items"], version.internal["blobs"]) or ""
    context = environments.context_dir(emu, version.doc["baseEnvironmentVersionId"])
    log(f"installing requirements.txt of {model_id}/{version_id} with the {emu.engine.runtime} runtime")
    try:
        emu.engine.build_dependencies(context, text, log, r_model=is_r_file_set(_top_level(version.doc["items"])))
    except JobFailed as exc:
        log(f"error: {exc}")
        _advance(emu, version_id, token, DependencyBuild(buildStatus="failed", buildEnd=now()))
        return
    except Exception as exc:  # the engine vanished, the disk filled...: a failed build, with the reason
        log(f"error: {exc}")
        _advance(emu, version_id, token, DependencyBuild(buildStatus="failed", buildEnd=now()))
        return
    if cancel.is_set():
        return
    log("dependency build succeeded")
    _advance(emu, version_id, token, DependencyBuild(buildStatus="success", buildEnd=now()))


def _advance(emu: Emulator, version_id: str, token: str, doc: DependencyBuild) -> bool:
    """Record build progress unless the build was cancelled or restarted meanwhile."""
    with emu.store.transaction():
        build = emu.store.get(BUILD_KIND, version_id)
        if build is None or build.internal.get("token") != token:
            return False
        build.doc.update(doc)
        emu.store.save(build)
        return True


def _existing_build(emu: Emulator, model_id: str, version_id: str) -> Resource[DependencyBuild]:
    _version(emu, model_id, version_id)
    build = emu.store.get(BUILD_KIND, version_id)
    if build is None:
        raise invalid(f"Custom model version {version_id} build has not been started")
    return build


def render_build(build: Resource[DependencyBuild], base_url: str) -> DependencyBuild:
    doc = build.doc.copy()
    if doc["buildStatus"] in BUILD_FINAL:
        doc["buildLogLocation"] = f"{base_url}customModels/{build.parent}/versions/{build.id}/dependencyBuildLog/"
    return doc


def get_build(emu: Emulator, model_id: str, version_id: str, base_url: str) -> DependencyBuild:
    return render_build(_existing_build(emu, model_id, version_id), base_url)


def build_log(emu: Emulator, model_id: str, version_id: str) -> dict[str, str]:
    build = _existing_build(emu, model_id, version_id)
    if build.doc["buildStatus"] not in BUILD_FINAL:
        raise not_found("Log of dependency build in progress for version", version_id)
    return {"data": emu.logs.read(BUILD_KIND, version_id)}


def cancel_build(emu: Emulator, model_id: str, version_id: str) -> None:
    with emu.store.transaction():
        build = _existing_build(emu, model_id, version_id)
        if build.doc["buildStatus"] in BUILD_FINAL:
            ended = build.doc["buildStatus"]
            raise ErrorResponse(409, f"The dependency build of {version_id} has already ended ({ended})")
        # As if never started (a new POST starts afresh); the job sees its token gone and stops.
        build.internal["token"] = None
        build.deleted = True
        emu.store.save(build)
    emu.jobs.cancel(f"dependency-build:{version_id}")


def recover(emu: Emulator) -> None:
    for build in emu.store.list(BUILD_KIND):
        if build.doc["buildStatus"] not in BUILD_FINAL:
            emu.logs.writer(BUILD_KIND, build.id)(f"error: {INTERRUPTED}")
            emu.store.update(BUILD_KIND, build.id, DependencyBuild(buildStatus="failed", buildEnd=now()))


# -- access control ------------------------------------------------------------------------------


def access_list(emu: Emulator, model_id: str) -> list[sharing.AccessEntry]:
    return sharing.entries(_model(emu, model_id))


def share(emu: Emulator, model_id: str, body: SharingUpdateOrRemoveWithGrant) -> None:
    sharing.apply(emu, KIND, model_id, body["data"], "Custom model")


# -- custom models -------------------------------------------------------------------------------

ROUTES = Routes()


@ROUTES.api("GET", "customModels/")
def http_list_models(emu: Emulator, query: Query) -> Response:
    return page(list_models(emu, query), query)


@ROUTES.api("POST", "customModels/")
def http_create_model(emu: Emulator, query: Query) -> Response:
    return json_response(create(emu, checked_body(CustomModelCreate)), 201)


@ROUTES.api("GET", "customModels/{customModelId}/")
def http_get_model(emu: Emulator, query: Query, customModelId: str) -> Response:
    return json_response(get(emu, customModelId))


@ROUTES.api("PATCH", "customModels/{customModelId}/")
def http_update_model(emu: Emulator, query: Query, customModelId: str) -> Response:
    # 200, as DataRobot's servers answer (the reference's table says 201): the custom-models
    # Action accepts only 200, DataRobot's client any 2xx. See docs/emulator.md.
    return json_response(update(emu, customModelId, checked_body(CustomModelUpdate)), 200)


@ROUTES.api("DELETE", "customModels/{customModelId}/")
def http_delete_model(emu: Emulator, query: Query, customModelId: str) -> Response:
    delete(emu, customModelId)
    return no_content()


@ROUTES.api("GET", "customModels/{customModelId}/download/")
def http_download_model(emu: Emulator, query: Query, customModelId: str) -> Response:
    archive, name = version_zip(emu, customModelId)
    return send_file(archive, mimetype="application/zip", as_attachment=True, download_name=name)


@ROUTES.api("GET", "customModels/{customModelId}/accessControl/")
def http_get_access(emu: Emulator, query: Query, customModelId: str) -> Response:
    return page(access_list(emu, customModelId), query)


@ROUTES.api("PATCH", "customModels/{customModelId}/accessControl/")
def http_share_model(emu: Emulator, query: Query, customModelId: str) -> Response:
    share(emu, customModelId, checked_body(SharingUpdateOrRemoveWithGrant))
    return no_content()


# -- custom model versions -----------------------------------------------------------------------


@ROUTES.api("GET", "customModels/{customModelId}/versions/")
def http_list_versions(emu: Emulator, query: Query, customModelId: str) -> Response:
    return page(list_versions(emu, customModelId, query.get("mainBranchCommitSha")), query)


@ROUTES.api("POST", "customModels/{customModelId}/versions/")
def http_create_version(emu: Emulator, query: Query, customModelId: str) -> Response:
    fields, uploads = _version_request("CustomModelVersionCreate")
    return json_response(create_version(emu, customModelId, fields, uploads, from_latest=False), 201)


@ROUTES.api("PATCH", "customModels/{customModelId}/versions/")
def http_create_version_from_latest(emu: Emulator, query: Query, customModelId: str) -> Response:
    fields, uploads = _version_request("CustomModelVersionCreateFromLatest")
    return json_response(create_version(emu, customModelId, fields, uploads, from_latest=True), 201)


def _version_request(schema: str) -> tuple[VersionFields, list[Upload]]:
    """Fields and file/filePath pairs of a version upload, multipart or (without files) JSON."""
    if request.mimetype == JSON:
        body = json_body()
        if "isMajorUpdate" in body:
            body["isMajorUpdate"] = _is_major(body["isMajorUpdate"])
        if isinstance(body.get("filesToDelete"), str):
            body["filesToDelete"] = [body["filesToDelete"]]
        return _version_fields(check_body(current_emulator().reference, schema, body)), []
    form = {key: request.form.getlist(key) for key in request.form}
    if "isMajorUpdate" in form:
        form["isMajorUpdate"] = [_is_major(v) for v in form["isMajorUpdate"]]
    reference = current_emulator().reference
    fields = _version_fields(check_body(reference, schema, coerce_form(reference, schema, form)))
    files = request.files.getlist("file")
    paths = request.form.getlist("filePath")
    if len(files) > API_MAX_FILES:
        raise invalid(f"At most {API_MAX_FILES} files per request", {"file": f"at most {API_MAX_FILES} files"})
    if len(files) != len(paths):
        raise invalid(
            f"Every file needs a filePath (got {len(files)} file and {len(paths)} filePath parts)",
            {"filePath": "one per file, in the same order"},
        )
    uploads = [Upload(path, file.filename or "", file.stream) for file, path in zip(files, paths, strict=True)]  # type: ignore[arg-type]
    return fields, uploads


def _version_fields(checked: dict[str, Any]) -> VersionFields:
    # Checked by CustomModelVersionCreate or ...CreateFromLatest, the two schemas VersionFields mirrors.
    return cast(VersionFields, checked)


@ROUTES.api("GET", "customModels/{customModelId}/versions/{customModelVersionId}/")
def http_get_model_version(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    return json_response(get_version(emu, customModelId, customModelVersionId))


@ROUTES.api("PATCH", "customModels/{customModelId}/versions/{customModelVersionId}/")
def http_update_model_version(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    body = checked_body(CustomModelVersionMetadataUpdate)
    return json_response(update_version(emu, customModelId, customModelVersionId, body))


@ROUTES.api("GET", "customModels/{customModelId}/versions/{customModelVersionId}/download/")
def http_download_version(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    archive, name = version_zip(emu, customModelId, customModelVersionId)
    return send_file(archive, mimetype="application/zip", as_attachment=True, download_name=name)


@ROUTES.api("POST", "customModels/{customModelId}/versions/{customModelVersionId}/dependencyBuild/")
def http_start_build(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    base = api_url("")
    return json_response(start_build(emu, customModelId, customModelVersionId, base), 202)


@ROUTES.api("GET", "customModels/{customModelId}/versions/{customModelVersionId}/dependencyBuild/")
def http_get_build(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    return json_response(get_build(emu, customModelId, customModelVersionId, api_url("")))


@ROUTES.api("DELETE", "customModels/{customModelId}/versions/{customModelVersionId}/dependencyBuild/")
def http_cancel_build(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    cancel_build(emu, customModelId, customModelVersionId)
    return no_content()


@ROUTES.api("GET", "customModels/{customModelId}/versions/{customModelVersionId}/dependencyBuildLog/")
def http_get_build_log(emu: Emulator, query: Query, customModelId: str, customModelVersionId: str) -> Response:
    return json_response(build_log(emu, customModelId, customModelVersionId))


def _is_major(value: Any) -> Any:
    """isMajorUpdate as the enum spells it, whatever the case or type the client used."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    return value
