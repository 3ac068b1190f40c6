"""What a bundle's Python code needs, read without running it: lint's static import scan.

Three facts, each from text only (no import of the model, no pip run):
- the top-level modules each `.py` of the bundle imports (`scan_imports`), leaving out the
  standard library, the bundle's own modules, relative imports and imports guarded by
  `except ImportError` (optional on purpose);
- which import names a requirements file provides (`provided_modules`), through the table of
  distributions whose import name differs from their pip name (`IMPORT_NAMES`);
- what an execution environment provides (`environment_modules`): its requirements.txt's
  packages and, when this machine has them installed, their own dependencies; cached per
  requirements text in cmkit's cache so that lint stays a pre-commit hook's cost.

`KNOWN_CONFLICTS` is the one home of the rules "this requirement breaks beside what the
environment pins" (today the NumPy 2 ABI break); `find_conflicts` applies them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# pip name -> import names, where they differ from the name with '-' read as '_'. The reverse
# (import name -> what to add to requirements.txt) is `pip_name_for`.
IMPORT_NAMES: Mapping[str, tuple[str, ...]] = {
    "scikit-learn": ("sklearn",),
    "scikit-image": ("skimage",),
    "pyyaml": ("yaml",),
    "pillow": ("PIL",),
    "opencv-python": ("cv2",),
    "opencv-python-headless": ("cv2",),
    "beautifulsoup4": ("bs4",),
    "python-dateutil": ("dateutil",),
    "protobuf": ("google",),
    "google-cloud-storage": ("google",),
    "google-api-core": ("google",),
    "pytorch-lightning": ("pytorch_lightning", "lightning"),
    "torch": ("torch",),
    "tensorflow-cpu": ("tensorflow",),
    "attrs": ("attr", "attrs"),
    "pyjwt": ("jwt",),
    "python-multipart": ("multipart",),
    "msgpack-python": ("msgpack",),
    "setuptools": ("setuptools", "pkg_resources", "_distutils_hack"),
    "typing-extensions": ("typing_extensions",),
    "datarobot-drum": ("datarobot_drum",),
    "datarobot-mlops": ("datarobot", "datarobot_mlops"),
    "huggingface-hub": ("huggingface_hub",),
    "sentence-transformers": ("sentence_transformers",),
    "faiss-cpu": ("faiss",),
    "lightgbm": ("lightgbm",),
    "py-xgboost": ("xgboost",),
    "pymupdf": ("fitz", "pymupdf"),
    "python-docx": ("docx",),
    "pycryptodome": ("Crypto",),
}
# Modules every environment has although no requirements line names them: cmkit's runtime
# (the environment installs it) and pip's own.
ALWAYS_PROVIDED = frozenset({"cmkit_runtime", "pip", "setuptools", "pkg_resources", "_distutils_hack"})


def import_names(distribution: str) -> tuple[str, ...]:
    """The import names a pip distribution provides (the table, else its name with '_')."""
    name = canonicalize_name(distribution)
    return IMPORT_NAMES.get(name, (name.replace("-", "_"),))


def pip_name_for(module: str) -> str:
    """What to add to requirements.txt for an import name (`sklearn` -> `scikit-learn`)."""
    for distribution, modules in IMPORT_NAMES.items():
        if module in modules and not distribution.startswith(("opencv-python-", "google-", "tensorflow-")):
            return distribution
    return module.replace("_", "-")


@dataclass(frozen=True)
class ImportUse:
    """A top-level module a bundle file imports, where it first does."""

    module: str
    file: str
    line: int


@dataclass(frozen=True)
class ParsedFile:
    """A bundle's `.py` file parsed (tree) or not (the SyntaxError's message and line)."""

    path: str  # relative to the bundle
    tree: ast.Module | None
    error: str | None = None
    line: int | None = None


def parse_python_files(root: Path, files: Iterable[str]) -> list[ParsedFile]:
    """Every `.py` of the bundle's file set, parsed; a file that does not parse is kept with why."""
    parsed = []
    for name in sorted(files):
        if not name.endswith(".py"):
            continue
        try:
            source = (root / name).read_bytes()
            parsed.append(ParsedFile(name, ast.parse(source, name)))
        except SyntaxError as exc:
            parsed.append(ParsedFile(name, None, exc.msg, exc.lineno))
        except (OSError, ValueError) as exc:  # unreadable, or NUL bytes in the source
            parsed.append(ParsedFile(name, None, f"cannot be read as Python source ({exc})", 1))
    return parsed


def _guarded_lines(tree: ast.Module) -> set[int]:
    """Lines of imports inside a `try` that catches ImportError: optional on purpose."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = {ast.unparse(handler.type) if handler.type else "" for handler in node.handlers}
        if caught & {"ImportError", "ModuleNotFoundError", "Exception", ""} or any(
            "ImportError" in c or "ModuleNotFoundError" in c for c in caught
        ):
            lines |= {
                n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom)
            }
    return lines


def local_modules(files: Iterable[str]) -> set[str]:
    """The bundle's own top-level modules and packages (importable from its folder)."""
    names = set()
    for name in files:
        first = name.split("/", 1)[0]
        names.add(first[:-3] if first.endswith(".py") else first)
    return names


def scan_imports(parsed: Iterable[ParsedFile], local: set[str]) -> list[ImportUse]:
    """Third-party top-level modules the parsed files import, each at its first use."""
    found: dict[str, ImportUse] = {}
    stdlib = sys.stdlib_module_names
    for item in parsed:
        if item.tree is None:
            continue
        guarded = _guarded_lines(item.tree)
        for node in ast.walk(item.tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            if node.lineno in guarded:
                continue
            for module in modules:
                top = module.split(".", 1)[0]
                if top in stdlib or top in local or top == "__future__" or top in found:
                    continue
                found[top] = ImportUse(top, item.path, node.lineno)
    return sorted(found.values(), key=lambda use: (use.file, use.line))


def provided_modules(distributions: Iterable[str]) -> set[str]:
    """The import names these pip distributions provide."""
    return {module for distribution in distributions for module in import_names(distribution)}


# --- the environment's packages --------------------------------------------------------------------


def _dependencies_installed_here(names: Iterable[str]) -> set[str]:
    """The named distributions and, when installed on this machine, everything they require."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    seen: set[str] = set()
    pending = [canonicalize_name(n) for n in names]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return seen


@dataclass(frozen=True)
class EnvironmentPackages:
    """What an execution environment provides: distributions (with their pins) and import names."""

    pins: Mapping[str, str]  # canonical name -> its requirement's specifier ("==2.4.6"), "" when unpinned
    modules: frozenset[str]

    def version_of(self, distribution: str) -> Version | None:
        """The version the environment pins a distribution to (`==`), if it does."""
        spec = self.pins.get(canonicalize_name(distribution), "")
        if spec.startswith("==") and "*" not in spec:
            try:
                return Version(spec[2:])
            except InvalidVersion:
                return None
        return None


def environment_packages(requirements_text: str, cache: Path | None) -> EnvironmentPackages:
    """The packages an environment's requirements.txt installs, cached per text in `cache`."""
    key = hashlib.sha256(requirements_text.encode()).hexdigest()[:24]
    path = cache / f"environment-{key}.json" if cache else None
    if path is not None:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            return EnvironmentPackages(stored["pins"], frozenset(stored["modules"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    from cmkit.requirements import parse_requirements_text

    report = parse_requirements_text(requirements_text, source="environment requirements.txt")
    pins: dict[str, str] = {
        str(canonicalize_name(d.package_name)): ",".join(f"{c.constraint_type}{c.version}" for c in d.constraints)
        for d in report.dependencies
    }
    distributions = _dependencies_installed_here(pins)
    modules = frozenset(provided_modules(distributions) | ALWAYS_PROVIDED)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"pins": pins, "modules": sorted(modules)}), encoding="utf-8")
        except OSError:  # a read-only cache costs time, never a wrong answer
            pass
    return EnvironmentPackages(pins, modules)


# --- known conflicts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownConflict:
    """A requirement that cannot work beside an environment package at or above a version."""

    package: str  # the bundle's requirement
    first_good: str  # its first release that works beside the environment's package
    environment_package: str
    environment_from: str  # the environment package's version from which the break applies
    why: str


NUMPY2 = "built against NumPy 1.x, and NumPy 2 changed the C ABI (ValueError: numpy.dtype size changed)"
# The first release of each with wheels for NumPy 2 (their release notes).
KNOWN_CONFLICTS = (
    KnownConflict("numpy", "2.0.0", "numpy", "2.0.0", "the environment's packages are built on NumPy 2"),
    KnownConflict("pandas", "2.2.2", "numpy", "2.0.0", NUMPY2),
    KnownConflict("scikit-learn", "1.4.2", "numpy", "2.0.0", NUMPY2),
    KnownConflict("scipy", "1.13.0", "numpy", "2.0.0", NUMPY2),
    KnownConflict("pyarrow", "16.0.0", "numpy", "2.0.0", NUMPY2),
    KnownConflict("matplotlib", "3.8.4", "numpy", "2.0.0", NUMPY2),
    KnownConflict("numba", "0.60.0", "numpy", "2.0.0", NUMPY2),
)


def admits_from(specifier: str, first_good: Version) -> bool:
    """Whether a requirement's specifier admits some version at or above `first_good`.

    The smallest admitted version at or above it is `first_good` itself or one of the
    specifier's own versions (a lower bound), so those are the candidates to try.
    """
    try:
        spec = SpecifierSet(specifier)
    except InvalidSpecifier:
        return True  # requirements.py reports it; no conflict claimed on what cannot be read
    candidates = {first_good, Version("99999")}
    for item in spec:
        try:
            version = Version(item.version.rstrip(".*"))
        except InvalidVersion:
            continue
        candidates |= {version, Version(f"{version.base_version}.post1")}
        if len(version.release) < 3:
            candidates.add(Version(".".join(map(str, (*version.release, 99)))))
    return any(v >= first_good and spec.contains(v, prereleases=True) for v in candidates)


@dataclass(frozen=True)
class Conflict:
    package: str
    specifier: str
    line: int
    environment_package: str
    environment_version: str
    first_good: str
    why: str


def find_conflicts(requirements: Iterable[tuple[str, str, int]], environment: EnvironmentPackages) -> list[Conflict]:
    """The known conflicts among (name, specifier, line) requirements beside the environment's pins."""
    found = []
    for name, specifier, line in requirements:
        for rule in KNOWN_CONFLICTS:
            if canonicalize_name(name) != rule.package:
                continue
            pinned = environment.version_of(rule.environment_package)
            if pinned is None or pinned < Version(rule.environment_from):
                continue
            if not admits_from(specifier, Version(rule.first_good)):
                found.append(
                    Conflict(name, specifier, line, rule.environment_package, str(pinned), rule.first_good, rule.why)
                )
    return found
