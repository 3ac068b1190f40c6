"""The seven checks (cmkit/checks/) against cmkit-runtime's own app, served on a loopback socket
in this process (fast tier): a good model passes every check, a broken one fails the right one.

The same checks against servers started by the runtimes (process, Docker) are in
tests/checks/test_later_checks.py, tests/test_testlocal_*.py (slow tier).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from cmkit.checks.context import CheckOptions
from cmkit.checks.dataset import ExpectedPredictions, load_dataset, load_expected
from cmkit.checks.parameters import CheckParameters, StabilityParameters, parse_parameters
from cmkit.checks.predictions import Target
from cmkit.checks.results import (
    CHECK_NAMES,
    DEFAULT_CONFIGURATION,
    NULL_VALUE_IMPUTATION,
    PREDICTION_VERIFICATION,
    SIDE_EFFECTS,
)
from cmkit.checks.suite import run_checks
from cmkit.events import RecordingEvents
from cmkit_runtime.server import create_app
from tests.support.bundles import write_two_of_ten
from tests.support.http_server import ThreadedServer
from tests.support.inprocess import forget_bundle


class InProcessServer(ThreadedServer):
    """A model server that is cmkit_runtime's WSGI app on a thread; nothing to clean up but the socket."""

    runtime = "in-process"

    def __init__(self, code_dir: Path) -> None:
        # A runtime worker imports one bundle's custom.py once per process; here several bundles
        # share the test process, so each server starts from a fresh import.
        forget_bundle(code_dir)
        stack = contextlib.ExitStack()
        stack.callback(forget_bundle, code_dir)
        super().__init__(create_app(code_dir, environ={}), "", stack)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_two_of_ten(tmp_path / "bundle", rows=60)


def every_check(**levels: str) -> CheckOptions:
    return CheckOptions(
        configuration={**{name: "fail" for name in CHECK_NAMES}, **levels},
        parameters=CheckParameters(stability=StabilityParameters(numPredictions=10, maxPayloadSize=50)),
        parallelism=2,
    )


def checks(bundle: Path, options: CheckOptions) -> dict[str, str]:
    server = InProcessServer(bundle)
    try:
        dataset = load_dataset(bundle / "data" / "train.csv", "y")
        results = run_checks(server, dataset, Target("regression"), options, RecordingEvents())
    finally:
        server.stop()
    assert list(results) == list(CHECK_NAMES)
    return {name: result.status for name, result in results.items()}


def expected_column(bundle: Path, path: Path, wrong_rows: int = 0, drop_rows: int = 0) -> ExpectedPredictions:
    """The model's true predictions for train.csv, the first `wrong_rows` of them off by one."""
    lines = (bundle / "data" / "train.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1 : len(lines) - drop_rows]]
    values = [3 * float(r["x2"]) - 2 * float(r["x7"]) + (1.0 if i < wrong_rows else 0.0) for i, r in enumerate(rows)]
    path.write_text("expected\n" + "".join(f"{v}\n" for v in values))
    return load_expected(path, "expected")


def test_a_good_model_passes_all_seven_checks(good: Path, tmp_path: Path) -> None:
    options = every_check()
    options.expected = expected_column(good, tmp_path / "expected.csv")
    statuses = checks(good, options)
    assert statuses == {name: "succeeded" for name in CHECK_NAMES}


def test_verification_fails_on_mismatching_rows_unless_the_rate_allows_them(good: Path, tmp_path: Path) -> None:
    options = every_check(performanceCheck="skip", stabilityCheck="skip")
    options.expected = expected_column(good, tmp_path / "expected.csv", wrong_rows=3)
    assert checks(good, options)[PREDICTION_VERIFICATION] == "failed"
    options.parameters = parse_parameters({PREDICTION_VERIFICATION: {"matchingRate": 0.9}})  # 57 of 60 rows match
    assert checks(good, options)[PREDICTION_VERIFICATION] == "succeeded"


def test_verification_needs_a_row_for_each_test_row(good: Path, tmp_path: Path) -> None:
    options = every_check(performanceCheck="skip", stabilityCheck="skip")
    options.expected = expected_column(good, tmp_path / "expected.csv", drop_rows=1)
    assert checks(good, options)[PREDICTION_VERIFICATION] == "failed"


def test_default_levels_skip_the_later_checks(good: Path) -> None:
    statuses = checks(good, CheckOptions(configuration=dict(DEFAULT_CONFIGURATION)))
    assert [statuses[name] for name in CHECK_NAMES[:4]] == ["succeeded"] * 4
    assert {statuses[name] for name in CHECK_NAMES[4:]} == {"skipped"}


def test_a_model_that_ignores_nulls_badly_fails_imputation(good: Path) -> None:
    custom = good / "custom.py"
    custom.write_text(custom.read_text().replace('X["x2"].astype(float).fillna(0.0)', 'X["x2"].astype(float)'))
    custom.write_text(
        custom.read_text() + "\n\n_predict = predict\n\n\ndef predict(model, X):\n"
        "    if X.isna().any().any():\n        raise ValueError('nulls')\n    return _predict(model, X)\n"
    )
    statuses = checks(good, every_check())
    assert statuses[NULL_VALUE_IMPUTATION] == "failed"
    assert statuses[SIDE_EFFECTS] == "succeeded"


def test_a_stateful_model_fails_side_effects(good: Path) -> None:
    custom = good / "custom.py"
    custom.write_text(
        custom.read_text() + "\n\n_calls = [0]\n_plain = predict\n\n\ndef predict(model, X):\n"
        "    _calls[0] += 1\n    return _plain(model, X) + _calls[0]\n"
    )
    statuses = checks(good, every_check(stabilityCheck="skip", performanceCheck="skip"))
    assert statuses[SIDE_EFFECTS] == "failed"
