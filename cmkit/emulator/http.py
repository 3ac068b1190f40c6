"""What every resource module needs to answer HTTP: its routes table, JSON responses, request
bodies, pagination and get-or-404.

A resource module declares its routes on its own `ROUTES = Routes()` table; `app.create_app`
collects the tables of the modules it lists (`app.RESOURCES`). Declaring a route registers
nothing anywhere else: importing a module has no effect on any app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar, cast
from urllib.parse import urlencode

from flask import Response, current_app, request

from cmkit.emulator.documents import DocT
from cmkit.emulator.errors import invalid, not_found
from cmkit.emulator.reference import API_PREFIX
from cmkit.emulator.store import Kind, Resource
from cmkit.emulator.validation import check_body, coerce_form, parse_json_object

if TYPE_CHECKING:  # annotations only: status (imported by service's modules) imports this module
    from cmkit.emulator.service import Emulator

JSON = "application/json"
EXTENSION = "cmkit.emulator"
ADMIN_PREFIX = "/__emulator__/"
PREDICTION_PREFIX = "/predApi/v1.0/"  # DataRobot's prediction API, on the same server and tokens
BodyT = TypeVar("BodyT")  # a request body type of `bodies`


class Query(TypedDict, total=False):
    """The query parameters of the reference's routes, as `validation.check_query` types them
    (integers and booleans converted, enums kept as strings); a route holds only those its table
    lists."""

    offset: int
    limit: int
    lines: int
    customModelId: str
    customModelType: str
    targetType: str
    isDeployed: str
    orderBy: str
    searchFor: str
    pps: str
    mainBranchCommitSha: str
    isLatest: str
    useCases: str
    username: str
    userId: str
    buildStatus: str
    search: str
    imageFile: str
    resourceBundleId: str | None
    maximumMemory: int | None
    networkEgressPolicy: str | None
    desiredMemory: int | None
    replicas: int | None
    requiresHa: bool | None


class View(Protocol):
    """An API view: the emulator, the checked query, and the path's ids by their reference names."""

    def __call__(self, emu: Emulator, query: Query, /, **path_params: str) -> Response: ...


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to /api/v2/, in the reference's spelling
    view: View
    documented: bool  # False for routes the custom-models reference does not describe
    prefix: str = API_PREFIX  # where `path` hangs: the API, or the prediction API (PREDICTION_PREFIX)


@dataclass(frozen=True)
class AdminRoute:
    """A route outside the API, under /__emulator__/ (faults, journal, repositories...)."""

    name: str  # the path under ADMIN_PREFIX
    methods: tuple[str, ...]
    view: Callable[[], Response]


@dataclass
class Routes:
    """One module's routes, declared with the `api` and `admin` decorators."""

    api_routes: list[Route] = field(default_factory=list)
    admin_routes: list[AdminRoute] = field(default_factory=list)

    def api(
        self, method: str, path: str, documented: bool = True, prefix: str = API_PREFIX
    ) -> Callable[[Callable[..., Response]], View]:
        def declare(view: Callable[..., Response]) -> View:
            self.api_routes.append(Route(method, path, view, documented, prefix))
            return view

        return declare

    def admin(self, name: str, *methods: str) -> Callable[[Callable[[], Response]], Callable[[], Response]]:
        def declare(view: Callable[[], Response]) -> Callable[[], Response]:
            self.admin_routes.append(AdminRoute(name, methods, view))
            return view

        return declare


class HasRoutes(Protocol):
    """A resource module: anything with a `ROUTES` table."""

    @property
    def ROUTES(self) -> Routes: ...


# -- the emulator of the request -----------------------------------------------------------------


def current_emulator() -> Emulator:
    """The emulator the app answering this request serves (views share one routing map)."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def get_or_404(emu: Emulator, kind: Kind[DocT], ident: str, what: str, parent: str | None = None) -> Resource[DocT]:
    """The live resource `ident` of `kind` (under `parent` when given), or a 404 naming `what`."""
    resource = emu.store.get(kind, ident)
    if resource is None or (parent is not None and resource.parent != parent):
        raise not_found(what, ident)
    return resource


# -- responses -----------------------------------------------------------------------------------


def json_response(doc: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    # allow_nan=False: NaN and Infinity are not JSON, and clients choke on them.
    response = Response(json.dumps(doc, allow_nan=False), status=status, headers=dict(headers) if headers else None)
    response.headers["Content-Type"] = JSON  # exactly: no charset suffix
    return response


def accepted(doc: object, status_id: str) -> Response:
    """202 with the job's status document as Location, as the API answers an asynchronous start."""
    return json_response(doc, 202, {"Location": api_url(f"status/{status_id}/")})


def no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type (Flask's default is text/html)
    return response


def api_url(path: str) -> str:
    """An absolute URL under /api/v2/ for this server, as the client reached it."""
    return f"{request.host_url}{API_PREFIX.lstrip('/')}{path}"


def page(items: list[Any], query: Query) -> Response:
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


def paging(blank_is_default: bool = False) -> Query:
    """offset/limit of a route outside the reference (defaults 0 and 20, as documented routes).

    `blank_is_default`: an empty value (`?offset=`) counts as absent; otherwise it is refused.
    """
    return Query(offset=_count("offset", 0, blank_is_default), limit=_count("limit", 20, blank_is_default))


def _count(name: str, default: int, blank_is_default: bool) -> int:
    raw = request.args.get(name, "")
    if not raw and (blank_is_default or name not in request.args):
        return default
    if not raw.isdigit():
        raise invalid(f"{name} must be a non-negative integer", {name: "must be a non-negative integer"})
    return int(raw)


# -- request bodies ------------------------------------------------------------------------------


def json_body() -> dict[str, Any]:
    """The JSON object body (an empty body counts as `{}`), as sent: not checked by any schema."""
    return parse_json_object(request.get_data(cache=True))


def checked_body(body_type: type[BodyT]) -> BodyT:
    """The JSON object body, checked against the reference's schema named as `body_type` (a
    `bodies` type, which mirrors that schema).

    A PATCH body may only hold the fields its schema lists (the writable fields).
    """
    reference = current_emulator().reference
    body = check_body(reference, body_type.__name__, json_body(), writable=request.method == "PATCH")
    return cast(BodyT, body)  # the schema accepted it: it has the shape its type mirrors


def form_fields(body_type: type[BodyT], files: tuple[str, ...] = ()) -> BodyT:
    """Multipart text fields, typed and checked against the reference's schema named as `body_type`."""
    reference = current_emulator().reference
    schema = body_type.__name__
    form = {key: request.form.getlist(key) for key in request.form}
    return cast(BodyT, check_body(reference, schema, coerce_form(reference, schema, form, skip=files)))
