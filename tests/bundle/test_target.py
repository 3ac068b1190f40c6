"""One home for the target rules: init, test-local, model-metadata.yaml and the emulator agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.metadata import ModelMetadata, validate_metadata
from cmkit.target import API_FIELDS, FLAGS, METADATA_FIELDS, TargetSpec
from tests.support.emulator_support import FlaskEmulator

CASES = [
    # (spec, the field at fault, a fragment of the message)
    (TargetSpec("binary", "yes", None), "positiveClassLabel", "binary models need both class labels"),
    (TargetSpec("binary", "0", "0"), "negativeClassLabel", "are both '0'"),
    (TargetSpec("binary", "a", "b", ["a", "b"]), "classLabels", "binary models take"),
    (TargetSpec("multiclass", class_labels=["a"]), "classLabels", "need 2 or more class labels"),
    (TargetSpec("multiclass", class_labels=["a", "", "b"]), "classLabels", "holds an empty label"),
    (TargetSpec("multiclass", class_labels=["a", "b", "a"]), "classLabels", "repeats 'a'"),
    (TargetSpec("multiclass", "a", None, ["a", "b"]), "positiveClassLabel", "multiclass models take"),
    (TargetSpec("regression", class_labels=["a", "b"]), "classLabels", "regression models take no class labels"),
    (TargetSpec("textgeneration", "1", "0"), "positiveClassLabel", "textgeneration models take no class labels"),
]


@pytest.mark.parametrize(("spec", "field", "fragment"), CASES)
def test_each_rule_names_its_field_in_every_spelling(spec: TargetSpec, field: str, fragment: str) -> None:
    (problem,) = spec.problems()
    assert problem.field == field and fragment in problem.text(API_FIELDS)
    assert FLAGS[field] in problem.text(FLAGS) or FLAGS["classLabels"] in problem.text(FLAGS)
    assert "inferenceModel." in problem.text(METADATA_FIELDS)


def test_good_targets_have_no_problems() -> None:
    for spec in (
        TargetSpec("regression"),
        TargetSpec("binary", "yes", "no"),
        TargetSpec("multiclass", class_labels=["a", "b", "c"]),
    ):
        assert spec.problems() == []
    assert TargetSpec("binary", "yes", "no").target().labels == ("yes", "no")


def test_init_and_test_local_refuse_an_empty_class_label_alike(tmp_path: Path) -> None:
    # test-local used to drop the empty label silently while init refused it.
    runner = CliRunner()
    init = runner.invoke(main, ["init", str(tmp_path / "m"), "--target-type", "multiclass", "--class-labels", "a,,b"])
    bundle = tmp_path / "ok"
    assert runner.invoke(main, ["init", str(bundle), "--target-type", "regression"]).exit_code == 0
    local = runner.invoke(
        main,
        ["test-local", str(bundle), "--target-type", "multiclass", "--class-labels", "a,,b", "--runtime", "process"],
    )
    assert init.exit_code == local.exit_code == 2
    for result in (init, local):
        assert "--class-labels holds an empty label" in result.output


def test_metadata_and_the_emulator_apply_the_same_rule(tmp_path: Path) -> None:
    document = {
        "name": "m",
        "type": "inference",
        "targetType": "multiclass",
        "inferenceModel": {"classLabels": ["a", "", "b"]},
    }
    meta = ModelMetadata(tmp_path / "model-metadata.yaml", document)
    assert any("inferenceModel.classLabels holds an empty label" in p.message for p in validate_metadata(meta))
    emulator = FlaskEmulator(tmp_path / "data")
    try:
        body = {"name": "m", "targetType": "Multiclass", "targetName": "y", "classLabels": ["a", "", "b"]}
        response = emulator.request("POST", "customModels/", json={**body, "customModelType": "inference"})
    finally:
        emulator.close()
    assert response.status_code == 422
    assert response.get_json()["errors"]["classLabels"] == "classLabels holds an empty label"
