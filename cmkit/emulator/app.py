"""The Flask application: HTTP onto the resource modules, and nothing more.

Each API route is declared with its path from the reference (`customModels/{customModelId}/`),
so its query parameters are checked against the reference's table before the handler runs.
Every JSON response carries `Content-Type: application/json` exactly (DataRobot's client parses
error bodies only then), errors included.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Request, Response, current_app, request, send_file
from jsonschema import Draft7Validator
from werkzeug.exceptions import HTTPException

from cmkit.bundle import API_MAX_FILES
from cmkit.emulator import datasets, environments, models, status, testing
from cmkit.emulator.errors import ErrorResponse, invalid
from cmkit.emulator.faults import RULE_SCHEMA, SETTINGS_SCHEMA, FaultInjector, FaultMiddleware, Journal
from cmkit.emulator.models import Upload
from cmkit.emulator.openapi import openapi_document
from cmkit.emulator.reference import API_PREFIX, Reference
from cmkit.emulator.service import Emulator
from cmkit.emulator.validation import (
    check_body,
    check_query,
    check_schema,
    coerce_form,
    is_id,
    parse_json_object,
)

LOG = logging.getLogger("cmkit.emulator")
ADMIN_PREFIX = "/__emulator__/"
API_VERSION = {"major": 2, "minor": 37, "versionString": "2.37.0", "releasedVersion": "2.37.0"}
JSON = "application/json"
EXTENSION = "cmkit.emulator"
# Room for 1000 file/filePath pairs plus the other fields: a version with more files than the
# API allows still reaches validation (422) instead of the form parser's blunt 413.
MAX_FORM_PARTS = 2 * (API_MAX_FILES + 1) + 100
MAX_TEXT_FIELD = 16 * 1024 * 1024


@dataclass
class Handler:
    method: str
    path: str  # relative to /api/v2/, in the reference's spelling
    view: Callable[..., Response]
    documented: bool  # False for routes the custom-models reference does not describe


ROUTES: list[Handler] = []


def api(
    method: str, path: str, documented: bool = True
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        ROUTES.append(Handler(method, path, view, documented))
        return view

    return register


class ApiRequest(Request):
    """Uploads go straight to the blob store's staging folder, hashed as they arrive."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> Any:
        return _emu().store.blobs.new_upload()


def create_app(emu: Emulator, injector: FaultInjector, journal: Journal) -> Flask:
    """The emulator's WSGI app over `emu`; its faults and journal come from `injector` and `journal`.

    The app's `url_map` is shared with every other app made on the same reference (see
    `_routing`): add no rules to it.
    """
    app = Flask("cmkit.emulator")
    app.request_class = ApiRequest
    app.config.update(
        MAX_CONTENT_LENGTH=None,
        MAX_FORM_PARTS=MAX_FORM_PARTS,
        MAX_FORM_MEMORY_SIZE=MAX_TEXT_FIELD,
        JSON_SORT_KEYS=False,
    )
    app.extensions[EXTENSION] = emu
    app.extensions["cmkit.emulator.faults"] = (injector, journal)
    routing = _routing(emu.reference)
    app.url_map = routing.url_map
    app.view_functions.update(routing.view_functions)
    app.before_request(_authenticate)
    app.register_error_handler(ErrorResponse, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    app.wsgi_app = FaultMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, injector, journal, lambda environ: _token_ok(emu, environ.get("HTTP_AUTHORIZATION", ""))
    )
    return app


@functools.cache
def _routing(reference: Reference) -> Flask:
    """The routes for one reference, compiled once per process and shared by the apps built on it.

    Werkzeug compiles a matcher and a URL builder for each of the ~70 rules when they are added:
    that was nearly all of `create_app`'s time, paid again by every in-process emulator (the fast
    tier builds dozens). The views find their emulator through `current_app`, so nothing in the
    routing belongs to one app.
    """
    app = Flask("cmkit.emulator")
    app.url_map.strict_slashes = False
    for handler in ROUTES:
        _register(app, reference, handler)
    _register_unimplemented(app, reference)
    _register_admin(app)
    return app


def _register(app: Flask, reference: Reference, handler: Handler) -> None:
    spec = reference.route(handler.method, handler.path) if handler.documented else None
    rule = API_PREFIX + re.sub(r"{(\w+)}", r"<\1>", handler.path)

    def view(**path_params: str) -> Response:
        for name, value in path_params.items():
            if not is_id(value):  # no such resource can exist; and ids never reach a path
                raise ErrorResponse(404, f"No resource has the {name} {value[:100]!r}")
        query = check_query(spec, request.args) if spec else {}
        return handler.view(_emu(), query, **path_params)

    app.add_url_rule(rule, f"{handler.method} {handler.path}", view, methods=[handler.method])


def _register_unimplemented(app: Flask, reference: Reference) -> None:
    """Routes of the reference the emulator does not emulate answer 501, not a misleading 404."""
    implemented = {(h.method, h.path) for h in ROUTES}
    missing: dict[str, list[str]] = {}
    for method, path in reference.routes:
        if (method, path) not in implemented:
            missing.setdefault(path, []).append(method)
    for path, methods in missing.items():
        rule = API_PREFIX + re.sub(r"{(\w+)}", r"<\1>", path)

        def view(_path: str = path, **path_params: str) -> Response:
            message = f"The emulator does not implement {request.method} {_path} (see docs/emulator.md)"
            return json_response({"message": message}, 501)

        app.add_url_rule(rule, f"unimplemented {path}", view, methods=methods)


# -- plumbing ------------------------------------------------------------------------------------


def _emu() -> Emulator:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # allow_nan=False: NaN and Infinity are not JSON, and clients choke on them.
    response = Response(json.dumps(doc, allow_nan=False), status=status, headers=headers)
    response.headers["Content-Type"] = JSON  # exactly: no charset suffix
    return response


def no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type (Flask's default is text/html)
    return response


def api_url(path: str) -> str:
    """An absolute URL under /api/v2/ for this server, as the client reached it."""
    return f"{request.host_url}{API_PREFIX.lstrip('/')}{path}"


def page(items: list[Any], query: dict[str, Any]) -> Response:
    """The reference's pagination: count, totalCount, data, absolute next/previous URLs."""
    offset, limit = query["offset"], query["limit"]
    total = len(items)
    data = items[offset : offset + limit] if limit else items[offset:]

    def link(new_offset: int) -> str:
        args = request.args.to_dict(flat=False)
        args.update(offset=[str(new_offset)], limit=[str(limit)])
        return f"{request.base_url}?{urlencode(args, doseq=True)}"

    has_next = bool(limit) and offset + limit < total
    return json_response(
        {
            "count": len(data),
            "totalCount": total,
            "next": link(offset + limit) if has_next else None,
            "previous": link(max(0, offset - limit)) if offset > 0 and limit else None,
            "data": data,
        }
    )


def json_body(schema: str | None = None) -> dict[str, Any]:
    """The JSON object body (an empty body counts as `{}`), checked against a reference schema.

    A PATCH body may only hold the fields its schema lists (the writable fields).
    """
    body = parse_json_object(request.get_data(cache=True))
    return check_body(_emu().reference, schema, body, writable=request.method == "PATCH") if schema else body


def form_fields(schema: str, files: tuple[str, ...] = ()) -> dict[str, Any]:
    """Multipart text fields, typed and checked against a reference schema."""
    form = {key: request.form.getlist(key) for key in request.form}
    fields = coerce_form(_emu().reference, schema, form, skip=files)
    return check_body(_emu().reference, schema, fields)


def _token_ok(emu: Emulator, header: str) -> bool:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    # An empty token never passes, whatever the settings hold (`--token ""` is refused at start).
    return (
        scheme.lower() in ("bearer", "token")
        and bool(token)
        and any(t and hmac.compare_digest(token.encode(), t.encode()) for t in emu.settings.tokens)
    )


def _authenticate() -> Response | None:
    path = request.path
    if not (path.startswith(API_PREFIX) or path.startswith(ADMIN_PREFIX)):
        return None
    if not _token_ok(_emu(), request.headers.get("Authorization", "")):
        message = "Missing or invalid API token: send 'Authorization: Bearer <token>' or 'Token <token>'"
        return json_response({"message": message}, 401, {"WWW-Authenticate": 'Bearer realm="cmkit emulator"'})
    return None


def _api_error(exc: ErrorResponse) -> Response:
    return json_response(exc.body(), exc.status, exc.headers)


def _http_error(exc: HTTPException) -> Response:
    message = exc.description or exc.name
    if exc.code == 404:
        message = f"No such route: {request.method} {request.path}"
    elif exc.code == 405:
        message = f"Method {request.method} is not allowed on {request.path}"
    response = json_response({"message": message}, exc.code or 500)
    if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _internal_error(exc: Exception) -> Response:
    LOG.exception("internal error on %s %s", request.method, request.path)
    return json_response({"message": f"Internal emulator error: {exc.__class__.__name__}: {exc}"}, 500)


def _is_major(value: Any) -> Any:
    """isMajorUpdate as the enum spells it, whatever the case or type the client used."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    return value


# -- service -------------------------------------------------------------------------------------


@api("GET", "version/", documented=False)
def get_version(emu: Emulator, query: dict[str, Any]) -> Response:
    return json_response(API_VERSION)


@api("GET", "ping/", documented=False)
def ping(emu: Emulator, query: dict[str, Any]) -> Response:
    return json_response({"response": "pong"})


@api("GET", "status/{statusId}/", documented=False)
def get_status(emu: Emulator, query: dict[str, Any], statusId: str) -> Response:
    doc, location = status.get_status(emu, statusId)
    if location:
        return json_response(doc, 303, {"Location": api_url(location)})
    return json_response(doc)


@api("GET", "customModelLimits/")
def limits(emu: Emulator, query: dict[str, Any]) -> Response:
    return json_response(
        {
            "maxCustomModelTestingParallelUsers": 1,
            "maxCustomModelContainerSize": 15032385536,
            "desiredCustomModelContainerSize": 4294967296,
            "maxCustomModelReplicasPerDeployment": 8,
        }
    )


# -- datasets (outside the custom-models chapter) ------------------------------------------------


@api("POST", "datasets/fromFile/", documented=False)
def create_dataset(emu: Emulator, query: dict[str, Any]) -> Response:
    file = request.files.get("file")
    body = datasets.create_from_file(emu, file.stream if file else None, file.filename if file else None)  # type: ignore[arg-type]
    return json_response(body, 202, {"Location": api_url(f"status/{body['statusId']}/")})


@api("GET", "datasets/{datasetId}/", documented=False)
def get_dataset(emu: Emulator, query: dict[str, Any], datasetId: str) -> Response:
    return json_response(datasets.get(emu, datasetId))


# -- custom models -------------------------------------------------------------------------------


@api("GET", "customModels/")
def list_models(emu: Emulator, query: dict[str, Any]) -> Response:
    return page(models.list_models(emu, query), query)


@api("POST", "customModels/")
def create_model(emu: Emulator, query: dict[str, Any]) -> Response:
    return json_response(models.create(emu, json_body("CustomModelCreate")), 201)


@api("GET", "customModels/{customModelId}/")
def get_model(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    return json_response(models.get(emu, customModelId))


@api("PATCH", "customModels/{customModelId}/")
def update_model(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    # 200, as DataRobot's servers answer (the reference's table says 201): the custom-models
    # Action accepts only 200, DataRobot's client any 2xx. See docs/emulator.md.
    return json_response(models.update(emu, customModelId, json_body("CustomModelUpdate")), 200)


@api("DELETE", "customModels/{customModelId}/")
def delete_model(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    models.delete(emu, customModelId)
    return no_content()


@api("GET", "customModels/{customModelId}/download/")
def download_model(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    archive, name = models.version_zip(emu, customModelId)
    return send_file(archive, mimetype="application/zip", as_attachment=True, download_name=name)


@api("GET", "customModels/{customModelId}/accessControl/")
def get_access(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    return page(models.access_list(emu, customModelId), query)


@api("PATCH", "customModels/{customModelId}/accessControl/")
def share_model(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    models.share(emu, customModelId, json_body("SharingUpdateOrRemoveWithGrant"))
    return no_content()


# -- custom model versions -----------------------------------------------------------------------


@api("GET", "customModels/{customModelId}/versions/")
def list_versions(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    return page(models.list_versions(emu, customModelId, query.get("mainBranchCommitSha")), query)


@api("POST", "customModels/{customModelId}/versions/")
def create_version(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    fields, uploads = _version_request("CustomModelVersionCreate")
    return json_response(models.create_version(emu, customModelId, fields, uploads, from_latest=False), 201)


@api("PATCH", "customModels/{customModelId}/versions/")
def create_version_from_latest(emu: Emulator, query: dict[str, Any], customModelId: str) -> Response:
    fields, uploads = _version_request("CustomModelVersionCreateFromLatest")
    return json_response(models.create_version(emu, customModelId, fields, uploads, from_latest=True), 201)


def _version_request(schema: str) -> tuple[dict[str, Any], list[Upload]]:
    """Fields and file/filePath pairs of a version upload, multipart or (without files) JSON."""
    if request.mimetype == JSON:
        body = json_body()
        if "isMajorUpdate" in body:
            body["isMajorUpdate"] = _is_major(body["isMajorUpdate"])
        if isinstance(body.get("filesToDelete"), str):
            body["filesToDelete"] = [body["filesToDelete"]]
        return check_body(_emu().reference, schema, body), []
    form = {key: request.form.getlist(key) for key in request.form}
    if "isMajorUpdate" in form:
        form["isMajorUpdate"] = [_is_major(v) for v in form["isMajorUpdate"]]
    reference = _emu().reference
    fields = check_body(reference, schema, coerce_form(reference, schema, form))
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


@api("GET", "customModels/{customModelId}/versions/{customModelVersionId}/")
def get_model_version(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    return json_response(models.get_version(emu, customModelId, customModelVersionId))


@api("PATCH", "customModels/{customModelId}/versions/{customModelVersionId}/")
def update_model_version(
    emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str
) -> Response:
    body = json_body("CustomModelVersionMetadataUpdate")
    return json_response(models.update_version(emu, customModelId, customModelVersionId, body))


@api("GET", "customModels/{customModelId}/versions/{customModelVersionId}/download/")
def download_version(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    archive, name = models.version_zip(emu, customModelId, customModelVersionId)
    return send_file(archive, mimetype="application/zip", as_attachment=True, download_name=name)


@api("POST", "customModels/{customModelId}/versions/{customModelVersionId}/dependencyBuild/")
def start_build(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    base = api_url("")
    return json_response(models.start_build(emu, customModelId, customModelVersionId, base), 202)


@api("GET", "customModels/{customModelId}/versions/{customModelVersionId}/dependencyBuild/")
def get_build(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    return json_response(models.get_build(emu, customModelId, customModelVersionId, api_url("")))


@api("DELETE", "customModels/{customModelId}/versions/{customModelVersionId}/dependencyBuild/")
def cancel_build(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    models.cancel_build(emu, customModelId, customModelVersionId)
    return no_content()


@api("GET", "customModels/{customModelId}/versions/{customModelVersionId}/dependencyBuildLog/")
def get_build_log(emu: Emulator, query: dict[str, Any], customModelId: str, customModelVersionId: str) -> Response:
    return json_response(models.build_log(emu, customModelId, customModelVersionId))


# -- custom model deployments (DataRobot's deployment chapter) -----------------------------------


@api("GET", "customModelDeployments/", documented=False)
def list_custom_model_deployments(emu: Emulator, query: dict[str, Any]) -> Response:
    """The emulator never deploys: always an empty page (clients list it before deleting a model)."""
    return page([], {"offset": _int_arg("offset", 0), "limit": _int_arg("limit", 20)})


def _int_arg(name: str, default: int) -> int:
    value = request.args.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise invalid(f"{name} must be a non-negative integer", {name: "must be a non-negative integer"})
    return int(value)


# -- custom model tests --------------------------------------------------------------------------


@api("POST", "customModelTests/")
def create_test(emu: Emulator, query: dict[str, Any]) -> Response:
    status_id = testing.create(emu, json_body("CustomModelTests"))
    return json_response({"statusId": status_id}, 202, {"Location": api_url(f"status/{status_id}/")})


@api("GET", "customModelTests/")
def list_tests(emu: Emulator, query: dict[str, Any]) -> Response:
    return page(testing.list_tests(emu, query["customModelId"]), query)


@api("GET", "customModelTests/{customModelTestId}/")
def get_test(emu: Emulator, query: dict[str, Any], customModelTestId: str) -> Response:
    return json_response(testing.get(emu, customModelTestId))


@api("DELETE", "customModelTests/{customModelTestId}/")
def cancel_test(emu: Emulator, query: dict[str, Any], customModelTestId: str) -> Response:
    testing.cancel(emu, customModelTestId)
    return no_content()


@api("GET", "customModelTests/{customModelTestId}/log/")
def get_test_log(emu: Emulator, query: dict[str, Any], customModelTestId: str) -> Response:
    text = testing.log_text(emu, customModelTestId)
    disposition = f"attachment;filename=testing-{customModelTestId}.log"
    return Response(text, mimetype="text/plain", headers={"Content-Disposition": disposition})


@api("GET", "customModelTests/{customModelTestId}/tail/")
def get_test_tail(emu: Emulator, query: dict[str, Any], customModelTestId: str) -> Response:
    return json_response(testing.log_tail(emu, customModelTestId, query["lines"]))


# -- execution environments ----------------------------------------------------------------------


@api("GET", "executionEnvironments/")
def list_environments(emu: Emulator, query: dict[str, Any]) -> Response:
    return page(environments.list_environments(emu, query.get("searchFor"), query.get("useCases")), query)


@api("POST", "executionEnvironments/")
def create_environment(emu: Emulator, query: dict[str, Any]) -> Response:
    ident = environments.create(emu, json_body("ExecutionEnvironmentCreate"))
    return json_response({"id": ident}, 201, {"Location": api_url(f"executionEnvironments/{ident}/")})


@api("GET", "executionEnvironments/{environmentId}/")
def get_environment(emu: Emulator, query: dict[str, Any], environmentId: str) -> Response:
    return json_response(environments.get(emu, environmentId))


@api("PATCH", "executionEnvironments/{environmentId}/")
def update_environment(emu: Emulator, query: dict[str, Any], environmentId: str) -> Response:
    return json_response(environments.update(emu, environmentId, json_body("ExecutionEnvironmentUpdate")))


@api("DELETE", "executionEnvironments/{environmentId}/")
def delete_environment(emu: Emulator, query: dict[str, Any], environmentId: str) -> Response:
    environments.delete(emu, environmentId)
    return no_content()


@api("GET", "executionEnvironments/{environmentId}/versions/")
def list_environment_versions(emu: Emulator, query: dict[str, Any], environmentId: str) -> Response:
    found = environments.list_versions(emu, environmentId, query.get("buildStatus"), query.get("search"))
    return page(found, query)


@api("POST", "executionEnvironments/{environmentId}/versions/")
def create_environment_version(emu: Emulator, query: dict[str, Any], environmentId: str) -> Response:
    # DataRobot's client names the upload `docker_context`; the reference says `dockerContext`.
    context = request.files.get("dockerContext") or request.files.get("docker_context")
    fields = form_fields("ExecutionEnvironmentVersionCreate", files=("dockerContext", "dockerImage"))
    ident = environments.create_version(
        emu,
        environmentId,
        fields,
        context.stream if context else None,  # type: ignore[arg-type]
        context.filename if context else None,
        image_upload="dockerImage" in request.files,
    )
    location = api_url(f"executionEnvironments/{environmentId}/versions/{ident}/")
    return json_response({"id": ident}, 202, {"Location": location})


@api("GET", "executionEnvironments/{environmentId}/versions/{environmentVersionId}/")
def get_environment_version(
    emu: Emulator, query: dict[str, Any], environmentId: str, environmentVersionId: str
) -> Response:
    return json_response(environments.get_version(emu, environmentId, environmentVersionId))


@api("GET", "executionEnvironments/{environmentId}/versions/{environmentVersionId}/buildLog/")
def get_environment_build_log(
    emu: Emulator, query: dict[str, Any], environmentId: str, environmentVersionId: str
) -> Response:
    return json_response(environments.build_log(emu, environmentId, environmentVersionId))


@api("GET", "executionEnvironments/{environmentId}/versions/{environmentVersionId}/download/")
def download_environment_version(
    emu: Emulator, query: dict[str, Any], environmentId: str, environmentVersionId: str
) -> Response:
    image_file = str(query.get("imageFile", "false")).lower() == "true"
    path, name = environments.download(emu, environmentId, environmentVersionId, image_file)
    return send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=name)


# -- admin routes (outside the API: faults, journal, info) ---------------------------------------


def _register_admin(app: Flask) -> None:
    app.add_url_rule(f"{ADMIN_PREFIX}info", "admin info", _admin_info, methods=["GET"])
    app.add_url_rule(f"{ADMIN_PREFIX}faults", "admin faults", _admin_faults, methods=["GET", "PUT", "POST", "DELETE"])
    app.add_url_rule(f"{ADMIN_PREFIX}requests", "admin requests", _admin_requests, methods=["GET", "DELETE"])
    chapter_routes.register_admin(app)
    app.add_url_rule(f"{ADMIN_PREFIX}openapi.json", "admin openapi", _admin_openapi, methods=["GET"])


def _admin_openapi() -> Response:
    """The emulator's own OpenAPI document: the reference's schemas, for the routes it implements."""
    implemented = [(h.method, h.path) for h in ROUTES if h.documented]
    return json_response(openapi_document(_emu().reference, implemented, server=api_url("")))


def _faults() -> tuple[FaultInjector, Journal]:
    return current_app.extensions["cmkit.emulator.faults"]  # type: ignore[no-any-return]


def _admin_info() -> Response:
    emu = _emu()
    return json_response(
        {
            "endpoint": api_url(""),
            "dataDir": str(emu.settings.data_dir),
            "runtime": emu.runtime.name,
            "environmentId": environments.seeded_environment_id(emu),
            "jobs": emu.jobs.active(),
        }
    )


def _admin_faults() -> Response:
    injector, _ = _faults()
    if request.method == "DELETE":
        injector.clear()
        return no_content()
    if request.method == "GET":
        return json_response(injector.settings())
    body = json_body()
    if request.method == "PUT":
        check_schema(_SETTINGS_VALIDATOR, body)
        injector.configure(rate=body.get("rate"), status=body.get("status"), retry_after=body.get("retryAfter", ...))
        return json_response(injector.settings())
    check_schema(_RULE_VALIDATOR, body)
    try:
        rule = injector.add_rule(
            action=body.get("action", "status"),
            status=body.get("status") or 503,
            count=body.get("count", 1),
            method=body.get("method"),
            path=body.get("path"),
            retry_after=body.get("retryAfter", 1),
        )
    except re.error as exc:
        raise invalid(f"path is not a valid regular expression: {exc}", {"path": "invalid regex"}) from None
    return json_response(rule.to_dict(), 201)


_RULE_VALIDATOR = Draft7Validator(RULE_SCHEMA)
_SETTINGS_VALIDATOR = Draft7Validator(SETTINGS_SCHEMA)


def _admin_requests() -> Response:
    _, journal = _faults()
    if request.method == "DELETE":
        journal.clear()
        return no_content()
    since = request.args.get("since", "0")
    if not since.isdigit():
        raise invalid("since must be a sequence number", {"since": "must be a non-negative integer"})
    return json_response({"requests": journal.entries(int(since))})


# The rest of the chapter lives in its own module; importing it registers its routes.
from cmkit.emulator import chapter_routes  # noqa: E402
