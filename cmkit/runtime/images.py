"""Build a model's image in three cached layers: environment, dependencies, code.

Each layer is tagged by a hash of exactly the inputs that shape it, so an unchanged input skips
its build entirely, editing model code never reinstalls dependencies, and editing
requirements.txt never rebuilds the environment.

Builds run behind TLS-inspecting proxies as they do on corporate laptops: the host's CA bundle,
pip index settings and proxy variables are forwarded into every build (see `BuildSettings`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from cmkit.bundle import BundleFile, list_bundle
from cmkit.envcontext import ContextFile, context_files, tar_context
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

    @classmethod
    def from_environment(
        cls, ca_bundle: Path | str | None = None, environ: Mapping[str, str] | None = None
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


def _hash(*parts: bytes | str) -> str:
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


def _context(files: Mapping[str, bytes]) -> io.BytesIO:
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


class ImageBuilder:
    """Builds the environment, dependency and code images of bundles through the docker SDK."""

    def __init__(
        self,
        client: docker.DockerClient,
        settings: BuildSettings | None = None,
        on_log: Callable[[str], None] | None = None,
        labels: Mapping[str, str] | None = None,
        hashes: HashCache | None = None,
    ) -> None:
        self.client = client
        self.hashes = hashes or HashCache()  # saved after each code layer's files are hashed
        self.settings = settings or BuildSettings()
        self.on_log = on_log or (lambda line: None)
        self.labels = {LABEL: "1", **(labels or {})}
        self._background: list[threading.Thread] = []

    def finish(self) -> None:
        """Wait for background clean-up (old code images) to end."""
        for thread in self._background:
            thread.join()
        self._background.clear()

    # -- the three layers ---------------------------------------------------------------------

    def environment(self, context_dir: Path, rebuild: bool = False) -> BuiltImage:
        """The execution environment: a folder holding a Dockerfile (its docker context)."""
        context_dir = Path(context_dir)
        dockerfile_path = context_dir / "Dockerfile"
        if not dockerfile_path.is_file():
            raise InputError("no Dockerfile in the environment folder", file=context_dir)
        dockerfile = dockerfile_path.read_text(encoding="utf-8")
        build_args = self.settings.build_args()
        base_tag = self._trust_layer(base_image_arg(dockerfile), rebuild)
        if base_tag:
            build_args["BASE_IMAGE"] = base_tag
        elif self.settings.ca_bundle and base_image_arg(dockerfile) is None:
            self.on_log(
                "warning: the environment's Dockerfile has no 'ARG BASE_IMAGE=...' before FROM, so the "
                "host CA bundle cannot be added under it; pip may fail behind a TLS-inspecting proxy"
            )
        files = context_files(context_dir)
        tag = f"cmkit-env:{environment_key(files, build_args)}"
        existing = self._existing(tag, rebuild)
        if existing:
            return existing
        self.on_log(f"building environment {context_dir} as {tag}")
        with tar_context(files) as context:
            log = self._build(
                "environment",
                tag,
                fileobj=context,
                custom_context=True,
                buildargs=build_args,
                nocache=rebuild,
                labels={**self.labels, KIND_LABEL: "env"},
            )
        return self._built(tag, log)

    def dependencies(self, base: BuiltImage | str, requirements: str | None, rebuild: bool = False) -> BuiltImage:
        """The environment plus `pip install -r requirements.txt`, and nothing else."""
        base_image = self._resolve(base)
        if not requirements or not _has_requirements(requirements):
            return base_image
        tag = f"cmkit-deps:{_hash(base_image.image_id, requirements, self.settings.fingerprint())}"
        existing = self._existing(tag, rebuild)
        if existing:
            return existing
        self.on_log(f"installing requirements.txt into {tag}")
        log = self._build(
            "dependencies",
            tag,
            fileobj=_context(dependency_files(base_image, requirements, self.settings)),
            custom_context=True,
            buildargs=self.settings.build_args(),
            nocache=rebuild,
            labels={**self.labels, KIND_LABEL: "deps"},
        )
        return self._built(tag, log)

    def code(self, base: BuiltImage | str, bundle_dir: Path, rebuild: bool = False) -> BuiltImage:
        """The bundle's files (as `list_bundle` sees them) copied to /opt/code.

        One COPY step, the fastest build Docker's legacy builder does (each extra instruction
        costs a container): the image inherits WORKDIR and labels from its base, and gets a
        LABEL step only for the builder's labels the base lacks. Tagged
        `cmkit-code:<owner>-<content>`, never by the folder: the same files on the same
        dependencies are one image wherever they sit (a CI checkout, a temporary copy).
        Building one evicts the owner's older code images beyond `CODE_IMAGES_KEPT`.
        """
        base_image = self._resolve(base)
        files = list_bundle(bundle_dir).files
        content = code_key(base_image, self.labels, files, self.hashes)
        self.hashes.save()
        tag = f"{CODE_REPOSITORY}:{code_owner(self.labels)}-{content}"
        existing = self._existing(tag, rebuild)
        if existing:
            return existing
        # Labels the base already carries (an environment or dependency image this builder
        # made) are inherited; a ready `--image` gets them here, so prune and eviction see it.
        inherited = self.client.images.get(base_image.image_id).labels or {}
        dockerfile = code_dockerfile(base_image, missing_labels(self.labels, inherited))
        self.on_log(f"copying {len(files)} files into {tag}")
        with _code_context(dockerfile, files) as context:
            log = self._build("code", tag, fileobj=context, custom_context=True, nocache=rebuild)
        # Removing images deletes their layers: done meanwhile, not on the edit loop's path.
        evicting = threading.Thread(target=self._evict_code_images, args=(tag,), daemon=True)
        evicting.start()
        self._background.append(evicting)
        return self._built(tag, log)

    def _evict_code_images(self, keep: str) -> None:
        """Keep the owner's `CODE_IMAGES_KEPT` newest code images; remove older unused ones.

        The owner is the builder's labels (`cmkit=1`, plus `--label`s such as a CI job's, a
        test session's or the emulator's), so a run never evicts another owner's cache. An
        image a container still uses is left to `cmkit prune`.
        """
        images = self.client.images.list(name=CODE_REPOSITORY)
        for old in evictable_code_images(images, code_owner(self.labels), keep):
            with contextlib.suppress(ImageNotFound, APIError):  # in use by a container
                self.client.images.remove(old)

    def model(
        self,
        bundle_dir: Path,
        environment: Path | None = None,
        image: str | None = None,
        rebuild: bool = False,
    ) -> ModelImage:
        """All three layers for a bundle, on an environment folder or a ready image."""
        if (environment is None) == (image is None):
            raise InputError("give exactly one of an environment folder or an image")
        env = self.environment(environment, rebuild) if environment else self._resolve(image or "")
        requirements = Path(bundle_dir) / "requirements.txt"
        text = requirements.read_text(encoding="utf-8") if requirements.is_file() else None
        deps = self.dependencies(env, text, rebuild)
        return ModelImage(env, deps, self.code(deps, Path(bundle_dir), rebuild))

    # -- helpers ------------------------------------------------------------------------------

    def _trust_layer(self, base: str | None, rebuild: bool) -> str | None:
        """An image = base + the host CA bundle, trusted by pip and Python (None without a CA)."""
        ca = self.settings.ca_bytes()
        if not ca or not base:
            return None
        base_id = self._image_id(base) or base
        tag = f"cmkit-base:{_hash(base_id, ca)}"
        if self._existing(tag, rebuild):
            return tag
        dockerfile = trust_dockerfile(base)
        self.on_log(f"adding the host CA bundle under {base} as {tag}")
        self._build(
            "ca-trust",
            tag,
            fileobj=_context({"Dockerfile": dockerfile.encode(), "ca-bundle.crt": ca}),
            custom_context=True,
            labels={**self.labels, KIND_LABEL: "base"},
        )
        return tag

    def _image_id(self, ref: str) -> str | None:
        try:
            return str(self.client.images.get(ref).id)
        except ImageNotFound:
            return None

    def _existing(self, tag: str, rebuild: bool) -> BuiltImage | None:
        if rebuild:
            return None
        try:
            image = self.client.images.get(tag)
        except ImageNotFound:
            return None
        return BuiltImage(tag, str(image.id), cached=True, user=_user(image.attrs))

    def _resolve(self, base: BuiltImage | str) -> BuiltImage:
        if isinstance(base, BuiltImage):
            return base
        try:
            image = self.client.images.get(base)
        except ImageNotFound as exc:
            raise InputError(f"image '{base}' not found on the Docker engine", hint="build or pull it first") from exc
        return BuiltImage(base, str(image.id), cached=True, user=_user(image.attrs))

    def _built(self, tag: str, log: list[str]) -> BuiltImage:
        image = self.client.images.get(tag)
        return BuiltImage(tag, str(image.id), cached=False, log=log, user=_user(image.attrs))

    def _build(self, stage: str, tag: str, **kwargs: Any) -> list[str]:
        """Run one build, streaming its output; clean up what a failed build leaves behind."""
        previous = self._image_id(tag)
        log: list[str] = []
        layers: list[str] = []
        try:
            for chunk in self.client.api.build(tag=tag, rm=True, forcerm=True, decode=True, pull=False, **kwargs):
                for line in _chunk_lines(chunk):
                    log.append(line)
                    self.on_log(line)
                    layer = layer_id(line)
                    if layer:
                        layers.append(layer)
                if "error" in chunk:
                    raise BuildError(chunk["error"], iter(()))
        except (BuildError, APIError) as exc:
            self._remove_dangling(layers)
            raise BuildFailed(f"{stage} image build failed: {_last_error(log, exc)}", log, stage) from exc
        if previous and previous != self._image_id(tag):
            self._remove_dangling([previous])  # a rebuild leaves the old image untagged
        return log

    def _remove_dangling(self, image_ids: Iterable[str]) -> None:
        for image_id in reversed(list(image_ids)):
            try:
                image = self.client.images.get(image_id)
                if not image.tags and image.id:
                    self.client.images.remove(image.id, noprune=False)
            except (ImageNotFound, APIError):
                pass  # in use by another image or container, or already gone


# -- what a build is made of: keys, contexts and Dockerfiles (no engine needed) -------------------

BUILD_DIR = "/tmp/cmkit-build"  # where the dependency layer's context sits during its one RUN


def environment_key(files: list[ContextFile], build_args: Mapping[str, str]) -> str:
    """The environment layer's tag: its context's files (path, mode, content) and the build
    arguments that change what is installed (not the proxy route)."""
    content_args = sorted((k, v) for k, v in build_args.items() if "PROXY" not in k.upper())
    parts: list[bytes | str] = [json.dumps(content_args)]
    for file in files:
        parts += [file.path, str(file.mode), file.source.read_bytes()]
    return _hash(*parts)


def dependency_files(base: BuiltImage, requirements: str, settings: BuildSettings) -> dict[str, bytes]:
    """The dependency layer's build context: requirements.txt, the host CA if any, the Dockerfile.

    Installed as root, then back to the base's user; the CA and index settings reach pip for
    this one RUN, and the context is removed in the same step so no layer keeps it.
    """
    files = {"requirements.txt": requirements.encode()}
    ca = settings.ca_bytes()
    cert_env = ""
    if ca:
        files["ca-bundle.crt"] = ca
        cert_env = f"PIP_CERT={BUILD_DIR}/ca-bundle.crt "
    args = "".join(f"ARG {name}\n" for name in settings.build_args())
    files["Dockerfile"] = (
        f"FROM {base.image_id}\n"
        "USER root\n"
        f"COPY . {BUILD_DIR}/\n"
        f"{args}"
        f"RUN {cert_env}pip install --no-cache-dir --disable-pip-version-check "
        f"-r {BUILD_DIR}/requirements.txt && rm -rf {BUILD_DIR}\n"
        f"USER {base.user or 'root'}\n"
    ).encode()
    return files


def code_owner(labels: Mapping[str, str]) -> str:
    """A builder's labels as a tag prefix: whose code images these are.

    In the tag, not in a label: images inherit their base's labels (a dependency image
    another session built carries that session's), so labels cannot tell owners apart.
    """
    return _hash(json.dumps(sorted(labels.items())))[:12]


def code_key(base: BuiltImage, labels: Mapping[str, str], files: Iterable[BundleFile], hashes: HashCache) -> str:
    """The code layer's content: the base, its user, the labels and each file's path, mode and
    content; never the folder, so the same files anywhere are one image."""
    keys = (_file_key(f, hashes) for f in files)
    return _hash(base.image_id, base.user or "root", json.dumps(sorted(labels.items())), *keys)


def missing_labels(labels: Mapping[str, str], inherited: Mapping[str, str]) -> dict[str, str]:
    """The builder's labels the base image does not already carry with the same value."""
    return {key: value for key, value in labels.items() if inherited.get(key) != value}


def code_dockerfile(base: BuiltImage, labels: Mapping[str, str]) -> str:
    """One COPY owned by the base's user, and a LABEL step only for labels to add."""
    owner = base.user or "root"
    dockerfile = f"FROM {base.image_id}\nCOPY --chown={owner} code/ {CODE_DIR}/\n"
    if labels:
        dockerfile += "LABEL " + " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items()) + "\n"
    return dockerfile


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


def _has_requirements(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


def _user(attrs: Mapping[str, Any]) -> str:
    return str((attrs.get("Config") or {}).get("User") or "")


def _file_key(file: BundleFile, hashes: HashCache) -> str:
    mode = "x" if os.access(file.source, os.X_OK) else "-"
    return f"{file.path}\0{mode}\0{file.sha256(hashes)}"


def _code_context(dockerfile: str, files: list[BundleFile]) -> IO[bytes]:
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


def _chunk_lines(chunk: Mapping[str, Any]) -> Iterator[str]:
    text = chunk.get("stream") or chunk.get("status") or chunk.get("error") or ""
    for line in str(text).splitlines():
        if line.strip():
            yield line.rstrip()


def _last_error(log: list[str], exc: Exception) -> str:
    message = str(getattr(exc, "msg", "") or exc).strip().splitlines()
    return message[-1] if message else (log[-1] if log else "unknown error")
