"""Docker objects do not pile up: content-keyed code images, eviction per owner, `cmkit prune`.

The engine is shared: every object here carries this session's TEST_LABEL and a label of its
own test, and every prune runs with `--label` on that label, so nothing else is ever touched.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.engine.builder import ImageBuilder
from cmkit.engine.images import CODE_IMAGES_KEPT, created_at
from cmkit.errors import InputError
from cmkit.prune import PruneOptions, parse_duration, prune
from tests.conftest import TEST_LABEL, TEST_RUN_ID
from tests.support.bundles import write_flask_bundle

BASE = "python:3.11-slim"
PRUNE_LABEL = "cmkit.test-prune"

# --- the rules, without an engine -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("1h30m", 5400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "h", "1h 30m", "-1h", "1.h"])
def test_bad_durations_are_input_errors(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_duration(text)
    assert caught.value.exit_code == 2 and "30m" in (caught.value.hint or "")


def test_creation_times_from_both_engine_formats() -> None:
    assert created_at({"Created": 1700000000}) == 1700000000.0
    assert created_at({"Created": "2023-11-14T22:13:20.5Z"}) == 1700000000.5
    assert created_at({"Created": "2023-11-14T22:13:20.123456789Z"}) == pytest.approx(1700000000.123456)


def test_cli_bad_duration_exits_2_before_touching_docker() -> None:
    result = CliRunner().invoke(main, ["prune", "--older-than", "soon", "--label", f"{PRUNE_LABEL}=none"])
    assert result.exit_code == 2 and "bad duration 'soon'" in result.stderr and "Traceback" not in result.output


def test_cli_without_an_engine_exits_3(unused_tcp_port: int) -> None:
    result = CliRunner().invoke(
        main,
        ["prune", "--json", "--label", f"{PRUNE_LABEL}=none"],
        env={"DOCKER_HOST": f"tcp://127.0.0.1:{unused_tcp_port}"},
    )
    assert result.exit_code == 3, result.output
    assert "no Docker engine answers" in json.loads(result.stdout)["error"]["message"]


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as probe:  # bound then closed: nothing listens there afterwards
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- real Docker ----------------------------------------------------------------------------------


def own_labels() -> dict[str, str]:
    """Labels unique to one test: this session's, plus a fresh prune label."""
    return {TEST_LABEL: TEST_RUN_ID, PRUNE_LABEL: uuid.uuid4().hex[:12]}


def build(client: Any, tag: str | None, labels: dict[str, str], marker: str) -> str:
    """A tiny image on the base, unique by `marker` (so no cache is shared with anyone)."""
    dockerfile = f"FROM {BASE}\nRUN echo {marker} > /marker\n"
    image, _ = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, labels={"cmkit": "1", **labels}, rm=True, forcerm=True
    )
    return str(image.id)


def invoke(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["prune", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def actions(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {item["id"]: (item["action"], item["why"]) for item in document["objects"]}


def exists(client: Any, kind: str, ident: str) -> bool:
    import docker

    try:
        (client.containers if kind == "container" else client.images).get(ident)
    except docker.errors.NotFound:
        return False
    return True


@pytest.mark.docker
@pytest.mark.slow
def test_code_images_are_keyed_by_content_not_by_folder(docker_client: Any, tmp_path: Path) -> None:
    labels = own_labels()
    first = write_flask_bundle(tmp_path / "checkout-1")
    second = tmp_path / "checkout-2"
    shutil.copytree(first, second)
    builder = ImageBuilder(docker_client, labels=labels)
    one = builder.code(BASE, first)
    two = builder.code(BASE, second)  # a fresh CI checkout of the same commit
    builder.finish()
    assert not one.cached and two.cached and one.tag == two.tag and one.image_id == two.image_id
    (second / "app.py").write_text((second / "app.py").read_text() + "# edited\n")
    three = builder.code(BASE, second)
    builder.finish()
    assert not three.cached and three.tag != one.tag


@pytest.mark.docker
@pytest.mark.slow
def test_building_evicts_the_owners_oldest_code_images_only(docker_client: Any, tmp_path: Path) -> None:
    labels = own_labels()
    bundle = write_flask_bundle(tmp_path / "bundle")
    # The base was built by someone else: its labels (another session's) are inherited by
    # every code image on it, and must not hide whose code images these are.
    base = build(docker_client, None, {**labels, "cmkit.other-session": "x"}, labels[PRUNE_LABEL])
    builder = ImageBuilder(docker_client, labels=labels)
    other = ImageBuilder(docker_client, labels={**labels, "cmkit.other-owner": "1"}).code(base, bundle)
    built = []
    for edit in range(CODE_IMAGES_KEPT + 2):
        (bundle / "app.py").write_text((bundle / "app.py").read_text() + f"# edit {edit}\n")
        built.append(builder.code(base, bundle))
        builder.finish()
        if edit == 0:  # a kept server still runs on the oldest: it must survive eviction
            holder = docker_client.containers.run(
                built[0].image_id, "sleep 300", detach=True, labels={"cmkit": "1", **labels}
            )
    try:
        remaining = {
            image.id
            for image in docker_client.images.list(
                name="cmkit-code", filters={"label": f"{PRUNE_LABEL}={labels[PRUNE_LABEL]}"}
            )
        }
        assert {b.image_id for b in built[-CODE_IMAGES_KEPT:]} <= remaining
        assert built[0].image_id in remaining, "in use by a container"
        assert built[1].image_id not in remaining, "the oldest unused one is evicted"
        assert other.image_id in remaining, "another owner's image is not this builder's to evict"
    finally:
        holder.remove(force=True)


@pytest.mark.docker
@pytest.mark.slow
def test_prune_selects_by_kind_age_and_label(docker_client: Any, tmp_path: Path) -> None:
    labels = own_labels()
    selector = ["--label", f"{PRUNE_LABEL}={labels[PRUNE_LABEL]}"]
    marker = labels[PRUNE_LABEL]
    deps = build(docker_client, f"cmkit-deps:{marker}", {**labels, "cmkit.image": "deps"}, marker)
    code = ImageBuilder(docker_client, labels=labels).code(f"cmkit-deps:{marker}", write_flask_bundle(tmp_path / "b"))
    # A build leftover: the tag moves to a newer build, the older image stays untagged.
    leftover = build(docker_client, f"cmkit-code:leftover-{marker}", labels, marker + "-old")
    retagged = build(docker_client, f"cmkit-code:leftover-{marker}", labels, marker + "-new")
    running = docker_client.containers.run(code.image_id, "sleep 300", detach=True, labels={"cmkit": "1", **labels})
    stopped = docker_client.containers.create(deps, "true", labels={"cmkit": "1", **labels})
    unlabelled_peer = docker_client.containers.create(BASE, "true", labels={"cmkit": "1", TEST_LABEL: TEST_RUN_ID})
    try:
        code_exit, dry = invoke("--dry-run", *selector)
        assert code_exit == 0 and dry["dryRun"] is True
        chosen = actions(dry)
        assert chosen[stopped.id] == ("would remove", "created container")
        assert chosen[leftover] == ("would remove", "build leftover (untagged)")
        assert chosen[retagged] == ("would remove", "code image")
        assert chosen[code.image_id][0] == "kept" and "in use by container" in next(
            item["reason"] for item in dry["objects"] if item["id"] == code.image_id
        )
        assert running.id not in chosen and deps not in chosen  # --all only
        assert unlabelled_peer.id not in chosen  # outside the label filter
        assert all(exists(docker_client, "container", c.id) for c in (running, stopped))
        assert exists(docker_client, "image", leftover), "a dry run removes nothing"

        assert invoke("--older-than", "1h", *selector)[1]["objects"] == []  # all are minutes old
        later = prune(
            docker_client,
            PruneOptions(older_than=3600, dry_run=True, labels={PRUNE_LABEL: marker}),
            now=time.time() + 7200,
        )
        assert stopped.id in {item.id for item in later.objects}

        code_exit, done = invoke(*selector)
        assert code_exit == 0 and (done["containers"], done["images"], done["kept"]) == (1, 2, 1)
        assert not exists(docker_client, "container", stopped.id) and not exists(docker_client, "image", leftover)
        assert exists(docker_client, "container", running.id) and exists(docker_client, "image", code.image_id)
        assert exists(docker_client, "container", unlabelled_peer.id)

        code_exit, everything = invoke("--all", *selector)
        assert code_exit == 0 and everything["kept"] == 0
        assert actions(everything)[running.id] == ("removed", "running container (--all)")
        assert actions(everything)[deps] == ("removed", "layer cache (--all)")
        for kind, ident in (("container", running.id), ("image", code.image_id), ("image", deps)):
            assert not exists(docker_client, kind, ident), (kind, ident)
        assert invoke("--all", *selector)[1]["objects"] == []
    finally:
        unlabelled_peer.remove(force=True)
        for container in (running, stopped):
            if exists(docker_client, "container", container.id):
                container.remove(force=True)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("last_line", ["RUN echo {marker}\n", "RUN echo {marker} \\\n"])
def test_an_environment_gets_the_builders_labels_in_one_step(
    docker_client: Any, tmp_path: Path, last_line: str
) -> None:
    """One LABEL step at the end of the Dockerfile; the build's option when its last line goes on."""
    labels = own_labels()
    environment = tmp_path / "environment"
    environment.mkdir()
    (environment / "Dockerfile").write_text(f"FROM {BASE}\n" + last_line.format(marker=labels[PRUNE_LABEL]))
    log: list[str] = []
    image = ImageBuilder(docker_client, labels=labels, on_log=log.append).environment(environment)
    inherited = docker_client.images.get(image.image_id).labels
    assert {**labels, "cmkit": "1", "cmkit.image": "env"}.items() <= inherited.items()
    label_steps = [line for line in log if line.startswith("Step ") and ": LABEL " in line]
    assert len(label_steps) == (1 if last_line.endswith("}\n") else 4), label_steps
