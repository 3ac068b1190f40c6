"""Access lists (`accessControl/`) of custom models and execution environments, one rule set.

A resource starts with its creator as `OWNER`; `PATCH` sets or changes roles by username
(`role: null` removes the user), and a change that would leave no `OWNER` is 409. The emulator
has one user, so roles are recorded, not enforced. `GET` filters by `username` or `userId`
(not both: 400).
"""

from __future__ import annotations

from typing import Any

from cmkit.emulator.common import USER, new_id
from cmkit.emulator.errors import ErrorResponse
from cmkit.emulator.service import Emulator
from cmkit.emulator.store import Resource


def owner() -> dict[str, Any]:
    return {"userId": USER.id, "username": USER.username, "role": "OWNER", "canShare": True}


def entries(resource: Resource) -> list[dict[str, Any]]:
    return list(resource.internal.get("access") or [owner()])


def filtered(resource: Resource, username: str | None = None, user_id: str | None = None) -> list[dict[str, Any]]:
    if username and user_id:
        raise ErrorResponse(400, "Give username or userId, not both")
    return [
        e
        for e in entries(resource)
        if (not username or e["username"] == username) and (not user_id or e["userId"] == user_id)
    ]


def apply(emu: Emulator, kind: str, ident: str, changes: list[dict[str, Any]], what: str) -> None:
    """Apply a `SharingUpdateOrRemoveWithGrant` body's `data` to a resource, in one transaction."""
    with emu.store.transaction():
        resource = emu.store.get(kind, ident)
        if resource is None:
            raise ErrorResponse(404, f"{what} {ident} not found")
        by_name = {e["username"]: e for e in entries(resource)}
        for change in changes:
            if change.get("role") is None:
                by_name.pop(change["username"], None)
                continue
            current = by_name.get(change["username"], {"userId": new_id(), "username": change["username"]})
            by_name[change["username"]] = {
                **current,
                "role": change["role"],
                "canShare": change.get("canShare", change["role"] == "OWNER"),
            }
        if not any(e["role"] == "OWNER" for e in by_name.values()):
            raise ErrorResponse(409, f"The request would leave the {what.lower()} without an owner")
        resource.internal["access"] = list(by_name.values())
        emu.store.save(resource)
