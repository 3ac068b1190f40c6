"""Async statuses (GET status/{id}/): the job records every resource module moves on.

Resource modules import this module, never `service`'s startup, so the emulator's modules form
no import cycle: `service` holds the state, `startup` the recovery that calls every resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Response

from cmkit.emulator.common import new_id, now
from cmkit.emulator.documents import Internal, Status
from cmkit.emulator.http import Query, Routes, api_url, get_or_404, json_response
from cmkit.emulator.store import Kind

if TYPE_CHECKING:
    from cmkit.emulator.service import Emulator

KIND: Kind[Status] = Kind("status")
TERMINAL_STATUSES = ("COMPLETED", "ERROR", "ABORTED", "EXPIRED")
INTERRUPTED = "interrupted: the emulator stopped before this job finished"


def create_status(emu: Emulator, description: str, status_type: str | None = None) -> str:
    status_id = new_id()
    doc: Status = {
        "statusId": status_id,
        "status": "INITIALIZED",
        "message": "",
        "code": 0,
        "created": now(),
        "description": description,
        "statusType": status_type,
    }
    emu.store.insert(KIND, status_id, doc)
    return status_id


def set_status(emu: Emulator, status_id: str, status: str, message: str = "", location: str | None = None) -> None:
    """Move a status on; `location` (relative to /api/v2/) is where a COMPLETED job redirects."""
    internal = Internal(location=location) if location else None
    emu.store.update(KIND, status_id, Status(status=status, message=message), internal=internal)


def get_status(emu: Emulator, status_id: str) -> tuple[Status, str | None]:
    """The status document, and the finished resource's path when the job is COMPLETED."""
    resource = get_or_404(emu, KIND, status_id, "Status")
    location = resource.internal.get("location") if resource.doc["status"] == "COMPLETED" else None
    return resource.doc, location


def recover_statuses(emu: Emulator) -> None:
    for resource in emu.store.list(KIND):
        if resource.doc["status"] not in TERMINAL_STATUSES:
            set_status(emu, resource.id, "ERROR", INTERRUPTED)


# -- HTTP ----------------------------------------------------------------------------------------

ROUTES = Routes()


@ROUTES.api("GET", "status/{statusId}/", documented=False)
def http_get_status(emu: Emulator, query: Query, statusId: str) -> Response:
    doc, location = get_status(emu, statusId)
    if location:
        return json_response(doc, 303, {"Location": api_url(location)})
    return json_response(doc)
