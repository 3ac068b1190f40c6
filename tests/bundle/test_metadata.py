"""model-metadata.yaml's rules: declared as a JSON schema, each finding at the line of its key."""

from __future__ import annotations

from pathlib import Path

from jsonschema import Draft202012Validator

from cmkit.metadata import SCHEMA, load_metadata, validate_metadata


def _problems(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    (tmp_path / "model-metadata.yaml").write_text(text)
    meta = load_metadata(tmp_path)
    assert meta is not None
    return [(p.line, p.severity, p.message) for p in validate_metadata(meta, tmp_path)]


def test_the_schema_is_a_valid_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_every_finding_points_at_its_own_key(tmp_path: Path) -> None:
    text = (
        "name: m\n"  # 1
        "targetType: Binary\n"  # 2: case does not matter, as for the API
        "inferenceModel:\n"  # 3
        "  positiveClassLabel: 1\n"  # 4
        "  negativeClassLabel: 0\n"  # 5
        "  predictionThreshold: 1.5\n"  # 6
        "  flavour: x\n"  # 7
        "validation: ''\n"  # 8
        "extra: 1\n"  # 9
    )
    assert _problems(tmp_path, text) == [
        (6, "error", "predictionThreshold must be a number between 0 and 1"),
        (7, "warning", "unknown key 'inferenceModel.flavour' (ignored by DataRobot)"),
        (8, "error", "'validation' must be a mapping"),
        (9, "warning", "unknown key 'extra' (ignored by DataRobot)"),
    ]


def test_missing_and_wrong_values(tmp_path: Path) -> None:
    assert _problems(tmp_path, "type: inference\ntargetType: regression\n") == [(1, "error", "missing 'name'")]
    assert _problems(tmp_path, "name: m\ntype: training\ntargetType: nope\n") == [
        (2, "error", "type 'training' is not supported: cmkit handles 'inference'"),
        (
            3,
            "error",
            "targetType 'nope' is not supported; use one of regression, binary, multiclass, anomaly, textgeneration, "
            "unstructured, transform, geopoint, vectordatabase, agenticworkflow",
        ),
    ]
    labels = "name: m\ntargetType: multiclass\ninferenceModel:\n  classLabels: a,b\n"
    assert _problems(tmp_path, labels) == [(4, "error", "inferenceModel.classLabels must be a list of labels")]


def test_label_rules_come_from_the_target_spec(tmp_path: Path) -> None:
    text = "name: m\ntargetType: multiclass\ninferenceModel:\n  classLabels: [a, b, a]\n"
    ((line, severity, message),) = _problems(tmp_path, text)
    assert (line, severity) == (3, "error")
    assert "inferenceModel.classLabels repeats 'a'" in message


def test_a_good_file_has_no_findings(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a\n1\n")
    text = (
        "name: m\ntype: inference\ntargetType: regression\nenvironmentID: e\n"
        "inferenceModel:\n  targetName: y\n  predictionThreshold: 0.5\nvalidation:\n  input: data.csv\n"
    )
    assert _problems(tmp_path, text) == []
