"""Crash leftovers (issue 13, item 8): what a `kill -9` of the emulator leaves is ended at the next start."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from cmkit.emulator.jobs import labels_for
from tests.conftest import TEST_LABEL, TEST_RUN_ID
from tests.emulator.test_state import bundle_files, new_model, new_version, upload_dataset
from tests.support.bundles import write_flask_bundle
from tests.support.emulator_support import Emulator, seeded_environment_ready, wait_for

pytestmark = pytest.mark.slow

# A model server that hangs and starts a daemon in a session of its own, as servers that
# daemonize do: neither is in the emulator's process group, so the emulator's death spares both.
ESCAPING_START = """#!/bin/sh
echo $$ > {server}
setsid sleep 600 &
echo $! > {daemon}
exec sleep 600
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie has ended; only its parent has not reaped it yet


def test_a_killed_emulators_model_servers_and_temporaries_are_ended_at_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server_file, daemon_file = tmp_path / "server.pid", tmp_path / "daemon.pid"
    start = ESCAPING_START.format(server=server_file, daemon=daemon_file)
    bundle = write_flask_bundle(tmp_path / "bundle", start_script=start)
    emulator = Emulator(data_dir).start()
    pids: list[int] = []
    try:
        api = emulator.session()
        model_id = new_model(emulator, api)
        version = new_version(emulator, api, model_id, bundle_files(bundle))
        dataset_id = upload_dataset(emulator, api, bundle / "data" / "sample.csv")
        body = {"customModelId": model_id, "customModelVersionId": version["id"], "datasetId": dataset_id}
        assert api.post(emulator.url("customModelTests/"), json=body).status_code == 202
        wait_for(lambda: server_file.is_file() and daemon_file.is_file() and daemon_file.read_text().strip())
        pids = [int(server_file.read_text()), int(daemon_file.read_text())]
        (data_dir / "tmp" / "upload-partial").write_bytes(b"half an upload")
        assert list((data_dir / "run" / "servers").glob("*.json"))  # the running test is recorded
        emulator.stop(signal.SIGKILL)
        assert all(alive(pid) for pid in pids)  # what a hard kill leaves behind

        emulator = Emulator(data_dir).start()
        assert not any(alive(pid) for pid in pids)
        assert list((data_dir / "tmp").iterdir()) == []
        assert list((data_dir / "run" / "servers").iterdir()) == []
        test = api.get(emulator.url(f"customModelTests/?customModelId={model_id}")).json()["data"][0]
        assert test["overallStatus"] == "aborted"
    finally:
        emulator.stop()
        for pid in pids:  # only if the emulator failed to: they are this test's own processes
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


HANGING_START = """#!/bin/sh
exec sleep 600
"""


@pytest.mark.docker
def test_a_killed_emulators_containers_are_removed_at_next_start(docker_client: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    bundle = write_flask_bundle(tmp_path / "bundle", start_script=HANGING_START)
    emulator = Emulator(data_dir, runtime="docker").start()
    filters = {"label": [f"{TEST_LABEL}={TEST_RUN_ID}", f"cmkit.emulator={labels_for(data_dir, {})['cmkit.emulator']}"]}
    try:
        seeded_environment_ready(emulator)
        api = emulator.session()
        model_id = new_model(emulator, api)
        version = new_version(emulator, api, model_id, bundle_files(bundle))
        dataset_id = upload_dataset(emulator, api, bundle / "data" / "sample.csv")
        body = {"customModelId": model_id, "customModelVersionId": version["id"], "datasetId": dataset_id}
        assert api.post(emulator.url("customModelTests/"), json=body).status_code == 202
        running = wait_for(lambda: docker_client.containers.list(filters=filters), 600)
        emulator.stop(signal.SIGKILL)
        assert [c.id for c in docker_client.containers.list(filters=filters)] == [c.id for c in running]

        emulator = Emulator(data_dir, runtime="docker").start()
        assert docker_client.containers.list(all=True, filters=filters) == []
    finally:
        emulator.stop()
