"""DataRobot's target types, one entry each, and the label rule every reader of labels applies.

A custom model's target type decides what its labels are, what one prediction looks like,
whether a test needs a dataset, which checks and computations apply. Code asks the type for
those properties (`target.type.numeric_predictions`) and never compares its name: adding a type
is one entry below plus the code that is really new (tests/test_target_types.py holds every
other module to that).

Spellings: the API writes `TextGeneration`; DRUM, DataRobot's `TARGET_TYPE` variable,
model-metadata.yaml and cmkit's flags write `textgeneration`, which is the member's value (a
`str`, so JSON and messages show it unchanged). `served` marks the types cmkit serves and tests
today; the others are known (the emulator stores models of every API type) but not yet served.

This module is part of `cmkit_runtime` (standard library only) so that the model server and
cmkit share it without the server importing cmkit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any


class LabelKind(Enum):
    """The class labels a type takes."""

    NONE = "none"
    PAIR = "pair"  # positiveClassLabel and negativeClassLabel (binary)
    LIST = "list"  # classLabels, two or more in the model's order (multiclass)


class Prediction(Enum):
    """What one row's prediction is."""

    PROBABILITIES = "probabilities"  # one probability per class label
    NUMBER = "number"
    TEXT = "text"
    POINT = "point"  # one string per row naming a point: POINT (x y), as WKT writes it (geopoint)
    BYTES = "bytes"  # one answer to one request body, any bytes with its Content-Type (unstructured)
    CHAT = "chat"  # chat completions, not rows: judged by the chatCompletions check
    FRAME = "frame"  # a transformed frame, as many rows as given (transform): judged whole, not per row


class Interface(Enum):
    """How the model server is asked for predictions, and which hooks answer (DRUM's routes)."""

    PREDICTIONS = "predictions"  # a dataset's rows: predict_no_state (cmkit) or /predict/ (DRUM); score()/predict()
    UNSTRUCTURED = "unstructured"  # any body: /predictUnstructured/, score_unstructured(model, data, query, **kwargs)
    TRANSFORM = "transform"  # a CSV in, a CSV out (multipart): /transform/, transform(data, model)


@dataclass(frozen=True)
class Traits:
    """What the code branches on, for one target type."""

    api_name: str  # the API's spelling (targetType, templateSubType)
    served: bool  # cmkit's init, test-local, lint and runtime take it today
    labels: LabelKind
    prediction: Prediction
    structured: bool  # scored row by row from a dataset: testing it needs one (DataRobot's "structured")
    needs_target_name: bool  # an inference model of the type must name its target column
    has_target: bool  # False: the model learns without a target column, a target name is not looked for
    impact_metric: str | None  # permutation feature impact's metric; None: no feature impact
    explained: bool  # prediction explanations can be initialized for it
    interface: Interface = Interface.PREDICTIONS
    chat: bool = False  # DataRobot's chat interface is the type's: chat() on /chat/completions (DRUM's rule)
    llm_models: bool = False  # GET /models lists the LLMs it answers as (get_supported_llm_models)


_N, _PAIR, _LIST = LabelKind.NONE, LabelKind.PAIR, LabelKind.LIST
_PROB, _NUM, _TEXT, _FRAME = Prediction.PROBABILITIES, Prediction.NUMBER, Prediction.TEXT, Prediction.FRAME
_RAW, _POINT = Prediction.BYTES, Prediction.POINT


class TargetType(str, Enum):
    """A target type; its value is DRUM's spelling. Members are listed in cmkit's order (flags, messages)."""

    traits: Traits

    def __new__(cls, drum_name: str, traits: Traits) -> TargetType:
        member = str.__new__(cls, drum_name)
        member._value_ = drum_name
        member.traits = traits
        return member

    # fmt: off
    #                 DRUM name          API name       served labels predicts struct. name  target impact     explained
    REGRESSION =      "regression",      Traits("Regression", True, _N, _NUM, True, True, True, "RMSE", True)
    BINARY =          "binary",          Traits("Binary", True, _PAIR, _PROB, True, True, True, "LogLoss", True)
    MULTICLASS =      "multiclass",      Traits("Multiclass", True, _LIST, _PROB, True, True, True, "LogLoss", False)
    ANOMALY =         "anomaly",         Traits("Anomaly", True, _N, _NUM, True, False, False, None, False)
    TEXT_GENERATION = "textgeneration",  Traits("TextGeneration", True, _N, _TEXT, True, True, True, None, False,
                                                chat=True, llm_models=True)
    UNSTRUCTURED =    "unstructured",    Traits("Unstructured", True, _N, _RAW, False, False, True, None, False,
                                                Interface.UNSTRUCTURED)
    # A transform has no target to predict: `has_target` keeps the emulator's answer to one set on it.
    TRANSFORM =       "transform",       Traits("Transform", True, _N, _FRAME, True, False, True, None, False,
                                                Interface.TRANSFORM)
    GEO_POINT =       "geopoint",        Traits("GeoPoint", True, _N, _POINT, True, True, True, None, False)
    # DRUM scores a vector database row by row from a CSV (/predict/, one column out): structured.
    VECTOR_DATABASE = "vectordatabase",  Traits("VectorDatabase", True, _N, _TEXT, True, False, True, None, False)
    AGENTIC_WORKFLOW = "agenticworkflow", Traits("AgenticWorkflow", True, _N, Prediction.CHAT, False, False, True,
                                                None, False, chat=True)
    # fmt: on

    def __str__(self) -> str:
        return self.drum_name

    def __format__(self, spec: str) -> str:
        return format(self.drum_name, spec)

    @property
    def drum_name(self) -> str:
        """DRUM's spelling: model-metadata.yaml, the TARGET_TYPE variable, cmkit's flags."""
        return str(self._value_)

    @property
    def api_name(self) -> str:
        return self.traits.api_name

    @property
    def served(self) -> bool:
        return self.traits.served

    @property
    def label_kind(self) -> LabelKind:
        return self.traits.labels

    @property
    def is_classification(self) -> bool:
        """Takes class labels and predicts one probability per label."""
        return self.traits.labels is not LabelKind.NONE

    @property
    def prediction(self) -> Prediction:
        return self.traits.prediction

    @property
    def numeric_predictions(self) -> bool:
        """One number per row (regression, anomaly scores): what the checks read as floats in one step."""
        return self.traits.prediction is Prediction.NUMBER

    @property
    def text_predictions(self) -> bool:
        """One string per row, compared exactly (no tolerances): text, documents, points."""
        return self.traits.prediction in (Prediction.TEXT, Prediction.POINT)

    @property
    def point_predictions(self) -> bool:
        """Each row's string must name a point (`POINT (x y)`), on top of the text rule."""
        return self.traits.prediction is Prediction.POINT

    @property
    def interface(self) -> Interface:
        return self.traits.interface

    @property
    def unstructured(self) -> bool:
        """Served on /predictUnstructured/ by score_unstructured(): a request is any body, an answer any bytes."""
        return self.traits.interface is Interface.UNSTRUCTURED

    @property
    def transforms(self) -> bool:
        """Served on /transform/ by transform(): a CSV in, the transformed CSV out, row for row."""
        return self.traits.interface is Interface.TRANSFORM

    @property
    def chats(self) -> bool:
        """chat() is this type's interface: a model without it is told "chat() is not implemented"."""
        return self.traits.chat

    @property
    def lists_llm_models(self) -> bool:
        return self.traits.llm_models

    @property
    def structured(self) -> bool:
        return self.traits.structured

    @property
    def needs_target_name(self) -> bool:
        return self.traits.needs_target_name

    @property
    def has_target(self) -> bool:
        return self.traits.has_target

    @property
    def impact_metric(self) -> str | None:
        return self.traits.impact_metric

    @property
    def explained(self) -> bool:
        return self.traits.explained

    @classmethod
    def from_api(cls, api_name: str) -> TargetType:
        """The type the API spells `api_name` (the emulator's documents); ValueError for another word."""
        for member in cls:
            if member.api_name == api_name:
                return member
        raise ValueError(f"{api_name!r} is not a target type of the API")

    @classmethod
    def named(cls, name: str) -> TargetType:
        """The type whose DRUM name is `name`, in any case (the API matches it so); ValueError for another word."""
        member = cls._value2member_map_.get(name.lower())
        if not isinstance(member, TargetType):
            raise ValueError(f"{name!r} is not a target type")
        return member

    @classmethod
    def served_named(cls, name: str | None) -> TargetType | None:
        """The served type `name` (DRUM's spelling, any case) names; None for another word or a type not served."""
        member = cls._value2member_map_.get((name or "").lower())
        return member if isinstance(member, TargetType) and member.served else None


SERVED: tuple[TargetType, ...] = tuple(member for member in TargetType if member.served)
# The served types' names, in cmkit's order: --target-type's choices, lint's and the runtime's messages.
TARGET_TYPES: tuple[str, ...] = tuple(member.drum_name for member in SERVED)


def as_target_type(value: TargetType | str) -> TargetType:
    """A member, or the member a DRUM name (any case) names: callers holding text (tests, flags) pass it as is."""
    return value if isinstance(value, TargetType) else TargetType.named(value)


# -- the label rule ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    field: str  # the API's name of the field at fault: positiveClassLabel, negativeClassLabel, classLabels
    template: str  # the message, with {positive}, {negative} and {classes} standing for the fields' names

    def text(self, names: Mapping[str, str]) -> str:
        """The message with each field named as a reader names it (`names`: API field -> its wording)."""
        return self.template.format(
            positive=names["positiveClassLabel"], negative=names["negativeClassLabel"], classes=names["classLabels"]
        )


def label_problems(
    target_type: TargetType, positive: Any = None, negative: Any = None, class_labels: Sequence[Any] | None = None
) -> list[Problem]:
    """Every rule the labels given for `target_type` break, in the order a reader should fix them.

    The one home of the label rules: cmkit's flags, model-metadata.yaml, the emulator's API and
    the model server's variables all call it and word the fields their own way.
    """
    binary_given = positive is not None or negative is not None
    labels = [str(label) for label in class_labels or []]
    if target_type.label_kind is LabelKind.PAIR:
        return _pair_problems(positive, negative, bool(labels))
    if target_type.label_kind is LabelKind.LIST:
        if binary_given:
            return [
                Problem("positiveClassLabel", f"{target_type} models take {{classes}}, not {{positive}}/{{negative}}")
            ]
        return _list_problems(labels)
    if binary_given:
        remove = "remove {positive}/{negative}"
        return [Problem("positiveClassLabel", f"{target_type} models take no class labels: {remove}")]
    if labels:
        return [Problem("classLabels", f"{target_type} models take no class labels: remove {{classes}}")]
    return []


def _pair_problems(positive: Any, negative: Any, class_labels_given: bool) -> list[Problem]:
    if class_labels_given:
        return [Problem("classLabels", "binary models take {positive} and {negative}, not {classes}")]
    if positive is None or negative is None or not positive or not negative:
        return [Problem("positiveClassLabel", "binary models need both class labels: {positive} and {negative}")]
    if positive == negative:
        return [
            Problem(
                "negativeClassLabel",
                f"the positive and negative class labels are both {positive!r}: {{negative}} must differ from "
                "{positive}",
            )
        ]
    return []


def _list_problems(labels: list[str]) -> list[Problem]:
    if len(labels) < 2:
        return [Problem("classLabels", "multiclass models need 2 or more class labels ({classes})")]
    if any(not label.strip() for label in labels):
        return [Problem("classLabels", "{classes} holds an empty label")]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        shown = ", ".join(repr(label) for label in repeated)
        return [Problem("classLabels", f"{{classes}} repeats {shown}: the labels must have no duplicates")]
    return []
