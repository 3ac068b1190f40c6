"""`cmkit prune`: remove the Docker objects cmkit made and left behind, and nothing else.

Everything cmkit creates carries the label `cmkit=1` (containers, images, build containers
inherit it), so that label is the whole selection; `labels` narrows it further (a CI job's own
`--label`, a test session's). By default prune removes what is cheap to make again: stopped
containers (crashed runs, interrupted builds), build leftovers (untagged images) and code
images (one COPY step to rebuild). `everything` adds running containers (`--keep` and `serve`
sessions) and the layer cache: environment, dependency and CA-trust images. Images a container
still uses are kept and say so; nothing is forced.

The files of cmkit's cache folder are pruned alike (`cache_files`): the temporary folders of
killed installs always; with `everything`, the shared wheel cache (each wheel), uv's cache and
the process runtime's venvs and its isolated R libraries (folders of links: removing one
leaves R's packages where they are). They carry no labels, so a `--label` selection leaves them alone.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker import DockerClient
from docker.errors import APIError, NotFound

from cmkit.engine.images import CODE_REPOSITORY, LABEL, created_at
from cmkit.engine.rhost import R_LIBRARIES
from cmkit.errors import InputError
from cmkit.paths import cache_dir

STOPPED = ("created", "exited", "dead")
CACHE_REPOSITORIES = ("cmkit-deps", "cmkit-env", "cmkit-base")  # child to parent
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `2h`, `7d`, `1w`, `1h30m` -> seconds."""
    cleaned = text.strip().lower()
    parts = _DURATION_PART.findall(cleaned)
    if not cleaned or "".join(number + unit for number, unit in parts) != cleaned:
        raise InputError(f"bad duration '{text}'", hint="use e.g. 30m, 12h, 7d or 1h30m")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)


@dataclass(frozen=True)
class PruneOptions:
    older_than: float | None = None  # seconds; None: whatever the age
    everything: bool = False  # --all: running containers and the layer cache too
    dry_run: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)  # only objects carrying these too


@dataclass
class Pruned:
    """One object prune selected, and what became of it."""

    kind: str  # "container", "image", or a cache file's: "wheel", "venv", "uv cache", "temporary"
    id: str
    name: str  # the container's name, the image's tags
    created: float
    why: str  # why it was selected
    size: int | None = None  # images: bytes as `docker images` shows them, shared layers included
    removed: bool = False
    kept: str = ""  # why it is still there (in use), empty when removed or in a dry run
    error: str = ""  # an engine error other than "in use"

    def action(self, dry_run: bool) -> str:
        return "kept" if self.kept or self.error else ("would remove" if dry_run else "removed")

    @property
    def reason(self) -> str:
        """Why a kept object is still there (in use, or the engine's error)."""
        return self.kept or self.error

    @property
    def short_id(self) -> str:
        """An engine object's id as `docker` shows it; a cache file's is its path, named already."""
        return "" if self.kind in FILE_KINDS else self.id.removeprefix("sha256:")[:12]

    @property
    def created_utc(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))

    def to_dict(self, dry_run: bool) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "created": self.created_utc,
            "why": self.why,
            "bytes": self.size,
            "action": self.action(dry_run),
            "reason": self.reason,
        }


@dataclass
class PruneResult:
    options: PruneOptions
    objects: list[Pruned] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """An engine error (not an object in use, which is expected and reported)."""
        return any(item.error for item in self.objects)

    def done(self) -> list[Pruned]:
        return [item for item in self.objects if not (item.kept or item.error)]

    @property
    def containers(self) -> int:
        """Containers removed (or that a dry run would remove)."""
        return sum(item.kind == "container" for item in self.done())

    @property
    def images(self) -> int:
        return sum(item.kind == "image" for item in self.done())

    @property
    def files(self) -> int:
        """Cache entries (wheels, venvs, temporary folders) removed, or that a dry run would remove."""
        return sum(item.kind in FILE_KINDS for item in self.done())

    @property
    def kept(self) -> int:
        return sum(bool(item.reason) for item in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dryRun": self.options.dry_run,
            "all": self.options.everything,
            "olderThanSeconds": self.options.older_than,
            "labels": {LABEL: "1", **self.options.labels},
            "objects": [item.to_dict(self.options.dry_run) for item in self.objects],
            "containers": self.containers,
            "images": self.images,
            "files": self.files,
            "kept": self.kept,
        }


def prune(client: DockerClient, options: PruneOptions, now: float | None = None) -> PruneResult:
    """Select cmkit's objects by label and age, then remove them (containers first)."""
    now = time.time() if now is None else now
    selector = {"label": [f"{key}={value}" for key, value in {LABEL: "1", **options.labels}.items()]}
    cutoff = None if options.older_than is None else now - options.older_than
    result = PruneResult(options)
    containers = _containers(client, selector, options, cutoff)
    images = _images(client, selector, options, cutoff)
    result.objects = containers + images
    removed_containers = set()
    for item in containers:
        if not options.dry_run:
            _remove(item, _container_remover(client, item))
        if not (item.kept or item.error):
            removed_containers.add(item.id)
    in_use = _images_in_use(client, removed_containers)
    for item in images:
        user = in_use.get(item.id)
        if user:
            item.kept = f"in use by container {user}"
        elif not options.dry_run:
            _remove(item, _image_remover(client, item))
    return result


def _old_enough(created: float, cutoff: float | None) -> bool:
    return cutoff is None or created < cutoff


def _containers(
    client: DockerClient, selector: dict[str, list[str]], options: PruneOptions, cutoff: float | None
) -> list[Pruned]:
    chosen = []
    for container in client.api.containers(all=True, filters=selector):
        created = created_at(container)
        running = container.get("State") not in STOPPED
        if (running and not options.everything) or not _old_enough(created, cutoff):
            continue
        name = ",".join(n.lstrip("/") for n in container.get("Names") or []) or container["Id"][:12]
        why = "running container (--all)" if running else f"{container.get('State')} container"
        chosen.append(Pruned("container", container["Id"], name, created, why))
    return chosen


def _image_why(tags: list[str], everything: bool) -> str | None:
    repositories = {tag.rpartition(":")[0] for tag in tags}
    if not tags:
        return "build leftover (untagged)"
    if repositories <= {CODE_REPOSITORY}:
        return "code image"
    if everything:
        return "layer cache (--all)" if repositories & set(CACHE_REPOSITORIES) else "cmkit image (--all)"
    return None


def _images(
    client: DockerClient, selector: dict[str, list[str]], options: PruneOptions, cutoff: float | None
) -> list[Pruned]:
    chosen = []
    # Untagged images with children are the layers of kept images (the legacy builder's
    # intermediates), not leftovers: the engine's `dangling` filter leaves them out.
    leftovers = {image["Id"] for image in client.api.images(filters={**selector, "dangling": True})}
    for image in client.api.images(filters=selector):
        tags = [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
        if not tags and image["Id"] not in leftovers:
            continue
        why = _image_why(tags, options.everything)
        created = created_at(image)
        if why is None or not _old_enough(created, cutoff):
            continue
        chosen.append(Pruned("image", image["Id"], ",".join(tags) or "<none>", created, why, int(image.get("Size", 0))))
    # Children before their parents: a code image before the dependency image it is built on.
    # The engine's list gives whole seconds, so ties are broken by the layer order.
    return sorted(chosen, key=lambda item: (-int(item.created), _layer_rank(item.name)))


def _layer_rank(tags: str) -> int:
    for rank, repository in enumerate((CODE_REPOSITORY, *CACHE_REPOSITORIES)):
        if tags.startswith(f"{repository}:"):
            return rank
    return 0 if tags == "<none>" else len(CACHE_REPOSITORIES) + 1


def _images_in_use(client: DockerClient, removed: set[str]) -> dict[str, str]:
    """Image id -> a container (of anyone) that keeps it, among those prune leaves."""
    users: dict[str, str] = {}
    for container in client.api.containers(all=True):
        if container["Id"] not in removed:
            users.setdefault(str(container.get("ImageID")), container["Id"][:12])
    return users


def _container_remover(client: DockerClient, item: Pruned) -> Callable[[], None]:
    # Running ones are selected only under --all, which asks for them to go.
    return lambda: client.api.remove_container(item.id, force=item.why.startswith("running"))


def _image_remover(client: DockerClient, item: Pruned) -> Callable[[], None]:
    def remove() -> None:
        # Untag each name (removing an image by id fails while it has several); the last one
        # deletes it, with the untagged parents only it used.
        for tag in item.name.split(",") if item.name != "<none>" else [item.id]:
            client.api.remove_image(tag)

    return remove


def _remove(item: Pruned, action: Callable[[], None]) -> None:
    try:
        action()
        item.removed = True
    except NotFound:
        item.removed = True  # gone meanwhile (another prune, the run that made it)
    except APIError as exc:
        if exc.status_code == 409:  # conflict: in use, or a parent of an image that is kept
            item.kept = _first_line(exc.explanation or str(exc))
        else:
            item.error = _first_line(exc.explanation or str(exc))


def _first_line(text: str | bytes) -> str:
    value = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return value.strip().splitlines()[0] if value.strip() else "error"


def prune_engine(options: PruneOptions) -> PruneResult:
    """`cmkit prune` on the engine of DOCKER_HOST (or the local socket), through a client for this
    call only, and on cmkit's cache folder."""
    from cmkit.engine.docker import docker_client

    client = docker_client()
    try:
        result = prune(client, options)
    finally:
        client.close()
    result.objects += prune_cache(options)
    return result


FILE_KINDS = ("temporary", "wheel", "venv", "R library", "uv cache")


def prune_cache(options: PruneOptions, root: Path | None = None, now: float | None = None) -> list[Pruned]:
    """The cache folder's entries `options` select, removed unless a dry run (see the module's doc)."""
    if options.labels:
        return []  # a labelled selection is a CI job's or a test's Docker objects, not the shared cache
    now = time.time() if now is None else now
    cutoff = None if options.older_than is None else now - options.older_than
    chosen = [
        item for item in cache_files(root or cache_dir(), options.everything) if _old_enough(item.created, cutoff)
    ]
    if not options.dry_run:
        for item in chosen:
            _remove(item, functools.partial(_remove_path, Path(item.id)))
    return chosen


def cache_files(root: Path, everything: bool) -> list[Pruned]:
    """What prune can take from the cache folder: killed installs' leftovers; with `everything`,
    wheels, venvs, isolated R libraries and uv's cache."""
    libraries = _entries(root / R_LIBRARIES)
    unfinished = [path for path in libraries if path.name.startswith(".")]  # a killed run's work folder
    found = [
        _file_entry(path, "temporary", "left by an install that did not finish")
        for path in [*_entries(root / "tmp"), *unfinished]
    ]
    if everything:
        found += [_file_entry(path, "wheel", "wheel cache (--all)") for path in _entries(root / "wheels")]
        found += [_file_entry(path, "venv", "process runtime venv (--all)") for path in _entries(root / "venvs")]
        found += [
            _file_entry(path, "R library", "isolated R library: links to R's packages, which stay (--all)")
            for path in libraries
            if path not in unfinished
        ]
        if (root / "uv").exists():
            found.append(_file_entry(root / "uv", "uv cache", "uv's cache (--all)"))
    return found


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _file_entry(path: Path, kind: str, why: str) -> Pruned:
    stat = path.lstat()
    return Pruned(kind, str(path), path.name, stat.st_mtime, why, _size(path))


def _size(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
