"""State: restarts keep everything, concurrent clients cannot corrupt it, stopped jobs end cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.bundles import write_flask_bundle
from tests.support.emulator_support import Emulator, upload_files, wait_for

pytestmark = pytest.mark.slow
MODEL = {"customModelType": "inference", "name": "m", "targetType": "Regression", "targetName": "y"}


def bundle_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def new_model(emulator: Emulator, api: requests.Session) -> str:
    return str(api.post(emulator.url("customModels/"), json=MODEL).json()["id"])


def new_version(emulator: Emulator, api: requests.Session, model_id: str, files: dict[str, bytes]) -> dict[str, Any]:
    env_id = emulator.info["environmentId"]
    data = [("isMajorUpdate", (None, b"true")), ("baseEnvironmentId", (None, env_id.encode()))]
    response = api.post(emulator.url(f"customModels/{model_id}/versions/"), files=data + upload_files(files))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def upload_dataset(emulator: Emulator, api: requests.Session, path: Path) -> str:
    status_url = api.post(emulator.url("datasets/fromFile/"), files={"file": (path.name, path.read_bytes())}).headers[
        "Location"
    ]
    redirect = wait_for(lambda: (r := api.get(status_url, allow_redirects=False)).status_code == 303 and r)
    return str(api.get(redirect.headers["Location"]).json()["datasetId"])


def test_restart_keeps_every_resource(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    bundle = write_flask_bundle(tmp_path / "bundle", requirements="six==1.16.0\n")
    first = Emulator(data_dir).start()
    try:
        api = first.session()
        model_id = new_model(first, api)
        version = new_version(first, api, model_id, bundle_files(bundle))
        build_url = first.url(f"customModels/{model_id}/versions/{version['id']}/dependencyBuild/")
        api.post(build_url)
        wait_for(lambda: api.get(build_url).json()["buildStatus"] == "success")
        dataset_id = upload_dataset(first, api, bundle / "data" / "sample.csv")
        test = api.post(
            first.url("customModelTests/"),
            json={"customModelId": model_id, "customModelVersionId": version["id"], "datasetId": dataset_id},
        )
        assert test.status_code == 202, test.text
        tests_url = first.url(f"customModelTests/?customModelId={model_id}")
        finished = wait_for(lambda: (t := api.get(tests_url).json()["data"][0])["completedAt"] and t, timeout=180)
        assert finished["overallStatus"] == "succeeded", finished["testingStatus"]
        paths = [
            f"customModels/{model_id}/",
            f"customModels/{model_id}/versions/",
            f"customModels/{model_id}/versions/{version['id']}/dependencyBuild/",
            f"customModels/{model_id}/versions/{version['id']}/dependencyBuildLog/",
            f"datasets/{dataset_id}/",
            f"customModelTests/{finished['id']}/",
            f"customModelTests/{finished['id']}/log/",
            f"executionEnvironments/{first.info['environmentId']}/",
        ]
        before = {path: api.get(first.url(path)).text for path in paths}
        archive = api.get(first.url(f"customModels/{model_id}/versions/{version['id']}/download/")).content
    finally:
        assert first.stop() == 0  # a clean exit on SIGTERM

    second = Emulator(data_dir).start()
    try:
        api = second.session()
        assert second.info["environmentId"] == first.info["environmentId"]  # seeded once
        after = {path: api.get(second.url(path)).text for path in paths}
        assert after == {path: text.replace(first.endpoint, second.endpoint) for path, text in before.items()}
        assert api.get(second.url(f"customModels/{model_id}/versions/{version['id']}/download/")).content == archive
        environments = api.get(second.url("executionEnvironments/")).json()
        assert environments["totalCount"] == 1
    finally:
        second.stop()


def test_parallel_clients_get_distinct_gap_free_versions(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path / "data").start()
    clients, per_client = 8, 5
    try:
        api = emulator.session()
        model_id = new_model(emulator, api)
        new_version(emulator, api, model_id, {"base.txt": b"base"})
        barrier = threading.Barrier(clients)
        results: list[dict[str, Any]] = []
        errors: list[str] = []

        def client(index: int) -> None:
            session = emulator.session()
            barrier.wait()
            for round_ in range(per_client):
                files = upload_files({f"client{index}/round{round_}.txt": f"{index}/{round_}".encode()})
                response = session.patch(
                    emulator.url(f"customModels/{model_id}/versions/"),
                    files=[("isMajorUpdate", (None, b"false")), *files],
                )
                if response.status_code == 201:
                    results.append(response.json())
                else:
                    errors.append(response.text)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        minors = sorted(v["versionMinor"] for v in results)
        assert minors == list(range(1, clients * per_client + 1))  # distinct and gap-free
        assert {v["versionMajor"] for v in results} == {1}
        # Each PATCH built on the true latest version: the last one holds every file.
        latest = api.get(emulator.url(f"customModels/{model_id}/")).json()["latestVersion"]
        assert len(latest["items"]) == 1 + clients * per_client
    finally:
        emulator.stop()


HANGING_START = """#!/bin/sh
echo $$ > {pid_file}
exec sleep 600
"""


def start_hanging_test(emulator: Emulator, tmp_path: Path) -> tuple[str, str, Path]:
    """A model test whose server never answers, so it is still running when the emulator stops."""
    pid_file = tmp_path / "server.pid"
    bundle = write_flask_bundle(tmp_path / "bundle", start_script=HANGING_START.format(pid_file=pid_file))
    api = emulator.session()
    model_id = new_model(emulator, api)
    version = new_version(emulator, api, model_id, bundle_files(bundle))
    dataset_id = upload_dataset(emulator, api, bundle / "data" / "sample.csv")
    response = api.post(
        emulator.url("customModelTests/"),
        json={"customModelId": model_id, "customModelVersionId": version["id"], "datasetId": dataset_id},
    )
    assert response.status_code == 202
    wait_for(pid_file.is_file)  # the server process exists: the test is in progress
    test = api.get(emulator.url(f"customModelTests/?customModelId={model_id}")).json()["data"][0]
    assert test["overallStatus"] == "in_progress"
    return test["id"], response.headers["Location"].split("/status/")[1], pid_file


def test_stopping_aborts_running_jobs_and_records_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    emulator = Emulator(data_dir).start()
    test_id, status_path, pid_file = start_hanging_test(emulator, tmp_path)
    server_pid = int(pid_file.read_text())
    assert emulator.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)  # the test's model server was stopped with the job
    emulator = Emulator(data_dir).start()
    try:
        api = emulator.session()
        test = api.get(emulator.url(f"customModelTests/{test_id}/")).json()
        assert test["overallStatus"] == "aborted" and test["completedAt"]
        assert api.get(emulator.url(f"status/{status_path}")).json()["status"] == "ABORTED"
        assert "interrupted" in api.get(emulator.url(f"customModelTests/{test_id}/log/")).text
    finally:
        emulator.stop()


def test_jobs_cut_short_by_a_kill_end_terminal_after_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    emulator = Emulator(data_dir).start()
    test_id, status_path, pid_file = start_hanging_test(emulator, tmp_path)
    emulator.stop(signal.SIGKILL)
    os.kill(int(pid_file.read_text()), signal.SIGTERM)  # the model server outlived its killed parent
    emulator = Emulator(data_dir).start()
    try:
        api = emulator.session()
        test = api.get(emulator.url(f"customModelTests/{test_id}/")).json()
        assert test["overallStatus"] == "aborted"
        assert {c["status"] for c in test["testingStatus"].values()} == {"aborted"}
        assert api.get(emulator.url(f"status/{status_path}")).json()["status"] == "ABORTED"
        delete = api.delete(emulator.url(f"customModelTests/{test_id}/"))
        assert delete.status_code == 409  # already terminal
    finally:
        emulator.stop()


def test_cancel_a_running_test(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path / "data").start()
    try:
        test_id, status_path, pid_file = start_hanging_test(emulator, tmp_path)
        api = emulator.session()
        assert api.delete(emulator.url(f"customModelTests/{test_id}/")).status_code == 204
        test = api.get(emulator.url(f"customModelTests/{test_id}/")).json()
        assert test["overallStatus"] == "canceled"
        assert api.get(emulator.url(f"status/{status_path}")).json()["status"] == "ABORTED"
        server_pid = int(pid_file.read_text())

        def server_gone() -> bool:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for(server_gone, timeout=60)
        assert api.get(emulator.url(f"customModelTests/{test_id}/")).json()["overallStatus"] == "canceled"
        assert api.delete(emulator.url(f"customModelTests/{test_id}/")).status_code == 409
    finally:
        emulator.stop()


def test_one_emulator_per_data_dir_and_port(tmp_path: Path) -> None:
    first = Emulator(tmp_path / "data").start()
    try:
        command = [sys.executable, "-m", "cmkit", "emulator", "--runtime", "process", "--token", "t"]
        same_dir = subprocess.run(
            [*command, "--port", "0", "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=60
        )
        assert same_dir.returncode == 2 and "another emulator is using" in same_dir.stderr
        port = first.endpoint.split(":")[2].split("/")[0]
        same_port = subprocess.run(
            [*command, "--port", port, "--data-dir", str(tmp_path / "other")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert same_port.returncode == 2 and "cannot listen" in same_port.stderr
        # The refused emulator changed nothing: the other data dir has no seeded environment built.
        assert not list((tmp_path / "other" / "environments").glob("*"))
    finally:
        first.stop()
