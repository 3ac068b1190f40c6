"""The Flask application: HTTP onto the resource modules, and nothing more.

Each API route is declared with its path from the reference (`customModels/{customModelId}/`),
so its query parameters are checked against the reference's table before the handler runs.
Every JSON response carries `Content-Type: application/json` exactly (DataRobot's client parses
error bodies only then), errors included.
"""

from __future__ import annotations

import errno
import functools
import hmac
import logging
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from flask import Flask, Request, Response, current_app, request
from jsonschema import Draft7Validator
from werkzeug.exceptions import HTTPException

from cmkit.bundle import API_MAX_FILES
from cmkit.emulator import (
    conversions,
    copies,
    datasets,
    deployments,
    environment_admin,
    environments,
    featureimpact,
    modelpackages,
    models,
    repositories,
    status,
    testing,
    training,
)
from cmkit.emulator.errors import ErrorResponse, invalid
from cmkit.emulator.faults import RULE_SCHEMA, SETTINGS_SCHEMA, FaultInjector, FaultMiddleware, Journal
from cmkit.emulator.http import (
    ADMIN_PREFIX,
    EXTENSION,
    PREDICTION_PREFIX,
    AdminRoute,
    Query,
    Route,
    Routes,
    api_url,
    current_emulator,
    json_body,
    json_response,
    no_content,
)
from cmkit.emulator.openapi import openapi_document
from cmkit.emulator.reference import API_PREFIX, Reference
from cmkit.emulator.service import Emulator
from cmkit.emulator.validation import check_query, check_schema, is_id

LOG = logging.getLogger("cmkit.emulator")
# The server version the current official client (datarobot 3.20) expects: an older one makes
# every `dr.Client()` warn "Client version is ahead of server version".
API_VERSION = {"major": 2, "minor": 49, "versionString": "2.49.0", "releasedVersion": "2.49.0"}
# Room for 1000 file/filePath pairs plus the other fields: a version with more files than the
# API allows still reaches validation (422) instead of the form parser's blunt 413.
MAX_FORM_PARTS = 2 * (API_MAX_FILES + 1) + 100
MAX_TEXT_FIELD = 16 * 1024 * 1024


ROUTES = Routes()  # the service's own routes (version, ping, limits, deployments) and the admin routes
# The modules whose routes make the API, in the order their routes are declared. A new resource
# module exposes `ROUTES = Routes()` and is added here: nothing registers itself.
RESOURCES: tuple[ModuleType, ...] = (
    status,
    datasets,
    models,
    testing,
    environments,
    training,
    featureimpact,
    copies,
    repositories,
    conversions,
    environment_admin,
    modelpackages,
    deployments,
)


def api_routes() -> Iterator[Route]:
    """Every API route of the emulator: the service's, then each resource module's."""
    for routes in _tables():
        yield from routes.api_routes


def _admin_routes() -> Iterator[AdminRoute]:
    for routes in _tables():
        yield from routes.admin_routes


def _tables() -> Iterator[Routes]:
    yield ROUTES
    for module in RESOURCES:
        table = module.ROUTES
        assert isinstance(table, Routes), f"{module.__name__}.ROUTES is not a routes table"
        yield table


class ApiRequest(Request):
    """Uploads go straight to a staging folder of their own request, hashed as they arrive.

    The folder goes when the request closes, whatever the outcome: a form refused half-way
    (413, too many parts) never hands its files to anyone who would close them, and they
    stayed in the data dir's tmp until a restart. An accepted file was moved out (a rename).
    """

    _staging: Path | None = None

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> Any:
        blobs = current_emulator().store.blobs
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="request-", dir=blobs.staging))
        return blobs.new_upload(self._staging)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)
                self._staging = None


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
    for route in api_routes():
        _register(app, reference, route)
    _register_unimplemented(app, reference)
    for admin in _admin_routes():
        app.add_url_rule(f"{ADMIN_PREFIX}{admin.name}", f"admin {admin.name}", admin.view, methods=list(admin.methods))
    return app


def _register(app: Flask, reference: Reference, route: Route) -> None:
    spec = reference.route(route.method, route.path) if route.documented else None
    rule = route.prefix + re.sub(r"{(\w+)}", r"<\1>", route.path)

    def view(**path_params: str) -> Response:
        for name, value in path_params.items():
            if not is_id(value):  # no such resource can exist; and ids never reach a path
                raise ErrorResponse(404, f"No resource has the {name} {value[:100]!r}")
        # The reference's table types the values (validation._query_value): Query's shape.
        query: Query = check_query(spec, request.args) if spec else {}  # type: ignore[assignment]
        return route.view(current_emulator(), query, **path_params)

    name = f"{route.method} {route.path}" if route.prefix == API_PREFIX else f"{route.method} {rule}"
    app.add_url_rule(rule, name, view, methods=[route.method])


def _register_unimplemented(app: Flask, reference: Reference) -> None:
    """Routes of the reference the emulator does not emulate answer 501, not a misleading 404."""
    implemented = {(route.method, route.path) for route in api_routes()}
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
    if not path.startswith((API_PREFIX, ADMIN_PREFIX, PREDICTION_PREFIX)):
        return None
    if not _token_ok(current_emulator(), request.headers.get("Authorization", "")):
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
    if _disk_full(exc):
        # Nothing half-written was kept (staged uploads go with their request, the store commits
        # or rolls back): the client may retry once there is room, so say so instead of 500.
        LOG.error("disk full on %s %s: %s", request.method, request.path, exc)
        message = f"Insufficient storage: the emulator's data dir {current_emulator().settings.data_dir} is full"
        return json_response({"message": message}, 507)
    LOG.exception("internal error on %s %s", request.method, request.path)
    return json_response({"message": f"Internal emulator error: {exc.__class__.__name__}: {exc}"}, 500)


_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL (Python 3.11+), which typeshed does not list


def _disk_full(exc: BaseException | None) -> bool:
    """ENOSPC/EDQUOT from a write, or SQLite's SQLITE_FULL, anywhere in the exception's chain."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# -- service -------------------------------------------------------------------------------------


@ROUTES.api("GET", "version/", documented=False)
def get_version(emu: Emulator, query: Query) -> Response:
    return json_response(API_VERSION)


@ROUTES.api("GET", "ping/", documented=False)
def ping(emu: Emulator, query: Query) -> Response:
    return json_response({"response": "pong"})


@ROUTES.api("GET", "customModelLimits/")
def limits(emu: Emulator, query: Query) -> Response:
    return json_response(
        {
            "maxCustomModelTestingParallelUsers": 1,
            "maxCustomModelContainerSize": 15032385536,
            "desiredCustomModelContainerSize": 4294967296,
            "maxCustomModelReplicasPerDeployment": 8,
        }
    )


# -- admin routes (outside the API: faults, journal, info) ---------------------------------------


@ROUTES.admin("openapi.json", "GET")
def _admin_openapi() -> Response:
    """The emulator's own OpenAPI document: the reference's schemas, for the routes it implements."""
    implemented = [(route.method, route.path) for route in api_routes() if route.documented]
    return json_response(openapi_document(current_emulator().reference, implemented, server=api_url("")))


def _faults() -> tuple[FaultInjector, Journal]:
    return current_app.extensions["cmkit.emulator.faults"]  # type: ignore[no-any-return]


@ROUTES.admin("info", "GET")
def _admin_info() -> Response:
    emu = current_emulator()
    return json_response(
        {
            "endpoint": api_url(""),
            "dataDir": str(emu.settings.data_dir),
            "runtime": emu.engine.runtime,
            "environmentId": environments.seeded_environment_id(emu),
            "jobs": emu.jobs.active(),
        }
    )


@ROUTES.admin("faults", "GET", "PUT", "POST", "DELETE")
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


@ROUTES.admin("requests", "GET", "DELETE")
def _admin_requests() -> Response:
    _, journal = _faults()
    if request.method == "DELETE":
        journal.clear()
        return no_content()
    since = request.args.get("since", "0")
    if not since.isdigit():
        raise invalid("since must be a sequence number", {"since": "must be a non-negative integer"})
    return json_response({"requests": journal.entries(int(since))})
