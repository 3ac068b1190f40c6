"""A GitHub Action model.yaml fed into test-local's resolution: target, checks, parameters, resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.engine.choice import PROCESS, RuntimeChoice
from cmkit.modeldefs import definition_for
from cmkit.resolvedrun import TestLocalConfig, resolve_config, resolve_server
from cmkit_runtime.target_types import TargetType
from tests.support.bundles import write_quick_bundle

ENV = "5e8c889607389fe0f466c72d"
DATA = "62ef8e053f9b9493db97af67"
PROCESS_RUNTIME = RuntimeChoice(PROCESS)


def _definition(folder: Path, target_type: str = "Regression", target: str = "y", test: str = "") -> None:
    (folder / "model.yaml").write_text(
        f"user_provided_model_id: quick\ntarget_type: {target_type}\n"
        f"settings:\n  name: Quick\n  target_name: {target}\n"
        f"version:\n  model_environment_id: {ENV}\n  memory: 256Mi\n  egress_network_policy: NONE\n" + test,
        encoding="utf-8",
    )


CHECKS = f"""test:
  test_data_id: {DATA}
  memory: 128Mi
  checks:
    side_effects: {{enabled: true, block_deployment_if_fails: false}}
    performance: {{enabled: true, block_deployment_if_fails: true, maximum_response_time: 7}}
    prediction_verification:
      enabled: true
      block_deployment_if_fails: true
      output_dataset_id: {DATA}
      predictions_column: expected
"""


def test_the_definition_sets_the_checks_their_parameters_and_the_resources(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "m")
    _definition(bundle, test=CHECKS)
    run = resolve_config(TestLocalConfig(bundle, definition=definition_for(bundle)), PROCESS_RUNTIME)
    assert dict(run.checks) == {
        "longRunningService": "fail",
        "errorCheck": "fail",
        "nullValueImputation": "skip",  # the Action skips what its test does not enable
        "sideEffects": "warn",
        "predictionVerificationCheck": "skip",  # a DataRobot dataset: no local file to compare with
        "performanceCheck": "fail",
        "stabilityCheck": "skip",
    }
    assert run.parameters.performance.maxResponseTime == 7
    assert run.server.maximum_memory == 128 * 2**20  # the test's memory over the version's
    assert run.server.network_egress == "NONE"
    assert run.target.type is TargetType.REGRESSION and run.target.name == "y"


def test_flags_stand_over_the_definition(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "m")
    _definition(bundle, test=CHECKS)
    config = TestLocalConfig(
        bundle,
        definition=definition_for(bundle),
        checks={"sideEffects": "skip"},
        parameters={"performanceCheck": {"maxResponseTime": 3}},
        maximum_memory=2**30,
        network_egress="PUBLIC",
    )
    run = resolve_config(config, PROCESS_RUNTIME)
    assert run.checks["sideEffects"] == "skip" and run.parameters.performance.maxResponseTime == 3
    assert (run.server.maximum_memory, run.server.network_egress) == (2**30, "PUBLIC")


def test_without_a_test_section_test_local_keeps_its_defaults(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "m")
    _definition(bundle)
    run = resolve_config(TestLocalConfig(bundle, definition=definition_for(bundle)), PROCESS_RUNTIME)
    assert run.checks["nullValueImputation"] == "warn" and run.server.maximum_memory == 256 * 2**20


def test_model_yaml_wins_over_the_metadata_and_the_run_says_so(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "m")  # model-metadata.yaml: regression
    _definition(bundle, target_type='"Anomaly Detection"')
    run = resolve_config(TestLocalConfig(bundle, definition=definition_for(bundle)), PROCESS_RUNTIME)
    assert run.target.type is TargetType.ANOMALY
    (warning,) = [w for w in run.server.warnings if "model.yaml wins" in w]
    assert warning.startswith(f"{bundle / 'model.yaml'}:2: target type")
    served = resolve_server(TestLocalConfig(bundle, definition=definition_for(bundle)), PROCESS_RUNTIME)
    assert served.contract["TARGET_TYPE"] == "anomaly"


def test_an_unstructured_kind_is_served_as_unstructured(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "m")
    _definition(bundle, target_type='"Unstructured (Regression)"')
    run = resolve_config(TestLocalConfig(bundle, definition=definition_for(bundle)), PROCESS_RUNTIME)
    assert run.target.type is TargetType.UNSTRUCTURED


def test_test_local_reads_model_yaml_beside_the_bundle(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "m")
    only_side_effects = f"test:\n  test_data_id: {DATA}\n  checks:\n" + (
        "    side_effects: {enabled: true, block_deployment_if_fails: true}\n"
    )
    _definition(bundle, test=only_side_effects)
    result = CliRunner().invoke(main, ["test-local", str(bundle), "--runtime", "process", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["configuration"]["sideEffects"] == "fail"
    assert document["configuration"]["nullValueImputation"] == "skip"
    assert document["testingStatus"]["sideEffects"]["status"] == "succeeded"


@pytest.mark.parametrize("command", ["test-local", "serve", "push"])
def test_a_broken_definition_stops_the_command_with_its_file_and_line(tmp_path: Path, command: str) -> None:
    bundle = write_quick_bundle(tmp_path / "m")
    _definition(bundle)
    text = (bundle / "model.yaml").read_text().replace("target_name: y", "target_name: 5")
    (bundle / "model.yaml").write_text(text)
    result = CliRunner().invoke(main, [command, str(bundle), "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert (error["file"], error["line"]) == (str(bundle / "model.yaml"), 5)
