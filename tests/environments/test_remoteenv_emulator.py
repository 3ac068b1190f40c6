"""`--environment-id`: an environment version's docker context fetched from a real `cmkit emulator`.

These run the emulator's process runtime (nothing is built); the Docker end (test-local building
the downloaded context) is in tests/runtime/test_dropin_environment.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cmkit.api.client import DataRobotClient
from cmkit.api.config import load_api_config
from cmkit.cli import main
from cmkit.events import Events
from cmkit.remoteenv import cache_root, fetch_environment
from cmkit.testlocal import TestLocalConfig, fetch_remote_environment, resolve_config
from tests.runtime.test_drum_formats import hooks_only
from tests.support.emulator_support import TOKEN, Emulator

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_datarobot_configuration")]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(tmp_path / "emulator-data").start()
    yield emu
    emu.stop()


def run_cli(*args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(main, ["test-local", *args, "--json"])
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result, document


def api(emulator: Emulator) -> DataRobotClient:
    return DataRobotClient(load_api_config(emulator.endpoint, TOKEN))


def test_the_latest_successful_version_is_downloaded_once_and_cached_by_content(emulator: Emulator) -> None:
    client = api(emulator)
    env_id = emulator.info["environmentId"]
    try:
        first = fetch_environment(client, env_id)
        again = fetch_environment(client, env_id)
        environment = client.get(f"executionEnvironments/{env_id}/")
    finally:
        client.close()
    assert first.version_id == environment["latestSuccessfulVersion"]["id"] and not first.cached
    assert (first.context_dir / "Dockerfile").is_file() and (first.context_dir / "cmkit_runtime").is_dir()
    assert first.context_dir == cache_root() / first.sha256[:24] / "context"
    assert again.cached and again.context_dir == first.context_dir and again.sha256 == first.sha256
    # The second fetch asked only for the environment, never for the archive again.
    journal = emulator.session().get(emulator.root + "__emulator__/requests").json()["requests"]
    downloads = [e for e in journal if e["path"].endswith("/download/")]
    assert len(downloads) == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--token", "not-the-token"], "refused the API token (HTTP 401)"),
        (["--environment-id", "0123456789abcdef01234567"], "execution environment 0123456789abcdef01234567 not found"),
        (["--environment-version-id", "0123456789abcdef01234567"], "version 0123456789abcdef01234567 of execution"),
    ],
    ids=["bad-token", "unknown-environment", "unknown-version"],
)
def test_bad_credentials_and_unknown_ids_are_one_line_and_exit_2(
    emulator: Emulator, tmp_path: Path, args: list[str], fragment: str
) -> None:
    bundle = hooks_only(tmp_path / "m")
    options = {"--endpoint": emulator.endpoint, "--token": TOKEN, "--environment-id": emulator.info["environmentId"]}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    result, _ = run_cli(str(bundle), *[part for pair in options.items() for part in pair])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and "Traceback" not in result.output
    assert TOKEN not in result.output


def test_an_environment_without_a_built_version_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    session = emulator.session()
    created = session.post(
        emulator.url("executionEnvironments/"), json={"name": "empty", "programmingLanguage": "python"}
    )
    env_id = created.json()["id"]
    result, _ = run_cli(
        str(hooks_only(tmp_path / "m")), "--endpoint", emulator.endpoint, "--token", TOKEN, "--environment-id", env_id
    )
    assert (
        result.exit_code == 2 and f"execution environment {env_id} has no successfully built version" in result.stderr
    )


def test_a_version_id_without_an_environment_id_is_a_usage_error(tmp_path: Path) -> None:
    result, _ = run_cli(str(hooks_only(tmp_path / "m")), "--environment-version-id", "abc")
    assert result.exit_code == 2 and "--environment-version-id needs --environment-id" in result.stderr


def test_the_metadata_environment_id_without_credentials_warns_and_keeps_the_default(tmp_path: Path) -> None:
    bundle = hooks_only(tmp_path / "m")
    meta = bundle / "model-metadata.yaml"
    meta.write_text(meta.read_text() + "environmentID: 5e8c889607389fe0f466c72d\n")
    # Resolving reads the metadata's environmentID and, without credentials, drops it with a warning.
    config = resolve_config(TestLocalConfig(bundle=bundle, runtime="docker")).server
    assert config.remote is None and config.environment is None
    assert "environmentID 5e8c889607389fe0f466c72d" in config.warnings[0]
    assert "using the default environment" in config.warnings[0]
    assert config.announced == config.warnings  # shown as the server starts, too
    assert fetch_remote_environment(config, Events()) is None
    # The flag without credentials is the user's error, not a warning.
    with pytest.raises(Exception, match="no DataRobot endpoint and token configured"):
        resolve_config(TestLocalConfig(bundle=bundle, runtime="docker", environment_id="abc"))


def test_the_metadata_environment_id_is_fetched_with_credentials(emulator: Emulator, tmp_path: Path) -> None:
    bundle = hooks_only(tmp_path / "m")
    meta = bundle / "model-metadata.yaml"
    meta.write_text(meta.read_text() + f"environmentID: {emulator.info['environmentId']}\n")
    config = resolve_config(TestLocalConfig(bundle=bundle, runtime="docker", endpoint=emulator.endpoint, token=TOKEN))
    assert config.server.remote is not None and config.server.remote.source == "model-metadata.yaml"
    remote = fetch_remote_environment(config.server, Events())
    assert remote is not None and (remote.fetched.context_dir / "Dockerfile").is_file()
    assert remote.source == "model-metadata.yaml"
    assert remote.to_dict()["environmentId"] == emulator.info["environmentId"]  # what the report's details say
