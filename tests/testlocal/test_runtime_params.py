"""python3_sklearn_runtime_params through test-local and serve: DataRobot's MLOPS_RUNTIME_PARAM_*
variables from the metadata's defaults and DRUM's --runtime-params-file, read by an unchanged
`from datarobot_drum import RuntimeParameters`, with predictions equal to `drum score`'s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.errors import InputError
from cmkit.resolvedrun import TestLocalConfig, resolve_config
from tests.support.drum import drum_score
from tests.support.frameworks import runtime_params_bundle
from tests.support.serving import serve
from tests.testlocal.test_samples import run, statuses

SECRET = "sk-do-not-print-me"
VALUES = f"""\
option1: from the values file
number1: 42
bool_var: false
encryption_key:
  credentialType: api_token
  apiToken: {SECRET}
"""


def values_file(tmp_path: Path, text: str = VALUES) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(text)
    return path


def test_the_values_reach_the_server_as_datarobots_variables(tmp_path: Path) -> None:
    bundle = runtime_params_bundle(tmp_path / "model", artifact=False)
    config = TestLocalConfig(bundle, runtime="process", runtime_params_file=values_file(tmp_path))
    contract = resolve_config(config).server.contract
    assert json.loads(contract["MLOPS_RUNTIME_PARAM_number1"]) == {"type": "numeric", "payload": 42.0}
    assert json.loads(contract["MLOPS_RUNTIME_PARAM_encryption_key"])["payload"]["apiToken"] == SECRET
    assert contract["TARGET_NAME"] == "progression"


def test_a_required_parameter_without_a_value_is_one_error_before_the_server_starts(tmp_path: Path) -> None:
    bundle = runtime_params_bundle(tmp_path / "model", artifact=False)
    file = values_file(tmp_path, "number1: null\n")
    with pytest.raises(InputError, match="'number1' is required") as raised:
        resolve_config(TestLocalConfig(bundle, runtime="process", runtime_params_file=file))
    assert raised.value.file == file
    result = CliRunner().invoke(
        main, ["test-local", str(bundle), "--runtime", "process", "--runtime-params-file", str(file)]
    )
    assert result.exit_code == 2 and "'number1' is required (allowEmpty: false)" in result.output


def test_a_values_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    bundle = runtime_params_bundle(tmp_path / "model", artifact=False)
    with pytest.raises(InputError, match="must map each parameter"):
        resolve_config(TestLocalConfig(bundle, runtime_params_file=values_file(tmp_path, "- a\n")))
    with pytest.raises(InputError, match="not YAML"):
        resolve_config(TestLocalConfig(bundle, runtime_params_file=values_file(tmp_path, "a: [\n")))


@pytest.mark.slow
@pytest.mark.parametrize("with_values", [False, True], ids=["defaults", "values-file"])
def test_the_template_passes_test_local_and_the_secret_is_never_printed(tmp_path: Path, with_values: bool) -> None:
    bundle = runtime_params_bundle(tmp_path / "model")
    arguments = ["test-local", str(bundle), "--runtime", "process", "--json"]
    if with_values:
        arguments += ["--runtime-params-file", str(values_file(tmp_path))]
    result = CliRunner().invoke(main, arguments)
    document = json.loads(result.stdout)
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]
    assert SECRET not in result.output


@pytest.mark.slow
def test_predictions_with_the_values_are_drums(tmp_path: Path) -> None:
    bundle = runtime_params_bundle(tmp_path / "model")
    file = values_file(tmp_path)
    contract = resolve_config(TestLocalConfig(bundle, runtime="process", runtime_params_file=file)).server.contract
    data = pd.read_csv(bundle / "data" / "test.csv")
    columns = {name: [None if pd.isna(v) else v for v in data[name]] for name in data.columns}
    with serve(bundle, tmp_path / "server.log", prefix=None, env=dict(contract)) as server:
        response = server.predict(columns)
    assert response.status_code == 200, response.text
    ours = np.asarray(response.json()["predictions"], dtype=float)
    theirs = drum_score(bundle, bundle / "data" / "test.csv", "regression", (), "--runtime-params-file", str(file))
    np.testing.assert_allclose(ours, theirs["Predictions"].to_numpy(float), rtol=0, atol=1e-6)
    assert (ours > 42 + len("from the values file")).all()  # the values moved them: not the defaults


@pytest.mark.docker
@pytest.mark.slow
def test_the_template_runs_in_docker_with_a_values_file(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bundle = runtime_params_bundle(tmp_path / "model")
    document = run(bundle, "docker", request, runtime_params_file=values_file(tmp_path))
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]
