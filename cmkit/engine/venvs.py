"""The process runtime's virtualenvs: a bundle served with what it declares, and nothing else.

A venv holds the serving stack of cmkit's default environment (its requirements.txt: what every
environment image provides), cmkit_runtime, and the bundle's requirements.txt: so a model that
imports a package its bundle does not name fails here as it would in the image, instead of
passing on whatever cmkit's own Python happens to hold.

Venvs live in `cache_dir()/venvs/<key>`, keyed by the content of both requirement files, the
runtime's source, the interpreter and the installer; they are reused by every run and --watch.
A venv is built in `cache_dir()/tmp` and renamed into place only once complete, so a killed
install leaves nothing a later run would use (stale temporary folders are swept, and pruned).
Packages come from the shared wheel cache (cmkit/engine/wheels.py), filled by pip for this
interpreter; uv links them from its own cache under cmkit's, so a second venv costs little.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cmkit_runtime
from cmkit.engine.images import content_hash, has_requirements
from cmkit.engine.installers import PIP
from cmkit.engine.wheels import NoWheels, fill, scratch_dir, uv_binary, wheel_dir
from cmkit.errors import CmkitError
from cmkit.paths import cache_dir, default_environment_dir

RUNTIME_SCRIPT = '#!/bin/sh\nexec "$(dirname "$0")/python" -m cmkit_runtime "$@"\n'
STALE_SECONDS = 3600.0  # a temporary venv older than this is a killed install's: swept
MISSING_MODULE = re.compile(r"^(?:ModuleNotFoundError|ImportError): No module named '([^'.]+)")
TRACE_FILE = re.compile(r'^\s*File "([^"]+)", line \d+')


class VenvFailed(CmkitError):
    """Installing the bundle's requirements into its venv failed; the message holds the installer's word."""


@dataclass(frozen=True)
class Venv:
    path: Path
    created: bool  # False: an existing venv was reused
    seconds: float

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"


def venvs_dir() -> Path:
    return cache_dir() / "venvs"


def uv_cache_dir() -> Path:
    return cache_dir() / "uv"


def serving_requirements() -> str:
    """The serving stack every environment image holds (cmkit's default environment's requirements)."""
    return (default_environment_dir() / "requirements.txt").read_text(encoding="utf-8")


def isolation_wanted(requirements: str | None, isolate: bool | None) -> bool:
    """`--isolate`/`--host-python` when given; else isolate when requirements.txt names packages.

    A bundle with no requirements relies on the environment's serving stack alone, which cmkit's
    own Python holds too: it runs there at once (the fast tier's stdlib bundles).
    """
    if isolate is not None:
        return isolate
    return bool(requirements and has_requirements(requirements))


def runtime_fingerprint() -> str:
    """cmkit_runtime's version and source: a changed runtime gets a new venv."""
    package = Path(cmkit_runtime.__file__).parent
    parts: list[bytes | str] = [cmkit_runtime.__version__]
    for source in sorted(package.glob("*.py")):
        parts += [source.name, source.read_bytes()]
    return content_hash(*parts)


def venv_key(requirements: str, installer: str, serving: str | None = None) -> str:
    stack = serving_requirements() if serving is None else serving
    return content_hash(sys.executable, sys.version, installer, runtime_fingerprint(), stack, requirements)


def ensure_venv(
    requirements: str, installer: str, environ: Mapping[str, str] | None = None, serving: str | None = None
) -> Venv:
    """The venv of `requirements` (plus the serving stack and cmkit_runtime), built if missing.

    `serving`: the serving stack's requirements (default: `serving_requirements()`).
    """
    began = time.monotonic()
    serving = serving_requirements() if serving is None else serving
    final = venvs_dir() / venv_key(requirements, installer, serving)
    if (final / "bin" / "python").exists():
        return Venv(final, created=False, seconds=round(time.monotonic() - began, 3))
    _sweep_stale()
    env = dict(os.environ if environ is None else environ)
    combined = serving + "\n" + requirements
    try:
        fill(combined, None, env)  # this interpreter's wheels, sdists built once
    except NoWheels as exc:
        raise VenvFailed(f"the bundle's requirements cannot be installed here: {exc.detail}") from exc
    work = Path(tempfile.mkdtemp(dir=scratch_dir(), prefix=f"venv-{final.name}-"))
    try:
        _build(work, combined, installer, env)
        if installer == PIP:
            _retarget_scripts(work / "bin", str(work), str(final))
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(work, final)  # atomic: a venv is there complete, or not at all
        except OSError:
            if not (final / "bin" / "python").exists():
                raise
            # another run built the same venv meanwhile: theirs is as good
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Venv(final, created=True, seconds=round(time.monotonic() - began, 3))


def _build(work: Path, requirements: str, installer: str, env: dict[str, str]) -> None:
    listed = work / "cmkit-requirements.txt"
    find = ["--no-index", "--find-links", str(wheel_dir())]
    if installer == PIP:
        _run([sys.executable, "-m", "venv", str(work)], env)
        listed.write_text(requirements, encoding="utf-8")
        _run(
            [
                str(work / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *find,
                "-r",
                str(listed),
            ],
            env,
        )
    else:
        uv_env = {**env, "UV_CACHE_DIR": str(uv_cache_dir()), "UV_PYTHON_DOWNLOADS": "never"}
        _run([str(uv_binary()), "venv", "-q", "--relocatable", "--python", sys.executable, str(work)], uv_env)
        listed.write_text(requirements, encoding="utf-8")
        _run(
            [
                str(uv_binary()),
                "pip",
                "install",
                "-q",
                "--compile-bytecode",  # as pip does: the model's first start does not compile its packages
                "--python",
                str(work / "bin" / "python"),
                *find,
                "-r",
                str(listed),
            ],
            uv_env,
        )
    listed.unlink()
    site = _site_packages(work)
    shutil.copytree(
        Path(cmkit_runtime.__file__).parent, site / "cmkit_runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    script = work / "bin" / "cmkit-runtime"
    script.write_text(RUNTIME_SCRIPT, encoding="utf-8")
    script.chmod(0o755)


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        raise VenvFailed(f"installing the bundle's venv failed: {' '.join(command[:3])}...\n" + "\n".join(lines[-5:]))


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def _retarget_scripts(bin_dir: Path, old: str, new: str) -> None:
    """pip writes absolute shebangs: point them at the venv's final place before it moves there."""
    for script in bin_dir.iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and old.encode() in data[:512]:
            script.write_bytes(data.replace(old.encode(), new.encode()))


def _sweep_stale() -> None:
    """Remove what killed installs left (venvs, downloads, plans older than STALE_SECONDS: not
    one running now)."""
    now = time.time()
    for entry in scratch_dir().iterdir():
        try:
            if now - entry.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def undeclared_import(log: str, bundle: Path) -> str | None:
    """'custom.py imports X, which requirements.txt does not name', when the log shows it."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        missing = MISSING_MODULE.match(line.strip())
        if not missing:
            continue
        importer = "the model"
        for earlier in reversed(lines[:index]):
            found = TRACE_FILE.match(earlier)
            if found and Path(found.group(1)).resolve().is_relative_to(bundle.resolve()):
                importer = Path(found.group(1)).resolve().relative_to(bundle.resolve()).as_posix()
                break
        return (
            f"{importer} imports {missing.group(1)}, which requirements.txt does not name "
            "(the process runtime serves from a venv of the bundle's requirements; add it there, "
            "or run with --host-python)"
        )
    return None
