"""Shared fixtures. Docker tests skip without an engine, but fail under CMKIT_REQUIRE_DOCKER=1 (CI)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported by the fixture that needs it: every run reads this file
    from tests.support.flask_transport import InProcessEmulator

REPO = Path(__file__).resolve().parent.parent
# The `cmkit` command users run, for tests that signal it. Not `python -m cmkit`: under -m, CPython
# ends the process by SIGINT (returncode -2) instead of with its own exit code when a
# KeyboardInterrupt, although cmkit caught it, was raised inside code run by exec() of a string
# (a dataclass being created by a lazy import as the signal lands: 1 run in 12 under load).
CMKIT_COMMAND = str(Path(sys.executable).with_name("cmkit"))


def _memory_backed_temp_root() -> None:
    """tmp_path under /dev/shm when it has room: the suite writes thousands of small files and
    its emulators commit to SQLite, and on a disk the kernel's work and fsync waits cost a third
    of the fast tier's time (test_emulator_hardening, _api and test_lint: 6.4 s -> 4.6 s). pytest
    reads PYTEST_DEBUG_TEMPROOT for the root of its numbered temporary directories (the last
    three runs kept, as in the default root). Not in a container's 64 MB /dev/shm, and never
    over a root the user chose."""
    shm = Path("/dev/shm")
    if "PYTEST_DEBUG_TEMPROOT" in os.environ or not (shm.is_dir() and os.access(shm, os.W_OK)):
        return
    if shutil.disk_usage(shm).free >= 2 * 2**30:
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(shm)


_memory_backed_temp_root()
REQUIRE_DOCKER = os.environ.get("CMKIT_REQUIRE_DOCKER") == "1"
# Every Docker object a test session creates carries this label, so cleanup touches only ours.
# Under pytest-xdist the run's id is the controller's (its workers inherit the variable) and each
# worker adds its own name: a worker's checks of "no container of ours is left" see its own only
# (see cmkit_run_containers for the containers a label alone cannot tell apart).
TEST_RUN = os.environ.setdefault("CMKIT_TEST_RUN", uuid.uuid4().hex[:12])
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
TEST_RUN_ID = f"{TEST_RUN}-{XDIST_WORKER}" if XDIST_WORKER else TEST_RUN
TEST_LABEL = "cmkit.test-run"


# The content-keyed parts of cmkit's cache (cmkit/engine/wheels.py, venvs.py): shared by a
# session's tests as by a machine's runs, so each venv is built once per session, not per test.
SHARED_CACHE_ENTRIES = ("wheels", "venvs", "uv", "platforms", "tmp")


# cmkit's cache folder for every test (CMKIT_CACHE_DIR, inherited by each cmkit and server a
# test starts): in the checkout, as .pytest_cache is, never the user's own cache. Kept between
# runs, so a developer's runs reuse its wheels and venvs (the fast tier's watch test builds a
# numpy venv: 7 s cold); a new clone, as CI makes, starts it empty, as a new machine would.
TEST_CACHE_DIR = REPO / ".cache" / "cmkit-tests"


# The files that take minutes (CI's --durations, in worker-seconds: heavy frameworks ~580, the
# bench smoke test ~580, R models ~370...), longest first. Run first, each on a worker of its own
# (pyproject.toml: --dist loadfile, --no-loadscope-reorder), so no worker is left running one alone
# at the end: xdist's own order (most tests first) had put the one-test bench file last.
LONGEST_FILES = (
    "tests/runtime/test_heavy_frameworks.py",
    "tests/bench/test_bench.py",
    "tests/runtime/test_r_models.py",
    "tests/engine/test_installs.py",
    "tests/testlocal/test_r_serve_watch.py",
    "tests/runtime/test_dropin_environment.py",
    "tests/cli/test_precommit.py",
    "tests/runtime/test_frameworks.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """LONGEST_FILES first, in that order; the rest as collected (a stable sort keeps files whole)."""
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}

    def longest_first(item: pytest.Item) -> int:
        return rank.get(item.nodeid.split("::")[0], len(rank))  # the file, relative to the rootdir

    items.sort(key=longest_first)


@pytest.fixture(scope="session", autouse=True)
def shared_cache_root() -> Iterator[Path]:
    """The tests' cache folder, set as CMKIT_CACHE_DIR for the session (see TEST_CACHE_DIR)."""
    TEST_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CMKIT_CACHE_DIR", str(TEST_CACHE_DIR))
        yield TEST_CACHE_DIR


@pytest.fixture
def no_datarobot_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache_root: Path) -> None:
    """A test of its own cache folder and no ambient DataRobot configuration (file or variables).

    Modules that talk to the API use it with `pytestmark = pytest.mark.usefixtures(...)`.
    """
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in SHARED_CACHE_ENTRIES:
        (shared_cache_root / name).mkdir(exist_ok=True)
        (cache / name).symlink_to(shared_cache_root / name, target_is_directory=True)
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(cache))
    monkeypatch.setenv("DATAROBOT_CONFIG_FILE", str(tmp_path / "no-such-drconfig.yaml"))
    for name in ("DATAROBOT_ENDPOINT", "DATAROBOT_API_TOKEN", "DATAROBOT_SSL_VERIFY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure to reach the engine
        message = f"no Docker engine answers: {exc}"
        if REQUIRE_DOCKER:
            pytest.fail(f"{message} (CMKIT_REQUIRE_DOCKER=1: Docker tests must run)")
        pytest.skip(message)
    yield client
    # A worker leaves everything to the controller: the other worker may still build on an image
    # this one made (environment images are keyed by content, so the first worker's build serves
    # both), and that build's step containers carry this worker's label, inherited from the image.
    if XDIST_WORKER is None:
        _remove_our_objects(client, images=True)
    client.close()


def cmkit_run_containers(client: Any) -> list[Any]:
    """The containers cmkit started for this worker's runs (its run label and ours), left or not.

    Not every container with our label: the engine's step containers of a build inherit the
    labels of the image they build on, so the other worker's build on an environment image this
    worker made carries this worker's label for a few seconds (CI: a container "left" by a test
    that never built anything).
    """
    from cmkit.engine.docker import RUN_LABEL

    return list(client.containers.list(all=True, filters={"label": [f"{TEST_LABEL}={TEST_RUN_ID}", RUN_LABEL]}))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The xdist controller, once every worker is done: the containers, networks and images of all."""
    if XDIST_WORKER is not None or not getattr(session.config.option, "numprocesses", None):
        return
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception:  # no engine: nothing of ours can be there
        return
    with contextlib.closing(client):
        _remove_our_objects(client, images=True)


def _ours(labels: dict[str, str] | None) -> bool:
    """Labelled by this run: by this process, or under xdist by any of its workers."""
    value = (labels or {}).get(TEST_LABEL, "")
    return value == TEST_RUN_ID or (XDIST_WORKER is None and value.startswith(f"{TEST_RUN}-"))


def _remove_our_objects(client: Any, images: bool) -> None:
    """Remove every container, network and (`images`) image this run labelled, and nothing else."""
    import docker

    selector = {"label": TEST_LABEL}
    for container in client.containers.list(all=True, filters=selector):
        if _ours(container.labels):
            container.remove(force=True)
    for network in client.networks.list(filters=selector):
        if _ours(network.attrs.get("Labels")):
            network.remove()
    # An image with children cannot be removed, even forced, so a single pass left every parent
    # listed before its child (gigabytes a run): passes until a pass removes nothing more.
    while images:
        removed = 0
        for image in client.images.list(filters=selector):
            if not _ours(image.labels):
                continue
            with contextlib.suppress(docker.errors.APIError):  # a child not yet removed, or gone already
                client.images.remove(image.id, force=True)
                removed += 1
        if not removed:
            return


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_DOCKER and report.skipped and item.get_closest_marker("docker"):
        report.outcome = "failed"
        report.longrepr = f"a Docker test was skipped under CMKIT_REQUIRE_DOCKER=1: {report.longrepr}"


@pytest.fixture
def fast_api_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """cmkit.api.client's poll loops wait one or two seconds between polls, for a real DataRobot;
    against the in-process emulator, whose jobs end at once, its clock sleeps a hundredth of that."""
    import time
    import types

    import cmkit.api.client

    fast = types.SimpleNamespace(monotonic=time.monotonic, sleep=lambda seconds: time.sleep(seconds / 100))
    monkeypatch.setattr(cmkit.api.client, "time", fast)


@pytest.fixture(scope="session")
def stdlib_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessEmulator]:
    """One in-process emulator for the modules that run the stdlib model (tests/support/bundles.py:
    write_stdlib_bundle); its start costs a few tenths of a second, paid once a session.

    A computation left running (a model that hangs) is cancelled when the session ends, as
    `cmkit emulator` cancels its jobs when it stops.
    """
    from tests.support.flask_transport import InProcessEmulator

    running = InProcessEmulator(tmp_path_factory.mktemp("stdlib-model-emulator"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def stdlib_dataset(stdlib_emulator: InProcessEmulator) -> str:
    """training_csv() ingested by `stdlib_emulator`: its catalog id."""
    from tests.support.bundles import training_csv
    from tests.support.emulator_support import ingested

    return ingested(stdlib_emulator, stdlib_emulator.session(), training_csv())
