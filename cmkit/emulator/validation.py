"""Request validation: the seed's query tables and named JSON schemas, and the emulator's own rules.

Errors become `ErrorResponse(422, {"message", "errors": {field: reason}})`, except query errors on
routes whose reference documents a 400 and no 422 (e.g. `tail/`'s "invalid number of lines").

Every route (those of other modules included) should take its ids, JSON bodies, file paths and
writable fields through the helpers here, so each rule has one home:

- `is_id` / `check_ids`: ids are 24 hex digits, as the server makes them; nothing else ever
  reaches a filesystem path;
- `parse_json`: strict JSON (no NaN/Infinity, bounded nesting) that must be an object;
- `check_body(..., writable=True)`: PATCH bodies hold only the fields the reference lists;
- `check_file_path` / `check_path_set`: upload paths (relative, no `..`, NUL, newline, long
  components, file/folder clashes), for model files and docker-context members alike: the
  core's rule (`cmkit.safepaths`), answered as a 422;
- `Limits`: the sizes and counts the emulator caps (docs/emulator.md, "Limits").
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft7Validator, ValidationError

from cmkit import safepaths
from cmkit.contexts import ContextLimits
from cmkit.emulator.errors import ErrorResponse
from cmkit.emulator.reference import QueryParam, Reference, RouteSpec
from cmkit.safepaths import MAX_COMPONENT_BYTES, UnsafePath

# The reference marks offset/limit required, yet DataRobot's own client never sends them (its
# `unpaginate` relies on the server's defaults; its docs give the default page size as 20).
PAGINATION_DEFAULTS = {"offset": 0, "limit": 20}
PAGINATION_MINIMUM = 0
MAX_MESSAGE_ERRORS = 5
ID_PATTERN = re.compile(r"[0-9a-f]{24}")
# Deeper JSON than any request of the reference needs; far below Python's recursion limit, so
# neither the parser nor jsonschema can overflow the stack.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class Limits(ContextLimits):
    """Caps on what one request may make the emulator store or unpack (docs/emulator.md): a
    docker context's (`cmkit.contexts`, whose unpacker takes these) and a requirements.txt's."""

    requirements_bytes: int = 1024**2  # a version's requirements.txt


# -- ids -----------------------------------------------------------------------------------------


def is_id(value: Any) -> bool:
    """An id as the server makes them (24 hex digits, like DataRobot's ObjectIds)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_ids(body: Mapping[str, Any], names: Iterable[str]) -> None:
    """422 when a field meant to hold an id holds anything else (a path, a header break...)."""
    bad = [name for name in names if body.get(name) is not None and not is_id(body[name])]
    errors = {name: "must be a 24-digit hexadecimal id" for name in bad}
    if errors:
        raise ErrorResponse(422, _summary("Invalid field data", errors), errors)


def safe_id(value: str) -> str:
    """An id about to become part of a file name: anything but a server-made id is a bug."""
    if not is_id(value):
        raise ValueError(f"refusing to build a path from {value!r}: not an id")
    return value


# -- strict JSON ---------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 parses as infinity
        raise ValueError(f"{text[:40]} is out of range")
    return number


def parse_json(raw: bytes | str, what: str = "The request body") -> Any:
    """Strict JSON: NaN and Infinity refused, nesting bounded; ErrorResponse 422 otherwise."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ErrorResponse(422, f"{what} is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:
        raise ErrorResponse(422, f"{what} is not valid JSON: {exc}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ErrorResponse(422, f"{what} is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    return value


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (the value may be deep enough to overflow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def parse_json_object(raw: bytes | str, what: str = "The request body") -> dict[str, Any]:
    """Strict JSON that must be an object; an empty body counts as `{}`."""
    if not raw.strip():
        return {}
    value = parse_json(raw, what)
    if not isinstance(value, dict):
        raise ErrorResponse(422, f"{what} must be a JSON object", {"body": "must be a JSON object"})
    return value


# -- file paths ----------------------------------------------------------------------------------


def check_file_path(raw: str, field: str = "filePath") -> str:
    """A relative path inside the model (or context), normalised (`cmkit.safepaths`' rule); 422 naming the problem."""
    try:
        return safepaths.member_path(raw, field)
    except UnsafePath as exc:
        raise _refused(exc) from None


def _refused(exc: UnsafePath) -> ErrorResponse:
    return ErrorResponse(422, exc.message, {exc.field_name: exc.reason})


def file_name(raw: str | None, default: str) -> str:
    """A client's file name as the emulator keeps it (downloads, work files): its last component,
    `default` when that is empty or could not name a file (control characters, too long).
    """
    name = posixpath.basename((raw or "").replace("\\", "/"))
    if not name or name in (".", "..") or re.search(r"[\x00-\x1f\x7f]", name):
        return default
    return name if len(name.encode("utf-8", errors="surrogateescape")) <= MAX_COMPONENT_BYTES else default


def check_path_set(paths: Iterable[str], field: str = "filePath") -> None:
    """422 when one path is a file and a folder at once (`a` and `a/b`)."""
    try:
        safepaths.check_path_set(paths, field)
    except UnsafePath as exc:
        raise _refused(exc) from None


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
        raise ErrorResponse(status, _summary("Invalid query parameters", errors), errors)
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


def check_body(reference: Reference, schema_name: str, body: Any, writable: bool = False) -> dict[str, Any]:
    """The body, unchanged, when the named schema accepts it; 422 listing every problem otherwise.

    `writable`: the schema is a PATCH body, whose properties are the only fields a client may
    change; any other field is refused rather than stored.
    """
    if not isinstance(body, dict):
        raise ErrorResponse(422, "The request body must be a JSON object", {"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    if writable:
        allowed = reference.schema(schema_name).get("properties", {})
        for name in body:
            if name not in allowed:
                errors[str(name)[:100]] = "is not a field this request can change"
    return check_schema(reference.validator(schema_name), body, errors)


def check_schema(validator: Draft7Validator, body: Any, errors: dict[str, str] | None = None) -> dict[str, Any]:
    """The body when `validator` accepts it (and `errors` is empty); 422 listing every problem."""
    errors = dict(errors or {})
    if not isinstance(body, dict):
        raise ErrorResponse(422, "The request body must be a JSON object", {"body": "must be a JSON object"})
    for error in sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]):
        for name, reason in _describe(error):
            errors.setdefault(name, reason)
    if errors:
        raise ErrorResponse(422, _summary("Invalid field data", errors), errors)
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
            number = float(raw)
        except ValueError:
            pass
        else:
            if math.isfinite(number):  # "nan"/"inf" stay text: the schema refuses them
                return number
    if "boolean" in types and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if types & {"object", "array"} and "string" not in types:
        try:
            return parse_json(raw, "A multipart field")
        except ErrorResponse:
            pass
    return raw


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    """(field, reason) pairs in words a user can act on, without echoing huge values back."""
    where = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        required: Any = error.validator_value
        missing = [p for p in required if isinstance(error.instance, dict) and p not in error.instance]
        return [(_join(where, name), "is required") for name in missing]
    value: Any = error.validator_value
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
        "format": lambda: f"must be a valid {value}",
        "additionalProperties": lambda: "holds a field this request does not accept",
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
