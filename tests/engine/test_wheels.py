"""The wheel cache, the process runtime's venvs and prune's share of them: the rules, cheaply.

The real installs (pip, uv, Docker) are in tests/engine/test_installs.py (slow, docker).
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import time
import traceback
import urllib.request
import zipfile
from pathlib import Path

import pytest
from pip._vendor.packaging import tags

from cmkit.engine.images import COMPILE_BYTECODE, BuiltImage, uv_dependency_files
from cmkit.engine.venvs import (
    STALE_SECONDS,
    VenvFailed,
    _retarget_scripts,
    _sweep_stale,
    ensure_venv,
    isolation_wanted,
    undeclared_import,
    venv_key,
    venvs_dir,
)
from cmkit.engine.wheels import (
    UV_PATH,
    fill,
    planned_pins,
    platform_from_tags,
    serve_wheels,
    uv_binary,
    uv_target,
    wheel_dir,
)
from cmkit.paths import default_environment_dir
from cmkit.prune import PruneOptions, cache_files, prune_cache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_this_interpreters_tags_become_pips_download_options() -> None:
    found = platform_from_tags([str(tag) for tag in tags.sys_tags()], "/usr/local")
    assert found.python_version == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert found.implementation == "cp" and f"cp{sys.version_info[0]}{sys.version_info[1]}" in found.abis
    assert "any" not in found.platforms and found.platforms
    options = found.pip_options()
    assert options[0] == "--only-binary=:all:" and options.count("--platform") == len(found.platforms)
    assert uv_target(found.prefix) == ["--python", "python3", "--prefix", "/usr/local", "--break-system-packages"]
    assert uv_target("") == ["--system"]


def test_uvs_dry_run_plan_is_read_as_pins_and_a_failed_one_as_none() -> None:
    plan = "Resolved 3 packages in 7ms\nWould install 2 packages\n + scipy==1.17.1\n + joblib==1.6.0\n"
    assert planned_pins(plan) == ["joblib==1.6.0", "scipy==1.17.1"]
    assert planned_pins("Resolved 1 package in 3ms\nWould make no changes\n") == []
    assert planned_pins("error: No solution found when resolving dependencies") is None


def test_the_uv_layer_installs_exactly_the_plan_from_loopback_and_keeps_nothing() -> None:
    base = BuiltImage("env", "sha256:abc", cached=True, user="model")
    files = uv_dependency_files(
        base, ["joblib==1.6.0", "scipy==1.17.1"], "http://127.0.0.1:5000", UV_PATH, "/usr/local"
    )
    assert list(files) == ["Dockerfile"]  # no COPY step: the pins are the RUN's arguments
    dockerfile = files["Dockerfile"].decode()
    assert "COPY" not in dockerfile
    assert (
        "--no-index --no-deps --find-links http://127.0.0.1:5000/ joblib==1.6.0 scipy==1.17.1 && rm -rf "
        "/tmp/cmkit-build && " + COMPILE_BYTECODE + "\n"
    ) in dockerfile  # bytecode as pip compiles it, but for test suites
    assert "--prefix /usr/local" in dockerfile
    assert dockerfile.rstrip().endswith("USER model")


def test_the_wheel_server_serves_the_cache_and_uv_on_loopback(cache: Path) -> None:
    wheel_dir().mkdir(parents=True)
    (wheel_dir() / "demo-1.0-py3-none-any.whl").write_bytes(b"PK demo")
    with serve_wheels() as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/") as listing:
            assert "demo-1.0-py3-none-any.whl" in listing.read().decode()
        with urllib.request.urlopen(f"{url}{UV_PATH}") as binary, uv_binary().open("rb") as local:
            assert binary.read(4) == local.read(4) == b"\x7fELF"


def test_isolation_is_the_flags_else_whether_requirements_name_packages() -> None:
    assert isolation_wanted("scipy==1.17.1\n", None) and not isolation_wanted("# none\n\n", None)
    assert not isolation_wanted("", None) and isolation_wanted("", True) and not isolation_wanted("scipy\n", False)


def test_a_venv_is_keyed_by_requirements_and_installer() -> None:
    assert venv_key("scipy\n", "uv") == venv_key("scipy\n", "uv")
    assert len({venv_key("scipy\n", "uv"), venv_key("scipy\n", "pip"), venv_key("numpy\n", "uv")}) == 3


def test_an_undeclared_import_is_named_with_the_file_that_imports_it(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "custom.py").write_text("import json\nimport cmkit_no_such_package\n")
    try:
        runpy.run_path(str(bundle / "custom.py"))
    except ModuleNotFoundError:
        log = "[INFO] booting worker\n" + traceback.format_exc() + "[ERROR] Worker exited with code 3\n"
    message = undeclared_import(log, bundle)
    assert message is not None
    assert message.startswith("custom.py imports cmkit_no_such_package, which requirements.txt does not name")
    assert "--host-python" in message
    assert undeclared_import("Traceback ...\nValueError: bad model\n", bundle) is None


def _entry(path: Path, age: float, data: bytes = b"x") -> None:
    if path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        (path / "bin").mkdir(parents=True)
        (path / "bin" / "python").write_bytes(data)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_prune_takes_killed_installs_always_and_the_cache_only_with_all(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    _entry(root / "tmp" / "venv-abc-123", 7200)
    _entry(root / "wheels" / "demo-1.0-py3-none-any.whl", 7200, b"1234")
    _entry(root / "venvs" / "0123456789abcdef0123", 60)
    _entry(root / "uv" / "cache", 60)
    assert [(item.kind, item.name) for item in cache_files(root, everything=False)] == [("temporary", "venv-abc-123")]
    everything = cache_files(root, everything=True)
    assert [item.kind for item in everything] == ["temporary", "wheel", "venv", "uv cache"]
    assert everything[1].size == 4 and everything[1].short_id == ""

    assert prune_cache(PruneOptions(everything=True, labels={"ci": "job"}), root) == []  # labels: Docker objects only
    dry = prune_cache(PruneOptions(everything=True, dry_run=True, older_than=3600), root)
    assert [item.kind for item in dry] == ["temporary", "wheel"] and (root / "tmp" / "venv-abc-123").exists()
    done = prune_cache(PruneOptions(everything=True, older_than=3600), root)
    assert all(item.removed for item in done)
    assert not (root / "tmp" / "venv-abc-123").exists() and not list((root / "wheels").iterdir())
    assert (root / "venvs" / "0123456789abcdef0123" / "bin" / "python").exists()  # younger than the cut-off


def test_prune_takes_isolated_r_libraries_with_all_and_leaves_the_packages_they_link(tmp_path: Path) -> None:
    root, package = tmp_path / "cache", tmp_path / "site-library" / "glmnet"
    (package / "R").mkdir(parents=True)
    (package / "DESCRIPTION").write_text("Package: glmnet\n")
    for name in ("0123456789abcdef0123", ".0123456789abcdef0123-killed"):  # a library, a killed run's
        (root / "r-libraries" / name).mkdir(parents=True)
        (root / "r-libraries" / name / "glmnet").symlink_to(package, target_is_directory=True)
    assert [(item.kind, item.name) for item in cache_files(root, everything=False)] == [
        ("temporary", ".0123456789abcdef0123-killed")
    ]
    done = prune_cache(PruneOptions(everything=True), root)
    assert [(item.kind, item.removed) for item in done] == [("temporary", True), ("R library", True)]
    assert not list((root / "r-libraries").iterdir())
    assert (package / "DESCRIPTION").read_text() == "Package: glmnet\n" and (package / "R").is_dir()


def test_an_existing_venv_is_reused_and_a_stale_temporary_one_is_swept(cache: Path) -> None:
    text = "joblib==1.6.0\n"
    _entry(venvs_dir() / venv_key(text, "uv"), 0)
    _entry(cache / "tmp" / "venv-killed-1", STALE_SECONDS + 60)
    _entry(cache / "tmp" / "venv-running-2", 1)
    reused = ensure_venv(text, "uv")
    assert not reused.created and reused.python == venvs_dir() / venv_key(text, "uv") / "bin" / "python"
    _sweep_stale()
    assert not (cache / "tmp" / "venv-killed-1").exists() and (cache / "tmp" / "venv-running-2").exists()


def test_pips_absolute_shebangs_follow_the_venv_to_its_place(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gunicorn").write_text("#!/cache/tmp/venv-x/bin/python\nimport sys\n")
    (bin_dir / "data.bin").write_bytes(b"\x00/cache/tmp/venv-x")
    (bin_dir / "python").symlink_to(sys.executable)
    _retarget_scripts(bin_dir, "/cache/tmp/venv-x", "/cache/venvs/k")
    assert (bin_dir / "gunicorn").read_text().startswith("#!/cache/venvs/k/bin/python\n")
    assert (bin_dir / "data.bin").read_bytes() == b"\x00/cache/tmp/venv-x"  # not a script: untouched


def _tiny_wheel(folder: Path, name: str = "cmkitdemo", version: str = "1.0") -> str:
    """A minimal pure-Python wheel, written by hand: what an index would serve, without one."""
    filename = f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / filename, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"]))
    return filename


def test_a_venv_is_built_aside_from_the_cache_alone_and_renamed_into_place(cache: Path) -> None:
    _tiny_wheel(wheel_dir())
    filled = fill("cmkitdemo==1.0\n")  # the cache answers: no index asked
    assert filled.offline and filled.wheels == ["cmkitdemo-1.0-py3-none-any.whl"] and filled.added == []
    venv = ensure_venv("cmkitdemo==1.0\n", "uv", serving="")
    assert venv.created and venv.path.parent == venvs_dir() and not list((cache / "tmp").iterdir())
    done = subprocess.run(
        [str(venv.python), "-c", "import cmkitdemo, cmkit_runtime; print(cmkitdemo.VERSION)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "1.0" and os.access(venv.bin_dir / "cmkit-runtime", os.X_OK)
    assert not ensure_venv("cmkitdemo==1.0\n", "uv", serving="").created


def test_requirements_nothing_can_satisfy_fail_the_venv_with_pips_word(cache: Path) -> None:
    empty_index = cache / "empty-index"  # an index that answers at once, and knows nothing
    empty_index.mkdir(parents=True)
    environ = {**os.environ, "PIP_INDEX_URL": empty_index.as_uri(), "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
    with pytest.raises(VenvFailed) as caught:
        ensure_venv("cmkit-no-such-package==1.0\n", "uv", environ, serving="")
    assert "cannot be installed here" in caught.value.message and not list(venvs_dir().glob("*"))


def test_the_python3_environment_compiles_bytecode_as_the_dependency_layer_does() -> None:
    """One rule for both layers (COMPILE_BYTECODE): the Dockerfile cannot import it, so this test
    keeps its copy the same."""
    dockerfile = (default_environment_dir() / "Dockerfile").read_text()
    assert f"&& {COMPILE_BYTECODE}\n" in dockerfile
    assert "--compile-bytecode" not in dockerfile
