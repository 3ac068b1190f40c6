"""The API's resources that push, env push and `--environment-id` read, parsed once at the edge.

Each type takes what cmkit uses of one resource, `from_api(document)` reading the camelCase
JSON the API answers; the planning, the uploads and the rendering read the fields, never the
document. What is not used is not kept, except for the model test: push's `--json` shows the
test resource exactly as the API gave it, so `ModelTest` keeps that document to write it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A version's description line that names the content it holds (push and env push write it).
DIGEST_MARKER = "cmkit-digest:"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _digest(description: str | None) -> str | None:
    """The `cmkit-digest:` value of a description, when cmkit wrote one."""
    for line in (description or "").splitlines():
        if line.startswith(DIGEST_MARKER):
            return line.split(":", 1)[1].strip()
    return None


@dataclass(frozen=True)
class VersionItem:
    """A file of a model version on DataRobot (an item of the API's `items`)."""

    id: str
    file_path: str


@dataclass(frozen=True)
class ModelVersion:
    """A custom model version: its files, its environment and whether it has dependencies to build."""

    id: str
    label: str | None = None
    description: str | None = None
    items: tuple[VersionItem, ...] = ()
    base_environment_id: str | None = None
    base_environment_version_id: str | None = None
    has_dependencies: bool = False

    @classmethod
    def from_api(cls, document: dict[str, Any]) -> ModelVersion:
        return cls(
            id=str(document["id"]),
            label=_text(document.get("label")),
            description=_text(document.get("description")),
            items=tuple(VersionItem(str(item["id"]), str(item["filePath"])) for item in document.get("items") or []),
            base_environment_id=_text(document.get("baseEnvironmentId")),
            base_environment_version_id=_text(document.get("baseEnvironmentVersionId")),
            has_dependencies=bool(document.get("dependencies")),
        )

    @property
    def digest(self) -> str | None:
        return _digest(self.description)

    @property
    def file_paths(self) -> set[str]:
        return {item.file_path for item in self.items}


@dataclass(frozen=True)
class CustomModel:
    """A custom model: how push finds it again (`userProvidedId`) and its latest version."""

    id: str
    name: str | None = None
    user_provided_id: str | None = None
    latest_version: ModelVersion | None = None

    @classmethod
    def from_api(cls, document: dict[str, Any]) -> CustomModel:
        latest = document.get("latestVersion")
        return cls(
            id=str(document["id"]),
            name=_text(document.get("name")),
            user_provided_id=_text(document.get("userProvidedId")),
            latest_version=ModelVersion.from_api(latest) if latest else None,
        )


@dataclass(frozen=True)
class Build:
    """A dependency build's or an environment version's build state (`buildStatus`)."""

    status: str | None

    @classmethod
    def from_api(cls, document: dict[str, Any]) -> Build:
        return cls(_text(document.get("buildStatus")))

    @property
    def finished(self) -> bool:
        return self.status in ("success", "failed")


@dataclass(frozen=True)
class ModelTest:
    """A model test: the API's test resource, or, for one push did not wait for, where its status is."""

    id: str | None  # None: not known yet (push did not wait)
    version_id: str | None  # the model version it tests
    overall_status: str | None
    document: dict[str, Any]  # echoed as the API gave it in push's --json

    @classmethod
    def from_api(cls, document: dict[str, Any]) -> ModelTest:
        version = document.get("customModelVersion") or {}
        return cls(_text(document.get("id")), _text(version.get("id")), _text(document.get("overallStatus")), document)

    @classmethod
    def started(cls, status_url: str) -> ModelTest:
        """A test push did not wait for: in progress, and the status URL to follow."""
        return cls(None, None, "in_progress", {"overallStatus": "in_progress", "status": status_url})

    @property
    def finished(self) -> bool:
        return self.overall_status not in ("queued", "in_progress", "not_tested")


@dataclass(frozen=True)
class EnvironmentVersion:
    """An execution environment version: its build and the content cmkit recorded on it."""

    id: str
    description: str | None = None
    build_status: str | None = None

    @classmethod
    def from_api(cls, document: dict[str, Any]) -> EnvironmentVersion:
        return cls(str(document["id"]), _text(document.get("description")), _text(document.get("buildStatus")))


@dataclass(frozen=True)
class ExecutionEnvironment:
    """An execution environment: its name and latest successfully built version."""

    id: str
    name: str | None = None
    latest_successful_version: EnvironmentVersion | None = None

    @classmethod
    def from_api(cls, document: dict[str, Any]) -> ExecutionEnvironment:
        latest = document.get("latestSuccessfulVersion")
        return cls(
            str(document["id"]),
            _text(document.get("name")),
            EnvironmentVersion.from_api(latest) if latest else None,
        )
