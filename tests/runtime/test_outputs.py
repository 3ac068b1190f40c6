"""cmkit_runtime/outputs.py: a model's raw output, in every form a model returns it, to the
predictions the server sends, or to the BadPredictions (HTTP 500) whose message names the fault."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cmkit_runtime.outputs import BadPredictions, format_predictions, order_by_labels, same_label, single_column
from cmkit_runtime.target import Target

REGRESSION = Target("regression", name="price")
BINARY = Target("binary", ("yes", "no"))
MULTICLASS = Target("multiclass", ("a", "b", "c"))
TEXT = Target("textgeneration", name="answer")


def sent(raw: Any, target: Target, rows: int) -> Any:
    predictions = format_predictions(raw, target, rows)
    return predictions.tolist() if isinstance(predictions, np.ndarray) else predictions


@pytest.mark.parametrize(
    "raw",
    [
        [1, 2.5],
        np.array([[1.0], [2.5]]),
        pd.Series([1.0, 2.5]),
        pd.DataFrame({"Predictions": [1.0, 2.5]}),
    ],
    ids=["list", "column-matrix", "series", "frame"],
)
def test_numbers_in_any_shape_of_one_per_row(raw: Any) -> None:
    assert sent(raw, REGRESSION, 2) == [1.0, 2.5]
    assert sent(raw, Target("anomaly"), 2) == [1.0, 2.5]


@pytest.mark.parametrize(
    ("raw", "rows", "says"),
    [
        ([1.0, 2.0, 3.0], 2, "predict() returned 3 predictions for 2 rows"),
        (1.0, 2, "predict() returned 1 predictions for 2 rows"),
        (np.ones((2, 2)), 2, "predict() must return one number per row, got shape (2, 2)"),
        (["high", "low"], 2, "predict() must return numbers: could not convert string to float"),
        ([1.0, float("nan")], 2, "predict() returned a non-finite value (NaN or infinity) for row 1"),
        ([float("inf")], 1, "predict() returned a non-finite value (NaN or infinity) for row 0"),
    ],
)
def test_numbers_that_cannot_be_sent_name_the_fault(raw: Any, rows: int, says: str) -> None:
    with pytest.raises(BadPredictions) as raised:
        format_predictions(raw, REGRESSION, rows)
    assert str(raised.value).startswith(says)


def test_the_source_named_in_errors_is_the_callers() -> None:
    with pytest.raises(BadPredictions, match=r"^score\(\) returned 1 predictions for 2 rows"):
        format_predictions([1.0], REGRESSION, 2, source="score()")


def test_text_generation_sends_one_string_per_row() -> None:
    assert sent(["hi", "there"], TEXT, 2) == ["hi", "there"]
    assert sent(pd.DataFrame({"resultText": ["hi"]}), TEXT, 1) == ["hi"]
    assert sent(np.array([["hi"]], dtype=object), TEXT, 1) == ["hi"]
    with pytest.raises(BadPredictions, match=r"one string per row \(textgeneration\); row 1 is 3"):
        format_predictions(["hi", 3], TEXT, 2)
    with pytest.raises(BadPredictions, match="returned 1 predictions for 2 rows"):
        format_predictions(["hi"], TEXT, 2)


@pytest.mark.parametrize(
    "raw",
    [
        [0.25, 1.0],  # positive-class probabilities
        np.array([[0.25], [1.0]]),
        np.array([[0.75, 0.25], [0.0, 1.0]]),  # [negative, positive], scikit-learn's order
        pd.DataFrame({"yes": [0.25, 1.0], "no": [0.75, 0.0]}),  # by name, whatever the column order
    ],
    ids=["positive", "positive-column", "matrix", "labelled-frame"],
)
def test_binary_probabilities_are_sent_per_label(raw: Any) -> None:
    assert sent(raw, BINARY, 2) == [{"yes": 0.25, "no": 0.75}, {"yes": 1.0, "no": 0.0}]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (np.full((1, 3), 1 / 3), "a binary predict() returns positive-class probabilities (one per row) or an (n, 2)"),
        ([1.5], "predict() returned probabilities outside [0, 1]"),
        (np.array([[0.5, 0.25]]), "the class probabilities of row 0 sum to 0.75, not 1"),
        ([float("nan")], "predict() returned a non-finite value (NaN or infinity) for row 0"),
    ],
)
def test_binary_outputs_that_are_not_probabilities_are_refused(raw: Any, says: str) -> None:
    with pytest.raises(BadPredictions) as raised:
        format_predictions(raw, BINARY, 1)
    assert str(raised.value).startswith(says)


def test_multiclass_probabilities_follow_the_declared_labels() -> None:
    matrix = np.array([[0.2, 0.3, 0.5]])
    assert sent(matrix, MULTICLASS, 1) == [{"a": 0.2, "b": 0.3, "c": 0.5}]
    frame = pd.DataFrame({"c": [0.5], "a": [0.2], "b": [0.3]})
    assert sent(frame, MULTICLASS, 1) == [{"a": 0.2, "b": 0.3, "c": 0.5}]
    # Numeric columns match labels that read as the same number, as DRUM matches them.
    numeric = Target("multiclass", ("1", "2", "3"))
    assert sent(pd.DataFrame({3.0: [0.5], 1: [0.2], 2: [0.3]}), numeric, 1) == [{"1": 0.2, "2": 0.3, "3": 0.5}]
    # Within the tolerance float32 models need, a row still sums to 1.
    assert sent(np.array([[0.2, 0.3, 0.5 + 5e-6]]), MULTICLASS, 1)[0]["c"] == pytest.approx(0.5, abs=1e-5)


def test_multiclass_outputs_of_the_wrong_width_name_the_expected_order() -> None:
    order = r"\(n, 3\) probability matrix in the order of classLabels \['a', 'b', 'c'\]"
    with pytest.raises(BadPredictions, match=order):
        format_predictions(np.full((1, 2), 0.5), MULTICLASS, 1)
    with pytest.raises(BadPredictions, match="returned 2 predictions for 1 rows"):
        format_predictions(np.full((2, 3), 1 / 3), MULTICLASS, 1)


def test_single_column_follows_drums_rule() -> None:
    assert single_column(pd.DataFrame({"anything": [1]}), REGRESSION).tolist() == [1]
    both = pd.DataFrame({"id": [7], "Predictions": [1.0], "price": [2.0]})
    assert single_column(both, REGRESSION).tolist() == [1.0]
    assert single_column(pd.DataFrame({"id": [7], "resultText": ["hi"]}), TEXT).tolist() == ["hi"]
    assert single_column(pd.DataFrame({"id": [7], "price": [2.0]}), REGRESSION).tolist() == [2.0]
    with pytest.raises(BadPredictions, match=r"columns \['id', 'other'\]; a regression model returns one column"):
        single_column(pd.DataFrame({"id": [7], "other": [2.0]}), REGRESSION)
    with pytest.raises(BadPredictions):
        single_column(pd.DataFrame({"id": [7], "answer2": ["x"]}), Target("regression"))


def test_labels_compare_as_strings_and_as_numbers() -> None:
    assert same_label(1, "1") and same_label(1.0, "1") and same_label("1.0", "1")
    assert not same_label("yes", "1") and not same_label(None, "None ") and not same_label(2, "1")
    assert order_by_labels(["no", "yes"], ("yes", "no")) == [1, 0]
    assert order_by_labels(["no", "yes"], ("yes", "no", "maybe")) is None
    assert order_by_labels([1, "1.0"], ("1", "2")) is None  # two columns are the same label


def test_class_names_that_are_not_the_labels_are_refused_naming_both() -> None:
    # The label mistake: a model of benign/malignant run with labels yes/no was renamed by
    # position. DRUM refuses it ("Expected predictions to have columns ..., but encountered ..."); so does
    # the runtime, naming both.
    frame = pd.DataFrame({"benign": [0.25], "malignant": [0.75]})
    with pytest.raises(BadPredictions) as raised:
        format_predictions(frame, BINARY, 1)
    assert str(raised.value) == (
        "expected predictions to have columns ['no', 'yes'] (the configured labels), but predict() returned "
        "columns ['benign', 'malignant']: make the labels the model's class names"
    )
    with pytest.raises(BadPredictions, match=r"returned columns \['a', 'b', 'x'\]"):
        format_predictions(pd.DataFrame({"a": [0.2], "b": [0.3], "x": [0.5]}), MULTICLASS, 1)
    # Unnamed columns (pd.DataFrame(array)) are read by position, as the array would be.
    assert sent(pd.DataFrame(np.array([[0.75, 0.25]])), BINARY, 1) == [{"yes": 0.25, "no": 0.75}]
