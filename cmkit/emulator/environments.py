"""Execution environments and their versions: docker contexts, built in the background.

A version's upload (zip or tar.gz holding a top-level Dockerfile) is kept as uploaded (for
`download/`) and extracted to `environments/<versionId>/context`, the folder the runtime builds
and model tests use as their environment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from flask import Response, request, send_file

from cmkit.emulator.bodies import (
    ExecutionEnvironmentCreate,
    ExecutionEnvironmentUpdate,
    ExecutionEnvironmentVersionCreate,
)
from cmkit.emulator.common import USER, new_id, now, shape
from cmkit.emulator.contexts import extract_context
from cmkit.emulator.documents import (
    Environment,
    EnvironmentResponse,
    EnvironmentVersion,
    Internal,
    LatestVersions,
    changes,
)
from cmkit.emulator.errors import ErrorResponse, invalid, not_found
from cmkit.emulator.http import (
    Query,
    Routes,
    api_url,
    checked_body,
    form_fields,
    get_or_404,
    json_response,
    no_content,
    page,
)
from cmkit.emulator.jobs import JobFailed
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import INTERRUPTED
from cmkit.emulator.store import HashingFile, Kind, Resource
from cmkit.emulator.validation import check_ids, file_name, safe_id
from cmkit.envcontext import context_files, zip_context

KIND: Kind[Environment] = Kind("environment")
VERSION_KIND: Kind[EnvironmentVersion] = Kind("environmentVersion")
FINAL_BUILD_STATUSES = ("success", "failed")
SEED_META_KEY = "seedEnvironmentId"
SEED_NAME = "[cmkit] Python 3.11"


# -- environments --------------------------------------------------------------------------------


def create(emu: Emulator, body: ExecutionEnvironmentCreate) -> str:
    check_ids(body, ["environmentId"])  # ids name folders and URLs: nothing but an id passes
    ident = body.get("environmentId") or new_id()
    doc: Environment = {
        "id": ident,
        "name": body["name"],
        "description": body.get("description", ""),
        "programmingLanguage": body.get("programmingLanguage", "other"),
        "isPublic": body.get("isPublic", False),
        "useCases": body.get("useCases", ["customModel"]),
        "created": now(),
        "username": USER.username,
        "deploymentsCount": 0,
        "requiredMetadataKeys": body.get("requiredMetadataKeys", []),
    }
    with emu.store.transaction():
        if emu.store.get(KIND, ident, include_deleted=True):
            raise ErrorResponse(409, f"An environment with the ID {ident} already exists")
        emu.store.insert(KIND, ident, doc)
    return ident


def _environment(emu: Emulator, ident: str) -> Resource[Environment]:
    return get_or_404(emu, KIND, ident, "Execution environment")


def render(emu: Emulator, resource: Resource[Environment]) -> EnvironmentResponse:
    versions = emu.store.list(VERSION_KIND, resource.id)
    latest = versions[-1] if versions else None
    successful = [v for v in versions if v.doc["buildStatus"] == "success"]
    # The reference marks both required, but an environment without versions has neither, and
    # DataRobot's client accepts them absent, never null: leave them out until they exist.
    shown = LatestVersions()
    if latest:
        shown["latestVersion"] = render_version(emu, latest)
    if successful:
        shown["latestSuccessfulVersion"] = render_version(emu, successful[-1])
    doc: EnvironmentResponse = {**resource.doc, **shown}
    return shape(doc, emu.reference.schema("ExecutionEnvironmentResponse"))


def get(emu: Emulator, ident: str) -> EnvironmentResponse:
    return render(emu, _environment(emu, ident))


def list_environments(emu: Emulator, search_for: str | None, use_case: str | None) -> list[EnvironmentResponse]:
    found = []
    for resource in reversed(emu.store.list(KIND)):
        doc = resource.doc
        text = f"{doc['name']}\n{doc['description']}".lower()
        if search_for and search_for.lower() not in text:
            continue
        if use_case and use_case not in doc["useCases"]:
            continue
        found.append(render(emu, resource))
    return found


def update(emu: Emulator, ident: str, body: ExecutionEnvironmentUpdate) -> EnvironmentResponse:
    _environment(emu, ident)
    emu.store.update(KIND, ident, changes(Environment, body))
    return get(emu, ident)


def delete(emu: Emulator, ident: str) -> None:
    _environment(emu, ident)
    emu.store.delete(KIND, ident)


# -- versions ------------------------------------------------------------------------------------


def create_version(
    emu: Emulator,
    env_id: str,
    fields: ExecutionEnvironmentVersionCreate,
    context: HashingFile | None,
    context_name: str | None,
    image_upload: bool,
) -> str:
    """Store and extract the docker context, then build it in the background; the version id."""
    _environment(emu, env_id)
    check_ids(fields, ["environmentVersionId"])  # it names the context's folder: ids only
    ident = fields.get("environmentVersionId") or new_id()
    if emu.store.get(VERSION_KIND, ident, include_deleted=True):
        raise ErrorResponse(409, f"An environment version with the ID {ident} already exists")
    if image_upload:
        raise invalid(
            "The emulator cannot load pre-built images; upload a docker context instead",
            {"dockerImage": "not supported"},
        )
    if fields.get("dockerImageUri"):
        raise invalid(
            "The emulator does not pull images; upload a docker context instead", {"dockerImageUri": "not supported"}
        )
    if context is None:
        raise invalid("A docker context is required", {"dockerContext": "is required"})
    # Unpacked in a staging folder and moved into place only once whole and valid: a refused
    # context leaves nothing behind, neither files nor a blob.
    staging = Path(tempfile.mkdtemp(prefix="context-", dir=emu.dir("tmp")))
    try:
        context.flush()
        try:
            extract_context(context.path, staging / "context", emu.settings.limits)  # ErrorResponse when refused
        except OSError as exc:
            reason = f"it could not be unpacked ({exc.strerror or exc})"
            raise invalid(f"Invalid docker context: {reason}", {"dockerContext": reason}) from None
        blob = emu.store.blobs.ingest(context)
        folder = emu.dir("environments", safe_id(ident))
        shutil.rmtree(folder / "context", ignore_errors=True)
        os.replace(staging / "context", folder / "context")
    finally:
        context.close()
        shutil.rmtree(staging, ignore_errors=True)
    doc: EnvironmentVersion = {
        "id": ident,
        "environmentId": env_id,
        "label": fields.get("label", ""),
        "description": fields.get("description", ""),
        "buildStatus": "submitted",
        "buildId": None,
        "created": now(),
        "dockerContext": blob.sha256[:24],
        "dockerContextSize": blob.size,
        "dockerImage": None,
        "dockerImageSize": None,
        "imageId": new_id(),
        "sourceDockerImageUri": None,
    }
    internal = Internal(sha256=blob.sha256, fileName=file_name(context_name, "context.zip"), error="")
    with emu.store.transaction():
        if emu.store.get(VERSION_KIND, ident, include_deleted=True):  # a racing upload took the id
            raise ErrorResponse(409, f"An environment version with the ID {ident} already exists")
        emu.store.insert(VERSION_KIND, ident, doc, parent=env_id, internal=internal)
    submit_build(emu, ident)
    return ident


def submit_build(emu: Emulator, version_id: str) -> None:
    emu.jobs.submit(f"environment-build:{version_id}", lambda cancel: _build(emu, version_id, cancel))


def _build(emu: Emulator, version_id: str, cancel: threading.Event) -> None:
    log = emu.logs.writer(VERSION_KIND, version_id)
    emu.store.update(VERSION_KIND, version_id, EnvironmentVersion(buildStatus="processing", buildId=new_id()))
    log(f"building environment version {version_id} with the {emu.engine.runtime} runtime")
    try:
        built = emu.engine.build_environment(context_dir(emu, version_id), log)
    except JobFailed as exc:
        log(f"error: {exc}")
        emu.store.update(VERSION_KIND, version_id, EnvironmentVersion(buildStatus="failed"), Internal(error=str(exc)))
        return
    except Exception as exc:  # Docker went away, disk full...: the build failed, say why
        log(f"error: {exc}")
        failed = EnvironmentVersion(buildStatus="failed")
        emu.store.update(VERSION_KIND, version_id, failed, Internal(error=f"build error: {exc}"))
        return
    log("build succeeded")
    built_version = EnvironmentVersion(buildStatus="success", dockerImageSize=built.size)
    emu.store.update(VERSION_KIND, version_id, built_version, Internal(image=built.image))


def context_dir(emu: Emulator, version_id: str) -> Path:
    return emu.dir("environments", safe_id(version_id)) / "context"


def _version(emu: Emulator, env_id: str, version_id: str) -> Resource[EnvironmentVersion]:
    _environment(emu, env_id)
    return get_or_404(emu, VERSION_KIND, version_id, "Execution environment version", parent=env_id)


def find_version(emu: Emulator, version_id: str) -> Resource[EnvironmentVersion] | None:
    """A version by id alone (model versions name only the version sometimes)."""
    return emu.store.get(VERSION_KIND, version_id)


def latest_successful(emu: Emulator, env_id: str) -> Resource[EnvironmentVersion] | None:
    built = [v for v in emu.store.list(VERSION_KIND, env_id) if v.doc["buildStatus"] == "success"]
    return built[-1] if built else None


def render_version(emu: Emulator, resource: Resource[EnvironmentVersion]) -> EnvironmentVersion:
    return shape(resource.doc, emu.reference.schema("ExecutionEnvironmentVersionResponse"))


def get_version(emu: Emulator, env_id: str, version_id: str) -> EnvironmentVersion:
    return render_version(emu, _version(emu, env_id, version_id))


def list_versions(emu: Emulator, env_id: str, build_status: str | None, search: str | None) -> list[EnvironmentVersion]:
    _environment(emu, env_id)
    found = []
    for resource in reversed(emu.store.list(VERSION_KIND, env_id)):
        if build_status and resource.doc["buildStatus"] != build_status:
            continue
        if search and search.lower() not in f"{resource.doc['label']}\n{resource.doc['description']}".lower():
            continue
        found.append(render_version(emu, resource))
    return found


def build_log(emu: Emulator, env_id: str, version_id: str) -> dict[str, str]:
    resource = _version(emu, env_id, version_id)
    return {"log": emu.logs.read(VERSION_KIND, version_id), "error": resource.internal.get("error", "")}


def download(emu: Emulator, env_id: str, version_id: str, image_file: bool) -> tuple[Path, str]:
    """The docker context as uploaded: (file, download name)."""
    resource = _version(emu, env_id, version_id)
    if image_file:
        raise not_found("Docker image file of environment version", version_id)
    return emu.store.blobs.path(resource.internal["sha256"]), resource.internal["fileName"]


def recover(emu: Emulator) -> None:
    for resource in emu.store.list(VERSION_KIND):
        if resource.doc["buildStatus"] not in FINAL_BUILD_STATUSES:
            emu.logs.writer(VERSION_KIND, resource.id)(f"error: {INTERRUPTED}")
            emu.store.update(
                VERSION_KIND, resource.id, EnvironmentVersion(buildStatus="failed"), Internal(error=INTERRUPTED)
            )


# -- the seeded environment ----------------------------------------------------------------------


def seed(emu: Emulator) -> None:
    """At first start, create one Python environment from cmkit's template and build it.

    Later starts rebuild it only when no version of it is built or building (an interrupted
    first build, say), so a fresh emulator always ends up with a ready environment.
    """
    folder = emu.settings.seed_environment
    if folder is None or not (folder / "Dockerfile").is_file():
        return
    env_id = emu.store.meta(SEED_META_KEY)
    if env_id and emu.store.get(KIND, env_id):
        states = [v.doc["buildStatus"] for v in emu.store.list(VERSION_KIND, env_id)]
        if "success" in states or any(s not in FINAL_BUILD_STATUSES for s in states):
            return
    else:
        env_id = create(
            emu,
            {
                "name": SEED_NAME,
                "description": "cmkit's default environment (templates/environments/python3): "
                "Python 3.11, Flask, gunicorn, pandas, NumPy.",
                "programmingLanguage": "python",
                "useCases": ["customModel"],
            },
        )
        emu.store.set_meta(SEED_META_KEY, env_id)
    upload = emu.store.blobs.new_upload()
    with zip_context(context_files(folder)) as archive:  # with the runtime, as `cmkit env push` uploads it
        upload.write(archive.read())
    create_version(emu, env_id, {"label": "python3", "description": f"from {folder}"}, upload, "python3.zip", False)


def seeded_environment_id(emu: Emulator) -> str | None:
    return emu.store.meta(SEED_META_KEY)


def newest_built(emu: Emulator, language: str) -> tuple[str, Resource[EnvironmentVersion]] | None:
    """The newest environment of `language` (its programmingLanguage) with a successful build, and that build."""
    for environment in reversed(emu.store.list(KIND)):
        if environment.doc.get("programmingLanguage") == language:
            built = latest_successful(emu, environment.id)
            if built is not None:
                return environment.id, built
    return None


# -- execution environments ----------------------------------------------------------------------

ROUTES = Routes()


@ROUTES.api("GET", "executionEnvironments/")
def http_list_environments(emu: Emulator, query: Query) -> Response:
    return page(list_environments(emu, query.get("searchFor"), query.get("useCases")), query)


@ROUTES.api("POST", "executionEnvironments/")
def http_create_environment(emu: Emulator, query: Query) -> Response:
    ident = create(emu, checked_body(ExecutionEnvironmentCreate))
    return json_response({"id": ident}, 201, {"Location": api_url(f"executionEnvironments/{ident}/")})


@ROUTES.api("GET", "executionEnvironments/{environmentId}/")
def http_get_environment(emu: Emulator, query: Query, environmentId: str) -> Response:
    return json_response(get(emu, environmentId))


@ROUTES.api("PATCH", "executionEnvironments/{environmentId}/")
def http_update_environment(emu: Emulator, query: Query, environmentId: str) -> Response:
    return json_response(update(emu, environmentId, checked_body(ExecutionEnvironmentUpdate)))


@ROUTES.api("DELETE", "executionEnvironments/{environmentId}/")
def http_delete_environment(emu: Emulator, query: Query, environmentId: str) -> Response:
    delete(emu, environmentId)
    return no_content()


@ROUTES.api("GET", "executionEnvironments/{environmentId}/versions/")
def http_list_environment_versions(emu: Emulator, query: Query, environmentId: str) -> Response:
    found = list_versions(emu, environmentId, query.get("buildStatus"), query.get("search"))
    return page(found, query)


@ROUTES.api("POST", "executionEnvironments/{environmentId}/versions/")
def http_create_environment_version(emu: Emulator, query: Query, environmentId: str) -> Response:
    # DataRobot's client names the upload `docker_context`; the reference says `dockerContext`.
    context = request.files.get("dockerContext") or request.files.get("docker_context")
    fields = form_fields(ExecutionEnvironmentVersionCreate, files=("dockerContext", "dockerImage"))
    ident = create_version(
        emu,
        environmentId,
        fields,
        context.stream if context else None,  # type: ignore[arg-type]
        context.filename if context else None,
        image_upload="dockerImage" in request.files,
    )
    location = api_url(f"executionEnvironments/{environmentId}/versions/{ident}/")
    return json_response({"id": ident}, 202, {"Location": location})


@ROUTES.api("GET", "executionEnvironments/{environmentId}/versions/{environmentVersionId}/")
def http_get_environment_version(
    emu: Emulator, query: Query, environmentId: str, environmentVersionId: str
) -> Response:
    return json_response(get_version(emu, environmentId, environmentVersionId))


@ROUTES.api("GET", "executionEnvironments/{environmentId}/versions/{environmentVersionId}/buildLog/")
def http_get_environment_build_log(
    emu: Emulator, query: Query, environmentId: str, environmentVersionId: str
) -> Response:
    return json_response(build_log(emu, environmentId, environmentVersionId))


@ROUTES.api("GET", "executionEnvironments/{environmentId}/versions/{environmentVersionId}/download/")
def http_download_environment_version(
    emu: Emulator, query: Query, environmentId: str, environmentVersionId: str
) -> Response:
    image_file = str(query.get("imageFile", "false")).lower() == "true"
    path, name = download(emu, environmentId, environmentVersionId, image_file)
    return send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=name)
