"""What a model predicts and the rules its labels follow: one home for every reader of them.

The CLI (init, test-local, push), model-metadata.yaml and the emulator's API all describe a
target with the API's fields (targetType, positiveClassLabel, negativeClassLabel, classLabels).
`TargetSpec.problems()` applies the label rule (`cmkit_runtime.target_types.label_problems`, which
the model server applies too) and names the field; each reader words the field its own way
(`--class-labels`, `inferenceModel.classLabels`, `classLabels`). The types themselves and what
the code asks of them are `TargetType`'s (`cmkit_runtime/target_types.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cmkit.errors import InputError
from cmkit.textfiles import read_utf8
from cmkit_runtime.target import Target
from cmkit_runtime.target_types import (
    SERVED,
    TARGET_TYPES,
    LabelKind,
    Problem,
    TargetType,
    as_target_type,
    label_problems,
)

__all__ = [
    "FLAGS",
    "SERVED",
    "TARGET_TYPES",
    "LabelKind",
    "Problem",
    "Target",
    "TargetSpec",
    "TargetType",
    "require_target_type",
]

# How the command line names each field.
FLAGS = {
    "targetType": "--target-type",
    "positiveClassLabel": "--positive-class-label",
    "negativeClassLabel": "--negative-class-label",
    "classLabels": "--class-labels",
}


API_FIELDS = {field: field for field in FLAGS}
METADATA_FIELDS = {field: f"inferenceModel.{field}" for field in FLAGS} | {"targetType": "targetType"}


@dataclass(frozen=True)
class TargetSpec:
    """A target type (any of the API's; a DRUM name given instead is read as its member) and its labels."""

    type: TargetType
    positive: str | None = None
    negative: str | None = None
    class_labels: Sequence[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", as_target_type(self.type))

    @property
    def labels(self) -> tuple[str, ...]:
        """Binary: (positive, negative); multiclass: the class labels in order; else ()."""
        if self.type.label_kind is LabelKind.PAIR and self.positive is not None and self.negative is not None:
            return (self.positive, self.negative)
        if self.type.label_kind is LabelKind.LIST:
            return tuple(str(label) for label in self.class_labels or ())
        return ()

    def target(self, name: str | None = None) -> Target:
        return Target(self.type, self.labels, name)

    def problems(self) -> list[Problem]:
        """Every rule the labels break, in the order a reader should fix them (`label_problems`)."""
        return label_problems(self.type, self.positive, self.negative, self.class_labels)

    def validate(self, names: Mapping[str, str] = FLAGS, hint: str | None = None) -> None:
        """InputError for the first problem, naming the fields as `names` spells them."""
        for problem in self.problems():
            raise InputError(problem.text(names), hint=hint)


def require_target_type(value: str | None, hint: str | None = None) -> TargetType:
    """A target type cmkit serves (named in any case), or an InputError listing them."""
    target_type = TargetType.served_named(value)
    if target_type is None:
        shown = repr(value) if value else "no target type"
        raise InputError(f"unsupported target type {shown}", hint=hint or f"use one of {', '.join(TARGET_TYPES)}")
    return target_type


def parse_label_list(text: str | None) -> tuple[str, ...] | None:
    """`--class-labels a,b,c` -> ("a", "b", "c"): spaces around each dropped, empty ones kept (refused later)."""
    if text is None:
        return None
    return tuple(label.strip() for label in text.split(","))


MAX_LABELS_FILE_BYTES = 1024 * 1024


def read_labels_file(path: Path) -> list[str]:
    """`--class-labels-file`: one label per line, as DRUM reads it (blank lines skipped, spaces kept)."""
    labels = [line for line in read_utf8(path, MAX_LABELS_FILE_BYTES).splitlines() if line.strip()]
    if not labels:
        raise InputError("no labels: write one label per line", file=path)
    return labels
