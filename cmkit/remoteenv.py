"""An execution environment fetched from DataRobot, to test a model on the environment it will run on.

`cmkit test-local --environment-id ID [--environment-version-id VID]` (and `serve`, and
`environmentID` in model-metadata.yaml) download that version's docker context with push's
configuration (cmkit/api/config.py) through `GET
executionEnvironments/{id}/versions/{vid}/download/`, the latest successful version by
default, and build it as any `--environment` folder.

Contexts are cached by content: the archive's SHA-256 names its extracted folder under
`$CMKIT_CACHE_DIR/environments/` (the user cache folder by default), and an environment
version, which DataRobot never changes once built, remembers which content it had, so a second
run downloads nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmkit.api.client import ApiError, DataRobotClient
from cmkit.api.config import ApiConfig
from cmkit.api.resources import EnvironmentVersion, ExecutionEnvironment
from cmkit.contexts import ContextError, extract_context
from cmkit.errors import InputError
from cmkit.events import Events
from cmkit.paths import cache_dir

CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchedEnvironment:
    environment_id: str
    version_id: str
    name: str
    context_dir: Path
    sha256: str
    cached: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "environmentId": self.environment_id,
            "environmentVersionId": self.version_id,
            "name": self.name,
            "contextDir": str(self.context_dir),
            "sha256": self.sha256,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class UsedEnvironment:
    """The environment version a run used, and who named it (the report's `details.environment`)."""

    fetched: FetchedEnvironment
    source: str  # "flag" or "model-metadata.yaml"

    def to_dict(self) -> dict[str, object]:
        return {**self.fetched.to_dict(), "source": self.source}


def cache_root() -> Path:
    return cache_dir() / "environments"


def _refused(exc: ApiError, what: str, config: ApiConfig) -> InputError:
    """One line for each way DataRobot can say no."""
    if exc.status in (401, 403):
        return InputError(
            f"DataRobot at {config.endpoint} refused the API token (HTTP {exc.status})",
            hint="check DATAROBOT_API_TOKEN, --token or drconfig.yaml",
        )
    if exc.status == 404:
        return InputError(f"{what} not found at {config.endpoint}", hint="check the ID (cmkit env push prints it)")
    return InputError(f"cannot fetch {what}: {exc.message}")


def _version(api: DataRobotClient, environment: ExecutionEnvironment, version_id: str | None) -> EnvironmentVersion:
    env_id = environment.id
    if version_id is None:
        latest = environment.latest_successful_version
        if latest is None:
            raise InputError(
                f"execution environment {env_id} has no successfully built version",
                hint="push one (cmkit env push) or pass --environment-version-id",
            )
        return latest
    what = f"version {version_id} of execution environment {env_id}"
    try:
        version = EnvironmentVersion.from_api(api.get(f"executionEnvironments/{env_id}/versions/{version_id}/"))
    except ApiError as exc:
        raise _refused(exc, what, api.config) from None
    status = version.build_status
    if status != "success":
        raise InputError(
            f"{what} cannot be used: its build status is '{status}'",
            hint="pick a version whose build succeeded, or leave out --environment-version-id for the latest one",
        )
    return version


def _index_file(config: ApiConfig, env_id: str, version_id: str) -> Path:
    key = hashlib.sha256(f"{config.endpoint}\n{env_id}\n{version_id}".encode()).hexdigest()[:24]
    return cache_root() / "versions" / f"{key}.json"


def _cached_context(index: Path) -> tuple[Path, str] | None:
    try:
        sha = str(json.loads(index.read_text())["sha256"])
    except (OSError, ValueError, KeyError):
        return None
    context = cache_root() / sha[:24] / "context"
    return (context, sha) if (context / "Dockerfile").is_file() else None


def _download(api: DataRobotClient, path: str, target: Path) -> str:
    digest = hashlib.sha256()
    response = api.request("GET", path, expected=(200,), stream=True)
    with target.open("wb") as handle:
        for chunk in response.iter_content(CHUNK):
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def _extract(archive: Path, sha: str) -> Path:
    folder = cache_root() / sha[:24]
    context = folder / "context"
    if (context / "Dockerfile").is_file():
        return context
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_root()))
    try:
        extract_context(archive, staging / "context")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # atomic: a concurrent run sees all of the context or none
    except ContextError as exc:  # a path, a size or a format the unpacker refuses, as the emulator refuses uploads
        raise InputError(f"the downloaded docker context is unusable: {exc.message}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return context


def fetch_environment(
    api: DataRobotClient, environment_id: str, version_id: str | None = None, events: Events | None = None
) -> FetchedEnvironment:
    """The docker context of an environment version, downloaded once and cached by content."""
    events = events or Events()
    try:
        environment = ExecutionEnvironment.from_api(api.get(f"executionEnvironments/{environment_id}/"))
    except ApiError as exc:
        raise _refused(exc, f"execution environment {environment_id}", api.config) from None
    version = _version(api, environment, version_id)
    vid = version.id
    name = environment.name or environment_id
    index = _index_file(api.config, environment_id, vid)
    cached = _cached_context(index)
    if cached:
        events.stage(f"environment '{name}' version {vid}: docker context from the cache")
        return FetchedEnvironment(environment_id, vid, name, cached[0], cached[1], True)
    events.stage(f"downloading the docker context of environment '{name}' version {vid}")
    cache_root().mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".download-", dir=cache_root())
    os.close(handle)
    try:
        try:
            sha = _download(api, f"executionEnvironments/{environment_id}/versions/{vid}/download/", Path(temp))
        except ApiError as exc:
            raise _refused(
                exc, f"the docker context of version {vid} of environment {environment_id}", api.config
            ) from None
        context = _extract(Path(temp), sha)
    finally:
        Path(temp).unlink(missing_ok=True)
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps({"environmentId": environment_id, "versionId": vid, "sha256": sha}))
    return FetchedEnvironment(environment_id, vid, name, context, sha, False)
