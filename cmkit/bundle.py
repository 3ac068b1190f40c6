"""What a bundle is made of: the files an upload or an image would carry.

One listing serves `lint`, `push` and the code layer of `test-local`, so that what is checked is
exactly what is shipped. Ignores are gitignore-style (pathspec): built-in ones for VCS folders,
caches and virtualenvs, plus the bundle's own `.cmkitignore`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from cmkit.errors import InputError
from cmkit.hashcache import HashCache, file_sha256
from cmkit.textfiles import read_limited, stat_or_none

IGNORE_FILE = ".cmkitignore"
START_SCRIPT = "start_server.sh"
# Never part of a bundle: version control, caches, virtualenvs, editor and OS litter.
BUILTIN_IGNORES = (
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.py[cod]",
    ".venv/",
    "venv/",
    ".tox/",
    ".nox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".ipynb_checkpoints/",
    ".DS_Store",
    ".idea/",
    ".cmkit/",
)
# The reference caps `filePath` at 1000 items per version.
API_MAX_FILES = 1000
# The reference documents a 413 for oversized items without a number; cmkit assumes DataRobot's
# published 10 GB ceiling for a single custom-model file.
API_MAX_FILE_BYTES = 10 * 1024**3

_SECRET_NAMES = {
    ".env": "environment file with secrets",
    ".netrc": "netrc credentials",
    ".pypirc": "PyPI credentials",
    ".git-credentials": "git credentials",
    "id_rsa": "SSH private key",
    "id_dsa": "SSH private key",
    "id_ecdsa": "SSH private key",
    "id_ed25519": "SSH private key",
    "application_default_credentials.json": "Google Cloud credentials",
    "credentials.json": "cloud credentials",
}
_SECRET_PATHS = {
    ".aws/credentials": "AWS credentials",
    ".aws/config": "AWS configuration",
    ".docker/config.json": "Docker registry credentials",
    ".kube/config": "Kubernetes credentials",
    ".azure/accessTokens.json": "Azure credentials",
}
_SECRET_SUFFIXES = {".p12": "PKCS#12 key store", ".pfx": "PKCS#12 key store", ".jks": "Java key store"}
# Harmless templates that people keep next to their .env.
_ENV_TEMPLATES = {".env.example", ".env.sample", ".env.template", ".env.dist"}
# Signatures looked for in the first bytes of each file.
_SECRET_MARKERS = (
    (b"PRIVATE KEY-----", "private key"),
    (b'"type": "service_account"', "Google Cloud service-account key"),
    (b"aws_secret_access_key", "AWS secret key"),
)
_HEAD_BYTES = 4096
MAX_IGNORE_FILE_BYTES = 1024 * 1024
MAX_IGNORE_PATTERNS = 5000


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle: its upload path (posix, relative) and where to read it."""

    path: str
    source: Path
    size: int

    def sha256(self, hashes: HashCache | None = None) -> str:
        """The content hash; `hashes` remembers large files' hashes across runs."""
        return hashes.sha256_of(self.source) if hashes else file_sha256(self.source)


@dataclass(frozen=True)
class LinkProblem:
    path: str
    target: str
    reason: str


@dataclass
class BundleListing:
    root: Path
    files: list[BundleFile] = field(default_factory=list)
    link_problems: list[LinkProblem] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def by_path(self) -> dict[str, BundleFile]:
        return {f.path: f for f in self.files}


def ignore_spec(root: Path, extra: Iterable[str] = ()) -> pathspec.PathSpec:  # type: ignore[type-arg]
    lines = list(BUILTIN_IGNORES) + list(extra)
    ignore_file = root / IGNORE_FILE
    own: list[str] = []
    if stat_or_none(ignore_file) is not None:
        own = read_limited(ignore_file, MAX_IGNORE_FILE_BYTES).decode("utf-8", errors="replace").splitlines()
        _check_pattern_count(ignore_file, own)
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines + own)
    except ValueError:  # pathspec's GitIgnorePatternError: a line such as a lone `!`
        raise _bad_pattern(ignore_file, own) from None


def _check_pattern_count(ignore_file: Path, lines: list[str]) -> None:
    """Every path is matched against every pattern (pathspec compiles one regex each): 40,000
    patterns took 13 s over a small bundle, so the count has a ceiling instead of a slow run."""
    patterns = sum(1 for line in lines if line.strip() and not line.startswith("#"))
    if patterns > MAX_IGNORE_PATTERNS:
        raise InputError(
            f"{patterns} patterns; cmkit reads at most {MAX_IGNORE_PATTERNS}",
            file=ignore_file,
            hint="ignore whole folders (name/) or use wildcards (*.csv) instead of listing files one by one",
        )


def _bad_pattern(ignore_file: Path, lines: list[str]) -> InputError:
    """The first line pathspec refuses, as an input error on that line."""
    for number, line in enumerate(lines, start=1):
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except ValueError:
            return InputError(
                f"not a valid ignore pattern: {line!r}",
                file=ignore_file,
                line=number,
                hint="`!` re-includes what follows it (!keep.csv); escape a literal one as \\!",
            )
    return InputError("not a valid ignore pattern", file=ignore_file)


def _inside(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root)
    except ValueError:
        return False
    return True


def _entries(directory: Path, prefix: str) -> list[os.DirEntry[str]]:
    """A folder's entries by name; InputError when it cannot be read (permissions)."""
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise InputError(
            f"cannot read this folder of the bundle: {exc.strerror or exc}",
            file=directory,
            hint=f"make it readable (chmod u+rx) or list '{prefix or './'}' in {IGNORE_FILE}",
        ) from exc


def _link_problem(base: Path, path: Path, rel: str) -> LinkProblem | None:
    """Why a symlink cannot be shipped (broken, a loop, leaving the bundle), or None."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return LinkProblem(rel, os.readlink(path), "broken symlink")
    except (OSError, RuntimeError):  # ELOOP (RuntimeError before Python 3.13)
        return LinkProblem(rel, os.readlink(path), "broken symlink (a symlink loop)")
    if not _inside(base, target):
        return LinkProblem(rel, str(target), "symlink points outside the bundle")
    return None


def _check_name(directory: Path, name: str) -> None:
    """A name that is not UTF-8 (bytes ff fe) has no upload path, JSON or HTTP form for it:
    refuse it here, where every command lists the bundle, rather than in the middle of a push."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", errors="backslashreplace")
        raise InputError(
            f"this file name is not UTF-8: '{shown}'",
            file=directory,
            hint=f"rename it, or ignore it in {IGNORE_FILE} with a wildcard (*.bin)",
        ) from None


def list_bundle(root: str | Path, extra_ignores: Iterable[str] = ()) -> BundleListing:
    """List the files a bundle ships, following symlinks only while they stay inside it."""
    base = Path(root).resolve()
    spec = ignore_spec(base, extra_ignores)
    listing = BundleListing(root=base)
    visited: set[Path] = set()

    def walk(directory: Path, prefix: str) -> None:
        real = directory.resolve()
        if real in visited:  # a symlink loop or a second link to the same folder
            return
        visited.add(real)
        for entry in _entries(directory, prefix):
            rel = f"{prefix}{entry.name}"
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:  # a symlink loop: reported below unless ignored
                is_dir = False
            if spec.match_file(rel + "/" if is_dir else rel):
                continue
            _check_name(directory, entry.name)
            if entry.is_symlink():
                problem = _link_problem(base, path, rel)
                if problem is not None:
                    listing.link_problems.append(problem)
                    continue
            if is_dir:
                walk(path, rel + "/")
            elif entry.is_file(follow_symlinks=True):
                if not os.access(path, os.R_OK):
                    raise InputError(
                        "cannot read this file of the bundle (permission denied)",
                        file=directory / entry.name,
                        hint=f"make it readable (chmod u+r) or list '{rel}' in {IGNORE_FILE}",
                    )
                listing.files.append(BundleFile(rel, path, entry.stat(follow_symlinks=True).st_size))

    walk(base, "")
    return listing


def secret_reason(file: BundleFile) -> str | None:
    """Why a file looks like a credential an upload must not carry, or None."""
    name = file.path.rsplit("/", 1)[-1]
    if name in _ENV_TEMPLATES:
        return None
    if name in _SECRET_NAMES:
        return _SECRET_NAMES[name]
    if name.startswith(".env."):
        return "environment file with secrets"
    for suffix, reason in _SECRET_PATHS.items():
        if file.path == suffix or file.path.endswith("/" + suffix):
            return reason
    for suffix, reason in _SECRET_SUFFIXES.items():
        if name.endswith(suffix):
            return reason
    try:
        with file.source.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return None
    for marker, reason in _SECRET_MARKERS:
        if marker in head:
            return reason
    return None


def find_secrets(files: Iterable[BundleFile], allowed: Iterable[str] = ()) -> Iterator[tuple[BundleFile, str]]:
    allow = set(allowed)
    for file in files:
        if file.path in allow:
            continue
        reason = secret_reason(file)
        if reason:
            yield file, reason
