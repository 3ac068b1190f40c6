"""Small helpers every resource module uses: ids, timestamps, the user, response shaping."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from cmkit.emulator.documents import DocT


@dataclass(frozen=True)
class User:
    """The emulator has one user; every token acts as them."""

    id: str = "000000000000000000000001"
    username: str = "emulator@cmkit.local"


USER = User()


def new_id() -> str:
    """A 24-hex-digit id shaped like DataRobot's (MongoDB ObjectIds): time, then randomness."""
    return f"{int(time.time()):08x}{os.urandom(8).hex()}"


def now() -> str:
    """ISO-8601 in UTC with a `Z`, as DataRobot writes timestamps."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def shape(doc: DocT, schema: Mapping[str, Any] | None) -> DocT:
    """`doc` as the response schema shows it: optional fields that are null are left out.

    Real clients read optional fields as "absent or a value": DataRobot's client rejects a null
    where a string or enum is optional (`networkEgressPolicy`, `targetName`...). Fields the
    schema requires are always present, null included. Nested objects and arrays follow their
    own sub-schemas.
    """
    # Typed as `doc`'s own type: it only leaves out optional fields, which document types allow.
    return cast(DocT, _shaped(doc, schema))


def _shaped(doc: object, schema: Mapping[str, Any] | None) -> object:
    if schema is None:
        return doc
    if isinstance(doc, dict):
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return {
            key: _shaped(value, properties.get(key))
            for key, value in doc.items()
            if value is not None or key in required
        }
    if isinstance(doc, list):
        items = schema.get("items")
        return [_shaped(item, items if isinstance(items, Mapping) else None) for item in doc]
    return doc


def truthy(value: Any) -> bool:
    """Form and query booleans as DataRobot accepts them: true/True/TRUE..."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"
