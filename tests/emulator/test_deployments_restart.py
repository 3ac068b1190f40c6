"""A deployment across emulator restarts (slow: real `cmkit emulator` processes).

A deployment's running model is held in memory: a `kill -9` of the emulator leaves its server,
which the next start ends (the server carries the emulator's marker, as model tests' do), and
the deployment's next prediction launches the model again.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import requests

from tests.emulator.test_api import create_model, create_version
from tests.support.bundles import stdlib_files, training_csv
from tests.support.emulator_support import Emulator, ended

pytestmark = pytest.mark.slow


def test_a_killed_emulators_deployed_model_is_ended_and_relaunched_at_the_next_prediction(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    emulator = Emulator(data_dir).start()
    try:
        api = emulator.session()
        model = create_model(api, emulator)
        env_id = str(emulator.info["environmentId"])
        version = create_version(api, emulator, model["id"], stdlib_files(), baseEnvironmentId=env_id).json()
        package = api.post(
            emulator.url("modelPackages/fromCustomModelVersion/"), json={"customModelVersionId": version["id"]}
        )
        started = api.post(
            emulator.url("deployments/fromModelPackage/"), json={"modelPackageId": package.json()["id"], "label": "r"}
        )
        assert ended(api, started.headers["Location"]).status_code == 303
        deployment_id = started.json()["id"]
        log = api.get(emulator.url(f"customModelDeployments/{deployment_id}/logs/")).text
        served = re.search(r"the model answers at (\S+)", log)
        assert served is not None, log
        assert requests.get(served.group(1), timeout=5).status_code == 200
    finally:
        emulator.stop(signal.SIGKILL)
    assert requests.get(served.group(1), timeout=5).status_code == 200  # the kill spared it

    emulator = Emulator(data_dir).start()
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(served.group(1), timeout=5)  # the start ended it
        api = emulator.session()
        rows = "\n".join(training_csv().decode().splitlines()[:4]).encode()
        url = f"{emulator.endpoint.removesuffix('api/v2/')}predApi/v1.0/deployments/{deployment_id}/predictions"
        answer = api.post(url, data=rows, headers={"Content-Type": "text/csv"})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["data"]) == 3
    finally:
        emulator.stop()
