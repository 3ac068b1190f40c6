"""`cmkit env push` as a library call (cmkit/environments.py) against the emulator's app on a
loopback socket, and the emulator's environment module called directly (fast tier); the command
against a `cmkit emulator` subprocess over HTTP (slow tier)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.api.client import DataRobotClient
from cmkit.cli import main
from cmkit.emulator import environments as emulated
from cmkit.environments import push_environment
from cmkit.events import RecordingEvents
from tests.conftest import REPO
from tests.support.emulator_support import TOKEN, Emulator, FlaskEmulator
from tests.support.http_server import api_client

pytestmark = pytest.mark.usefixtures("fast_api_polls")  # the emulator's builds end at once


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskEmulator]:
    emu = FlaskEmulator(tmp_path_factory.mktemp("env-push") / "data")
    yield emu
    emu.close()


@pytest.fixture(scope="module")
def api(emulator: FlaskEmulator) -> Iterator[DataRobotClient]:
    with api_client(emulator) as client:
        yield client


def context(folder: Path, marker: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(f"FROM python:3.11-slim\n{marker}")
    (folder / "requirements.txt").write_text("flask\n")
    return folder


def test_env_push_creates_then_is_up_to_date_then_adds_a_version(api: DataRobotClient, tmp_path: Path) -> None:
    folder = context(tmp_path / "team-env")
    events = RecordingEvents()
    first = push_environment(api, folder, events=events)
    assert first.created_environment and not first.up_to_date and first.build_status == "success"
    assert first.context_bytes > 0 and any("creating execution environment 'team-env'" in e for e in events.lines)
    uploaded = [done for label, done, total, _ in events.progressed if label == "uploading" and done == total]
    assert uploaded and uploaded[-1] == first.context_bytes

    again = push_environment(api, folder)
    assert again.up_to_date and not again.created_environment
    assert (again.environment_id, again.version_id, again.context_bytes) == (first.environment_id, first.version_id, 0)

    (folder / "Dockerfile").write_text("FROM python:3.11-slim\nRUN true\n")
    changed = push_environment(api, folder, environment_id=first.environment_id)
    assert not changed.up_to_date and changed.version_id != first.version_id
    assert changed.to_dict()["environmentId"] == first.environment_id
    versions = list(api.pages(f"executionEnvironments/{first.environment_id}/versions/"))
    assert len(versions) == 2


def test_env_push_without_waiting_reports_the_submitted_build(api: DataRobotClient, tmp_path: Path) -> None:
    result = push_environment(api, context(tmp_path / "ctx", "# nowait\n"), name="no-wait", wait=False)
    assert result.created_environment and result.build_status in ("submitted", "processing", "success")


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_extract_context_unpacks_a_zip_and_refuses_escapes(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    good.write_bytes(zipped({"Dockerfile": b"FROM x\n", "app/main.py": b"print(1)\n"}))
    emulated.extract_context(good, tmp_path / "out")
    assert (tmp_path / "out" / "app" / "main.py").read_bytes() == b"print(1)\n"
    evil = tmp_path / "evil.zip"
    evil.write_bytes(zipped({"Dockerfile": b"FROM x\n", "../outside.txt": b"x"}))
    with pytest.raises(Exception) as refused:  # the emulator's error answer, by its status
        emulated.extract_context(evil, tmp_path / "evil-out")
    assert getattr(refused.value, "status", None) == 422
    assert not (tmp_path / "outside.txt").exists()


def test_the_emulators_environments_directly(emulator: FlaskEmulator) -> None:
    core = emulator.core
    seeded = emulated.seeded_environment_id(core)
    assert seeded == emulator.environment_id()
    env_id = emulated.create(core, {"name": "direct one", "programmingLanguage": "python"})
    assert emulated.get(core, env_id)["name"] == "direct one"
    assert [e["id"] for e in emulated.list_environments(core, "DIRECT ONE", None)] == [env_id]
    assert emulated.update(core, env_id, {"description": "changed"})["description"] == "changed"
    assert emulated.list_versions(core, env_id, None, None) == []
    assert emulated.latest_successful(core, env_id) is None
    emulated.delete(core, env_id)
    with pytest.raises(Exception) as gone:
        emulated.get(core, env_id)
    assert getattr(gone.value, "status", None) == 404
    assert emulated.latest_successful(core, seeded or "") is not None


def test_env_push_retries_a_refused_upload_after_looking_for_it(api: DataRobotClient, tmp_path: Path) -> None:
    rule = {
        "count": 1,
        "status": 503,
        "method": "POST",
        "path": "executionEnvironments/[^/]+/versions/$",
        "retryAfter": 0,
    }
    api.request("POST", api.config.app_url + "/__emulator__/faults", json=rule, expected=(201,))
    events = RecordingEvents()
    result = push_environment(api, context(tmp_path / "retried"), wait=False, events=events)
    assert not result.up_to_date and result.created_environment
    assert any("uploading the environment: " in line and "retrying" in line for line in events.lines)
    versions = list(api.pages(f"executionEnvironments/{result.environment_id}/versions/"))
    assert [v["id"] for v in versions] == [result.version_id]  # one version, not two


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Emulator]:
    """A real `cmkit emulator` subprocess, for the command over HTTP."""
    emu = Emulator(tmp_path / "emulator-data").start()
    yield emu
    emu.stop()


@pytest.mark.slow
@pytest.mark.usefixtures("no_datarobot_configuration")
def test_env_push_uploads_once(served: Emulator) -> None:
    emulator = served
    arguments = [
        "env",
        "push",
        str(REPO / "templates" / "environments" / "python3"),
        "--name",
        "team-python",
        "--endpoint",
        emulator.endpoint,
        "--token",
        TOKEN,
        "--json",
    ]
    first = CliRunner().invoke(main, arguments)
    assert first.exit_code == 0, first.output
    document = json.loads(first.stdout)
    assert document["createdEnvironment"] and document["buildStatus"] == "success"
    again = json.loads(CliRunner().invoke(main, arguments).stdout)
    assert again["upToDate"] and again["environmentId"] == document["environmentId"]
    assert again["versionId"] == document["versionId"]
