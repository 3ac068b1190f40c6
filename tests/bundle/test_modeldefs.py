"""model.yaml / models.yaml of DataRobot's GitHub Action read as the Action reads them (cmkit/modeldefs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.checks.settings import definition_levels, definition_parameters
from cmkit.errors import InputError
from cmkit.lint import lint_bundle
from cmkit.metadata import load_metadata
from cmkit.modeldefs import (
    definition_for,
    definition_paths,
    definitions_for,
    disagreements,
    load_definitions,
    resolve_namespace,
)
from cmkit_runtime.target_types import TargetType
from tests.support.bundles import write_quick_bundle

ENV = "5e8c889607389fe0f466c72d"
DATA = "62ef8e053f9b9493db97af67"

# The Action's own sample (tests/models/py3_sklearn/model.yaml at 4c5bd07), key for key.
ACTION_SAMPLE = f"""\
user_provided_model_id: awesome-model-id

target_type: Regression

settings:
  name: My Awsome GitHub Model [GitHub CI/CD]
  target_name: Grade 2014

version:
  model_environment_id: {ENV}
  exclude_glob_pattern: [model.yaml]

test:
  test_data_id: {DATA}
  skip: true
"""

FULL = f"""\
user_provided_model_id: churn
target_type: Binary
settings:
  name: Churn
  description: who leaves
  target_name: churned
  positive_class_label: "yes"
  negative_class_label: "no"
version:
  model_environment_id: {ENV}
  memory: 512Mi
  replicas: 2
  egress_network_policy: NONE
  include_glob_pattern: ["**/*.py", data/]
test:
  test_data_id: {DATA}
  memory: 1Gi
  checks:
    null_value_imputation:
      enabled: true
      block_deployment_if_fails: true
    side_effects:
      enabled: false
      block_deployment_if_fails: true
    performance:
      enabled: true
      block_deployment_if_fails: false
      maximum_response_time: 5
      number_of_parallel_users: 2
    stability:
      enabled: true
      block_deployment_if_fails: true
      total_prediction_requests: 50
      passing_rate: 90
      minimum_payload_size: 2
      maximum_payload_size: 20
    prediction_verification:
      enabled: true
      block_deployment_if_fails: true
      output_dataset_id: {DATA}
      predictions_column: expected
      match_threshold: 0.01
      passing_match_rate: 95
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_actions_own_sample_reads_as_the_action_reads_it(tmp_path: Path) -> None:
    (definition,) = load_definitions(_write(tmp_path / "m" / "model.yaml", ACTION_SAMPLE))
    assert definition.user_provided_id == "awesome-model-id"
    assert definition.api_target_type is TargetType.REGRESSION and not definition.unstructured_kind
    assert (definition.name, definition.target_name) == ("My Awsome GitHub Model [GitHub CI/CD]", "Grade 2014")
    assert definition.version.environment_id == ENV and definition.version.exclude == ("model.yaml",)
    assert definition.test is not None and definition.test.skip and definition.test.test_data_id == DATA
    assert definition.model_path == tmp_path / "m"
    assert definition.where("settings", "target_name") == (tmp_path / "m" / "model.yaml", 7)


def test_every_section_types_and_converts_as_the_action_sends_it(tmp_path: Path) -> None:
    (definition,) = load_definitions(_write(tmp_path / "model.yaml", FULL))
    assert (definition.positive_class_label, definition.negative_class_label) == ("yes", "no")
    version = definition.version
    assert (version.memory, version.replicas, version.egress) == (512 * 2**20, 2, "NONE")
    assert version.include == ("**/*.py", "data/")
    test = definition.test
    assert test is not None and test.memory == 2**30
    assert definition_levels(test) == {
        "longRunningService": "fail",
        "errorCheck": "fail",
        "nullValueImputation": "fail",
        "sideEffects": "skip",  # enabled: false
        "predictionVerificationCheck": "fail",
        "performanceCheck": "warn",  # not blocking
        "stabilityCheck": "fail",
    }
    assert definition_parameters(test) == {
        "performanceCheck": {"maxResponseTime": 5, "numParallelUsers": 2},
        "stabilityCheck": {"numPredictions": 50, "passingRate": 0.9, "minPayloadSize": 2, "maxPayloadSize": 20},
        "predictionVerificationCheck": {
            "datasetId": DATA,
            "predictionsColumn": "expected",
            "comparisonPrecision": 0.01,
            "matchingRate": 0.95,
        },
    }


def test_a_test_section_without_checks_skips_the_five_as_the_action_configures_it(tmp_path: Path) -> None:
    text = ACTION_SAMPLE.replace("  skip: true\n", "")
    (definition,) = load_definitions(_write(tmp_path / "model.yaml", text))
    assert definition.test is not None
    levels = definition_levels(definition.test)
    assert [name for name, level in levels.items() if level != "skip"] == ["longRunningService", "errorCheck"]


def test_models_yaml_lists_many_with_paths_from_its_folder_or_the_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    entry = "    model_metadata:\n      user_provided_model_id: ID\n      target_type: KIND\n" + (
        f"      settings: {{name: N, target_name: t}}\n      version: {{model_environment_id: {ENV}}}\n"
    )
    text = (
        "datarobot_models:\n"
        + "  - model_path: a\n"
        + entry.replace("ID", "a").replace("KIND", "Regression")
        + "  - model_path: $ROOT/shared/b\n"
        + entry.replace("ID", "b").replace("KIND", '"Unstructured (Regression)"')
    )
    first, second = load_definitions(_write(tmp_path / "defs" / "models.yaml", text))
    assert first.model_path == tmp_path / "defs" / "a" and first.line == 3
    assert second.model_path == tmp_path / "shared" / "b"
    assert second.api_target_type is TargetType.REGRESSION and second.unstructured_kind
    assert second.served_type is TargetType.UNSTRUCTURED
    (tmp_path / "defs" / "a").mkdir()
    assert [d.user_provided_id for d in definitions_for(tmp_path / "defs" / "a")] == ["a"]


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (("target_type: Regression", "target_type: regression"), 3, "not one the GitHub Action knows"),
        (("  name: My Awsome GitHub Model [GitHub CI/CD]\n", ""), 5, "missing 'settings.name'"),
        (("  target_name: Grade 2014", "  target_name: Grade 2014\n  colour: red"), 8, "unknown key 'settings.colour'"),
        ((f"model_environment_id: {ENV}", "model_environment_id: nope"), 10, "not a DataRobot id"),
        (("  skip: true", "  skip: yes please"), 15, "must be true or false"),
        (("  skip: true", "  skip: false\n  memory: 12 GB"), 16, "not a memory size"),
        (("  exclude_glob_pattern: [model.yaml]", "  replicas: 0"), 11, "'version.replicas' must be a whole number"),
        (("  skip: true", "  skip: false"), 13, "needs 'test.test_data_id'"),
        (("user_provided_model_id: awesome-model-id", "user_provided_model_id: 7"), 1, "non-empty string"),
        (
            (f"version:\n  model_environment_id: {ENV}\n  exclude_glob_pattern: [model.yaml]", "version: [1]"),
            9,
            "'version' must be a mapping",
        ),
        (("settings:", "settings: {"), 6, "invalid YAML"),
    ],
)
def test_what_the_action_refuses_is_an_input_error_at_the_keys_line(
    tmp_path: Path, change: tuple[str, str], line: int, words: str
) -> None:
    text = ACTION_SAMPLE.replace(*change)
    if "needs 'test" in words:
        text = text.replace(f"  test_data_id: {DATA}\n", "")
    path = _write(tmp_path / "model.yaml", text)
    with pytest.raises(InputError) as caught:
        load_definitions(path)
    assert caught.value.file == path
    assert caught.value.line == line, str(caught.value)
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ('  positive_class_label: "yes"\n', "binary models need both class labels"),
        ("  positive_class_label: 1\n  negative_class_label: 0\n", "must be a non-empty string; got 1 (int)"),
        ('  positive_class_label: "a"\n  negative_class_label: "a"\n', "must differ"),
        (
            '  prediction_threshold: 0.5\n  positive_class_label: "y"\n  negative_class_label: "n"\n',
            "exclude each other",
        ),
    ],
)
def test_binary_labels_follow_the_actions_and_the_apis_rules(tmp_path: Path, settings: str, words: str) -> None:
    text = ACTION_SAMPLE.replace("Regression", "Binary").replace(
        "  target_name: Grade 2014\n", "  target_name: t\n" + settings
    )
    with pytest.raises(InputError) as caught:
        load_definitions(_write(tmp_path / "model.yaml", text))
    assert words in caught.value.message
    assert caught.value.line is not None and caught.value.line > 1


def test_a_model_defined_twice_in_models_yaml_is_refused_at_the_second(tmp_path: Path) -> None:
    entry = (
        "  - model_path: m\n    model_metadata:\n      user_provided_model_id: same\n      target_type: Regression\n"
        f"      settings: {{name: N, target_name: t}}\n      version: {{model_environment_id: {ENV}}}\n"
    )
    with pytest.raises(InputError) as caught:
        load_definitions(_write(tmp_path / "models.yaml", "datarobot_models:\n" + entry + entry))
    assert caught.value.line == 10 and "defined twice (first at line 3)" in caught.value.message


def test_yaml_that_is_no_model_definition_is_none(tmp_path: Path) -> None:
    assert load_definitions(_write(tmp_path / "ci.yaml", "jobs: {user_provided_model_id: x}\n")) == []
    deployment = "user_provided_model_id: m\nuser_provided_deployment_id: d\n"
    assert load_definitions(_write(tmp_path / "deployment.yaml", deployment)) == []


def test_the_namespace_rule_is_the_actions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (definition,) = load_definitions(_write(tmp_path / "model.yaml", ACTION_SAMPLE))
    assert definition.namespaced_id("team") == "team/awesome-model-id"
    assert definition.namespaced_id("team/") == "team/awesome-model-id"
    monkeypatch.setenv("GITHUB_REPOSITORY_ID", "123456")
    assert definition.namespaced_id() == "123456/awesome-model-id"
    monkeypatch.delenv("GITHUB_REPOSITORY_ID")
    with pytest.raises(InputError, match="namespace"):
        resolve_namespace(None)


def test_an_id_already_in_the_namespace_is_kept(tmp_path: Path) -> None:
    text = ACTION_SAMPLE.replace("awesome-model-id", "team/awesome-model-id")
    (definition,) = load_definitions(_write(tmp_path / "model.yaml", text))
    assert definition.namespaced_id("team") == "team/awesome-model-id"


def test_include_and_exclude_globs_pick_the_files_the_action_uploads(tmp_path: Path) -> None:
    for name in ("model.yaml", "custom.py", "lib/util.py", "data/a.csv", "notes.txt"):
        _write(tmp_path / name, "x")
    (definition,) = load_definitions(_write(tmp_path / "model.yaml", FULL))
    paths = ["model.yaml", "custom.py", "lib/util.py", "data/a.csv", "notes.txt"]
    assert definition_paths(definition, paths) == {"custom.py", "lib/util.py", "data/a.csv"}
    (sample,) = load_definitions(_write(tmp_path / "model.yaml", ACTION_SAMPLE))
    assert definition_paths(sample, paths) == set(paths) - {"model.yaml"}
    rooted = ACTION_SAMPLE.replace("[model.yaml]", "[$ROOT/common/]")
    (shared,) = load_definitions(_write(tmp_path / "model.yaml", rooted))
    with pytest.raises(InputError, match="repository's root"):
        definition_paths(shared, paths)


def test_where_the_two_files_disagree_lint_says_model_yaml_wins(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "m")  # model-metadata.yaml: regression, target y
    text = ACTION_SAMPLE.replace("Grade 2014", "y")
    _write(bundle / "model.yaml", text)
    meta = load_metadata(bundle)
    definition = definition_for(bundle)
    assert definition is not None and disagreements(definition, meta) == []
    _write(bundle / "model.yaml", ACTION_SAMPLE.replace("Regression", '"Anomaly Detection"'))
    definition = definition_for(bundle)
    assert definition is not None
    found = {d.field: d for d in disagreements(definition, meta)}
    assert set(found) == {"target type", "target name"}
    assert found["target name"].line == 7
    findings = [f for f in lint_bundle(bundle).findings if f.rule == "definition-disagrees"]
    assert [(f.file, f.line, f.severity) for f in findings] == [
        ("model.yaml", 3, "warning"),
        ("model.yaml", 7, "warning"),
    ]
    assert "model.yaml wins" in findings[0].message and "GitHub Action" in findings[0].message


def test_lint_reports_a_definition_the_action_refuses_as_an_error_finding(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "m")
    _write(bundle / "model.yaml", ACTION_SAMPLE.replace("target_type: Regression", "target_type: Nope"))
    report = lint_bundle(bundle)
    (finding,) = [f for f in report.findings if f.rule == "model-definition"]
    assert (finding.file, finding.line, finding.severity) == ("model.yaml", 3, "error")
    assert not report.ok


def test_two_definitions_of_one_folder_are_named_together(tmp_path: Path) -> None:
    _write(tmp_path / "one.yaml", ACTION_SAMPLE)
    _write(tmp_path / "two.yaml", ACTION_SAMPLE.replace("awesome-model-id", "other"))
    with pytest.raises(InputError, match="2 model definitions describe this folder"):
        definition_for(tmp_path)


def test_lint_judges_the_hooks_by_the_type_model_yaml_serves(tmp_path: Path) -> None:
    """A regression bundle's metadata, an Action definition saying Binary: a predict() returning classes is
    a binary model's problem, which lint reports by the definition's type (the one the Action creates)."""
    bundle = tmp_path / "m"
    (bundle / "data").mkdir(parents=True)
    (bundle / "custom.py").write_text(
        "def load_model(code_dir):\n    return object()\n\n\ndef predict(model, X):\n    return model.predict(X)\n"
    )
    (bundle / "model-metadata.yaml").write_text("name: m\ntype: inference\ntargetType: regression\n")
    binary = ACTION_SAMPLE.replace("Regression", "Binary").replace(
        "  target_name: Grade 2014\n", '  target_name: t\n  positive_class_label: "y"\n  negative_class_label: "n"\n'
    )
    assert "hooks-not-probabilities" not in {f.rule for f in lint_bundle(bundle).findings}
    _write(bundle / "model.yaml", binary)
    rules = {f.rule for f in lint_bundle(bundle).findings}
    assert {"hooks-not-probabilities", "definition-disagrees"} <= rules
