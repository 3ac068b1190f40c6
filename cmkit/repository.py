"""Every model of a repository: found, filtered by what changed, and split across CI machines.

`find_models(root)` finds what `--all` runs: each model the GitHub Action's definitions
(`model.yaml`, `models.yaml`, cmkit/modeldefs.py) describe, and each bundle folder no definition
describes (a folder holding start_server.sh, model-metadata.yaml or custom.py; its subfolders
are its own). `changed_models` keeps those whose files changed since a git ref (committed,
staged, unstaged and untracked changes), and `shard` keeps one CI machine's share.

A shard is chosen by hashing the model's identity (its user-provided id, or a plain bundle's
path in the repository) and nothing else: adding or removing a model never moves another one,
so a CI matrix's shards stay comparable from run to run.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cmkit.bundle import START_SCRIPT
from cmkit.errors import InputError
from cmkit.metadata import METADATA_FILE
from cmkit.modeldefs import YAML_SUFFIXES, ModelDefinition, load_definitions, may_define_models, repository_root

BUNDLE_MARKERS = (START_SCRIPT, METADATA_FILE, "custom.py")
# Folders no model lives in: version control, virtualenvs, caches (hidden folders are skipped too,
# as the Action's `**` globs skip them).
SKIPPED_FOLDERS = frozenset({"__pycache__", "venv", "node_modules", "site-packages"})
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class RepoModel:
    """One model of a repository: its folder and, when the Action describes it, its definition."""

    root: Path  # the repository (the folder --all was given)
    folder: Path
    definition: ModelDefinition | None = None

    @property
    def path(self) -> str:
        """The folder, relative to the repository, in POSIX form ('.' for the root itself)."""
        return _relative(self.folder, self.root)

    @property
    def identity(self) -> str:
        """What the shard hash reads: the user-provided id, else the bundle's path."""
        return self.definition.identity if self.definition else self.path

    @property
    def name(self) -> str:
        return self.definition.user_provided_id if self.definition else self.path

    def shard(self, total: int) -> int:
        return shard_of(self.identity, total)

    def owned_prefixes(self) -> tuple[str, ...]:
        """Repository paths whose change changes the model: its folder, its definition file, and the
        fixed part of include globs that reach outside its folder ("$ROOT/common/**" -> "common/")."""
        prefixes = [self.path.rstrip("/") + "/" if self.path != "." else ""]
        if self.definition is not None:
            prefixes.append(_relative(self.definition.file, self.root))
            for pattern in self.definition.version.include:
                match = re.match(r"^(/|\$ROOT/)", pattern)
                if match:
                    fixed = _GLOB_CHARS.split(pattern[len(match[0]) :], maxsplit=1)[0]
                    prefixes.append(fixed)
        return tuple(prefixes)

    def to_dict(self, shards: int | None = None) -> dict[str, object]:
        definition = self.definition
        return {
            "name": self.name,
            "path": self.path,
            "userProvidedId": definition.user_provided_id if definition else None,
            "definition": f"{_relative(definition.file, self.root)}:{definition.line}" if definition else None,
            "targetType": definition.served_type.drum_name if definition else None,
            "shard": f"{self.shard(shards)}/{shards}" if shards else None,
        }


def _relative(path: Path, root: Path) -> str:
    resolved, base = path.resolve(), root.resolve()
    if resolved == base:
        return "."
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else resolved.as_posix()


def shard_of(identity: str, total: int) -> int:
    """The 1-based shard of `identity` among `total`: a hash of the identity alone (stable as models come and go)."""
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % total + 1


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard I/N` -> (I, N), 1 <= I <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise InputError(f"bad --shard {text!r}", hint="use I/N with 1 <= I <= N, e.g. 2/4")
    return int(match[1]), int(match[2])


def _walk(root: Path) -> Iterable[tuple[Path, list[str], list[str]]]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
        yield Path(folder), dirs, sorted(files)


def find_models(root: Path) -> list[RepoModel]:
    """Every model under `root`, in path order (then id): definitions first claim their folders."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder", file=root, hint="pass the repository's folder")
    definitions: list[ModelDefinition] = []
    bundles: list[Path] = []
    inside: list[Path] = []  # bundle folders found: their subfolders are theirs
    for folder, _dirs, files in _walk(root):
        for name in files:
            path = folder / name
            if path.suffix in YAML_SUFFIXES and name != METADATA_FILE and may_define_models(path):
                definitions += load_definitions(path)
        if folder != root and any(folder.is_relative_to(b) for b in inside):
            continue
        if any(marker in files for marker in BUNDLE_MARKERS):
            bundles.append(folder)
            inside.append(folder)
    _refuse_duplicates(definitions)
    described = {d.model_path.resolve() for d in definitions}
    models = [RepoModel(root, d.model_path, d) for d in definitions]
    models += [RepoModel(root, b) for b in bundles if b.resolve() not in described]
    return sorted(models, key=lambda m: (m.path, m.name))


def _refuse_duplicates(definitions: list[ModelDefinition]) -> None:
    """The Action stops on a user-provided id defined twice in the repository: so does --all."""
    seen: dict[str, ModelDefinition] = {}
    for definition in definitions:
        first = seen.setdefault(definition.user_provided_id, definition)
        if first is not definition:
            raise InputError(
                f"model {definition.user_provided_id!r} is also defined at {first.file}:{first.line}",
                file=definition.file,
                line=definition.line,
                hint="each model needs its own user_provided_model_id",
            )


def changed_files(root: Path, ref: str) -> set[str]:
    """Paths under `root` (relative to it) that differ from `ref`: committed since, staged, unstaged, untracked."""
    git = ["git", "-C", str(root)]
    try:
        diff = subprocess.run(
            [*git, "diff", "--name-only", "--relative", "--no-renames", "-z", ref, "--"],
            capture_output=True,
            text=True,
            check=False,
        )
        untracked = subprocess.run(
            [*git, "ls-files", "--others", "--exclude-standard", "-z"], capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise InputError("--changed-since needs git on PATH", hint="install git") from exc
    if diff.returncode != 0:
        first = (diff.stderr.strip().splitlines() or ["git diff failed"])[0]
        raise InputError(
            f"--changed-since {ref}: {first}",
            file=root,
            hint="pass a commit, branch or tag this clone has (CI: fetch with enough depth, e.g. fetch-depth: 0)",
        )
    names = diff.stdout.split("\0") + (untracked.stdout.split("\0") if untracked.returncode == 0 else [])
    return {name for name in names if name}


def changed_models(models: list[RepoModel], changed: set[str]) -> list[RepoModel]:
    """The models owning at least one changed path."""
    return [m for m in models if any(_owned(path, m.owned_prefixes()) for path in changed)]


def _owned(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or ((p.endswith("/") or p == "") and path.startswith(p)) for p in prefixes)


@dataclass(frozen=True)
class Selection:
    """What --all selected and how: the document's `selection` section."""

    root: Path
    found: int
    models: list[RepoModel]
    changed_since: str | None = None
    shard: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "found": self.found,
            "selected": len(self.models),
            "changedSince": self.changed_since,
            "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
        }


def select_models(root: Path, changed_since: str | None = None, shard: str | None = None) -> Selection:
    """`--all [ROOT] [--changed-since REF] [--shard I/N]`: the models this run takes."""
    wanted = parse_shard(shard) if shard else None
    models = find_models(root)
    found = len(models)
    if changed_since:
        models = changed_models(models, changed_files(Path(root), changed_since))
    if wanted:
        models = [m for m in models if m.shard(wanted[1]) == wanted[0]]
    return Selection(Path(root), found, models, changed_since, wanted)


__all__ = [
    "RepoModel",
    "Selection",
    "changed_files",
    "changed_models",
    "find_models",
    "parse_shard",
    "repository_root",
    "select_models",
    "shard_of",
]
