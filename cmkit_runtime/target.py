"""What the model predicts, read as DataRobot gives it to a model's container.

DataRobot sets TARGET_TYPE, POSITIVE_CLASS_LABEL, NEGATIVE_CLASS_LABEL and CLASS_LABELS (labels
separated by white space, as DRUM splits them) or CLASS_LABELS_FILE (one label per line) on a
custom model's container; without them the bundle's model-metadata.yaml says it, read the way
DataRobot reads it (every value a string, so a label `1` stays "1").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cmkit_runtime.target_types import TARGET_TYPES, LabelKind, TargetType, as_target_type, label_problems

__all__ = ["METADATA_FILE", "TARGET_TYPES", "ConfigurationError", "Target", "TargetType", "read_metadata"]

METADATA_FILE = "model-metadata.yaml"
# A metadata file larger than this is no metadata file; it is not parsed (YAML bombs).
METADATA_MAX_BYTES = 1 << 20


class ConfigurationError(Exception):
    """model-metadata.yaml and the environment do not describe a model this server can serve."""


@dataclass(frozen=True)
class Target:
    """The target type and, for classifiers, the labels in declared order."""

    type: TargetType  # a DRUM name given instead (tests, callers holding text) is read as its member
    labels: tuple[str, ...] = ()  # binary: (positive, negative); multiclass: classLabels
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", as_target_type(self.type))

    @property
    def is_classification(self) -> bool:
        return self.type.is_classification

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"targetType": self.type.drum_name, "targetName": self.name}
        if self.type.label_kind is LabelKind.PAIR:
            document["positiveClassLabel"], document["negativeClassLabel"] = self.labels
        elif self.type.label_kind is LabelKind.LIST:
            document["classLabels"] = list(self.labels)
        return document

    @classmethod
    def from_sources(cls, code_dir: Path, environ: Mapping[str, str]) -> Target:
        meta = read_metadata(code_dir / METADATA_FILE)
        found = meta.get("inferenceModel")
        model: dict[str, Any] = found if isinstance(found, dict) else {}
        name = model.get("targetName") if isinstance(model.get("targetName"), str) else None
        name = environ.get("TARGET_NAME") or name  # DataRobot's variable, as for the type and labels
        named = (environ.get("TARGET_TYPE") or str(meta.get("targetType") or "")).lower()
        target_type = TargetType.served_named(named)
        if target_type is None:
            raise ConfigurationError(
                f"target type {named!r} is not one of {', '.join(TARGET_TYPES)}: "
                f"set targetType in {METADATA_FILE} or the TARGET_TYPE environment variable"
            )
        if target_type.label_kind is LabelKind.PAIR:
            return cls(target_type, _binary_labels(target_type, environ, model), name)
        if target_type.label_kind is LabelKind.LIST:
            return cls(target_type, _multiclass_labels(target_type, environ, model), name)
        return cls(target_type, (), name)


# The server reads the labels from its variables or the metadata, checks them with the one label
# rule (`label_problems`) and answers any problem with one message naming both sources.


def _binary_labels(target_type: TargetType, environ: Mapping[str, str], model: Mapping[str, Any]) -> tuple[str, str]:
    positive = environ.get("POSITIVE_CLASS_LABEL") or model.get("positiveClassLabel")
    negative = environ.get("NEGATIVE_CLASS_LABEL") or model.get("negativeClassLabel")
    if label_problems(target_type, positive or None, negative or None):
        raise ConfigurationError(
            "a binary model needs two different labels: set inferenceModel.positiveClassLabel and "
            f"negativeClassLabel in {METADATA_FILE} (or POSITIVE_CLASS_LABEL and NEGATIVE_CLASS_LABEL)"
        )
    return str(positive), str(negative)


def _multiclass_labels(
    target_type: TargetType, environ: Mapping[str, str], model: Mapping[str, Any]
) -> tuple[str, ...]:
    if environ.get("CLASS_LABELS_FILE"):
        path = Path(environ["CLASS_LABELS_FILE"])
        try:
            labels = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
        except OSError as exc:
            raise ConfigurationError(f"CLASS_LABELS_FILE {path} cannot be read: {exc.strerror}") from None
    elif environ.get("CLASS_LABELS"):
        labels = environ["CLASS_LABELS"].split()
    else:
        labels = [str(label) for label in model.get("classLabels") or []]
    if label_problems(target_type, class_labels=labels):
        raise ConfigurationError(
            f"a multiclass model needs 2 or more different labels: set inferenceModel.classLabels in "
            f"{METADATA_FILE} (or CLASS_LABELS='a b c', or CLASS_LABELS_FILE with one label per line)"
        )
    return tuple(labels)


def read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    if path.stat().st_size > METADATA_MAX_BYTES:
        raise ConfigurationError(f"{path.name} is larger than {METADATA_MAX_BYTES} bytes")
    # BaseLoader keeps every scalar a string and expands no tags.
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    return data if isinstance(data, dict) else {}
