"""Check names, configuration levels and statuses, as the API's custom model test spells them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LONG_RUNNING_SERVICE = "longRunningService"
ERROR_CHECK = "errorCheck"
NULL_VALUE_IMPUTATION = "nullValueImputation"
SIDE_EFFECTS = "sideEffects"
PREDICTION_VERIFICATION = "predictionVerificationCheck"
PERFORMANCE = "performanceCheck"
STABILITY = "stabilityCheck"
# The seed's four, then the three the service also accepts (see cmkit/checks/parameters.py).
CHECK_NAMES = (
    LONG_RUNNING_SERVICE,
    ERROR_CHECK,
    NULL_VALUE_IMPUTATION,
    SIDE_EFFECTS,
    PREDICTION_VERIFICATION,
    PERFORMANCE,
    STABILITY,
)
SEED_CHECKS = CHECK_NAMES[:4]  # the reference's four

# The API's defaults (see POST /customModelTests/ in the reference). The three later checks are
# off unless asked for, as in DataRobot's test form (and the custom-models Action sends "skip").
DEFAULT_CONFIGURATION = {
    ERROR_CHECK: "fail",
    LONG_RUNNING_SERVICE: "fail",
    NULL_VALUE_IMPUTATION: "warn",
    SIDE_EFFECTS: "warn",
    PREDICTION_VERIFICATION: "skip",
    PERFORMANCE: "skip",
    STABILITY: "skip",
}
LEVELS = ("fail", "warn", "skip")

SUCCEEDED = "succeeded"
FAILED = "failed"
WARNING = "warning"
SKIPPED = "skipped"
ABORTED = "aborted"
CANCELED = "canceled"
NOT_TESTED = "not_tested"


@dataclass
class CheckResult:
    status: str
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_api(self) -> dict[str, str]:
        return {"status": self.status, "message": self.message}


def conclude(level: str, problem: str | None, success: str, details: dict[str, Any] | None = None) -> CheckResult:
    """A found problem is `failed` for a `fail` check and `warning` for a `warn` check."""
    if problem is None:
        return CheckResult(SUCCEEDED, success, details or {})
    return CheckResult(FAILED if level == "fail" else WARNING, problem, details or {})


def not_started(ready: CheckResult) -> dict[str, CheckResult]:
    """What every check reports when the server never became ready: `ready` for longRunningService
    (failed, with why), the others aborted. The rule for test-local, --watch and the emulator's tests."""
    results = {name: CheckResult(ABORTED, f"not run: {LONG_RUNNING_SERVICE} failed") for name in CHECK_NAMES}
    results[LONG_RUNNING_SERVICE] = ready
    return results


def overall_status(results: dict[str, CheckResult]) -> str:
    statuses = {r.status for r in results.values()}
    if FAILED in statuses:
        return FAILED
    if CANCELED in statuses:
        return CANCELED
    if WARNING in statuses:
        return WARNING
    return SUCCEEDED
