"""cmkit/checks/verification.py: predictionVerificationCheck's inputs and verdicts (fast tier).

The check runs for real against scripted loopback servers (tests/support/scripted_server.py) that answer
fixed predictions, so each verdict (labels, probabilities, unusable columns, an invalid batch)
comes from an HTTP answer judged by errorCheck's rules.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from cmkit.checks.client import ModelClient
from cmkit.checks.context import CheckOptions, Context
from cmkit.checks.dataset import load_dataset, load_expected
from cmkit.checks.predictions import Target
from cmkit.checks.results import PREDICTION_VERIFICATION, CheckResult
from cmkit.checks.verification import prediction_verification
from cmkit.errors import InputError
from cmkit.events import Events
from tests.support.scripted_server import scripted


def csv_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def verify(
    tmp_path: Path, target: Target, predictions: list[Any], expected: list[str], status: int = 200
) -> CheckResult:
    """The check on a three-row dataset, the server answering `predictions`, the CSV holding `expected`."""
    dataset = load_dataset(csv_file(tmp_path / "data.csv", "a,b\n1,2\n3,4\n5,6\n"), None)
    # Two columns: a one-column CSV's empty value is a blank line, which pandas skips.
    rows = "".join(f"{row},{value}\n" for row, value in enumerate(expected))
    column = csv_file(tmp_path / "expected.csv", "row,want\n" + rows)
    options = CheckOptions(configuration={PREDICTION_VERIFICATION: "fail"}, expected=load_expected(column, "want"))
    with scripted(lambda n: 200, predictions, status) as server:
        client = ModelClient(server.url)
        try:
            return prediction_verification(
                Context(server, client, dataset, target, options, Events(), threading.Event())
            )
        finally:
            client.close()


BINARY = Target("binary", ("yes", "no"))
MULTICLASS = Target("multiclass", ("a", "b", "c"))


def test_classifiers_compare_the_most_probable_label(tmp_path: Path) -> None:
    answers = [{"yes": 0.9, "no": 0.1}, {"yes": 0.2, "no": 0.8}, {"yes": 0.6, "no": 0.4}]
    result = verify(tmp_path, BINARY, answers, ["yes", "yes", "yes"])
    assert result.status == "failed"
    assert result.details["compared"] == "label" and result.details["rowsMatching"] == 2
    assert result.details["mismatches"] == [{"row": 1, "predicted": "no", "expected": "yes"}]
    assert "row 1: predicted no, expected yes" in result.message


def test_binary_models_compare_the_positive_class_probability_when_expected_values_are_numbers(tmp_path: Path) -> None:
    answers = [{"yes": 0.9, "no": 0.1}, {"yes": 0.2, "no": 0.8}, {"yes": 0.6, "no": 0.4}]
    result = verify(tmp_path, BINARY, answers, ["0.9", "", "0.6"])
    assert result.status == "succeeded", result.message
    assert result.details["compared"] == "probability of 'yes'"
    assert result.details["rowsCompared"] == 2 and result.details["rowsWithoutExpected"] == 1


def test_a_multiclass_model_needs_labels_as_expected_values(tmp_path: Path) -> None:
    answers = [{"a": 0.5, "b": 0.3, "c": 0.2}] * 3
    result = verify(tmp_path, MULTICLASS, answers, ["0.5", "0.5", "0.5"])
    assert result.status == "failed"
    assert result.message == "column 'want': expected values must be class labels (a, b, c)"


def test_expected_values_that_are_not_numbers_fail_the_check(tmp_path: Path) -> None:
    result = verify(tmp_path, Target("regression"), [1.0, 2.0, 3.0], ["1.0", "two", "inf"])
    assert result.status == "failed" and result.message == "column 'want': expected values must be numbers, got 'two'"


def test_a_column_without_any_expected_value_fails(tmp_path: Path) -> None:
    result = verify(tmp_path, Target("regression"), [1.0, 2.0, 3.0], ["", "", ""])
    assert result.status == "failed" and result.message == "no row of 'want' holds an expected value"


def test_invalid_batch_predictions_abort_the_check(tmp_path: Path) -> None:
    result = verify(tmp_path, Target("regression"), [], ["1", "2", "3"], status=500)
    assert result.status == "aborted"
    assert result.message.startswith("not run: the whole-dataset predictions are invalid (")


def test_an_unusable_verification_dataset_names_its_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(InputError, match="verification dataset not found") as found:
        load_expected(missing, "want")
    assert found.value.file == missing and "--verification-dataset" in (found.value.hint or "")
    broken = csv_file(tmp_path / "broken.csv", 'want\n"unterminated\n')
    with pytest.raises(InputError, match="unreadable CSV") as unreadable:
        load_expected(broken, "want")
    assert unreadable.value.file == broken
