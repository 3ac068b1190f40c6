"""The API reference extracted from the seed (`api_reference.json`), indexed for the emulator.

`tools/extract_api_reference.py` regenerates the JSON from the seed; this module only reads it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft7Validator, FormatChecker

API_PREFIX = "/api/v2/"


@dataclass(frozen=True)
class QueryParam:
    name: str
    types: tuple[str, ...]
    required: bool
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    default: int | None = None


@dataclass(frozen=True)
class RouteSpec:
    """One route of the reference: what it accepts and which statuses it documents."""

    method: str
    path: str  # relative to /api/v2/, e.g. "customModels/{customModelId}/"
    query: tuple[QueryParam, ...] = ()
    body: str | None = None
    body_format: str | None = None
    statuses: frozenset[int] = field(default_factory=frozenset)
    # (status, response schema name or None, description), in the reference's order
    responses: tuple[tuple[int, str | None, str], ...] = ()

    def documents(self, status: int) -> bool:
        return status in self.statuses


class Reference:
    def __init__(self, data: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = {name: _nullable_enums(schema) for name, schema in data["schemas"].items()}
        self.routes: dict[tuple[str, str], RouteSpec] = {}
        for route in data["routes"]:
            spec = _route_spec(route)
            self.routes[(spec.method, spec.path)] = spec

    def route(self, method: str, path: str) -> RouteSpec:
        """The reference's route; KeyError for a route the seed does not describe."""
        return self.routes[(method.upper(), path)]

    def schema(self, name: str) -> dict[str, Any]:
        schema: dict[str, Any] = self.schemas[name]
        return schema

    @functools.cache  # noqa: B019 - one Reference lives for the whole process
    def validator(self, name: str) -> Draft7Validator:
        return Draft7Validator(self.schemas[name], format_checker=FORMATS)


# jsonschema checks `format: uri` only with an optional RFC 3987 package installed; the
# reference's uri fields (commitUrl...) are absolute URLs, which this is enough to tell.
FORMATS = FormatChecker(formats=())


@FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.path)) and not any(c.isspace() for c in value)


def _nullable_enums(schema: Any) -> Any:
    """Let null pass an enum whose type allows null.

    The reference types fields like `networkEgressPolicy` or a sharing `role` as
    `["string", "null"]` and documents null ("When it is None, the role ... will be removed"),
    but lists only strings in their `enum`, which in JSON Schema would reject null after all.
    """
    if isinstance(schema, list):
        return [_nullable_enums(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    fixed = {key: _nullable_enums(value) for key, value in schema.items()}
    types = fixed.get("type")
    if (
        isinstance(fixed.get("enum"), list)
        and isinstance(types, list)
        and "null" in types
        and None not in fixed["enum"]
    ):
        fixed["enum"] = [*fixed["enum"], None]
    return fixed


def _route_spec(route: dict[str, Any]) -> RouteSpec:
    query = tuple(
        QueryParam(
            name=p["name"],
            types=tuple(p["type"]),
            required=p["required"],
            enum=tuple(p["enum"]) if p.get("enum") else None,
            minimum=p.get("minimum"),
            maximum=p.get("maximum"),
            default=p.get("default"),
        )
        for p in route["queryParams"]
    )
    return RouteSpec(
        method=route["method"],
        path=route["path"].removeprefix(API_PREFIX),
        query=query,
        body=route["body"],
        body_format=route["bodyFormat"],
        statuses=frozenset(r["status"] for r in route["responses"]),
        responses=tuple((r["status"], r.get("schema"), r.get("description") or "") for r in route["responses"]),
    )


@functools.cache
def load_reference() -> Reference:
    text = resources.files("cmkit.emulator").joinpath("api_reference.json").read_text(encoding="utf-8")
    return Reference(json.loads(text))
