"""The emulator's own OpenAPI 3.1 document, generated from the vendored reference.

It covers the reference's routes the emulator implements, with the reference's schemas as they
are, except for the deviations docs/emulator.md lists ("Where it differs from DataRobot"),
which are applied here, in one place, so the document describes what the emulator really does
and a conformance run (schemathesis, tests/emulator/test_conformance.py) can hold it to that.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cmkit.emulator.reference import QueryParam, Reference, RouteSpec
from cmkit.emulator.validation import ID_PATTERN, PAGINATION_DEFAULTS

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
MULTIPART = "multipart/form-data"

# Response schemas whose `required` fields the emulator leaves out (docs/emulator.md: an
# environment without versions has no latestVersion/latestSuccessfulVersion; optional nulls).
OMITTED_WHEN_ABSENT: dict[str, tuple[str, ...]] = {
    "ExecutionEnvironmentResponse": ("latestVersion", "latestSuccessfulVersion"),
}
# Objects the emulator answers as null where the schema says `object` (a model without
# versions, one not made from a template).
NULLABLE_OBJECTS: dict[str, tuple[str, ...]] = {
    "CustomModelResponse": ("latestVersion", "template"),
}
# Query parameters the reference marks required that the emulator defaults (the official
# client never sends them).
DEFAULTED_QUERY = {*PAGINATION_DEFAULTS, "lines"}


def openapi_document(reference: Reference, implemented: Iterable[tuple[str, str]], server: str) -> dict[str, Any]:
    """An OpenAPI document for `implemented` (method, path) routes, served under `server`."""
    paths: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for method, path in sorted(implemented, key=lambda mp: (mp[1], mp[0])):
        spec = reference.routes.get((method, path))
        if spec is None:
            continue
        operation, schemas = _operation(spec)
        used |= schemas
        paths.setdefault(f"/{path}", {})[method.lower()] = operation
    originals = {name: reference.schema(name) for name in {*OMITTED_WHEN_ABSENT, *NULLABLE_OBJECTS}}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "cmkit emulator: DataRobot custom models API",
            "version": "2.37.0",
            "description": "Generated from the vendored API reference for the routes the emulator implements; "
            "deviations are listed in cmkit's docs/emulator.md.",
        },
        "servers": [{"url": server.rstrip("/")}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {name: _adjusted(reference.schema(name), originals) for name in sorted(used)},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(spec: RouteSpec) -> tuple[dict[str, Any], set[str]]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN.pattern}}
        for name in _path_params(spec.path)
    ]
    parameters += [_query_param(param) for param in spec.query]
    schemas: set[str] = set()
    operation: dict[str, Any] = {
        "operationId": f"{spec.method.lower()} {spec.path}",
        "parameters": parameters,
        "responses": {},
    }
    if spec.body:
        schemas.add(spec.body)
        media = MULTIPART if spec.body_format == "multipart" else JSON
        operation["requestBody"] = {"required": True, "content": {media: {"schema": _ref(spec.body)}}}
    for status, schema, description in spec.responses:
        entry: dict[str, Any] = {"description": description}
        if schema and status != 204:  # 204 has no body, whatever schema the reference names
            schemas.add(schema)
            entry["content"] = {JSON: {"schema": _ref(schema)}}
        operation["responses"][str(status)] = entry
    return operation, schemas


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _query_param(param: QueryParam) -> dict[str, Any]:
    types = list(param.types)
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    if param.enum:
        schema["enum"] = list(param.enum)
    if param.name in PAGINATION_DEFAULTS:
        schema["minimum"] = 0
    elif param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    return {
        "name": param.name,
        "in": "query",
        "required": param.required and param.name not in DEFAULTED_QUERY,
        "schema": schema,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _adjusted(schema: Any, originals: dict[str, Any]) -> Any:
    """The reference's schema with the emulator's documented deviations applied.

    The reference inlines its schemas (a list response holds a copy of the item's schema), so
    each deviation applies wherever a copy of its schema appears.
    """
    if isinstance(schema, list):
        return [_adjusted(item, originals) for item in schema]
    if not isinstance(schema, dict):
        return schema
    fixed = {key: _adjusted(value, originals) for key, value in schema.items()}
    for name, original in originals.items():
        if schema == original:
            _deviate(name, fixed)
    return fixed


def _deviate(name: str, fixed: dict[str, Any]) -> None:
    omitted = OMITTED_WHEN_ABSENT.get(name, ())
    if omitted and "required" in fixed:
        fixed["required"] = [field for field in fixed["required"] if field not in omitted]
    for field in NULLABLE_OBJECTS.get(name, ()):
        prop = fixed.get("properties", {}).get(field)
        if prop is not None:
            fixed["properties"][field] = {"anyOf": [prop, {"type": "null"}]}
