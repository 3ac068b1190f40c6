"""TargetType: the API's ten types with their spellings and properties, and the one label rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmkit.cli import main
from cmkit.emulator.reference import load_reference
from cmkit.target import TargetSpec
from cmkit_runtime.target import ConfigurationError, Target
from cmkit_runtime.target_types import (
    SERVED,
    TARGET_TYPES,
    Interface,
    LabelKind,
    Prediction,
    TargetType,
    as_target_type,
    label_problems,
)

# DRUM's spellings (datarobot_drum's TargetType values), written out: the test is their record.
DRUM_NAMES = {
    "binary",
    "regression",
    "anomaly",
    "unstructured",
    "multiclass",
    "transform",
    "textgeneration",
    "geopoint",
    "vectordatabase",
    "agenticworkflow",
}


def test_the_api_spellings_are_the_seeds_enum_in_its_order() -> None:
    reference = load_reference()
    for schema in ("CustomModelCreate", "CustomModelResponse"):
        enum = reference.schema(schema)["properties"]["targetType"]["enum"]
        assert sorted(enum) == sorted(member.api_name for member in TargetType)
        assert [TargetType.from_api(name).api_name for name in enum] == enum


def test_drum_spellings_are_the_values() -> None:
    assert {member.drum_name for member in TargetType} == DRUM_NAMES
    for member in TargetType:
        assert member.value == member.drum_name == member.api_name.lower() == str(member) == f"{member}"
        assert TargetType.named(member.api_name) is member
        assert json.dumps({"t": member}) == json.dumps({"t": member.drum_name})
    with pytest.raises(ValueError, match="not a target type"):
        TargetType.named("clustering")
    with pytest.raises(ValueError, match="not a target type of the API"):
        TargetType.from_api("binary")


def test_served_are_the_ones_cmkit_serves_today_in_cmkits_order() -> None:
    assert TARGET_TYPES == (
        "regression", "binary", "multiclass", "anomaly", "textgeneration", "unstructured", "transform", "geopoint",
        "vectordatabase", "agenticworkflow",
    )  # fmt: skip
    assert tuple(TargetType) == SERVED  # all ten of the API
    assert tuple(TargetType.named(name) for name in TARGET_TYPES) == SERVED
    assert TargetType.served_named("TextGeneration") is TargetType.TEXT_GENERATION
    assert TargetType.served_named("Unstructured") is TargetType.UNSTRUCTURED
    assert TargetType.served_named("Transform") is TargetType.TRANSFORM
    assert TargetType.served_named("clustering") is None and TargetType.served_named(None) is None
    for name in ("init", "test-local", "serve"):
        command = main.commands[name]
        choices = [p.type.choices for p in command.params if p.name == "target_type"]
        assert len(choices) == 1 and tuple(choices[0]) == TARGET_TYPES


def test_what_the_code_branches_on() -> None:
    by_prediction = {kind: {m.drum_name for m in TargetType if m.prediction is kind} for kind in Prediction}
    assert by_prediction[Prediction.PROBABILITIES] == {"binary", "multiclass"}
    assert by_prediction[Prediction.NUMBER] == {"regression", "anomaly"}
    assert by_prediction[Prediction.TEXT] == {"textgeneration", "vectordatabase"}
    assert by_prediction[Prediction.POINT] == {"geopoint"}
    assert {m.drum_name for m in TargetType if m.label_kind is LabelKind.PAIR} == {"binary"}
    assert {m.drum_name for m in TargetType if m.label_kind is LabelKind.LIST} == {"multiclass"}
    for member in TargetType:
        assert member.is_classification == (member.prediction is Prediction.PROBABILITIES)
        assert member.numeric_predictions == (member.prediction is Prediction.NUMBER)
        assert member.text_predictions == (member.prediction in (Prediction.TEXT, Prediction.POINT))
        assert member.point_predictions == (member.prediction is Prediction.POINT)
        assert member.transforms == (member.interface is Interface.TRANSFORM)
        assert member.unstructured == (member.interface is Interface.UNSTRUCTURED)
    assert [m.drum_name for m in TargetType if m.unstructured] == ["unstructured"]
    assert [m.drum_name for m in TargetType if m.transforms] == ["transform"]
    assert [m.drum_name for m in TargetType if m.prediction is Prediction.FRAME] == ["transform"]
    assert [m.drum_name for m in TargetType if m.prediction is Prediction.BYTES] == ["unstructured"]
    assert [m.drum_name for m in TargetType if m.chats] == ["textgeneration", "agenticworkflow"]
    assert [m.drum_name for m in TargetType if m.lists_llm_models] == ["textgeneration"]
    assert [m.drum_name for m in TargetType if m.prediction is Prediction.CHAT] == ["agenticworkflow"]
    assert {m.api_name for m in TargetType if m.structured} == {
        "Binary", "Regression", "Multiclass", "Anomaly", "Transform", "TextGeneration", "GeoPoint", "VectorDatabase"
    }  # fmt: skip
    assert {m.api_name for m in TargetType if m.needs_target_name} == {
        "Binary", "Regression", "Multiclass", "TextGeneration", "GeoPoint"
    }  # fmt: skip
    assert [m.drum_name for m in TargetType if not m.has_target] == ["anomaly"]
    assert {m.drum_name: m.impact_metric for m in TargetType if m.impact_metric} == {
        "regression": "RMSE", "binary": "LogLoss", "multiclass": "LogLoss"
    }  # fmt: skip
    assert [m.api_name for m in TargetType if m.explained] == ["Regression", "Binary"]


def test_a_name_given_as_text_is_read_as_its_member() -> None:
    assert Target("binary", ("a", "b")).type is TargetType.BINARY
    assert TargetSpec("Multiclass").type is TargetType.MULTICLASS
    assert as_target_type(TargetType.ANOMALY) is TargetType.ANOMALY
    assert Target("anomaly") == Target(TargetType.ANOMALY)


@pytest.mark.parametrize(
    "labels",
    [["a", "b"], ["a"], [], ["a", "a", "b"], ["a", ""], ["a", " "], ["x", "y", "z"]],
)
def test_the_model_server_applies_the_one_label_rule(tmp_path: Path, labels: list[str]) -> None:
    """What label_problems refuses, the server refuses; what it takes, the server serves."""
    (tmp_path / "model-metadata.yaml").write_text(
        "targetType: multiclass\ninferenceModel:\n  classLabels: " + json.dumps(labels) + "\n"
    )
    refused = bool(label_problems(TargetType.MULTICLASS, class_labels=labels))
    if refused:
        with pytest.raises(ConfigurationError, match="a multiclass model needs 2 or more different labels"):
            Target.from_sources(tmp_path, {})
    else:
        assert Target.from_sources(tmp_path, {}).labels == tuple(labels)


@pytest.mark.parametrize(("positive", "negative"), [("1", "0"), ("1", "1"), ("1", None), (None, None), ("", "0")])
def test_binary_labels_follow_the_same_rule_in_both(tmp_path: Path, positive: str | None, negative: str | None) -> None:
    environ = {"TARGET_TYPE": "binary"}
    if positive is not None:
        environ["POSITIVE_CLASS_LABEL"] = positive
    if negative is not None:
        environ["NEGATIVE_CLASS_LABEL"] = negative
    refused_by_cmkit = bool(TargetSpec("binary", positive or None, negative or None).problems())
    if refused_by_cmkit:
        with pytest.raises(ConfigurationError, match="a binary model needs two different labels"):
            Target.from_sources(tmp_path, environ)
    else:
        assert Target.from_sources(tmp_path, environ).labels == (positive, negative)


@pytest.mark.parametrize("member", [m for m in TargetType if not m.is_classification])
def test_types_without_labels_refuse_them_by_name(member: TargetType) -> None:
    problems = label_problems(member, class_labels=["a", "b"])
    assert [p.text({"positiveClassLabel": "P", "negativeClassLabel": "N", "classLabels": "C"}) for p in problems] == [
        f"{member.drum_name} models take no class labels: remove C"
    ]
