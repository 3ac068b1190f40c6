"""Sharing (`executionEnvironments/{id}/accessControl/`) and permanent deletion of environments.

`POST executionEnvironmentsPermadelete/` takes up to 10 ids; every one must exist (404) and have
been deleted first (`DELETE executionEnvironments/{id}/`, a soft delete; 409 otherwise). Then the
environments, their versions, their stored docker contexts and build logs are removed for good,
and their ids can be used again. Model versions built on them keep their records (as after a
soft delete) but can no longer be tested.
"""

from __future__ import annotations

import shutil

from flask import Response

from cmkit.emulator import environments, sharing
from cmkit.emulator.bodies import ExecutionEnvironmentPermadelete, SharingUpdateOrRemoveWithGrant
from cmkit.emulator.errors import ErrorResponse
from cmkit.emulator.http import Query, Routes, checked_body, get_or_404, no_content, page
from cmkit.emulator.service import Emulator


def access_list(emu: Emulator, env_id: str, username: str | None, user_id: str | None) -> list[sharing.AccessEntry]:
    environment = get_or_404(emu, environments.KIND, env_id, "Execution environment")
    return sharing.filtered(environment, username, user_id)


def share(emu: Emulator, env_id: str, body: SharingUpdateOrRemoveWithGrant) -> None:
    sharing.apply(emu, environments.KIND, env_id, body["data"], "Execution environment")


def permadelete(emu: Emulator, env_ids: list[str]) -> None:
    with emu.store.transaction():
        found = {ident: emu.store.get(environments.KIND, ident, include_deleted=True) for ident in env_ids}
        missing = [ident for ident, env in found.items() if env is None]
        if missing:
            raise ErrorResponse(404, f"Execution environment(s) not found: {', '.join(missing)}")
        live = [ident for ident, env in found.items() if env is not None and not env.deleted]
        if live:
            raise ErrorResponse(409, f"Execution environment(s) not deleted yet (DELETE them first): {', '.join(live)}")
        versions = [v for ident in env_ids for v in emu.store.list(environments.VERSION_KIND, ident, True)]
        for version in versions:
            emu.store.purge(environments.VERSION_KIND, version.id)
        for ident in env_ids:
            emu.store.purge(environments.KIND, ident)
    for version in versions:
        shutil.rmtree(emu.dir("environments", version.id), ignore_errors=True)
        emu.logs.path(environments.VERSION_KIND, version.id).unlink(missing_ok=True)


# -- execution environments: sharing and permanent deletion --------------------------------------

ROUTES = Routes()


@ROUTES.api("GET", "executionEnvironments/{environmentId}/accessControl/")
def http_get_environment_access(emu: Emulator, query: Query, environmentId: str) -> Response:
    found = access_list(emu, environmentId, query.get("username"), query.get("userId"))
    return page(found, query)


@ROUTES.api("PATCH", "executionEnvironments/{environmentId}/accessControl/")
def http_share_environment(emu: Emulator, query: Query, environmentId: str) -> Response:
    share(emu, environmentId, checked_body(SharingUpdateOrRemoveWithGrant))
    return no_content()


@ROUTES.api("POST", "executionEnvironmentsPermadelete/")
def http_permadelete_environments(emu: Emulator, query: Query) -> Response:
    permadelete(emu, checked_body(ExecutionEnvironmentPermadelete)["executionEnvironmentIds"])
    return no_content()
