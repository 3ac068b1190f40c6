"""runtimeParameterDefinitions and their values, as DataRobot and DRUM read them (cmkit_runtime/runtime_params.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from cmkit_runtime.loader import DRUM_SHIM
from cmkit_runtime.runtime_params import Definition, RuntimeParameterError, parse_definitions, variables
from tests.support.frameworks import RUNTIME_PARAMS_METADATA

SECRET = "sk-do-not-print-me"


def template_definitions() -> list[Definition]:
    # BaseLoader: every scalar a string, as cmkit's metadata reader gives them.
    return parse_definitions(yaml.load(RUNTIME_PARAMS_METADATA, Loader=yaml.BaseLoader)["runtimeParameterDefinitions"])


def test_the_templates_definitions_give_datarobots_variables_with_the_defaults() -> None:
    environment = variables(template_definitions(), {})
    assert {name: json.loads(value) for name, value in environment.items()} == {
        "MLOPS_RUNTIME_PARAM_option1": {"type": "string", "payload": "ABCD 123"},
        "MLOPS_RUNTIME_PARAM_option2": {"type": "string", "payload": None},
        "MLOPS_RUNTIME_PARAM_encryption_key": {"type": "credential", "payload": None},
        "MLOPS_RUNTIME_PARAM_bool_var": {"type": "boolean", "payload": True},
        "MLOPS_RUNTIME_PARAM_number1": {"type": "numeric", "payload": 0.0},
    }


def test_values_replace_the_defaults_and_a_credential_is_a_mapping() -> None:
    credential = {"credentialType": "api_token", "apiToken": SECRET}
    environment = variables(template_definitions(), {"number1": 42, "encryption_key": credential})
    assert json.loads(environment["MLOPS_RUNTIME_PARAM_number1"])["payload"] == 42.0
    assert json.loads(environment["MLOPS_RUNTIME_PARAM_encryption_key"])["payload"] == credential


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"number1": 101}, "runtime parameter 'number1' (numeric): its value is above maxValue 100"),
        ({"number1": None}, "runtime parameter 'number1' is required (allowEmpty: false) and has no value"),
        ({"bool_var": "yes"}, "runtime parameter 'bool_var' (boolean): its value is not a boolean"),
        ({"encryption_key": SECRET}, "runtime parameter 'encryption_key' (credential): its value must be a mapping"),
        ({"option9": "x"}, "runtime parameter 'option9' has a value but no definition"),
        ({"option1": 5}, "runtime parameter 'option1' (string): its value must be a string"),
    ],
)
def test_a_value_datarobot_would_refuse_is_named_without_its_value(values: dict[str, Any], says: str) -> None:
    with pytest.raises(RuntimeParameterError) as raised:
        variables(template_definitions(), values)
    assert str(raised.value).startswith(says) and SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"fieldName": "a"}, "list of parameters"),
        ([{"type": "string"}], "item 1 needs a fieldName"),
        ([{"fieldName": "a", "type": "text"}], "'a': type must be one of string, boolean, numeric"),
        ([{"fieldName": "a", "type": "string"}, {"fieldName": "a", "type": "string"}], "'a' is defined twice"),
        ([{"fieldName": "a", "type": "string", "minValue": 1}], "apply to numeric ones only"),
        ([{"fieldName": "a", "type": "numeric", "maxValue": "ten"}], "minValue and maxValue must be numbers"),
        ([{"fieldName": "a", "type": "numeric", "defaultValue": "7", "maxValue": "5"}], "defaultValue is above"),
        ([{"fieldName": "a", "type": "string", "colour": "red"}], "unknown key 'colour'"),
        (["a"], "item 1 must be a mapping"),
    ],
)
def test_definitions_drum_refuses_are_refused(raw: Any, says: str) -> None:
    with pytest.raises(RuntimeParameterError, match=says):
        parse_definitions(raw)


def test_the_shim_reads_what_datarobot_sets_as_drums_class_does() -> None:
    # A fresh interpreter without DRUM: only the shim can answer the import.
    code = (
        "import sys; sys.path.append(sys.argv[1]);"
        "from datarobot_drum import RuntimeParameters as R;"
        "print(R.get('number1'), R.has('number1'), R.has('nope'));"
        "R.get('nope')"
    )
    environ = {**os.environ, "MLOPS_RUNTIME_PARAM_number1": json.dumps({"type": "numeric", "payload": 4.0})}
    result = subprocess.run([sys.executable, "-c", code, str(DRUM_SHIM)], capture_output=True, text=True, env=environ)
    assert result.stdout.split() == ["4.0", "True", "False"]
    assert "ValueError: Runtime parameter 'nope' does not exist!" in result.stderr
