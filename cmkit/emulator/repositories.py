"""Versions from repositories: local git repositories registered with the emulator.

DataRobot pulls from remote repositories registered in its remote-repositories chapter, which the
seed leaves out. The emulator's stand-in is an admin route: `POST /__emulator__/repositories`
with `{"path": "/abs/path/to/a/git/repo", "name"?}` registers a local repository and answers its
`id`, the `repositoryId` that `POST`/`PATCH customModels/{id}/versions/fromRepository/` take.

The request is checked at once (422: unknown repository, a `ref` that names no commit, a
`sourcePath` not in that commit); the version is then made in the background from the files at
that commit (`git archive`), `POST` with those files only, `PATCH` over the latest version's.
A folder `sourcePath` contributes its files relative to it, a file its name. Items record
`fileSource: "remote"`, the commit, ref, path in the repository, location and name.
"""

from __future__ import annotations

import io
import posixpath
import subprocess
import tarfile
import threading
from pathlib import Path

from flask import Response, request

from cmkit.emulator import models
from cmkit.emulator.bodies import CustomModelVersionCreateFromRepository, VersionFields
from cmkit.emulator.common import new_id, now
from cmkit.emulator.copies import upload_bytes
from cmkit.emulator.documents import Repository
from cmkit.emulator.errors import invalid
from cmkit.emulator.http import Query, Routes, accepted, checked_body, current_emulator, json_body, json_response
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import create_status, set_status
from cmkit.emulator.store import Kind

KIND: Kind[Repository] = Kind("repository")
GIT_TIMEOUT = 120


def _git(path: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", path, *args], capture_output=True, timeout=GIT_TIMEOUT, check=False)


def register(emu: Emulator, body: dict[str, object]) -> Repository:
    """Register the repository an admin request names (a body no schema checks: read with care)."""
    raw = body.get("path")
    if not isinstance(raw, str) or not Path(raw).is_absolute():
        raise invalid("path must be the absolute path of a local git repository", {"path": "absolute path"})
    path = str(Path(raw).resolve())
    if not Path(path).is_dir() or _git(path, "rev-parse", "--git-dir").returncode != 0:
        raise invalid(f"{path} is not a git repository", {"path": "not a git repository"})
    name = body.get("name") or Path(path).name
    if not isinstance(name, str) or not name.strip():
        raise invalid("name must be a non-empty string", {"name": "must be a non-empty string"})
    doc = Repository(id=new_id(), name=name, path=path, created=now())
    emu.store.insert(KIND, doc["id"], doc)
    return doc


def list_repositories(emu: Emulator) -> list[Repository]:
    return [r.doc for r in emu.store.list(KIND)]


def _commit(path: str, ref: str | None) -> str:
    if ref is not None and (not ref.strip() or ref.startswith("-")):
        raise invalid(f"ref {ref!r} is not a branch, tag or commit", {"ref": "not a git reference"})
    done = _git(path, "rev-parse", "--verify", "--quiet", f"{ref or 'HEAD'}^{{commit}}")
    if done.returncode != 0:
        raise invalid(f"ref {ref or 'HEAD'!r} names no commit of the repository", {"ref": "no such commit"})
    return done.stdout.decode().strip()


def _source_paths(raw: str | list[str] | None) -> list[str]:
    paths = [raw] if isinstance(raw, str) else list(raw or [])
    cleaned = []
    for path in paths:
        text = posixpath.normpath(str(path).strip().strip("/")) if str(path).strip("/ ") else "."
        if text.startswith(".."):
            raise invalid(f"sourcePath {path!r} leaves the repository", {"sourcePath": "must stay inside"})
        cleaned.append(text)
    return cleaned or ["."]


def _files(path: str, commit: str, sources: list[str]) -> dict[str, tuple[str, bytes]]:
    """{version path: (repository path, content)} of the files under `sources` at `commit`."""
    done = _git(path, "archive", "--format=tar", commit, "--", *sources)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise invalid(
            f"sourcePath not found at commit {commit[:12]}: {message[-1] if message else 'git archive failed'}",
            {"sourcePath": "not in the repository at that ref"},
        )
    files: dict[str, tuple[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            source = next(s for s in sources if s == "." or member.name == s or member.name.startswith(s + "/"))
            if source == ".":
                relative = member.name
            elif member.name == source:
                relative = posixpath.basename(member.name)
            else:
                relative = member.name[len(source) + 1 :]
            extracted = archive.extractfile(member)
            files[relative] = (member.name, extracted.read() if extracted else b"")
    if not files:
        raise invalid("sourcePath holds no files at that ref", {"sourcePath": "no files"})
    return files


def create_version(
    emu: Emulator, model_id: str, body: CustomModelVersionCreateFromRepository, from_latest: bool
) -> str:
    """Check the request, then make the version in the background; the status id to poll."""
    models.find_model(emu, model_id)
    repository = emu.store.get(KIND, body["repositoryId"])
    if repository is None:
        raise invalid(
            f"Repository {body['repositoryId']} is not registered (POST /__emulator__/repositories)",
            {"repositoryId": "unknown repository"},
        )
    commit = _commit(repository.doc["path"], body.get("ref"))
    files = _files(repository.doc["path"], commit, _source_paths(body.get("sourcePath")))
    status_id = create_status(emu, f"Custom model {model_id} version from repository", "customModelVersion")
    emu.jobs.submit(
        f"from-repository:{status_id}",
        lambda cancel: _make(emu, model_id, body, from_latest, repository.doc, commit, files, status_id, cancel),
        quick=True,
    )
    return status_id


def _make(
    emu: Emulator,
    model_id: str,
    body: CustomModelVersionCreateFromRepository,
    from_latest: bool,
    repository: Repository,
    commit: str,
    files: dict[str, tuple[str, bytes]],
    status_id: str,
    cancel: threading.Event,
) -> None:
    set_status(emu, status_id, "RUNNING")
    fields = VersionFields()
    if "baseEnvironmentId" in body:
        fields["baseEnvironmentId"] = body["baseEnvironmentId"]
    if "requiredMetadataValues" in body:
        fields["requiredMetadataValues"] = body["requiredMetadataValues"]
    if "keepTrainingHoldoutData" in body:
        fields["keepTrainingHoldoutData"] = body["keepTrainingHoldoutData"]
    fields["isMajorUpdate"] = "true" if body.get("isMajorUpdate", True) else "false"
    uploads = [upload_bytes(emu, path, content) for path, (_, content) in files.items()]
    try:
        with emu.store.transaction():
            previous = emu.store.latest(models.VERSION_KIND, model_id)
            carried = {item["id"] for item in previous.doc["items"]} if previous else set()
            version = models.create_version(emu, model_id, fields, uploads, from_latest=from_latest)
            record = emu.store.get(models.VERSION_KIND, version["id"])
            assert record is not None
            for item in record.doc["items"]:
                if item["filePath"] in files and item["id"] not in carried:
                    item["fileSource"] = "remote"
                    item["commitSha"] = commit
                    item["ref"] = body.get("ref") or "HEAD"
                    item["repositoryFilePath"] = files[item["filePath"]][0]
                    item["repositoryLocation"] = repository["path"]
                    item["repositoryName"] = repository["name"]
            emu.store.save(record)
    except Exception as exc:  # an API error (environment, limits) or worse: the job's failure
        message = getattr(exc, "message", str(exc))
        set_status(emu, status_id, "ERROR", f"The version could not be created: {message}")
        return
    set_status(emu, status_id, "COMPLETED", location=f"customModels/{model_id}/versions/{version['id']}/")


# -- versions from repositories ------------------------------------------------------------------

ROUTES = Routes()

FROM_REPOSITORY = "customModels/{customModelId}/versions/fromRepository/"


@ROUTES.api("POST", FROM_REPOSITORY)
def http_version_from_repository(emu: Emulator, query: Query, customModelId: str) -> Response:
    body = checked_body(CustomModelVersionCreateFromRepository)
    return accepted({}, create_version(emu, customModelId, body, from_latest=False))


@ROUTES.api("PATCH", FROM_REPOSITORY)
def http_version_from_repository_over_latest(emu: Emulator, query: Query, customModelId: str) -> Response:
    body = checked_body(CustomModelVersionCreateFromRepository)
    return accepted({}, create_version(emu, customModelId, body, from_latest=True))


@ROUTES.admin("repositories", "GET", "POST")
def _admin_repositories() -> Response:
    emu = current_emulator()
    if request.method == "GET":
        return json_response({"data": list_repositories(emu)})
    return json_response(register(emu, json_body()), 201)
