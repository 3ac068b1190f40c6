"""Settings of the three later checks, as `POST customModelTests/` names them in `parameters`.

One home for their names, defaults and ranges: test-local's flags, push and the emulator all
read them from here. The ranges are those DataRobot's custom-models GitHub Action enforces
before it sends a test (1-4 parallel users, 1-1800 s); rates are fractions in [0, 1] on the
wire (the Action divides its percentages by 100).

Defaults: the payload sizes (1-1000 rows) are the Action's; the 10 s per request is the limit
DataRobot's docs give for a single prediction request of its performance check. DataRobot's
public pages state no other default, so the rest are cmkit's choices, chosen strict
(`matchingRate` 1.0: every row must match) or cheap enough for a laptop (100 stability
requests, one user). docs/emulator.md lists them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from cmkit.checks.results import PERFORMANCE, PREDICTION_VERIFICATION, STABILITY

MAX_PARALLEL_USERS = 4
MAX_SECONDS = 1800


class ParameterError(ValueError):
    """Bad check parameters: `errors` maps `check.field` to the reason."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name} {reason}" for name, reason in errors.items()))


@dataclass(frozen=True)
class VerificationParameters:
    """predictionVerificationCheck: predictions vs a column of expected ones, row by row."""

    datasetId: str | None = None  # the API's reference to the expected-predictions dataset
    predictionsColumn: str | None = None
    comparisonPrecision: float = 0.001  # a row matches when |predicted - expected| <= this
    matchingRate: float = 1.0  # the check passes when at least this fraction of rows match


@dataclass(frozen=True)
class PerformanceParameters:
    """performanceCheck: latency under `numParallelUsers` concurrent clients."""

    maxResponseTime: float = 10.0  # seconds one request may take
    maxExecutionTime: float = 600.0  # seconds the whole check may take
    numParallelUsers: int = 1


@dataclass(frozen=True)
class StabilityParameters:
    """stabilityCheck: `numPredictions` requests of random sizes; enough of them must succeed."""

    numPredictions: int = 100
    passingRate: float = 0.95
    numParallelUsers: int = 1
    minPayloadSize: int = 1
    maxPayloadSize: int = 1000


@dataclass(frozen=True)
class CheckParameters:
    verification: VerificationParameters = field(default_factory=VerificationParameters)
    performance: PerformanceParameters = field(default_factory=PerformanceParameters)
    stability: StabilityParameters = field(default_factory=StabilityParameters)

    def to_api(self) -> dict[str, dict[str, Any]]:
        return {
            PREDICTION_VERIFICATION: {k: v for k, v in asdict(self.verification).items() if v is not None},
            PERFORMANCE: asdict(self.performance),
            STABILITY: asdict(self.stability),
        }


_CLASSES: dict[str, type] = {
    PREDICTION_VERIFICATION: VerificationParameters,
    PERFORMANCE: PerformanceParameters,
    STABILITY: StabilityParameters,
}
_ATTRIBUTES = {PREDICTION_VERIFICATION: "verification", PERFORMANCE: "performance", STABILITY: "stability"}


def _number(value: Any, integer: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if integer and int(value) != value:
        return None
    return value


_RANGES: dict[str, tuple[bool, float, float]] = {  # field: (integer, low, high)
    "comparisonPrecision": (False, 0.0, math.inf),
    "matchingRate": (False, 0.0, 1.0),
    "maxResponseTime": (False, 1.0, MAX_SECONDS),
    "maxExecutionTime": (False, 1.0, MAX_SECONDS),
    "numParallelUsers": (True, 1, MAX_PARALLEL_USERS),
    "numPredictions": (True, 1, math.inf),
    "passingRate": (False, 0.0, 1.0),
    "minPayloadSize": (True, 1, math.inf),
    "maxPayloadSize": (True, 1, math.inf),
}


def _check_value(name: str, value: Any) -> str | None:
    if name in ("datasetId", "predictionsColumn"):
        return None if isinstance(value, str) and value else "must be a non-empty string"
    integer, low, high = _RANGES[name]
    number = _number(value, integer)
    if number is None:
        return "must be an integer" if integer else "must be a number"
    if not low <= number <= high:
        return f"must be between {low:g} and {high:g}" if high != math.inf else f"must be at least {low:g}"
    return None


def parse_parameters(raw: Mapping[str, Any] | None, base: CheckParameters | None = None) -> CheckParameters:
    """`parameters` of a test request (camelCase, the API's names) over `base` (default: defaults)."""
    base = base or CheckParameters()
    errors: dict[str, str] = {}
    given: dict[str, dict[str, Any]] = {}
    for check, values in (raw or {}).items():
        if check not in _CLASSES:
            errors[check] = f"is not a check with parameters (use {', '.join(_CLASSES)})"
            continue
        if not isinstance(values, Mapping):
            errors[check] = "must be an object"
            continue
        known = {f.name for f in fields(_CLASSES[check])}
        for name, value in values.items():
            reason = f"is not a parameter of {check}" if name not in known else _check_value(name, value)
            if reason:
                errors[f"{check}.{name}"] = reason
            else:
                given.setdefault(_ATTRIBUTES[check], {})[name] = value
    result = replace(
        base, **{attribute: replace(getattr(base, attribute), **values) for attribute, values in given.items()}
    )
    stability = result.stability
    if stability.minPayloadSize > stability.maxPayloadSize:
        errors[f"{STABILITY}.minPayloadSize"] = f"must not exceed maxPayloadSize ({stability.maxPayloadSize})"
    if errors:
        raise ParameterError(errors)
    return result
