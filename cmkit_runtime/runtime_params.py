"""Runtime parameters, as DataRobot defines them and hands them to a model.

A model's `model-metadata.yaml` declares them under `runtimeParameterDefinitions` (`fieldName`,
`type`: string, boolean, numeric, credential or deployment; `defaultValue`, `allowEmpty`,
`minValue` / `maxValue` for numbers, `description`, `credentialType`). DataRobot gives each one
to the model's container as `MLOPS_RUNTIME_PARAM_<fieldName>` = `{"type": ..., "payload": ...}`
(JSON), which DRUM's `RuntimeParameters.get(name)` reads; locally DRUM takes the values from a
YAML file (`--runtime-params-file`: `NAME: value`, a credential as a mapping with
`credentialType`), the defaults filling the rest. cmkit does the same (`variables`).

Standard library and PyYAML only: `cmkit lint` and the CLI use it without pandas. Messages name
parameters, never their values (a credential's secrets must not reach output or logs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "MLOPS_RUNTIME_PARAM_"
TYPES = ("string", "boolean", "numeric", "credential", "deployment")
_KEYS = {"fieldName", "type", "defaultValue", "allowEmpty", "minValue", "maxValue", "description", "credentialType"}


class RuntimeParameterError(ValueError):
    """A definition or a value DataRobot would refuse; the message names the parameter, not the value."""


@dataclass(frozen=True)
class Definition:
    name: str
    type: str
    default: Any = None
    allow_empty: bool = True
    min_value: float | None = None
    max_value: float | None = None


def _boolean(value: Any) -> bool | None:
    """YAML booleans, and the strings a string-only metadata reader gives for them."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError("not a boolean")


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def parse_definitions(raw: Any) -> list[Definition]:
    """`runtimeParameterDefinitions` as DRUM checks it: a list of mappings with a name and a known type."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RuntimeParameterError("runtimeParameterDefinitions must be a list of parameters")
    found: dict[str, Definition] = {}
    for position, item in enumerate(raw, 1):
        definition = _definition(item, position)
        if definition.name in found:
            raise RuntimeParameterError(f"runtime parameter '{definition.name}' is defined twice")
        found[definition.name] = definition
    return list(found.values())


def _definition(item: Any, position: int) -> Definition:
    where = f"runtimeParameterDefinitions item {position}"
    if not isinstance(item, dict):
        raise RuntimeParameterError(f"{where} must be a mapping with fieldName and type")
    name, kind = item.get("fieldName"), item.get("type")
    if not isinstance(name, str) or not name:
        raise RuntimeParameterError(f"{where} needs a fieldName")
    if kind not in TYPES:
        raise RuntimeParameterError(f"runtime parameter '{name}': type must be one of {', '.join(TYPES)}")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise RuntimeParameterError(f"runtime parameter '{name}': unknown key {unknown[0]!r}")
    try:
        bounds = _number(item.get("minValue")), _number(item.get("maxValue"))
        allow_empty = _boolean(item.get("allowEmpty", True))
    except (TypeError, ValueError):
        raise RuntimeParameterError(
            f"runtime parameter '{name}': minValue and maxValue must be numbers, allowEmpty true or false"
        ) from None
    if kind != "numeric" and bounds != (None, None):
        raise RuntimeParameterError(f"runtime parameter '{name}': minValue and maxValue apply to numeric ones only")
    definition = Definition(name, kind, item.get("defaultValue"), allow_empty is not False, *bounds)
    if definition.default is not None:
        payload(definition, definition.default, "its defaultValue")
    return definition


def payload(definition: Definition, value: Any, source: str = "its value") -> Any:
    """The value as DRUM's schema for the type accepts it (None allowed), or RuntimeParameterError."""
    name, kind = definition.name, definition.type
    if value is None:
        return None
    try:
        if kind == "boolean":
            return _boolean(value)
        if kind == "numeric":
            number = _number(value)
            assert number is not None
            if definition.min_value is not None and number < definition.min_value:
                raise ValueError(f"below minValue {definition.min_value:g}")
            if definition.max_value is not None and number > definition.max_value:
                raise ValueError(f"above maxValue {definition.max_value:g}")
            return number
    except (TypeError, ValueError) as exc:
        raise RuntimeParameterError(f"runtime parameter '{name}' ({kind}): {source} is {exc}") from None
    if kind == "credential":
        if not (isinstance(value, dict) and isinstance(value.get("credentialType"), str)):
            raise RuntimeParameterError(
                f"runtime parameter '{name}' (credential): {source} must be a mapping with credentialType"
            )
        return value
    if not isinstance(value, str):
        raise RuntimeParameterError(f"runtime parameter '{name}' ({kind}): {source} must be a string")
    return value


def variables(definitions: list[Definition], values: Mapping[str, Any]) -> dict[str, str]:
    """The `MLOPS_RUNTIME_PARAM_*` variables DataRobot sets: each value, else its default.

    A parameter with `allowEmpty: false` and neither is refused here, before any server starts;
    so is a value for a parameter the metadata does not define.
    """
    defined = {d.name for d in definitions}
    extra = sorted(set(values) - defined)
    if extra:
        raise RuntimeParameterError(f"runtime parameter '{extra[0]}' has a value but no definition in the metadata")
    environment: dict[str, str] = {}
    for definition in definitions:
        source = "its value" if definition.name in values else "its defaultValue"
        value = payload(definition, values.get(definition.name, definition.default), source)
        if value is None and not definition.allow_empty:
            raise RuntimeParameterError(
                f"runtime parameter '{definition.name}' is required (allowEmpty: false) and has no value: "
                "give it in --runtime-params-file, or a defaultValue"
            )
        environment[PREFIX + definition.name] = json.dumps({"type": definition.type, "payload": value})
    return environment
