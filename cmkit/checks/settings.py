"""The check settings a user gives: levels (`--check NAME=LEVEL`) and parameters (`--check-parameter`).

One home for what a configuration may say, next to the check registry (`results`): test-local
and push read flags through here, and the levels a configured check implies are the same for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cmkit.checks.parameters import ParameterError, parse_parameters
from cmkit.checks.results import (
    CHECK_NAMES,
    ERROR_CHECK,
    LEVELS,
    LONG_RUNNING_SERVICE,
    NULL_VALUE_IMPUTATION,
    PERFORMANCE,
    PREDICTION_VERIFICATION,
    SIDE_EFFECTS,
    STABILITY,
)
from cmkit.errors import InputError
from cmkit.modeldefs import TestSection

# The GitHub Action's check keys (model.yaml's test.checks) and the API's names for them.
ACTION_CHECKS = {
    "null_value_imputation": NULL_VALUE_IMPUTATION,
    "side_effects": SIDE_EFFECTS,
    "prediction_verification": PREDICTION_VERIFICATION,
    "performance": PERFORMANCE,
    "stability": STABILITY,
}


def definition_levels(test: TestSection) -> dict[str, str]:
    """A model.yaml test's `configuration`, as the Action builds it: a check it does not enable is skipped."""
    levels = {LONG_RUNNING_SERVICE: "fail", ERROR_CHECK: "fail"}
    for key, name in ACTION_CHECKS.items():
        setting = test.checks.get(key)
        levels[name] = setting.level if setting else "skip"
    return levels


def definition_parameters(test: TestSection) -> dict[str, dict[str, Any]]:
    """A model.yaml test's `parameters`: those of its enabled checks, in the API's names."""
    return {
        ACTION_CHECKS[key]: dict(setting.parameters)
        for key, setting in test.checks.items()
        if setting.enabled and setting.parameters
    }


def parse_check_settings(values: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """`NAME=LEVEL` strings (the `--check` flag) -> {name: level}."""
    if isinstance(values, Mapping):
        return dict(values)
    settings = {}
    for value in values:
        name, sep, level = value.partition("=")
        if not sep or name not in CHECK_NAMES or level not in LEVELS:
            raise InputError(
                f"bad --check '{value}'", hint=f"use NAME=fail|warn|skip with NAME in {', '.join(CHECK_NAMES)}"
            )
        settings[name] = level
    return settings


def validate_levels(configuration: Mapping[str, str]) -> None:
    """A whole configuration (names, levels), as the API accepts it."""
    for name, level in configuration.items():
        if name not in CHECK_NAMES or level not in LEVELS:
            raise InputError(
                f"bad check setting '{name}={level}'", hint=f"use NAME=fail|warn|skip, NAME in {CHECK_NAMES}"
            )
    if configuration.get(LONG_RUNNING_SERVICE, "fail") != "fail":
        raise InputError("longRunningService can only be 'fail' (as in the API)")


def implied_levels(parameters: Mapping[str, Any], verification_dataset: bool) -> dict[str, str]:
    """Configuring one of the later checks turns it on (at `fail`), as ticking it in DataRobot does."""
    implied = {name: "fail" for name in (PERFORMANCE, STABILITY) if parameters.get(name)}
    if verification_dataset:
        implied[PREDICTION_VERIFICATION] = "fail"
    return implied


def parameter_settings(
    values: Iterable[str],
    predictions_column: str | None = None,
    comparison_precision: float | None = None,
    matching_rate: float | None = None,
) -> dict[str, dict[str, Any]]:
    """`CHECK.NAME=VALUE` strings (the `--check-parameter` flag) and the verification flags -> `parameters`.

    The request's `parameters`, not yet checked: test-local parses them when it resolves the run.
    """
    parameters: dict[str, dict[str, Any]] = {}
    for value in values:
        key, sep, text = value.partition("=")
        check, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise InputError(
                f"bad --check-parameter '{value}'",
                hint="use CHECK.NAME=VALUE, e.g. performanceCheck.maxResponseTime=5",
            )
        parameters.setdefault(check, {})[name] = _number_or_text(text)
    verification = {
        "predictionsColumn": predictions_column,
        "comparisonPrecision": comparison_precision,
        "matchingRate": matching_rate,
    }
    for name, setting in verification.items():
        if setting is not None:
            parameters.setdefault(PREDICTION_VERIFICATION, {})[name] = setting
    return parameters


def parse_parameter_settings(
    values: Iterable[str],
    predictions_column: str | None = None,
    comparison_precision: float | None = None,
    matching_rate: float | None = None,
) -> dict[str, dict[str, Any]]:
    """`parameter_settings`, checked now (push sends them as they are, and refuses bad ones before uploading)."""
    parameters = parameter_settings(values, predictions_column, comparison_precision, matching_rate)
    try:
        parse_parameters(parameters)
    except ParameterError as exc:
        raise InputError(f"bad check parameters: {exc}") from exc
    return parameters


def _number_or_text(text: str) -> Any:
    """`5` -> 5, `0.5` -> 0.5, `5.0` -> 5.0 (as written), anything else the text itself."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number
