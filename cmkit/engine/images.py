"""Build a model's image in three cached layers: environment, dependencies, code.

Each layer is tagged by a hash of exactly the inputs that shape it, so an unchanged input skips
its build entirely, editing model code never reinstalls dependencies, and editing
requirements.txt never rebuilds the environment.

Builds run behind TLS-inspecting proxies as they do on corporate laptops: the host's CA bundle,
pip index settings and proxy variables are forwarded into every build (see `BuildSettings`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from cmkit.bundle import BundleFile
from cmkit.engine.wheels import uv_target
from cmkit.envcontext import ContextFile
from cmkit.errors import CmkitError, InputError
from cmkit.hashcache import HashCache

LABEL = "cmkit"
KIND_LABEL = "cmkit.image"
CODE_DIR = "/opt/code"
CODE_REPOSITORY = "cmkit-code"
CA_PATH_IN_IMAGE = "/usr/local/share/cmkit/ca-bundle.crt"
PIP_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")
PROXY_SETTINGS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
CA_SETTINGS = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
HASH_LENGTH = 20
# Code images kept per owner: an edit loop that goes back a few steps stays warm, and runs on
# fresh folders (CI checkouts, temporary copies) no longer pile up one image each.
CODE_IMAGES_KEPT = 4


class BuildFailed(CmkitError):
    """A docker build failed; `log` holds its output."""

    def __init__(self, message: str, log: list[str], stage: str) -> None:
        super().__init__(message)
        self.log = log
        self.stage = stage


@dataclass(frozen=True)
class BuildSettings:
    """What a build needs from the host to reach package indexes."""

    ca_bundle: Path | None = None
    pip: Mapping[str, str] = field(default_factory=dict)
    proxies: Mapping[str, str] = field(default_factory=dict)
    # "uv": the dependency layer installs from the shared wheel cache with uv (cmkit/engine/wheels.py);
    # "pip": `pip install -r requirements.txt` from the index inside the image, as DataRobot builds.
    installer: str = "uv"

    @classmethod
    def from_environment(
        cls,
        ca_bundle: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
        installer: str = "uv",
    ) -> BuildSettings:
        env = os.environ if environ is None else environ
        bundle = Path(ca_bundle) if ca_bundle else None
        if bundle is None:
            for name in CA_SETTINGS:
                if env.get(name) and Path(env[name]).is_file():
                    bundle = Path(env[name])
                    break
        if bundle is not None and not bundle.is_file():
            raise InputError("CA bundle not found", file=bundle, hint="pass a PEM file to --ca-bundle")
        return cls(
            ca_bundle=bundle,
            pip={k: env[k] for k in PIP_SETTINGS if env.get(k)},
            proxies={k: env[k] for k in PROXY_SETTINGS if env.get(k)},
            installer=installer,
        )

    def ca_bytes(self) -> bytes | None:
        return self.ca_bundle.read_bytes() if self.ca_bundle else None

    def build_args(self) -> dict[str, str]:
        return {**self.pip, **self.proxies}

    def fingerprint(self) -> str:
        """What changes an image's content: the CA and index settings, not the proxy route."""
        digest = hashlib.sha256()
        digest.update(self.ca_bytes() or b"")
        digest.update(json.dumps(sorted(self.pip.items())).encode())
        return digest.hexdigest()

    def pip_environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of pip run on the host for a build: the host's, with `--ca-bundle`'s CA."""
        env = dict(os.environ if environ is None else environ)
        env.update(self.build_args())
        if self.ca_bundle:
            for name in CA_SETTINGS:
                env[name] = str(self.ca_bundle)
        return env


@dataclass
class BuiltImage:
    tag: str
    image_id: str
    cached: bool
    log: list[str] = field(default_factory=list)
    user: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"tag": self.tag, "id": self.image_id, "cached": self.cached}


@dataclass
class ModelImage:
    """The three layers of one bundle's image."""

    environment: BuiltImage
    dependencies: BuiltImage
    code: BuiltImage

    def to_dict(self) -> dict[str, object]:
        return {
            "environment": self.environment.to_dict(),
            "dependencies": self.dependencies.to_dict(),
            "code": self.code.to_dict(),
        }


def content_hash(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:HASH_LENGTH]


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    archive.addfile(info, io.BytesIO(data))


def tar_of(files: Mapping[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            _add_bytes(archive, name, data)
    buffer.seek(0)
    return buffer


def base_image_arg(dockerfile: str) -> str | None:
    """The default of `ARG BASE_IMAGE=...` declared before the first FROM, if any."""
    for raw in dockerfile.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() == "FROM":
            return None
        if words[0].upper() == "ARG" and len(words) > 1 and words[1].startswith("BASE_IMAGE="):
            return words[1].split("=", 1)[1].strip("\"'") or None
    return None


# -- what a build is made of: keys, contexts and Dockerfiles (no engine needed) -------------------

BUILD_DIR = "/tmp/cmkit-build"  # where the dependency layer's context sits during its one RUN
# Bytecode for every site-packages folder, as pip compiles it, except the packages' own test
# suites (`/tests/`), which no model server imports: half of pandas', numpy's and scikit-learn's
# files. The python3 environment's Dockerfile runs the same line (tests/engine/test_wheels.py).
# compile_file skips what is compiled already and, as pip, fails nothing for a file it cannot
# compile. A pool on every core, 64 files a task: compileall's own `workers` sends one file a
# task, and the per-file hand-off made it no faster than one core (2.3 s against 1.4 s for the
# diabetes sample's packages).
COMPILE_BYTECODE = (
    'python3 -c "import compileall, functools, multiprocessing, pathlib, site; '
    "files = [str(p) for d in site.getsitepackages() for p in pathlib.Path(d).rglob('*.py') "
    "if '/tests/' not in str(p)]; "
    'multiprocessing.Pool().map(functools.partial(compileall.compile_file, quiet=2), files, chunksize=64)"'
)


def environment_key(files: list[ContextFile], build_args: Mapping[str, str]) -> str:
    """The environment layer's tag: its context's files (path, mode, content) and the build
    arguments that change what is installed (not the proxy route)."""
    content_args = sorted((k, v) for k, v in build_args.items() if "PROXY" not in k.upper())
    parts: list[bytes | str] = [json.dumps(content_args)]
    for file in files:
        parts += [file.path, str(file.mode), file.source.read_bytes()]
    return content_hash(*parts)


def dependency_files(base: BuiltImage, requirements: str, settings: BuildSettings) -> dict[str, bytes]:
    """The dependency layer's build context: requirements.txt, the host CA if any, the Dockerfile.

    Installed as root, then back to the base's user; the CA and index settings reach pip for
    this one RUN, and the context is removed in the same step so no layer keeps it.
    """
    install = f"pip install --no-cache-dir --disable-pip-version-check -r {BUILD_DIR}/requirements.txt"
    return _installing_context(base, requirements, settings, ("PIP_CERT",), install)


R_INSTALLER = "install-r-packages"  # what cmkit's R environment provides (templates/environments/r)


def r_dependency_files(base: BuiltImage, requirements: str, settings: BuildSettings) -> dict[str, bytes]:
    """An R bundle's dependency layer: its requirements.txt names R packages, which the R
    environment's `install-r-packages` installs (Debian's r-cran-*, else CRAN), as root."""
    # CRAN over HTTPS behind a TLS-inspecting proxy: R's libcurl reads CURL_CA_BUNDLE.
    install = f"{R_INSTALLER} {BUILD_DIR}/requirements.txt"
    return _installing_context(base, requirements, settings, ("CURL_CA_BUNDLE", "SSL_CERT_FILE"), install)


def _installing_context(
    base: BuiltImage, requirements: str, settings: BuildSettings, ca_variables: tuple[str, ...], install: str
) -> dict[str, bytes]:
    """requirements.txt, the host CA (named to the installer by `ca_variables`) and a Dockerfile
    whose one RUN installs them as root and removes the context, so no layer keeps it."""
    files = {"requirements.txt": requirements.encode()}
    cert_env = ""
    ca = settings.ca_bytes()
    if ca:
        files["ca-bundle.crt"] = ca
        cert_env = "".join(f"{name}={BUILD_DIR}/ca-bundle.crt " for name in ca_variables)
    args = "".join(f"ARG {name}\n" for name in settings.build_args())
    files["Dockerfile"] = (
        f"FROM {base.image_id}\n"
        "USER root\n"
        f"COPY . {BUILD_DIR}/\n"
        f"{args}"
        f"RUN {cert_env}{install} && rm -rf {BUILD_DIR}\n"
        f"USER {base.user or 'root'}\n"
    ).encode()
    return files


def uv_dependency_files(
    base: BuiltImage, pins: list[str], wheels_url: str, uv_path: str, prefix: str
) -> dict[str, bytes]:
    """The dependency layer: exactly `pins` (uv's plan), installed by uv from the wheel cache
    served on loopback at `wheels_url`.

    No index is asked (`--no-index`) and nothing else resolved (`--no-deps`); bytecode compiled
    as pip does, but for test suites (COMPILE_BYTECODE). uv is fetched from the same server into
    a build folder and removed with it in the one RUN, so neither uv nor the wheels stay in any
    layer; the build runs with the host's network (see ImageBuilder._uv_dependencies), and
    loopback bypasses any proxy. The pins are the RUN's arguments and the context is the
    Dockerfile alone: a COPY step would cost the classic builder one more layer on a new
    machine's first build.
    """
    fetch = f"import urllib.request as u; u.urlretrieve('{wheels_url}{uv_path}', '{BUILD_DIR}/uv')"
    target = " ".join(uv_target(prefix))
    dockerfile = (
        f"FROM {base.image_id}\n"
        "USER root\n"
        "RUN export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1 UV_NO_CACHE=1 UV_LINK_MODE=copy "
        "UV_PYTHON_DOWNLOADS=never"
        f' && mkdir -p {BUILD_DIR} && python3 -c "{fetch}" && chmod 755 {BUILD_DIR}/uv'
        f" && {BUILD_DIR}/uv pip install {target} --no-index --no-deps "
        f"--find-links {wheels_url}/ {' '.join(shlex.quote(pin) for pin in pins)} && rm -rf {BUILD_DIR}"
        f" && {COMPILE_BYTECODE}\n"
        f"USER {base.user or 'root'}\n"
    )
    return {"Dockerfile": dockerfile.encode()}


def code_owner(labels: Mapping[str, str]) -> str:
    """A builder's labels as a tag prefix: whose code images these are.

    In the tag, not in a label: images inherit their base's labels (a dependency image
    another session built carries that session's), so labels cannot tell owners apart.
    """
    return content_hash(json.dumps(sorted(labels.items())))[:12]


def code_key(base: BuiltImage, labels: Mapping[str, str], files: Iterable[BundleFile], hashes: HashCache) -> str:
    """The code layer's content: the base, its user, the labels and each file's path, mode and
    content; never the folder, so the same files anywhere are one image."""
    keys = (_file_key(f, hashes) for f in files)
    return content_hash(base.image_id, base.user or "root", json.dumps(sorted(labels.items())), *keys)


def missing_labels(labels: Mapping[str, str], inherited: Mapping[str, str]) -> dict[str, str]:
    """The builder's labels the base image does not already carry with the same value."""
    return {key: value for key, value in labels.items() if inherited.get(key) != value}


def label_step(labels: Mapping[str, str]) -> str:
    """One LABEL instruction for all of `labels` ("" for none).

    In the Dockerfile, not the build's `labels` option: the classic builder makes that one
    LABEL step a label, a container each (three for cmkit's, about 0.06 s apiece here).
    """
    if not labels:
        return ""
    return "LABEL " + " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items()) + "\n"


def labelled(files: Mapping[str, bytes], labels: Mapping[str, str]) -> dict[str, bytes]:
    """A generated build context whose Dockerfile ends with `label_step(labels)`."""
    return {**files, "Dockerfile": files["Dockerfile"] + label_step(labels).encode()}


def code_dockerfile(base: BuiltImage, labels: Mapping[str, str]) -> str:
    """One COPY owned by the base's user, and a LABEL step only for labels to add."""
    owner = base.user or "root"
    return f"FROM {base.image_id}\nCOPY --chown={owner} code/ {CODE_DIR}/\n" + label_step(labels)


def trust_dockerfile(base: str) -> str:
    """The base image plus the host CA bundle, trusted by pip, requests and OpenSSL."""
    return (
        f"FROM {base}\n"
        f"COPY ca-bundle.crt {CA_PATH_IN_IMAGE}\n"
        f"ENV PIP_CERT={CA_PATH_IN_IMAGE} REQUESTS_CA_BUNDLE={CA_PATH_IN_IMAGE} "
        f"SSL_CERT_FILE={CA_PATH_IN_IMAGE}\n"
    )


def evictable_code_images(images: Iterable[Any], owner: str, keep: str) -> list[str]:
    """Tags of the owner's code images beyond the `CODE_IMAGES_KEPT` newest, `keep`'s image spared.

    `images` are the engine's image objects (their `tags` and `attrs`).
    """
    prefix = f"{CODE_REPOSITORY}:{owner}-"
    mine = [image for image in images if any(tag.startswith(prefix) for tag in image.tags)]
    mine.sort(key=lambda image: created_at(image.attrs), reverse=True)
    return [tag for image in mine[CODE_IMAGES_KEPT:] if keep not in image.tags for tag in image.tags]


def layer_id(line: str) -> str | None:
    """The image id of a finished build step (` ---> 1a2b3c4d`) in the legacy builder's output."""
    words = line.split()
    return words[1] if line.startswith(" ---> ") and len(words) == 2 else None


def created_at(attrs: Mapping[str, Any]) -> float:
    """An image's or container's creation time (Unix seconds) from the engine's attributes."""
    created = attrs.get("Created")
    if isinstance(created, (int, float)):  # container lists give seconds
        return float(created)
    # "2026-12-01T10:15:32.123456789Z": nanoseconds (to a variable number of digits) are below
    # what datetime parses, and below what any caller needs.
    text = str(created or "1970-01-01T00:00:00Z")
    seconds, _, fraction = text.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(seconds).replace(tzinfo=timezone.utc).timestamp()
    return stamp + (float(f"0.{fraction[:6]}") if fraction.isdigit() else 0.0)


def has_requirements(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


def _file_key(file: BundleFile, hashes: HashCache) -> str:
    mode = "x" if os.access(file.source, os.X_OK) else "-"
    return f"{file.path}\0{mode}\0{file.sha256(hashes)}"


def code_context(dockerfile: str, files: list[BundleFile]) -> IO[bytes]:
    """The code layer's build context, spooled to disk so large artifacts don't fill memory."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it after the build
    with tarfile.open(fileobj=spool, mode="w") as archive:
        _add_bytes(archive, "Dockerfile", dockerfile.encode())
        for file in files:
            stat = file.source.stat()  # follows in-bundle symlinks: the image gets the content
            info = tarfile.TarInfo(f"code/{file.path}")
            info.size = stat.st_size
            info.mode = stat.st_mode & 0o777
            info.mtime = int(stat.st_mtime)
            with file.source.open("rb") as handle:
                archive.addfile(info, handle)
    spool.seek(0)
    return spool
