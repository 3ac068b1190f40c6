"""Access lists (`accessControl/`) of custom models and execution environments, one rule set.

A resource starts with its creator as `OWNER`; `PATCH` sets or changes roles by username
(`role: null` removes the user), and a change that would leave no `OWNER` is 409. The emulator
has one user, so roles are recorded, not enforced. `GET` filters by `username` or `userId`
(not both: 400).
"""

from __future__ import annotations

from cmkit.emulator.bodies import SharingChange
from cmkit.emulator.common import USER, new_id
from cmkit.emulator.documents import AccessEntry, DocT
from cmkit.emulator.errors import ErrorResponse
from cmkit.emulator.http import get_or_404
from cmkit.emulator.service import Emulator
from cmkit.emulator.store import Kind, Resource

__all__ = ["AccessEntry", "apply", "entries", "filtered", "owner"]


def owner() -> AccessEntry:
    return {"userId": USER.id, "username": USER.username, "role": "OWNER", "canShare": True}


def entries(resource: Resource[DocT]) -> list[AccessEntry]:
    return list(resource.internal.get("access") or [owner()])


def filtered(resource: Resource[DocT], username: str | None = None, user_id: str | None = None) -> list[AccessEntry]:
    if username and user_id:
        raise ErrorResponse(400, "Give username or userId, not both")
    return [
        e
        for e in entries(resource)
        if (not username or e["username"] == username) and (not user_id or e["userId"] == user_id)
    ]


def apply(emu: Emulator, kind: Kind[DocT], ident: str, changes: list[SharingChange], what: str) -> None:
    """Apply a `SharingUpdateOrRemoveWithGrant` body's `data` to a resource, in one transaction."""
    with emu.store.transaction():
        resource = get_or_404(emu, kind, ident, what)
        by_name = {e["username"]: e for e in entries(resource)}
        for change in changes:
            role = change.get("role")
            if role is None:
                by_name.pop(change["username"], None)
                continue
            current = by_name.get(change["username"])
            by_name[change["username"]] = AccessEntry(
                userId=current["userId"] if current else new_id(),
                username=change["username"],
                role=role,
                canShare=change.get("canShare", role == "OWNER"),
            )
        if not any(e["role"] == "OWNER" for e in by_name.values()):
            raise ErrorResponse(409, f"The request would leave the {what.lower()} without an owner")
        resource.internal["access"] = list(by_name.values())
        emu.store.save(resource)
