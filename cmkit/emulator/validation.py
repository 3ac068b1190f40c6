"""Request validation against the seed: query parameter tables and named JSON schemas.

Errors become `ApiError(422, {"message", "errors": {field: reason}})`, except query errors on
routes whose reference documents a 400 and no 422 (e.g. `tail/`'s "invalid number of lines").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jsonschema import ValidationError

from cmkit.emulator.errors import ApiError
from cmkit.emulator.reference import QueryParam, Reference, RouteSpec

# The reference marks offset/limit required, yet DataRobot's own client never sends them (its
# `unpaginate` relies on the server's defaults; its docs give the default page size as 20).
PAGINATION_DEFAULTS = {"offset": 0, "limit": 20}
PAGINATION_MINIMUM = 0
MAX_MESSAGE_ERRORS = 5


def check_query(spec: RouteSpec, args: Mapping[str, str]) -> dict[str, Any]:
    """Typed query values for the parameters the reference lists; unknown parameters are ignored."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for param in spec.query:
        raw = args.get(param.name)
        if raw is None:
            default = PAGINATION_DEFAULTS.get(param.name, param.default)
            if default is not None:
                values[param.name] = default
            elif param.required:
                errors[param.name] = "is required"
            continue
        try:
            values[param.name] = _query_value(param, raw)
        except ValueError as exc:
            errors[param.name] = str(exc)
    if errors:
        status = 400 if spec.documents(400) and not spec.documents(422) else 422
        raise ApiError(status, _summary("Invalid query parameters", errors), errors)
    return values


def _query_value(param: QueryParam, raw: str) -> Any:
    if param.enum is not None and raw not in param.enum:
        raise ValueError(f"must be one of: {', '.join(param.enum)}")
    if "integer" in param.types:
        try:
            value: Any = int(raw)
        except ValueError:
            raise ValueError("must be an integer") from None
        low = PAGINATION_MINIMUM if param.name in PAGINATION_DEFAULTS else param.minimum
        if low is not None and value < low:
            raise ValueError(f"must be at least {low}")
        if param.maximum is not None and value > param.maximum:
            raise ValueError(f"must be at most {param.maximum}")
        return value
    if "boolean" in param.types:
        if raw.lower() not in ("true", "false"):
            raise ValueError("must be true or false")
        return raw.lower() == "true"
    return raw


def check_body(reference: Reference, schema_name: str, body: Any) -> dict[str, Any]:
    """The body, unchanged, when the named schema accepts it; 422 listing every problem otherwise."""
    if not isinstance(body, dict):
        raise ApiError(422, "The request body must be a JSON object", {"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    for error in sorted(reference.validator(schema_name).iter_errors(body), key=lambda e: list(e.absolute_path)):
        for name, reason in _describe(error):
            errors.setdefault(name, reason)
    if errors:
        raise ApiError(422, _summary("Invalid field data", errors), errors)
    return body


def coerce_form(
    reference: Reference, schema_name: str, form: Mapping[str, list[str]], skip: Iterable[str] = ()
) -> dict[str, Any]:
    """Multipart text fields typed as the schema declares them, so the schema can validate them.

    Multipart carries strings only: "1073741824" for an integer, "True" for a boolean, JSON for
    objects. Fields whose schema allows an array (like `filePath`, `filesToDelete`) keep every
    value, in order; others keep the last. Values that do not convert stay strings, and the schema
    then reports them with the field's expected type.
    """
    properties = reference.schema(schema_name).get("properties", {})
    skipped = set(skip)
    values: dict[str, Any] = {}
    for name, raw_values in form.items():
        if name in skipped or not raw_values:
            continue
        prop = properties.get(name, {})
        types = _types(prop)
        if "array" in types and "object" not in types:
            values[name] = [_coerce(_item_types(prop), v) for v in raw_values]
        else:
            values[name] = _coerce(types, raw_values[-1])
    return values


def _types(prop: Mapping[str, Any]) -> set[str]:
    declared = prop.get("type")
    types = set(declared if isinstance(declared, list) else [declared] if declared else [])
    for option in prop.get("oneOf", []) + prop.get("anyOf", []):
        types |= _types(option)
    return types


def _item_types(prop: Mapping[str, Any]) -> set[str]:
    for option in [prop, *prop.get("oneOf", []), *prop.get("anyOf", [])]:
        if "items" in option:
            return _types(option["items"])
    return {"string"}


def _coerce(types: set[str], raw: str) -> Any:
    if raw == "" and "null" in types:
        return None
    if "integer" in types:
        try:
            return int(raw)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(raw)
        except ValueError:
            pass
    if "boolean" in types and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if types & {"object", "array"} and "string" not in types:
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    """(field, reason) pairs in words a user can act on, without echoing huge values back."""
    where = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        missing = [p for p in error.validator_value if isinstance(error.instance, dict) and p not in error.instance]
        return [(_join(where, name), "is required") for name in missing]
    value = error.validator_value
    reasons: dict[str, Callable[[], str]] = {
        "maxLength": lambda: f"must be at most {value} characters long",
        "minLength": lambda: f"must be at least {value} characters long",
        "enum": lambda: f"must be one of: {', '.join(map(str, value))}",
        "type": lambda: f"must be of type {_type_words(value)}",
        "minimum": lambda: f"must be at least {value}",
        "maximum": lambda: f"must be at most {value}",
        "exclusiveMinimum": lambda: f"must be greater than {value}",
        "exclusiveMaximum": lambda: f"must be less than {value}",
        "maxItems": lambda: f"must hold at most {value} items",
        "minItems": lambda: f"must hold at least {value} items",
        "oneOf": lambda: "must be " + " or ".join(_type_words(o.get("type", "value")) for o in value),
    }
    describe = reasons.get(str(error.validator))
    reason = describe() if describe else error.message[:200]
    return [(where or "body", reason)]


def _type_words(types: Any) -> str:
    names = types if isinstance(types, list) else [types]
    return " or ".join("null" if n == "null" else str(n) for n in names)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _summary(title: str, errors: Mapping[str, str]) -> str:
    shown = [f"{name} {reason}" for name, reason in list(errors.items())[:MAX_MESSAGE_ERRORS]]
    more = len(errors) - len(shown)
    return f"{title}: " + "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")
