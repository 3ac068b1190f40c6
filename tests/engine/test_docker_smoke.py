"""The engine path works from day one: build and run a tiny image through the docker SDK."""

from __future__ import annotations

import io
import uuid

import pytest

from tests.conftest import TEST_LABEL, TEST_RUN_ID

pytestmark = pytest.mark.docker


def test_build_and_run_tiny_image(docker_client) -> None:
    dockerfile = (
        b'FROM python:3.11-slim\nRUN echo built > /built.txt\nCMD ["sh", "-c", "echo $(cat /built.txt) and ran"]\n'
    )
    # Its own label for the last check: a build by the other xdist worker on an image this one
    # made has step containers that carry TEST_RUN_ID (tests/conftest.py, cmkit_run_containers).
    case = uuid.uuid4().hex
    labels = {TEST_LABEL: TEST_RUN_ID, "cmkit.test-case": case}
    image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile), labels=labels, rm=True, forcerm=True)
    try:
        output = docker_client.containers.run(image.id, remove=True, labels=labels)
        assert output.decode().strip() == "built and ran"
    finally:
        docker_client.images.remove(image.id, force=True)
    assert not docker_client.containers.list(all=True, filters={"label": f"cmkit.test-case={case}"})
