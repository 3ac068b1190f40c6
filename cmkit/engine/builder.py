"""Builds a bundle's images on the Docker engine: environment, dependencies, code (and trust).

What each image is made of (keys, contexts, Dockerfiles, labels) is cmkit/engine/images.py's,
which needs no engine; this module is the part that talks to one, tested in the Docker tier
(tests/testlocal/test_docker.py, tests/engine/test_prune.py).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, ContainerError, ImageNotFound

from cmkit.bundle import list_bundle
from cmkit.engine.images import (
    CODE_REPOSITORY,
    KIND_LABEL,
    LABEL,
    BuildFailed,
    BuildSettings,
    BuiltImage,
    ModelImage,
    base_image_arg,
    code_context,
    code_dockerfile,
    code_key,
    code_owner,
    content_hash,
    dependency_files,
    environment_key,
    evictable_code_images,
    has_requirements,
    label_step,
    labelled,
    layer_id,
    missing_labels,
    r_dependency_files,
    tar_of,
    trust_dockerfile,
    uv_dependency_files,
)
from cmkit.engine.installers import UV
from cmkit.engine.wheels import (
    PLAN_SEPARATOR,
    PREFIX_PLACEHOLDER,
    TAGS_AND_EXEC,
    TAGS_SCRIPT,
    UV_PATH,
    NoWheels,
    Platform,
    cached_platform,
    fill,
    planned_pins,
    scratch_dir,
    serve_wheels,
    uv_binary,
    uv_target,
    wheel_dir,
)
from cmkit.envcontext import context_files, tar_context
from cmkit.errors import InputError
from cmkit.hashcache import HashCache
from cmkit.requirements import bundle_requirements
from cmkit_runtime.formats import is_r_bundle


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

    def environment(self, context_dir: Path, rebuild: bool = False, requirements: str | None = None) -> BuiltImage:
        """The execution environment: a folder holding a Dockerfile (its docker context).

        `requirements`: the bundle's requirements.txt, whose wheels are fetched into the cache
        while the environment builds (see `_prefetch`).
        """
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
        fetching = self._prefetch(base_tag or base_image_arg(dockerfile), requirements)
        labels = {**self.labels, KIND_LABEL: "env"}
        # One LABEL step at the end of the Dockerfile in the context (images.label_step); the
        # build's option instead when its last line goes on, which would take the step in.
        continued = dockerfile.rstrip().endswith(("\\", "`"))
        try:
            with tar_context(files, "" if continued else "\n" + label_step(labels)) as context:
                log = self._build(
                    "environment",
                    tag,
                    fileobj=context,
                    custom_context=True,
                    buildargs=build_args,
                    nocache=rebuild,
                    labels=labels if continued else None,
                )
        finally:
            if fetching:
                fetching.join()
        return self._built(tag, log)

    def _prefetch(self, base: str | None, requirements: str | None) -> threading.Thread | None:
        """Fill the wheel cache for `requirements` on a thread, for the interpreter of `base`.

        A new environment's build is mostly its own pip install inside the engine; the bundle's
        wheels can meanwhile be downloaded on the host (2 CPUs: both busy instead of one), so the
        dependency layer after it finds them in the cache. Speculative: the wheels are chosen for
        the environment's base image, which is the environment's interpreter unless its
        Dockerfile installs another one; the dependency layer plans for the built image itself
        and fetches whatever is still missing.
        """
        wanted = requirements is not None and has_requirements(requirements)
        if not wanted or base is None or self.settings.installer != UV or not _local_engine(self.client):
            return None
        thread = threading.Thread(target=self._fetch_for, args=(base, requirements), name="cmkit-prefetch", daemon=True)
        thread.start()
        return thread

    def _fetch_for(self, base: str, requirements: str) -> None:
        began = time.monotonic()
        # Any failure here (no index, no wheel for the platform, a base not on the engine) is
        # met again by the dependency layer, which reports it: nothing is lost by dropping it.
        with contextlib.suppress(Exception):
            image = self._resolve(base)
            platform = cached_platform(image.image_id, lambda: self._run(image, "python3", ["-c", TAGS_SCRIPT]))
            filled = fill(requirements, platform, self.settings.pip_environment())
            count = len(filled.added)
            self.on_log(
                f"fetched {count} wheel{'' if count == 1 else 's'} into the wheel cache while the environment "
                f"built ({time.monotonic() - began:.1f} s)"
            )

    def dependencies(
        self, base: BuiltImage | str, requirements: str | None, rebuild: bool = False, r_packages: bool = False
    ) -> BuiltImage:
        """The environment plus the bundle's requirements.txt installed, and nothing else.

        With the uv installer (the default) the wheels come from the shared cache, filled on
        the host for the image's interpreter (cmkit/engine/wheels.py); requirements that cannot
        all be had as wheels for it, and `installer="pip"`, are pip-installed from the index
        inside the image, as DataRobot builds.
        """
        base_image = self._resolve(base)
        if not requirements or not has_requirements(requirements):
            return base_image
        if r_packages:  # an R bundle: requirements.txt names R packages (images.r_dependency_files)
            return self._r_dependencies(base_image, requirements, rebuild)
        if self.settings.installer == UV and not _local_engine(self.client):
            # The wheel cache is mounted into the plan's container and served on this host's
            # loopback: an engine elsewhere (DOCKER_HOST=tcp://...) sees neither.
            self.on_log("the Docker engine is not on this machine: installing requirements.txt with pip")
        elif self.settings.installer == UV:
            try:
                return self._uv_dependencies(base_image, requirements, rebuild)
            except NoWheels as exc:
                self.on_log(f"no wheel for the image for every requirement ({exc.detail}); installing with pip")
        tag = f"cmkit-deps:{content_hash(base_image.image_id, requirements, self.settings.fingerprint())}"
        files = dependency_files(base_image, requirements, self.settings)
        return self._installed(tag, files, "installing requirements.txt into {tag} with pip", rebuild)

    def _r_dependencies(self, base: BuiltImage, requirements: str, rebuild: bool) -> BuiltImage:
        tag = f"cmkit-deps:{content_hash('r', base.image_id, requirements, self.settings.fingerprint())}"
        files = r_dependency_files(base, requirements, self.settings)
        return self._installed(tag, files, "installing requirements.txt's R packages into {tag}", rebuild)

    def _installed(self, tag: str, files: dict[str, bytes], message: str, rebuild: bool) -> BuiltImage:
        """The dependency layer `tag` built from the context `files` (an installer's RUN), or reused."""
        existing = self._existing(tag, rebuild)
        if existing:
            return existing
        self.on_log(message.format(tag=tag))
        log = self._build(
            "dependencies",
            tag,
            fileobj=tar_of(labelled(files, {**self.labels, KIND_LABEL: "deps"})),
            custom_context=True,
            buildargs=self.settings.build_args(),
            nocache=rebuild,
        )
        return self._built(tag, log)

    def _uv_dependencies(self, base: BuiltImage, requirements: str, rebuild: bool) -> BuiltImage:
        """The layer uv installs from the wheel cache, tagged by what it installs.

        uv plans the install in a throwaway container of the image with the cache mounted and no
        network (`--dry-run`: it sees what the environment already holds, as pip would); only
        when the cache cannot answer does pip fill it from the index. The tag is the planned set
        of `name==version`, not the text of requirements.txt: another bundle naming the same
        packages in another text reuses the layer without building.
        """
        platform, plan = self._platform_and_plan(base, requirements)
        if plan is None:
            filled = fill(requirements, platform, self.settings.pip_environment())
            self.on_log(f"downloaded {len(filled.added)} wheels into the wheel cache in {filled.seconds:.1f} s")
            plan = self._uv_plan(base, platform, requirements)
            if plan is None:
                raise NoWheels("uv could not resolve the requirements from the wheels pip chose")
        else:
            self.on_log("resolved from the wheel cache, nothing downloaded")
        if not plan:
            return base  # the environment already satisfies every requirement
        tag = f"cmkit-deps:{content_hash(base.image_id, 'uv', platform.prefix, *plan)}"
        existing = self._existing(tag, rebuild)
        if existing:
            return existing
        self.on_log(f"installing {len(plan)} packages into {tag} with uv")
        with serve_wheels() as url:
            log = self._build(
                "dependencies",
                tag,
                fileobj=tar_of(
                    labelled(
                        uv_dependency_files(base, plan, url, UV_PATH, platform.prefix),
                        {**self.labels, KIND_LABEL: "deps"},
                    )
                ),
                custom_context=True,
                network_mode="host",  # reaches the loopback wheel server
                nocache=rebuild,
            )
        return self._built(tag, log)

    def _platform_and_plan(self, base: BuiltImage, requirements: str) -> tuple[Platform, list[str] | None]:
        """The image's platform and uv's plan from the wheel cache (None: the cache lacks something).

        A new image's platform is read in the plan's own container (TAGS_AND_EXEC): one container
        start fewer on a new machine's first build (~0.4 s here).
        """
        plan_outputs: list[str | None] = []  # the plan's output when read with the tags (None: it failed)

        def tags_then_plan() -> str:
            try:
                output = self._plan_output(base, requirements, uv_target(PREFIX_PLACEHOLDER), with_tags=True)
            except ContainerError:  # the plan failed, and with it the tags printed before it
                plan_outputs.append(None)
                return self._run(base, "python3", ["-c", TAGS_SCRIPT])
            tags, _, plan = output.partition(PLAN_SEPARATOR)
            plan_outputs.append(plan)
            return tags

        platform = cached_platform(base.image_id, tags_then_plan)
        if plan_outputs:
            output = plan_outputs[0]
            return platform, None if output is None else planned_pins(output)
        return platform, self._uv_plan(base, platform, requirements)

    def _uv_plan(self, base: BuiltImage, platform: Platform, requirements: str) -> list[str] | None:
        """What uv would install from the wheel cache alone (None: the cache lacks something)."""
        try:
            return planned_pins(self._plan_output(base, requirements, uv_target(platform.prefix)))
        except ContainerError:
            return None

    def _plan_output(self, base: BuiltImage, requirements: str, target: list[str], with_tags: bool = False) -> str:
        """`uv pip install --dry-run` in a throwaway container of `base`, the wheel cache mounted:
        its output (`with_tags`: after the image's tags, as TAGS_AND_EXEC prints them)."""
        with tempfile.TemporaryDirectory(dir=scratch_dir(), prefix="plan-") as folder:
            Path(folder, "requirements.txt").write_text(requirements, encoding="utf-8")
            mounts = {
                str(uv_binary()): {"bind": "/cmkit-uv", "mode": "ro"},
                str(wheel_dir()): {"bind": "/cmkit-wheels", "mode": "ro"},
                folder: {"bind": "/cmkit-plan", "mode": "ro"},
            }
            arguments = ["pip", "install", "--dry-run", *target]
            arguments += ["--no-index", "--find-links", "/cmkit-wheels", "-r", "/cmkit-plan/requirements.txt"]
            if with_tags:
                return self._run(base, "python3", ["-c", TAGS_AND_EXEC, "/cmkit-uv", *arguments], mounts)
            return self._run(base, "/cmkit-uv", arguments, mounts)

    def _run(
        self, base: BuiltImage, entrypoint: str, arguments: list[str], mounts: dict[str, dict[str, str]] | None = None
    ) -> str:
        """A throwaway container of `base`, as root and without network: its output."""
        wheel_dir().mkdir(parents=True, exist_ok=True)
        output = self.client.containers.run(
            base.image_id,
            arguments,
            entrypoint=[entrypoint],
            user="0",
            network_mode="none",
            volumes=mounts or {},
            environment={"UV_NO_CACHE": "1", "UV_PYTHON_DOWNLOADS": "never"},
            labels=self.labels,
            remove=True,
            stdout=True,
            stderr=True,
        )
        return bytes(output).decode("utf-8", "replace")

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
        with code_context(dockerfile, files) as context:
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
        requirements = bundle_requirements(bundle_dir)
        r_bundle = is_r_bundle(Path(bundle_dir))
        if environment:
            env = self.environment(environment, rebuild, None if r_bundle else requirements)
        else:
            env = self._resolve(image or "")
        deps = self.dependencies(env, requirements, rebuild, r_bundle)
        return ModelImage(env, deps, self.code(deps, Path(bundle_dir), rebuild))

    # -- helpers ------------------------------------------------------------------------------

    def _trust_layer(self, base: str | None, rebuild: bool) -> str | None:
        """An image = base + the host CA bundle, trusted by pip and Python (None without a CA)."""
        ca = self.settings.ca_bytes()
        if not ca or not base:
            return None
        base_id = self._image_id(base) or base
        tag = f"cmkit-base:{content_hash(base_id, ca)}"
        if self._existing(tag, rebuild):
            return tag
        dockerfile = trust_dockerfile(base)
        self.on_log(f"adding the host CA bundle under {base} as {tag}")
        self._build(
            "ca-trust",
            tag,
            fileobj=tar_of(
                labelled({"Dockerfile": dockerfile.encode(), "ca-bundle.crt": ca}, {**self.labels, KIND_LABEL: "base"})
            ),
            custom_context=True,
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


def _local_engine(client: docker.DockerClient) -> bool:
    """The engine listens on this machine's socket (not `DOCKER_HOST=tcp://...` or `ssh://`)."""
    return str(client.api.base_url).startswith("http+docker://")


def _chunk_lines(chunk: Mapping[str, Any]) -> Iterator[str]:
    text = chunk.get("stream") or chunk.get("status") or chunk.get("error") or ""
    for line in str(text).splitlines():
        if line.strip():
            yield line.rstrip()


def _last_error(log: list[str], exc: Exception) -> str:
    message = str(getattr(exc, "msg", "") or exc).strip().splitlines()
    return message[-1] if message else (log[-1] if log else "unknown error")


def _user(attrs: Mapping[str, Any]) -> str:
    return str((attrs.get("Config") or {}).get("User") or "")
