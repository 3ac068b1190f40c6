"""Unit tests of the check rules: prediction validation, datasets, configuration, reports."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cmkit.checks.dataset import load_dataset
from cmkit.checks.predictions import Target, judge, strict_json
from cmkit.checks.results import CHECK_NAMES, LONG_RUNNING_SERVICE, CheckResult, conclude, not_started, overall_status
from cmkit.checks.settings import parse_check_settings
from cmkit.checks.suite import _sample_rows
from cmkit.errors import InputError
from cmkit.junit import junit_xml
from cmkit.params import parse_memory
from cmkit.report import ReportDetails, TestReport
from cmkit.testlocal import (
    StartInfo,
    TestLocalConfig,
    resolve_config,
)

REGRESSION = Target("regression")
BINARY = Target("binary", ("1", "0"))
MULTICLASS = Target("multiclass", ("a", "b", "c"))


def body(predictions: object) -> str:
    return json.dumps({"predictions": predictions})


def test_valid_regression() -> None:
    verdict = judge(200, body([1, 2.5, -3]), 3, REGRESSION)
    assert verdict.ok
    assert verdict.values is not None and verdict.values.tolist() == [1.0, 2.5, -3.0]


@pytest.mark.parametrize(
    ("status", "text", "rows", "fragment"),
    [
        (500, '{"message": "boom"}', 1, "HTTP 500: boom"),
        (422, "not json at all", 1, "HTTP 422: not json at all"),
        (200, '{"predictions": [NaN]}', 1, "not valid JSON"),
        (200, '{"predictions": [Infinity]}', 1, "not valid JSON"),
        (200, '{"predictions": [-Infinity]}', 1, "not valid JSON"),
        (200, "[1, 2]", 2, "no 'predictions' list"),
        (200, body([1, 2]), 3, "2 predictions for 3 rows"),
        (200, body([1, 2, 3, 4]), 3, "4 predictions for 3 rows"),
        (0, "request failed: ConnectionError", 1, "HTTP 0"),
    ],
)
def test_whole_answer_problems(status: int, text: str, rows: int, fragment: str) -> None:
    verdict = judge(status, text, rows, REGRESSION)
    assert not verdict.ok and verdict.error is not None
    assert fragment in verdict.summary()


@pytest.mark.parametrize(
    ("prediction", "fragment"),
    [("1.5", "expected a number"), (None, "expected a number"), (True, "expected a number"), ([1], "expected")],
)
def test_regression_row_problems(prediction: object, fragment: str) -> None:
    verdict = judge(200, body([1.0, prediction]), 2, REGRESSION)
    assert [p.row for p in verdict.rows] == [1]
    assert fragment in verdict.summary()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"predictions": [1.0, 1e999, 2]}', "row 1: non-finite value inf"),  # JSON allows it; orjson refuses it
        ('{"predictions": [1.0, ' + str(10**400) + "]}", "row 1: number beyond a float's range"),
        ('{"predictions": [1.0, 2, 1e999, 1e999]}', "2 invalid predictions: row 2: non-finite value inf; row 3"),
    ],
)
def test_numbers_beyond_a_float_are_row_problems_not_a_crash(text: str, fragment: str) -> None:
    verdict = judge(200, text, text.count(",") + 1, REGRESSION)
    assert not verdict.ok and fragment in verdict.summary()


def test_numeric_predictions_are_judged_in_one_step_with_their_values() -> None:
    values = [0.5, 2, -3.25e10, 7]
    verdict = judge(200, body(values), 4, REGRESSION)
    assert verdict.ok and verdict.values is not None and verdict.values.tolist() == [0.5, 2.0, -3.25e10, 7.0]


def test_binary_rules() -> None:
    assert judge(200, body([{"1": 0.25, "0": 0.75}]), 1, BINARY).ok
    # Labels are compared as strings: numeric keys in JSON are strings anyway.
    assert judge(200, body([{"1": 1.0, "0": 0.0}]), 1, BINARY).values.tolist() == [[1.0, 0.0]]  # type: ignore[union-attr]
    cases = {
        "sum": ({"1": 0.3, "0": 0.3}, "sum to 0.6"),
        "range": ({"1": 1.5, "0": -0.5}, "outside [0, 1]"),
        "labels": ({"yes": 0.5, "no": 0.5}, "labels do not match"),
        "extra": ({"1": 0.5, "0": 0.5, "2": 0.0}, "unexpected ['2']"),
        "type": (0.5, "expected an object"),
        "value": ({"1": "0.5", "0": 0.5}, "not a finite number"),
    }
    for prediction, fragment in cases.values():
        verdict = judge(200, body([prediction]), 1, BINARY)
        assert not verdict.ok and fragment in verdict.summary(), (prediction, verdict.summary())


def test_probability_tolerance_is_1e6() -> None:
    assert judge(200, body([{"1": 0.5, "0": 0.5 + 5e-7}]), 1, BINARY).ok
    assert not judge(200, body([{"1": 0.5, "0": 0.5 + 5e-6}]), 1, BINARY).ok


def test_multiclass_values_follow_declared_order() -> None:
    verdict = judge(200, body([{"c": 0.5, "a": 0.2, "b": 0.3}]), 1, MULTICLASS)
    assert verdict.values is not None and verdict.values.tolist() == [[0.2, 0.3, 0.5]]


@pytest.mark.parametrize(
    "point", ["POINT (2.35 48.85)", "point(2.35,48.85)", "POINT(-1e2, 4.)", " POINT Z (1 2 3) ", "POINT (.5 -0.25)"]
)
def test_a_geopoint_prediction_is_a_point(point: str) -> None:
    verdict = judge(200, json.dumps({"predictions": [point]}), 1, Target("geopoint"))
    assert verdict.ok and list(verdict.values) == [point]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prediction", "fragment"),
    [
        ("48.85, 2.35", 'got "48.85, 2.35"'),  # two bare numbers: not a point
        ("POINT (2.35)", "expected a point"),
        ("POINT (2.35 48.85", "expected a point"),
        ("LINESTRING (0 0, 1 1)", "expected a point"),
        ("POINT (east north)", "expected a point"),
        (2.35, "expected a string, got 2.35"),
    ],
)
def test_what_is_not_a_point(prediction: object, fragment: str) -> None:
    verdict = judge(200, json.dumps({"predictions": [prediction]}), 1, Target("geopoint"))
    assert not verdict.ok and fragment in verdict.summary()


def test_a_vector_database_answers_one_string_per_row() -> None:
    documents = json.dumps([{"id": "a", "score": 0.5}])
    assert judge(200, json.dumps({"predictions": [documents]}), 1, Target("vectordatabase")).ok
    verdict = judge(200, json.dumps({"predictions": [[{"id": "a"}]]}), 1, Target("vectordatabase"))
    assert not verdict.ok and "expected a string" in verdict.summary()


def test_summary_names_first_rows_and_counts_the_rest() -> None:
    verdict = judge(200, body(["x"] * 8), 8, REGRESSION)
    assert verdict.summary().startswith("8 invalid predictions: row 0:")
    assert "and 3 more rows" in verdict.summary()


def test_strict_json_rejects_nan_tokens() -> None:
    with pytest.raises(ValueError):
        strict_json('{"a": NaN}')
    assert strict_json('{"a": 1e308}') == {"a": 1e308}


def test_sample_rows_spread_over_the_dataset() -> None:
    assert _sample_rows(5, 1000) == [0, 1, 2, 3, 4]
    rows = _sample_rows(10_000, 100)
    assert len(rows) == 100 and rows[0] == 0 and rows[-1] == 9_999
    assert _sample_rows(1, 10) == [0]


def test_status_rules() -> None:
    assert conclude("fail", "bad", "").status == "failed"
    assert conclude("warn", "bad", "").status == "warning"
    assert conclude("warn", None, "ok").status == "succeeded"
    results = {"a": CheckResult("succeeded"), "b": CheckResult("warning"), "c": CheckResult("skipped")}
    assert overall_status(results) == "warning"
    results["d"] = CheckResult("failed")
    assert overall_status(results) == "failed"
    assert overall_status({"a": CheckResult("succeeded"), "b": CheckResult("aborted")}) == "succeeded"


# --- datasets -----------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_dataset_to_json_types(tmp_path: Path) -> None:
    csv = write(tmp_path / "d.csv", "a,b,when,y\n1,x,2024-01-02,0\n,y,,1\n")
    dataset = load_dataset(csv, "y")
    assert list(dataset.columns) == ["a", "b", "when"]
    assert dataset.columns["a"] == [1.0, None]
    assert dataset.columns["when"] == ["2024-01-02", None]
    payload = json.loads(dataset.payload().body)
    assert payload == {"X": {"a": [1.0, None], "b": ["x", "y"], "when": ["2024-01-02", None]}}
    assert json.loads(dataset.row_payload(1).body) == {"X": {"a": [None], "b": ["y"], "when": [None]}}
    assert json.loads(dataset.with_null_column("b").body)["X"]["b"] == [None, None]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("a,b\n", "no rows"),
        ("a,a,y\n1,2,3\n", "duplicate column names: a"),
        ("a,b\n1,2\n", "target column 'y' is not in the dataset"),
    ],
)
def test_bad_datasets_are_input_errors(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        load_dataset(write(tmp_path / "d.csv", text), "y")
    assert fragment in caught.value.message
    assert caught.value.exit_code == 2


def test_missing_and_binary_datasets(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_dataset(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(InputError, match="UTF-8"):
        load_dataset(tmp_path / "bin.csv")


# --- configuration ------------------------------------------------------------------------------


def bundle_with_metadata(tmp_path: Path, metadata: str) -> Path:
    (tmp_path / "model-metadata.yaml").write_text(metadata)
    return tmp_path


def test_metadata_gives_defaults_and_flags_override(tmp_path: Path) -> None:
    bundle = bundle_with_metadata(
        tmp_path,
        "name: m\ntargetType: binary\ninferenceModel:\n  targetName: y\n  positiveClassLabel: 1\n"
        "  negativeClassLabel: 0\nvalidation:\n  input: data/x.csv\n",
    )
    config = resolve_config(TestLocalConfig(bundle=bundle))
    assert (config.target.type, config.target.name, config.dataset) == ("binary", "y", bundle / "data/x.csv")
    assert config.target.labels == ("1", "0")  # positive, negative
    assert config.checks == {
        "errorCheck": "fail",
        "longRunningService": "fail",
        "nullValueImputation": "warn",
        "sideEffects": "warn",
        "predictionVerificationCheck": "skip",
        "performanceCheck": "skip",
        "stabilityCheck": "skip",
    }
    assert config.server.url_prefix and config.server.url_prefix.count("/") >= 2
    flagged = resolve_config(
        TestLocalConfig(
            bundle=bundle,
            target_name="z",
            positive_class_label="a",
            negative_class_label="b",
            checks={"sideEffects": "fail"},
            url_prefix="x/y/",
        )
    )
    assert (flagged.target.name, flagged.target.labels[0], flagged.server.url_prefix) == ("z", "a", "/x/y")
    assert flagged.checks["sideEffects"] == "fail"


@pytest.mark.parametrize(
    ("metadata", "overrides", "fragment"),
    [
        ("name: m\n", {}, "no target type"),
        ("name: m\ntargetType: binary\n", {}, "both class labels"),
        ("name: m\ntargetType: multiclass\n", {"class_labels": ["a"]}, "2 or more"),
        ("name: m\ntargetType: regression\n", {"checks": {"longRunningService": "warn"}}, "only be 'fail'"),
        ("name: m\ntargetType: regression\n", {"checks": {"nope": "warn"}}, "bad check"),
        ("name: m\ntargetType: regression\n", {"image": "x", "environment": Path("y")}, "not both"),
    ],
)
def test_bad_configurations(tmp_path: Path, metadata: str, overrides: dict[str, object], fragment: str) -> None:
    bundle = bundle_with_metadata(tmp_path, metadata)
    with pytest.raises(InputError) as caught:
        resolve_config(TestLocalConfig(bundle=bundle, **overrides))  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_check_flags_and_memory_sizes() -> None:
    settings = parse_check_settings(["sideEffects=fail", "errorCheck=skip"])
    assert settings == {"sideEffects": "fail", "errorCheck": "skip"}
    for bad in (["sideEffects"], ["nope=fail"], ["sideEffects=maybe"]):
        with pytest.raises(InputError):
            parse_check_settings(bad)
    assert parse_memory("512M") == 512 * 1024**2
    assert parse_memory("1G") == parse_memory("1Gi") == parse_memory("1GB") == 1024**3
    assert parse_memory("134217728") == 134217728
    for bad in ("lots", "-1M", "0"):
        with pytest.raises(InputError):
            parse_memory(bad)


def test_report_shape_and_junit() -> None:
    results = {
        "longRunningService": CheckResult("succeeded", "ready in 1s", seconds=1.0),
        "errorCheck": CheckResult("failed", "HTTP 500: boom\nmore"),
        "nullValueImputation": CheckResult("warning", "column x"),
        "sideEffects": CheckResult("aborted", "not run"),
    }
    report = TestReport(results, {"errorCheck": "fail"}, ReportDetails(start=StartInfo("process")))
    document = report.to_dict()
    assert document["overallStatus"] == "failed"
    assert document["testingStatus"]["errorCheck"] == {"status": "failed", "message": "HTTP 500: boom\nmore"}
    assert set(document["testingStatus"]) == set(results)
    tree = ET.fromstring(junit_xml(report).split("?>", 1)[1])
    assert (tree.get("tests"), tree.get("failures"), tree.get("skipped")) == ("4", "1", "1")
    failure = tree.find("testcase[@name='errorCheck']/failure")
    assert failure is not None and failure.get("message") == "HTTP 500: boom"
    assert math.isclose(float(tree.find("testcase[@name='longRunningService']").get("time")), 1.0)  # type: ignore[union-attr]


def test_a_server_that_never_started_reports_the_same_everywhere() -> None:
    from cmkit.emulator.testing import _not_started_report

    results = not_started(CheckResult("failed", "the image could not be built"))
    assert list(results) == list(CHECK_NAMES)
    assert results[LONG_RUNNING_SERVICE].to_api() == {"status": "failed", "message": "the image could not be built"}
    others = {results[name].to_api()["status"] for name in CHECK_NAMES if name != LONG_RUNNING_SERVICE}
    assert others == {"aborted"} and overall_status(results) == "failed"
    # The emulator's test of a model that never started is test-local's report, in the API's order.
    emulated = _not_started_report("the image could not be built")
    assert emulated["overallStatus"] == "failed"
    assert emulated["testingStatus"] == {name: result.to_api() for name, result in results.items()}
