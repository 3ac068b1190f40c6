"""cmkit_runtime/target.py: the target a model's container is told about, from DataRobot's
variables or else the bundle's model-metadata.yaml (read as DataRobot reads it), on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit_runtime.target import METADATA_MAX_BYTES, ConfigurationError, Target

BINARY_METADATA = """\
targetType: binary
inferenceModel:
  targetName: churned
  positiveClassLabel: 1
  negativeClassLabel: 0
"""


def bundle_with(tmp_path: Path, metadata: str | None) -> Path:
    if metadata is not None:
        (tmp_path / "model-metadata.yaml").write_text(metadata)
    return tmp_path


def test_metadata_labels_stay_strings_as_datarobot_reads_them(tmp_path: Path) -> None:
    target = Target.from_sources(bundle_with(tmp_path, BINARY_METADATA), {})
    assert target == Target("binary", ("1", "0"), "churned") and target.is_classification
    assert target.to_dict() == {
        "targetType": "binary",
        "targetName": "churned",
        "positiveClassLabel": "1",
        "negativeClassLabel": "0",
    }


def test_datarobots_variables_win_over_the_metadata(tmp_path: Path) -> None:
    environ = {"TARGET_TYPE": "Binary", "POSITIVE_CLASS_LABEL": "yes", "NEGATIVE_CLASS_LABEL": "no"}
    assert Target.from_sources(bundle_with(tmp_path, BINARY_METADATA), environ).labels == ("yes", "no")
    regression = Target.from_sources(tmp_path, {"TARGET_TYPE": "REGRESSION"})
    assert regression == Target("regression", (), "churned") and not regression.is_classification
    assert regression.to_dict() == {"targetType": "regression", "targetName": "churned"}
    assert Target.from_sources(tmp_path, {"TARGET_TYPE": "regression", "TARGET_NAME": "price"}).name == "price"


def test_multiclass_labels_from_each_source(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, "targetType: multiclass\ninferenceModel:\n  classLabels: [3, 1, 2]\n")
    assert Target.from_sources(bundle, {}).labels == ("3", "1", "2")  # declared order, as strings
    assert Target.from_sources(bundle, {"CLASS_LABELS": " low  mid\thigh "}).labels == ("low", "mid", "high")
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("a label with spaces\n\nother\n", encoding="utf-8")
    from_file = Target.from_sources(bundle, {"CLASS_LABELS_FILE": str(labels_file), "CLASS_LABELS": "x y"})
    assert from_file.labels == ("a label with spaces", "other")
    assert from_file.to_dict() == {
        "targetType": "multiclass",
        "targetName": None,
        "classLabels": ["a label with spaces", "other"],
    }


@pytest.mark.parametrize(
    ("metadata", "environ", "says"),
    [
        (None, {}, "target type '' is not one of regression, binary"),
        ("targetType: clustering\n", {}, "target type 'clustering' is not one of"),
        ("targetType: binary\ninferenceModel:\n  positiveClassLabel: a\n", {}, "a binary model needs two different"),
        (BINARY_METADATA, {"NEGATIVE_CLASS_LABEL": "1"}, "a binary model needs two different labels"),
        ("targetType: multiclass\ninferenceModel:\n  classLabels: [a]\n", {}, "a multiclass model needs 2 or more"),
        ("targetType: multiclass\n", {"CLASS_LABELS": "a b a"}, "a multiclass model needs 2 or more different"),
        ("targetType: multiclass\ninferenceModel:\n  classLabels: [a, '']\n", {}, "a multiclass model needs 2"),
    ],
)
def test_a_target_that_cannot_be_served_says_what_to_set(
    tmp_path: Path, metadata: str | None, environ: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Target.from_sources(bundle_with(tmp_path, metadata), environ)
    assert str(raised.value).startswith(says)
    assert "model-metadata.yaml" in str(raised.value)


def test_an_unreadable_labels_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.txt"
    with pytest.raises(ConfigurationError, match=f"CLASS_LABELS_FILE {missing} cannot be read: No such file"):
        Target.from_sources(tmp_path, {"TARGET_TYPE": "multiclass", "CLASS_LABELS_FILE": str(missing)})


def test_metadata_that_is_not_a_mapping_says_nothing(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, "- a list\n- not a model\n")
    assert Target.from_sources(bundle, {"TARGET_TYPE": "anomaly"}) == Target("anomaly")
    (tmp_path / "model-metadata.yaml").write_text("targetType: regression\ninferenceModel: [not, a, mapping]\n")
    assert Target.from_sources(tmp_path, {}) == Target("regression")
    (tmp_path / "model-metadata.yaml").write_text("targetType: regression\ninferenceModel:\n  targetName: [x]\n")
    assert Target.from_sources(tmp_path, {}).name is None


def test_an_oversized_metadata_file_is_not_parsed(tmp_path: Path) -> None:
    (tmp_path / "model-metadata.yaml").write_bytes(b"#" * (METADATA_MAX_BYTES + 1))
    with pytest.raises(ConfigurationError, match=f"model-metadata.yaml is larger than {METADATA_MAX_BYTES} bytes"):
        Target.from_sources(tmp_path, {"TARGET_TYPE": "regression"})
