"""Map requirements.txt onto DataRobot's documented `dependencies` structure.

Each requirement line becomes
``{"packageName", "constraints": [{"constraintType", "version"}], "extras"?, "line", "lineNumber"}``
(see the `dependencies` schema of a custom model version in the API reference). Parsing is
pip's own, through pip-requirements-parser; this module only decides what maps exactly onto the
structure and explains everything that does not.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shlex
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from optparse import Values
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

import pip_requirements_parser
from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pip_requirements_parser import InstallRequirement, RequirementsFile

from cmkit.errors import InputError
from cmkit.textfiles import read_utf8, stat_or_none

REQUIREMENTS_FILE = "requirements.txt"
# The operators the API's constraintType enum allows.
API_OPERATORS = ("<", "<=", "==", ">=", ">")
# Real requirements files are a few KB; the cap keeps `cmkit deps /dev/zero` and pasted logs
# from taking minutes (pip's parser is slow on huge inputs).
MAX_REQUIREMENTS_BYTES = 1024 * 1024


class ApiConstraint(TypedDict):
    """A version constraint as the API lists it (a dependency's `constraints`)."""

    constraintType: str
    version: str


class ApiDependency(TypedDict, total=False):
    """A dependency as the API lists it (a custom model version's `dependencies`)."""

    packageName: str
    constraints: list[ApiConstraint]
    line: str
    lineNumber: int
    extras: str


@dataclass(frozen=True)
class Constraint:
    constraint_type: str
    version: str

    def to_api(self) -> ApiConstraint:
        return {"constraintType": self.constraint_type, "version": self.version}


@dataclass(frozen=True)
class Dependency:
    package_name: str
    constraints: tuple[Constraint, ...]
    line: str
    line_number: int
    extras: str | None = None

    def to_api(self) -> ApiDependency:
        data: ApiDependency = {
            "packageName": self.package_name,
            "constraints": [c.to_api() for c in self.constraints],
            "line": self.line,
            "lineNumber": self.line_number,
        }
        if self.extras:
            data["extras"] = self.extras
        return data


@dataclass(frozen=True)
class RequirementError:
    line_number: int
    line: str
    message: str

    def to_api(self) -> dict[str, object]:
        return {"lineNumber": self.line_number, "line": self.line, "message": self.message}


@dataclass
class DependencyReport:
    """The outcome of parsing one requirements file: what mapped and what did not."""

    source: str
    dependencies: list[Dependency] = field(default_factory=list)
    errors: list[RequirementError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, object]:
        return {
            "dependencies": [d.to_api() for d in self.dependencies],
            "errors": [e.to_api() for e in self.errors],
        }


def deps_document(reports: list[DependencyReport]) -> dict[str, object]:
    """`cmkit deps --json`: one shape whatever the number of files, so CI scripts never branch."""
    return {
        "ok": all(r.ok for r in reports),
        "files": [{"file": r.source, "ok": r.ok, **r.to_dict()} for r in reports],
    }


class _Unmappable(Exception):
    """A requirement that pip accepts but the API's structure cannot express."""


# --- translation of single specifiers -----------------------------------------------------------


def _format_release(version: Version, release: tuple[int, ...]) -> str:
    prefix = f"{version.epoch}!" if version.epoch else ""
    return prefix + ".".join(str(part) for part in release)


def _bump(version: Version, release: tuple[int, ...]) -> str:
    """The first release after every version starting with `release` (1.4 -> 1.5)."""
    return _format_release(version, (*release[:-1], release[-1] + 1))


def _translate(spec: Specifier) -> list[Constraint]:
    operator, version = spec.operator, spec.version
    if operator in API_OPERATORS and not version.endswith(".*"):
        return [Constraint(operator, version)]
    if operator == "~=":
        parsed = Version(version)
        if len(parsed.release) < 2:  # packaging already rejects this; kept for clarity
            raise _Unmappable("'~=' needs at least two release segments, e.g. '~=1.4'")
        # PEP 440: ~=V.N is >=V.N together with ==V.*; '==V.*' is exactly '<V+1' here because
        # an exclusive '<' never admits pre-releases of the bound.
        return [Constraint(">=", version), Constraint("<", _bump(parsed, parsed.release[:-1]))]
    if operator == "==" and version.endswith(".*"):
        parsed = Version(version[:-2])
        lower = _format_release(parsed, parsed.release)
        return [Constraint(">=", lower), Constraint("<", _bump(parsed, parsed.release))]
    if operator == "!=":
        raise _Unmappable(
            f"'!={version}' (exclusion) has no equivalent in DataRobot's dependency structure; "
            "use a range such as '>=X,<Y' instead"
        )
    if operator == "===":
        raise _Unmappable("arbitrary equality '===' has no equivalent; pin with '==' instead")
    raise _Unmappable(f"operator '{operator}' has no equivalent; use one of {', '.join(API_OPERATORS)}")


def _written_order(line: str, specs: list[Specifier]) -> list[Specifier]:
    """Specifiers in the order the author wrote them (packaging keeps them in a set)."""
    compact = "".join(line.split())

    def position(spec: Specifier) -> int:
        found = compact.find(f"{spec.operator}{spec.version}")
        return found if found >= 0 else len(compact)

    return sorted(specs, key=position)


# --- per-line classification --------------------------------------------------------------------


def _unmappable_reason(req: InstallRequirement) -> str | None:
    """Why a parsed requirement cannot be expressed, or None when it can."""
    if req.is_editable:
        return "editable installs ('-e') cannot be uploaded; list the package by name and version"
    if req.link is not None:
        url = req.link.url
        if urlsplit(url).scheme in ("", "file"):
            return (
                f"local path '{url}' cannot be resolved by DataRobot; publish the package to an "
                "index and list it by name"
            )
        return f"URL requirement '{url}' is not supported; list the package by name and version"
    if req.name is None:
        return "no package name; list the package by name and version"
    if req.marker is not None:
        return (
            f"environment marker '; {req.marker}' is not supported (DataRobot builds for one "
            "fixed platform); remove the marker"
        )
    for flag, values in (
        ("--hash", req.hash_options),
        ("--install-option", req.install_options),
        ("--global-option", req.global_options),
    ):
        if values:
            return f"per-requirement option '{flag}' is not supported; remove it"
    if req.invalid_options:
        return "per-requirement options are not supported; remove them"
    return None


def _option_message(line: str) -> str:
    first = line.split()[0] if line.split() else line
    flag = first.split("=", 1)[0]
    if flag in ("-r", "--requirement"):
        return "nested requirement files ('-r') are not supported; copy the requirements into this file"
    if flag in ("-c", "--constraint"):
        return "constraint files ('-c') are not supported; pin the versions in this file"
    if flag in ("-e", "--editable"):
        return "editable installs ('-e') cannot be uploaded; list the package by name and version"
    return f"option line '{flag}' is not supported: DataRobot builds with its own index settings; remove the line"


def _invalid_message(line: str, parser_message: str) -> str:
    first = parser_message.strip().splitlines()[0] if parser_message.strip() else "invalid requirement"
    # pip's text reads "Invalid requirement: : Expected ..."; keep only the reason.
    first = first.replace("Invalid requirement: : ", "invalid requirement: ")
    if "~=" in line:
        return f"{first}; note that '~=' needs at least two release segments, e.g. 'pkg~=1.4'"
    scheme = urlsplit(line.strip()).scheme
    if scheme and "." in line and "/" in line:
        return f"URL requirement is not supported ({first}); list the package by name and version"
    if line.strip().startswith((".", "/")):
        return "local paths cannot be resolved by DataRobot; list the package by name and version"
    return f"{first}; expected 'name', 'name==1.2' or 'name>=1.0,<2.0'"


def _dependency(req: InstallRequirement) -> Dependency:
    line = str(req.line or "").strip()
    constraints: list[Constraint] = []
    for spec in _written_order(line, list(req.specifier or [])):
        constraints.extend(_translate(spec))
    return Dependency(
        package_name=str(req.name),
        constraints=tuple(constraints),
        extras=",".join(sorted(req.extras)) if req.extras else None,
        line=line,
        line_number=int(req.line_number or 0),
    )


# --- the library's line parser ------------------------------------------------------------------
#
# pip-requirements-parser builds a fresh optparse parser of some 22 options for every line ("it
# accumulates appendable options"), which was 80% of a parse: 60,000 lines took over 10 s in
# lint, deps, push and the emulator. A line without options (`name[extra]==1.0 ; marker`) parses
# no option, so nothing can accumulate: those lines share one parser's defaults, and a line with
# options still gets a parser of its own, as the library does. Installed once, for every caller.

_SHARED_PARSER = pip_requirements_parser.build_parser()


def _line_parser() -> Callable[[str], tuple[str, Values, list[str]]]:
    def parse_line(line: str) -> tuple[str, Values, list[str]]:
        args, options = pip_requirements_parser.break_args_options(line)
        parser = pip_requirements_parser.build_parser() if options else _SHARED_PARSER
        values, arguments = parser.parse_args(shlex.split(options), parser.get_default_values())
        return args, values, arguments

    return parse_line


pip_requirements_parser.get_line_parser = _line_parser


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The parse allocates millions of small objects that live to its end: the cyclic garbage
    collector's passes over them were half the time of a 60,000-line file and found nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- public API ---------------------------------------------------------------------------------


def parse_requirements_text(text: str, source: str = REQUIREMENTS_FILE) -> DependencyReport:
    """Parse requirements text; never raises for bad content, it reports it line by line."""
    report = DependencyReport(source=source)
    # pip-requirements-parser only reads files (its from_string is broken in 32.0.1).
    handle, temp_path = tempfile.mkstemp(suffix=".txt", prefix="cmkit-req-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        with _collector_paused():
            parsed = RequirementsFile.from_file(temp_path, include_nested=False)
    except Exception as exc:  # pip's parser can raise on pathological text; report, never crash
        report.errors.append(RequirementError(1, text.splitlines()[0] if text else "", f"unparseable: {exc}"))
        return report
    finally:
        os.unlink(temp_path)

    entries: list[tuple[int, object, str]] = []
    entries += [(int(r.line_number or 0), r, "req") for r in parsed.requirements]
    entries += [(int(o.line_number or 0), o, "option") for o in parsed.options]
    entries += [(int(i.line_number or 0), i, "invalid") for i in parsed.invalid_lines]
    seen: dict[str, int] = {}
    for line_number, entry, kind in sorted(entries, key=lambda item: item[0]):
        line = str(getattr(entry, "line", "") or "").strip()
        if kind == "option":
            report.errors.append(RequirementError(line_number, line, _option_message(line)))
            continue
        if kind == "invalid":
            message = _invalid_message(line, str(getattr(entry, "error_message", "")))
            report.errors.append(RequirementError(line_number, line, message))
            continue
        reason = _unmappable_reason(entry)
        if reason is None:
            try:
                dependency = _dependency(entry)
            except (_Unmappable, InvalidVersion, InvalidSpecifier) as exc:
                reason = str(exc)
        if reason is not None:
            report.errors.append(RequirementError(line_number, line, reason))
            continue
        key = canonicalize_name(dependency.package_name)
        if key in seen:
            report.errors.append(
                RequirementError(
                    line_number,
                    line,
                    f"'{dependency.package_name}' is already required on line {seen[key]}; "
                    "merge the two lines into one",
                )
            )
            continue
        seen[key] = line_number
        report.dependencies.append(dependency)
    return report


def resolve_requirements_path(path: str | Path) -> Path:
    """A requirements file, or `requirements.txt` inside a bundle folder."""
    candidate = Path(path)
    info = stat_or_none(candidate)
    if info is None:
        raise InputError("no such file or folder", file=path, hint="check the path")
    if stat.S_ISDIR(info.st_mode):
        candidate = candidate / REQUIREMENTS_FILE
        if stat_or_none(candidate) is None:
            raise InputError("no requirements.txt in this folder", file=path, hint="pass the file itself or create one")
    return candidate


def read_text_file(path: Path) -> str:
    """A requirements file's text: a regular UTF-8 file up to MAX_REQUIREMENTS_BYTES, else InputError."""
    return read_utf8(path, MAX_REQUIREMENTS_BYTES)


def bundle_requirements(bundle: str | Path) -> str | None:
    """A bundle's requirements.txt as every build and install reads it: None when there is none;
    a FIFO, a folder, a file over 1 MiB or not UTF-8 is an InputError (a build once took the FIFO
    for "no requirements" and installed nothing, and built a 2 MiB file for 65 s, then failed)."""
    path = Path(bundle) / REQUIREMENTS_FILE
    if not os.path.lexists(path):
        return None
    return read_text_file(path)


def parse_requirements_file(path: str | Path) -> DependencyReport:
    """Parse a requirements file or a bundle's requirements.txt; raises InputError if unreadable."""
    resolved = resolve_requirements_path(path)
    return parse_requirements_text(read_text_file(resolved), source=str(resolved))
