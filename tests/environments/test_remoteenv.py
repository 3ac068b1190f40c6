"""`--environment-id`'s fetch (cmkit/remoteenv.py) as library calls, on a real loopback socket (fast tier).

The emulator's own app answers the happy paths (its seeded environment, a token it refuses, ids
it does not know); a scripted app stands in for what the emulator never produces (a version
whose build failed, a server error, an archive that is not a docker context). The CLI end to end
against a `cmkit emulator` subprocess is tests/environments/test_remoteenv_emulator.py (slow tier).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify

from cmkit.api.client import DataRobotClient
from cmkit.api.config import ApiConfig
from cmkit.errors import InputError
from cmkit.events import RecordingEvents
from cmkit.remoteenv import cache_root, fetch_environment
from tests.support.emulator_support import TOKEN, FlaskEmulator
from tests.support.flask_transport import InProcessEmulator
from tests.support.http_server import api_client, serving

ABSENT = "0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def emulator(stdlib_emulator: InProcessEmulator) -> FlaskEmulator:
    return stdlib_emulator.flask  # the session's in-process emulator: its start is paid once


@pytest.fixture(scope="module")
def api(emulator: FlaskEmulator) -> Iterator[DataRobotClient]:
    with api_client(emulator) as client:
        yield client


def test_the_latest_successful_version_is_downloaded_once_and_cached_by_content(
    emulator: FlaskEmulator, api: DataRobotClient
) -> None:
    env_id = emulator.environment_id()
    events = RecordingEvents()
    first = fetch_environment(api, env_id, events=events)
    latest = api.get(f"executionEnvironments/{env_id}/")["latestSuccessfulVersion"]
    assert (first.environment_id, first.version_id, first.cached) == (env_id, latest["id"], False)
    assert first.context_dir == cache_root() / first.sha256[:24] / "context"
    assert (first.context_dir / "Dockerfile").is_file() and (first.context_dir / "cmkit_runtime").is_dir()
    assert first.to_dict()["contextDir"] == str(first.context_dir) and first.to_dict()["cached"] is False
    again = fetch_environment(api, env_id, latest["id"], events)  # the same version, named explicitly
    assert again.cached and (again.context_dir, again.sha256) == (first.context_dir, first.sha256)
    stages = [line.removeprefix("== ") for line in events.lines if line.startswith("== ")]
    assert stages[0].startswith("downloading the docker context of environment") and "from the cache" in stages[1]
    # A cached context that lost its Dockerfile is not trusted: it is downloaded and extracted again.
    (first.context_dir / "Dockerfile").unlink()
    repaired = fetch_environment(api, env_id)
    assert not repaired.cached and (repaired.context_dir / "Dockerfile").is_file()


def test_refusals_and_unknown_ids_are_one_line_input_errors(emulator: FlaskEmulator, api: DataRobotClient) -> None:
    env_id = emulator.environment_id()
    with pytest.raises(InputError, match=f"execution environment {ABSENT} not found at "):
        fetch_environment(api, ABSENT)
    with pytest.raises(InputError, match=f"version {ABSENT} of execution environment {env_id} not found"):
        fetch_environment(api, env_id, ABSENT)
    empty = emulator.request("POST", "executionEnvironments/", json={"name": "empty", "programmingLanguage": "python"})
    empty_id = empty.get_json()["id"]
    with pytest.raises(InputError, match=f"execution environment {empty_id} has no successfully built version") as info:
        fetch_environment(api, empty_id)
    assert "cmkit env push" in str(info.value.hint)
    with serving(emulator.app) as base:
        stranger = DataRobotClient(ApiConfig(base + "api/v2", "not-the-token", max_retries=0))
        try:
            with pytest.raises(InputError, match=r"refused the API token \(HTTP 401\)") as refused:
                fetch_environment(stranger, env_id)
        finally:
            stranger.close()
    assert "not-the-token" not in str(refused.value) and TOKEN not in str(refused.value)


def scripted(download: bytes, build_status: str = "success", download_status: int = 200) -> Flask:
    """An API with one environment (E) and one version (V), answering what each test needs."""
    app = Flask("scripted-datarobot")
    version = {"id": "V", "buildStatus": build_status}

    @app.get("/api/v2/executionEnvironments/E/")
    def environment() -> Any:
        return jsonify({"id": "E", "name": "scripted", "latestSuccessfulVersion": version})

    @app.get("/api/v2/executionEnvironments/E/versions/V/")
    def get_version() -> Any:
        return jsonify(version)

    @app.get("/api/v2/executionEnvironments/E/versions/V/download/")
    def get_download() -> Response:
        if download_status != 200:
            return Response('{"message": "the store is down"}', download_status, mimetype="application/json")
        return Response(download, mimetype="application/octet-stream")

    @app.get("/api/v2/executionEnvironments/BROKEN/")
    def broken() -> Response:
        return Response('{"message": "database unavailable"}', 500, mimetype="application/json")

    return app


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture
def scripted_api(request: pytest.FixtureRequest) -> Iterator[DataRobotClient]:
    with serving(scripted(**request.param)) as base:
        client = DataRobotClient(ApiConfig(base + "api/v2", TOKEN, max_retries=0))
        try:
            yield client
        finally:
            client.close()


@pytest.mark.parametrize(
    ("scripted_api", "version_id", "message"),
    [
        ({"download": b""}, "BROKEN-ENV", "cannot fetch execution environment BROKEN: "),
        ({"download": b"", "build_status": "failed"}, "V", "its build status is 'failed'"),
        ({"download": b"", "download_status": 404}, None, "the docker context of version V of environment E not found"),
        ({"download": b"not an archive at all"}, None, "the downloaded docker context is unusable: "),
        (
            {"download": zipped({"sub/Dockerfile": b"FROM x\n"})},
            None,
            "unusable: the archive has no top-level Dockerfile",
        ),
        (
            {"download": zipped({"Dockerfile": b"", "../escape": b"x"})},
            None,
            "the downloaded docker context is unusable: ",
        ),
    ],
    indirect=["scripted_api"],
    ids=["server-error", "failed-build", "download-404", "not-an-archive", "no-dockerfile", "unsafe-path"],
)
def test_what_a_server_can_get_wrong_is_an_input_error(
    scripted_api: DataRobotClient, version_id: str | None, message: str
) -> None:
    environment = "BROKEN" if version_id == "BROKEN-ENV" else "E"
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fetch_environment(scripted_api, environment, None if version_id == "BROKEN-ENV" else version_id)
    # Nothing half-written is left in the cache for the next run to trust.
    leftovers = [p.name for p in cache_root().glob("*")] if cache_root().exists() else []
    assert all(name == "versions" or not name.startswith(".") for name in leftovers), leftovers
    assert not (cache_root() / "versions").exists()


def test_a_resolved_run_fetches_the_environment_it_names(emulator: FlaskEmulator, tmp_path: Path) -> None:
    """test-local's start: the resolved run's remote source, fetched once, is what the report names."""
    from cmkit.events import Events
    from cmkit.resolvedrun import TestLocalConfig, resolve_config
    from cmkit.testlocal import fetch_remote_environment
    from tests.support.bundles import write_quick_bundle

    env_id = emulator.environment_id()
    bundle = write_quick_bundle(tmp_path / "bundle")
    with serving(emulator.app) as base:
        request = TestLocalConfig(
            bundle=bundle,
            target_type="regression",
            runtime="docker",  # asked for, so not probed: fetching needs no engine
            environment_id=env_id,
            endpoint=base + "api/v2",
            token=TOKEN,
        )
        run = resolve_config(request)
        local = resolve_config(TestLocalConfig(bundle=bundle, target_type="regression", runtime="process"))
        assert fetch_remote_environment(local.server, Events()) is None
        used = fetch_remote_environment(run.server, Events())
    assert used is not None and used.source == "flag"
    assert (used.fetched.context_dir / "Dockerfile").is_file()
    assert used.to_dict()["environmentId"] == env_id and used.to_dict()["source"] == "flag"
