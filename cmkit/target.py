"""What a model predicts and the rules its labels follow: one home for every reader of them.

The CLI (init, test-local, push), model-metadata.yaml and the emulator's API all describe a
target with the API's fields (targetType, positiveClassLabel, negativeClassLabel, classLabels).
`TargetSpec.problems()` applies the rules once and names the field; each reader words the
field its own way (`--class-labels`, `inferenceModel.classLabels`, `classLabels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cmkit.errors import InputError
from cmkit_runtime.target import TARGET_TYPES, Target

__all__ = ["API_TARGET_TYPES", "FLAGS", "TARGET_TYPES", "Problem", "Target", "TargetSpec", "require_target_type"]

# The API spells target types capitalised, and TextGeneration in camel case.
API_TARGET_TYPES = {t: t.capitalize() for t in TARGET_TYPES} | {"textgeneration": "TextGeneration"}
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
class Problem:
    field: str  # the API's name of the field at fault: positiveClassLabel, negativeClassLabel, classLabels
    template: str  # the message, with {positive}, {negative} and {classes} standing for the fields' names

    def text(self, names: Mapping[str, str]) -> str:
        return self.template.format(
            positive=names["positiveClassLabel"], negative=names["negativeClassLabel"], classes=names["classLabels"]
        )


@dataclass(frozen=True)
class TargetSpec:
    """A target type (cmkit's lower-case names; other API types pass through) and its labels."""

    type: str
    positive: str | None = None
    negative: str | None = None
    class_labels: Sequence[str] | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """Binary: (positive, negative); multiclass: the class labels in order; else ()."""
        if self.type == "binary" and self.positive is not None and self.negative is not None:
            return (self.positive, self.negative)
        if self.type == "multiclass":
            return tuple(str(label) for label in self.class_labels or ())
        return ()

    def target(self, name: str | None = None) -> Target:
        return Target(self.type, self.labels, name)

    def problems(self) -> list[Problem]:
        """Every rule the labels break, in the order a reader should fix them."""
        binary_given = self.positive is not None or self.negative is not None
        labels = [str(label) for label in self.class_labels or []]
        if self.type == "binary":
            return self._binary_problems(bool(labels))
        if self.type == "multiclass":
            if binary_given:
                return [Problem("positiveClassLabel", "multiclass models take {classes}, not {positive}/{negative}")]
            return _multiclass_problems(labels)
        if binary_given:
            return [
                Problem(
                    "positiveClassLabel", f"{self.type} models take no class labels: remove {{positive}}/{{negative}}"
                )
            ]
        if labels:
            return [Problem("classLabels", f"{self.type} models take no class labels: remove {{classes}}")]
        return []

    def _binary_problems(self, class_labels_given: bool) -> list[Problem]:
        if class_labels_given:
            return [Problem("classLabels", "binary models take {positive} and {negative}, not {classes}")]
        if self.positive is None or self.negative is None or not self.positive or not self.negative:
            return [Problem("positiveClassLabel", "binary models need both class labels: {positive} and {negative}")]
        if self.positive == self.negative:
            return [
                Problem(
                    "negativeClassLabel",
                    f"the positive and negative class labels are both {self.positive!r}: {{negative}} must differ "
                    "from {positive}",
                )
            ]
        return []

    def validate(self, names: Mapping[str, str] = FLAGS, hint: str | None = None) -> None:
        """InputError for the first problem, naming the fields as `names` spells them."""
        for problem in self.problems():
            raise InputError(problem.text(names), hint=hint)


def _multiclass_problems(labels: list[str]) -> list[Problem]:
    if len(labels) < 2:
        return [Problem("classLabels", "multiclass models need 2 or more class labels ({classes})")]
    if any(not label.strip() for label in labels):
        return [Problem("classLabels", "{classes} holds an empty label")]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        shown = ", ".join(repr(label) for label in repeated)
        return [Problem("classLabels", f"{{classes}} repeats {shown}: the labels must have no duplicates")]
    return []


def require_target_type(value: str | None, hint: str | None = None) -> str:
    """A known target type (lower case), or an InputError listing them."""
    target_type = (value or "").lower()
    if target_type not in TARGET_TYPES:
        shown = repr(value) if value else "no target type"
        raise InputError(f"unsupported target type {shown}", hint=hint or f"use one of {', '.join(TARGET_TYPES)}")
    return target_type


def parse_label_list(text: str | None) -> tuple[str, ...] | None:
    """`--class-labels a,b,c` -> ("a", "b", "c"): spaces around each dropped, empty ones kept (refused later)."""
    if text is None:
        return None
    return tuple(label.strip() for label in text.split(","))
