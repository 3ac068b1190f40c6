"""The shared local wheel cache: every build and every process-runtime venv installs from it.

Wheels live flat in `cache_dir()/wheels`, keyed by their own file name: an index never serves two
contents under one name (PyPI refuses a re-upload), and the name carries the package, version and
the tags of the interpreter and platform it fits, so wheels for the image's Python and the host's
sit side by side. Sdists are built into wheels once (`pip wheel`) for the host's interpreter.

Filling is pip's job, on the host (see docs/architecture.md, "Dependency layer"): the
requirements are first resolved from the cache alone (`--no-index`): when that succeeds nothing
is downloaded and no index is asked. Otherwise pip resolves them against the configured index
(PIP_INDEX_URL, the CA bundle, the proxy: the user's own pip settings), into a temporary folder,
and each finished wheel is moved into the cache with an atomic rename, so a killed download never
leaves a partial file that a later build would use.

For an image, pip resolves for the image's interpreter and platform (`--platform`,
`--python-version`, `--abi`: the image's own tag list, read once per image in a throwaway
container); a requirement with no wheel for it raises `NoWheels` and the build falls back to
pip inside the image, as DataRobot builds.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cmkit.errors import CmkitError
from cmkit.paths import cache_dir

UV_PATH = "/_cmkit/uv"  # where the loopback server hands the uv binary to a build


class NoWheels(CmkitError):
    """The requirements cannot all be had as wheels for that interpreter: `detail` is pip's word."""

    def __init__(self, detail: str) -> None:
        super().__init__("the requirements cannot all be resolved to wheels for the image")
        self.detail = detail


@dataclass(frozen=True)
class Platform:
    """An interpreter's wheel tags, as pip's download options; None fields = the host's own."""

    python_version: str
    implementation: str
    abis: tuple[str, ...]
    platforms: tuple[str, ...]
    # Where pip installs (sysconfig's `data`: /usr/local in python images). uv is given it as
    # `--prefix`: its own guess of a Debian-built Python's scheme is `dist-packages`, where it
    # would not see what the environment's pip installed.
    prefix: str = ""

    def pip_options(self) -> list[str]:
        options = ["--only-binary=:all:", "--python-version", self.python_version]
        options += ["--implementation", self.implementation]
        for abi in self.abis:
            options += ["--abi", abi]
        for platform in self.platforms:
            options += ["--platform", platform]
        return options


@dataclass
class Filled:
    """What filling the cache did: `offline` when the cache alone answered (nothing downloaded)."""

    offline: bool
    wheels: list[str]
    added: list[str] = field(default_factory=list)
    seconds: float = 0.0


def wheel_dir() -> Path:
    return cache_dir() / "wheels"


def scratch_dir() -> Path:
    """Temporary downloads and venvs being built: beside the cache, never inside it."""
    path = cache_dir() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def platform_from_tags(tags: list[str], prefix: str = "") -> Platform:
    """An interpreter's `packaging.tags.sys_tags()` (as `interpreter-abi-platform`) as pip options."""
    interpreters: list[str] = []
    abis: list[str] = []
    platforms: list[str] = []
    for tag in tags:
        interpreter, abi, platform = tag.split("-")
        for values, value in ((interpreters, interpreter), (abis, abi), (platforms, platform)):
            if value not in values:
                values.append(value)
    first = next(i for i in interpreters if i[:2] in ("cp", "pp") and i[2:].isdigit())
    digits = first[2:]
    return Platform(
        python_version=f"{digits[0]}.{digits[1:]}",
        implementation=first[:2],
        abis=tuple(abis),
        platforms=tuple(p for p in platforms if p != "any"),
        prefix=prefix,
    )


# The interpreter's install prefix, then its wheel tags, one a line (pip's vendored `packaging`:
# every image that can pip-install has it).
TAGS_SCRIPT = (
    "import sysconfig; from pip._vendor.packaging import tags; "
    "print(sysconfig.get_paths()['data']); print('\\n'.join(str(t) for t in tags.sys_tags()))"
)
# TAGS_SCRIPT's output, then PLAN_SEPARATOR, then the command of its arguments run in its place
# (uv's plan), each PREFIX_PLACEHOLDER in them replaced by the prefix it printed: the platform
# and the plan of a new image from one container.
PLAN_SEPARATOR = "--- cmkit: the plan ---"
PREFIX_PLACEHOLDER = "{prefix}"
TAGS_AND_EXEC = (
    "import os, sys; "
    + TAGS_SCRIPT
    + f"; print({PLAN_SEPARATOR!r}, flush=True); prefix = sysconfig.get_paths()['data']; "
    + f"os.execv(sys.argv[1], [a.replace({PREFIX_PLACEHOLDER!r}, prefix) for a in sys.argv[1:]])"
)


def fill(
    requirements: str,
    platform: Platform | None = None,
    environ: Mapping[str, str] | None = None,
) -> Filled:
    """Make every wheel `requirements` resolves to present in the cache (see the module's doc).

    `platform` None: for the host's interpreter, sdists built into wheels. `environ` is pip's
    environment (the index, CA and proxy settings); default this process's.
    """
    began = time.monotonic()
    cache = wheel_dir()
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if environ is None else environ)
    with tempfile.TemporaryDirectory(dir=scratch_dir(), prefix="fill-") as scratch:
        work = Path(scratch)
        req = work / "requirements.txt"
        req.write_text(requirements, encoding="utf-8")
        out = work / "out"
        offline = _pip_fetch(req, out, cache, platform, env, offline=True)
        if offline.returncode != 0:
            online = _pip_fetch(req, out, cache, platform, env, offline=False)
            if online.returncode != 0:
                raise NoWheels(_last_lines(online.stdout))
        names = sorted(p.name for p in out.iterdir() if p.name.endswith(".whl"))
        added = [name for name in names if not (cache / name).exists()]
        for name in added:
            os.replace(out / name, cache / name)  # same file system: atomic, never a partial wheel
    return Filled(offline.returncode == 0, names, added, round(time.monotonic() - began, 3))


def _pip_fetch(
    req: Path, out: Path, cache: Path, platform: Platform | None, env: dict[str, str], offline: bool
) -> subprocess.CompletedProcess[str]:
    if out.exists():
        shutil.rmtree(out)
    # For the host, `pip wheel` builds sdists once; for an image, `pip download` of wheels only
    # (pip cannot build for another interpreter).
    verb = "wheel" if platform is None else "download"
    dest = "--wheel-dir" if platform is None else "--dest"
    command = [sys.executable, "-m", "pip", verb, "-q", "--disable-pip-version-check", dest, str(out)]
    command += ["--find-links", str(cache), "-r", str(req)]
    if offline:
        command.append("--no-index")
    if platform is not None:
        command += platform.pip_options()
    return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("WARNING")]
    return "\n".join(lines[-count:])


def uv_binary() -> Path:
    """The uv binary installed with cmkit (the PyPI package `uv` is one static binary)."""
    from uv import find_uv_bin

    return Path(find_uv_bin())


class _Handler(http.server.SimpleHTTPRequestHandler):
    uv: str = ""

    def translate_path(self, path: str) -> str:
        if path.split("?")[0] == UV_PATH:
            return self.uv
        return super().translate_path(path)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the build's own log says what was installed


@contextmanager
def serve_wheels() -> Iterator[str]:
    """The wheel cache (and uv at `UV_PATH`) over HTTP on loopback for one build: its base URL.

    The classic builder has no cache mounts; a build run with the host's network reaches this
    server, so the wheels never enter the build context nor a layer.
    """
    handler = type("WheelHandler", (_Handler,), {"uv": str(uv_binary())})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(wheel_dir())))
    # A short poll: shutdown() waits for it, and the build waits for shutdown().
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def cached_platform(key: str, read_tags: Callable[[], str]) -> Platform:
    """An interpreter's prefix and tags (`read_tags` returns TAGS_SCRIPT's output), remembered per `key`."""
    path = cache_dir() / "platforms" / f"{key.replace(':', '-')}.json"
    try:
        saved = json.loads(path.read_text())
        return Platform(
            saved["python_version"],
            saved["implementation"],
            tuple(saved["abis"]),
            tuple(saved["platforms"]),
            saved["prefix"],
        )
    except (OSError, ValueError, TypeError, KeyError):
        pass  # not read yet, or from another cmkit: read it again
    prefix, *tags = read_tags().split()
    found = platform_from_tags(tags, prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Per process and thread: the environment's prefetch and the dependency layer may both write it.
    temporary = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(found.__dict__))
    os.replace(temporary, path)
    return found


def planned_pins(uv_output: str) -> list[str] | None:
    """`uv pip install --dry-run`'s plan as sorted `name==version` pins (None: it could not resolve).

    Lines ` + name==version` are what would be installed; ` - ` lines, what it replaces.
    """
    if "Would " not in uv_output:
        return None
    return sorted(line.strip()[2:].strip() for line in uv_output.splitlines() if line.strip().startswith("+ "))


def uv_target(prefix: str) -> list[str]:
    """uv's options to install where the image's pip does (see `Platform.prefix`)."""
    return ["--python", "python3", "--prefix", prefix, "--break-system-packages"] if prefix else ["--system"]
