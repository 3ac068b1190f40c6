"""Real installs: uv and pip give the same set, a killed install leaves nothing used later, a
second bundle naming the same packages downloads nothing, an undeclared import fails clearly.

The wheels come through this machine's pip configuration (its index or proxy), into a wheel
cache shared by the module's tests: the rules of the cache are tests/engine/test_wheels.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.engine.builder import ImageBuilder
from cmkit.engine.images import BuildSettings, BuiltImage
from cmkit.engine.installers import PIP, UV
from cmkit.engine.venvs import ensure_venv, venv_key, venvs_dir
from cmkit.engine.wheels import fill, scratch_dir, wheel_dir
from cmkit.paths import default_environment_dir, templates_dir
from tests.conftest import REPO, TEST_LABEL, TEST_RUN_ID

SAMPLES = sorted((REPO / "sample_models").glob("*/requirements.txt"))
TEMPLATE = templates_dir() / "bundles" / "python" / "common" / "requirements.txt"
REQUIREMENTS = [*SAMPLES, TEMPLATE]
# What a venv or an image holds that the requirements did not ask for: the installers themselves.
INSTALLER_OWN = {"pip", "setuptools", "wheel"}
LIST_SCRIPT = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({(d.metadata['Name'].lower().replace('_', '-'), d.version) for d in m.distributions()})))"
)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("cache")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)  # 1.2 GB of venvs, in memory when under /dev/shm


@pytest.fixture
def cache(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(shared_cache))
    return shared_cache


def installed(python: list[str]) -> set[tuple[str, str]]:
    # Not from the checkout: `-c` puts the working folder on the path, and cmkit.egg-info with it.
    done = subprocess.run([*python, "-c", LIST_SCRIPT], capture_output=True, text=True, check=True, cwd="/")
    return {(name, version) for name, version in json.loads(done.stdout) if name not in INSTALLER_OWN}


@pytest.mark.slow
@pytest.mark.parametrize(
    "requirements", REQUIREMENTS, ids=lambda path: path.parent.parent.name if path == TEMPLATE else path.parent.name
)
def test_uv_and_pip_venvs_hold_the_same_packages(cache: Path, requirements: Path) -> None:
    text = requirements.read_text(encoding="utf-8")
    by_uv = installed([str(ensure_venv(text, UV).python)])
    by_pip = installed([str(ensure_venv(text, PIP).python)])
    assert by_uv == by_pip
    assert {"flask", "gunicorn", "pandas"} <= {name for name, _ in by_uv}  # the serving stack
    if any(line.startswith("scikit-learn") for line in text.splitlines()):
        assert ("scikit-learn", "1.9.1") in by_uv


@pytest.mark.slow
def test_a_killed_venv_install_leaves_nothing_a_later_run_uses(cache: Path) -> None:
    text = "# a requirement of this test's own, so its venv is new\njoblib==1.6.0\n"
    final = venvs_dir() / venv_key(text, UV)
    assert not final.exists()
    child = subprocess.Popen(
        [sys.executable, "-c", f"from cmkit.engine.venvs import ensure_venv; ensure_venv({text!r}, 'uv')"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 120
    # Killed once the venv is being written: its temporary folder holds a lib/ already.
    while not list(scratch_dir().glob(f"venv-{final.name}-*/lib")) and time.monotonic() < deadline:
        assert child.poll() is None, "the install ended before it could be killed"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not final.exists()  # nothing under the name a later run looks for
    for wheel in wheel_dir().glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            assert archive.testzip() is None, f"a partial wheel in the cache: {wheel.name}"
    venv = ensure_venv(text, UV)
    assert venv.created and venv.path == final
    subprocess.run([str(venv.python), "-c", "import joblib, flask, cmkit_runtime"], check=True)
    assert not ensure_venv(text, UV).created  # and reused after


@pytest.mark.slow
def test_an_undeclared_import_fails_with_a_clear_message(cache: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bundle = tmp_path / "model"
    assert runner.invoke(main, ["init", str(bundle), "--target-type", "regression"]).exit_code == 0
    custom = bundle / "custom.py"
    custom.write_text(
        custom.read_text().replace(
            "from __future__ import annotations\n", "from __future__ import annotations\nimport requests\n", 1
        )
    )
    isolated = runner.invoke(main, ["test-local", str(bundle), "--runtime", "process", "--isolate", "--json"])
    assert isolated.exit_code == 1, isolated.output
    message = json.loads(isolated.stdout)["testingStatus"]["longRunningService"]["message"]
    assert "custom.py imports requests, which requirements.txt does not name" in message
    # cmkit's own Python holds requests: there the model starts, as it did before isolation.
    on_host = runner.invoke(main, ["test-local", str(bundle), "--runtime", "process", "--host-python", "--json"])
    assert on_host.exit_code == 0, on_host.output


# --- the dependency layer on Docker ---------------------------------------------------------------


@pytest.fixture(scope="module")
def environment(docker_client: Any, shared_cache: Path) -> Iterator[BuiltImage]:
    with pytest.MonkeyPatch.context() as patch:  # gives back the session's (tests/conftest.py)
        patch.setenv("CMKIT_CACHE_DIR", str(shared_cache))
        builder = ImageBuilder(docker_client, BuildSettings.from_environment(), labels={TEST_LABEL: TEST_RUN_ID})
        yield builder.environment(default_environment_dir())


def image_packages(client: Any, image: BuiltImage) -> set[tuple[str, str]]:
    output = client.containers.run(
        image.image_id, ["-c", LIST_SCRIPT], entrypoint=["python3"], remove=True, labels={TEST_LABEL: TEST_RUN_ID}
    )
    return {(name, version) for name, version in json.loads(output) if name not in INSTALLER_OWN}


@pytest.mark.docker
@pytest.mark.slow
def test_the_environment_uv_builds_holds_what_pip_would_install(
    docker_client: Any, environment: BuiltImage, cache: Path
) -> None:
    """The default environment's Dockerfile installs its requirements.txt with uv: the same
    distributions pip installs for those pins (the process runtime's pip venv of the serving
    stack alone, on this host), and no uv left."""
    by_pip = installed([str(ensure_venv("", PIP).python)])
    in_image = image_packages(docker_client, environment)
    assert ("pandas", "3.1.1") in in_image and "uv" not in {name for name, _ in in_image}
    assert in_image == by_pip


@pytest.mark.docker
@pytest.mark.slow
def test_uv_and_pip_dependency_layers_hold_the_same_packages(docker_client: Any, environment: BuiltImage) -> None:
    text = (REPO / "sample_models" / "regression_diabetes" / "requirements.txt").read_text()
    layers = {}
    for installer in (UV, PIP):
        settings = BuildSettings.from_environment(installer=installer)
        builder = ImageBuilder(docker_client, settings, labels={TEST_LABEL: TEST_RUN_ID})
        layers[installer] = builder.dependencies(environment, text)
    assert layers[UV].tag != layers[PIP].tag
    by_uv, by_pip = image_packages(docker_client, layers[UV]), image_packages(docker_client, layers[PIP])
    assert by_uv == by_pip and ("scikit-learn", "1.9.1") in by_uv
    # Where pip put them: the environment's pip sees every package uv installed.
    listed = docker_client.containers.run(
        layers[UV].image_id,
        ["-m", "pip", "list", "--format=json"],
        entrypoint=["python3"],
        remove=True,
        labels={TEST_LABEL: TEST_RUN_ID},
    )
    assert {"scikit-learn", "scipy", "flask"} <= {item["name"].lower() for item in json.loads(listed)}


@pytest.mark.docker
@pytest.mark.slow
def test_a_second_bundle_naming_the_same_packages_downloads_nothing(
    docker_client: Any, environment: BuiltImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = "scikit-learn==1.9.1\njoblib==1.6.0\nscipy==1.17.1\nthreadpoolctl==3.8.0\n"
    ImageBuilder(docker_client, BuildSettings.from_environment(), labels={TEST_LABEL: TEST_RUN_ID}).dependencies(
        environment, first
    )
    # No index reachable and no local wheels: a download would fail the build.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    log: list[str] = []
    builder = ImageBuilder(
        docker_client, BuildSettings.from_environment(), on_log=log.append, labels={TEST_LABEL: TEST_RUN_ID}
    )
    second = "# the same packages, another text\nthreadpoolctl == 3.8.0\nSciPy==1.17.1\nscikit_learn==1.9.1\njoblib\n"
    again = builder.dependencies(environment, second)
    assert again.cached and "resolved from the wheel cache, nothing downloaded" in log


@pytest.mark.docker
@pytest.mark.slow
def test_a_new_environment_builds_while_the_bundles_wheels_are_fetched(
    docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new machine: the environment's own pip install runs in the engine while the host fills
    the (empty) wheel cache for the bundle, so the dependency layer plans from the cache at once."""
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    environment = tmp_path / "environment"
    shutil.copytree(default_environment_dir(), environment)
    dockerfile = environment / "Dockerfile"  # a line after FROM: no step of it in the builder's cache
    dockerfile.write_text(dockerfile.read_text().replace("\nCOPY ", f"\nLABEL cmkit.test.new={TEST_RUN_ID}\nCOPY ", 1))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "requirements.txt").write_text("threadpoolctl==3.8.0\n")
    (bundle / "custom.py").write_text("def score(data, model, **kwargs):\n    return data\n")
    log: list[str] = []
    builder = ImageBuilder(
        docker_client, BuildSettings.from_environment(), on_log=log.append, labels={TEST_LABEL: TEST_RUN_ID}
    )
    image = builder.model(bundle, environment=environment)
    builder.finish()
    fetched = [line for line in log if "while the environment built" in line]
    assert fetched and fetched[0].startswith("fetched 1 wheel into"), log[-20:]
    assert log.index(fetched[0]) < log.index(next(line for line in log if "Successfully built" in line))
    assert "resolved from the wheel cache, nothing downloaded" in log
    assert ("threadpoolctl", "3.8.0") in image_packages(docker_client, image.dependencies)


@pytest.mark.docker
@pytest.mark.slow
def test_a_new_images_platform_and_plan_come_from_one_container(
    docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One container start fewer on a new machine: the image's tags, then uv's plan, in one
    container; when the plan fails (the cache lacks a wheel) the tags are read on their own."""
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    builder = ImageBuilder(docker_client, BuildSettings.from_environment(), labels={TEST_LABEL: TEST_RUN_ID})
    base = BuiltImage("python:3.11-slim", str(docker_client.images.get("python:3.11-slim").id), cached=True)
    started: list[str] = []
    run = builder._run
    monkeypatch.setattr(
        builder, "_run", lambda image, entrypoint, *rest: started.append(entrypoint) or run(image, entrypoint, *rest)
    )
    requirements = "threadpoolctl==3.8.0\n"

    platform, plan = builder._platform_and_plan(base, requirements)
    assert plan is None and started == ["python3", "python3"]  # the plan and its tags, then the tags
    assert (platform.python_version, platform.prefix) == ("3.11", "/usr/local")

    fill(requirements, platform, builder.settings.pip_environment())
    shutil.rmtree(tmp_path / "cache" / "platforms")  # as for an image never seen
    started.clear()
    again, plan = builder._platform_and_plan(base, requirements)
    assert (again, plan, started) == (platform, ["threadpoolctl==3.8.0"], ["python3"])

    started.clear()
    assert builder._platform_and_plan(base, requirements) == (platform, ["threadpoolctl==3.8.0"])
    assert started == ["/cmkit-uv"]  # the platform remembered: the plan alone


# In an image: the modules of every site-packages folder without their bytecode, and how many of
# the packages' test-suite files there are and have it.
BYTECODE_SCRIPT = """
import importlib.util, json, pathlib, site
files = [path for folder in site.getsitepackages() for path in pathlib.Path(folder).rglob("*.py")]
has_bytecode = {path: pathlib.Path(importlib.util.cache_from_source(str(path))).exists() for path in files}
tests = {path for path in files if "/tests/" in str(path)}
print(json.dumps({
    "modules_without": [str(path) for path in files if path not in tests and not has_bytecode[path]],
    "tests": len(tests),
    "tests_with": sum(has_bytecode[path] for path in tests),
}))
"""


@pytest.mark.docker
@pytest.mark.slow
def test_both_layers_hold_bytecode_but_for_the_packages_test_suites(
    docker_client: Any, environment: BuiltImage
) -> None:
    """As pip compiles, less the test suites (COMPILE_BYTECODE): a server never imports them."""
    text = (REPO / "sample_models" / "regression_diabetes" / "requirements.txt").read_text()
    layer = ImageBuilder(
        docker_client, BuildSettings.from_environment(), labels={TEST_LABEL: TEST_RUN_ID}
    ).dependencies(environment, text)
    output = docker_client.containers.run(
        layer.image_id, ["-c", BYTECODE_SCRIPT], entrypoint=["python3"], remove=True, labels={TEST_LABEL: TEST_RUN_ID}
    )
    found = json.loads(output)
    assert found["modules_without"] == []
    assert found["tests"] > 1000 and found["tests_with"] < 0.05 * found["tests"]  # pandas', scipy's...
