"""`cmkit env push`: upload an execution environment's docker context and wait for its build."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmkit.api.client import DataRobotClient, Part, create_with_lookup
from cmkit.api.resources import DIGEST_MARKER, Build, EnvironmentVersion, ExecutionEnvironment
from cmkit.envcontext import context_digest, context_files, context_language, zip_context
from cmkit.events import Events, status_waiter, upload_progress


@dataclass
class EnvironmentPushResult:
    environment_id: str
    version_id: str
    created_environment: bool
    up_to_date: bool
    build_status: str
    build_log_tail: str | None = None
    context_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "environmentId": self.environment_id,
            "versionId": self.version_id,
            "createdEnvironment": self.created_environment,
            "upToDate": self.up_to_date,
            "buildStatus": self.build_status,
            "buildLogTail": self.build_log_tail,
            "contextBytes": self.context_bytes,
        }


def _find_environment(api: DataRobotClient, name: str) -> ExecutionEnvironment | None:
    for document in api.pages("executionEnvironments/", {"searchFor": name}):
        environment = ExecutionEnvironment.from_api(document)
        if environment.name == name:
            return environment
    return None


def _versions(api: DataRobotClient, environment_id: str) -> list[EnvironmentVersion]:
    listed = api.pages(f"executionEnvironments/{environment_id}/versions/", limit=50)
    return [EnvironmentVersion.from_api(document) for document in listed]


def _with_digest(versions: list[EnvironmentVersion], digest: str) -> EnvironmentVersion | None:
    for version in versions:
        if f"{DIGEST_MARKER} {digest}" in (version.description or "") and version.build_status != "failed":
            return version
    return None


def push_environment(
    api: DataRobotClient,
    folder: Path,
    name: str | None = None,
    environment_id: str | None = None,
    wait: bool = True,
    timeout: float = 1800.0,
    events: Events | None = None,
) -> EnvironmentPushResult:
    events = events or Events()
    folder = Path(folder)
    files = context_files(folder)
    digest = context_digest(files)
    name = name or folder.resolve().name
    created = False
    environment: ExecutionEnvironment | None
    if environment_id:
        environment = ExecutionEnvironment.from_api(api.get(f"executionEnvironments/{environment_id}/"))
    else:
        environment = _find_environment(api, name)
        if environment is None:
            events.stage(f"creating execution environment '{name}'")
            language = context_language(folder)
            body = {"name": name, "programmingLanguage": language, "description": "uploaded by cmkit env push"}
            environment = create_with_lookup(
                lambda: ExecutionEnvironment.from_api(
                    api.post_json("executionEnvironments/", body, expected=(201,)).json()
                ),
                lambda: _find_environment(api, name),
                "creating the environment",
                events,
            )
            created = True
    environment_id = environment.id
    existing = _with_digest(_versions(api, environment_id), digest)
    if existing is not None:
        events.stage(f"up to date: version {existing.id} holds this context")
        version, up_to_date, size = existing, True, 0
    else:
        known = {v.id for v in _versions(api, environment_id)}
        with zip_context(files) as archive:
            size = archive.seek(0, 2)
            events.stage(f"uploading the docker context ({len(files)} files, {size} bytes)")

            def upload() -> EnvironmentVersion:
                archive.seek(0)
                parts: list[Part] = [
                    ("label", time.strftime("cmkit-%Y%m%d-%H%M%S")),
                    ("description", f"{DIGEST_MARKER} {digest}"),
                    ("docker_context", ("context.zip", archive, "application/zip")),
                ]
                sent = upload_progress(events, "uploading", size)
                response = api.upload(
                    "POST", f"executionEnvironments/{environment_id}/versions/", parts, sent, expected=(202,)
                )
                return EnvironmentVersion.from_api(response.json())

            def lookup() -> EnvironmentVersion | None:
                fresh = [v for v in _versions(api, environment_id) if v.id not in known]
                return _with_digest(fresh, digest)

            version = create_with_lookup(upload, lookup, "uploading the environment", events)
        up_to_date = False
    result = EnvironmentPushResult(environment_id, version.id, created, up_to_date, "submitted", context_bytes=size)
    url = f"executionEnvironments/{environment_id}/versions/{version.id}/"
    state = api.poll(
        url,
        lambda build: not wait or Build.from_api(build).finished,
        timeout,
        "the environment build",
        status_waiter(events, "environment build"),
    )
    status = result.build_status = str(Build.from_api(state).status)
    if status == "failed":
        log = api.get(url + "buildLog/")
        text = str(log.get("log") or "") + ("\n" + str(log["error"]) if log.get("error") else "")
        result.build_log_tail = "\n".join(text.strip().splitlines()[-30:])
    return result
