"""predictionVerificationCheck, performanceCheck and stabilityCheck against real servers.

Purpose-built bundles (tests/support/bundles.py) each carry the one problem a check exists to catch:
predictions that differ from the expected column, a model slower than maxResponseTime, a model
failing one request in five under parallel load. The good bundle passes all seven checks. The
servers are real gunicorn processes (the process runtime); one Docker test measures memory with
Docker's own stats.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.checks.parameters import CheckParameters, ParameterError, parse_parameters
from cmkit.checks.performance import payload_sizes
from cmkit.checks.results import CHECK_NAMES, PERFORMANCE, PREDICTION_VERIFICATION, STABILITY
from cmkit.cli import main
from cmkit.junit import junit_xml
from cmkit.report import TestReport
from cmkit.testlocal import TestLocalConfig, run_test_local
from tests.conftest import TEST_LABEL, TEST_RUN_ID
from tests.support.bundles import write_expected, write_flask_bundle

ALL_THREE = {PREDICTION_VERIFICATION: "fail", PERFORMANCE: "fail", STABILITY: "fail"}


def report_of(bundle: Path, **options: object) -> TestReport:
    options = {"startup_timeout": 30, "runtime": "process", **options}
    return run_test_local(TestLocalConfig(bundle=bundle, **options))  # type: ignore[arg-type]


def run(bundle: Path, **options: object) -> dict[str, object]:
    return report_of(bundle, **options).to_dict()


def status(document: dict[str, object], check: str) -> dict[str, str]:
    return document["testingStatus"][check]  # type: ignore[index,no-any-return]


def check_details(document: dict[str, object], check: str) -> dict[str, object]:
    return document["details"]["checks"][check]  # type: ignore[index,no-any-return]


# -- parameters (fast) ---------------------------------------------------------------------------


def test_parameters_take_the_apis_names_and_defaults() -> None:
    parsed = parse_parameters({PERFORMANCE: {"maxResponseTime": 5, "numParallelUsers": 4}})
    assert parsed.performance.maxResponseTime == 5 and parsed.performance.numParallelUsers == 4
    assert parsed.performance.maxExecutionTime == CheckParameters().performance.maxExecutionTime
    assert parsed.to_api()[STABILITY] == {
        "numPredictions": 100,
        "passingRate": 0.95,
        "numParallelUsers": 1,
        "minPayloadSize": 1,
        "maxPayloadSize": 1000,
    }


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({PERFORMANCE: {"numParallelUsers": 5}}, "performanceCheck.numParallelUsers"),
        ({PERFORMANCE: {"maxResponseTime": 0}}, "performanceCheck.maxResponseTime"),
        ({STABILITY: {"passingRate": 95}}, "stabilityCheck.passingRate"),
        ({STABILITY: {"minPayloadSize": 10, "maxPayloadSize": 5}}, "stabilityCheck.minPayloadSize"),
        ({PREDICTION_VERIFICATION: {"matchingRate": "all"}}, "predictionVerificationCheck.matchingRate"),
        ({PERFORMANCE: {"maxResponsTime": 5}}, "performanceCheck.maxResponsTime"),
        ({"sideEffects": {"x": 1}}, "sideEffects"),
    ],
)
def test_bad_parameters_name_the_field(raw: dict[str, dict[str, object]], field: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse_parameters(raw)
    assert field in caught.value.errors


def test_payload_sizes_grow_tenfold_up_to_the_dataset() -> None:
    assert payload_sizes(1) == [1]
    assert payload_sizes(60) == [1, 10, 60]
    assert payload_sizes(1000) == [1, 10, 100, 1000]


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path)
    runner = CliRunner()
    for flags in (
        ["--check", "performanceCheck=sometimes"],
        ["--check-parameter", "performanceCheck.numParallelUsers=9"],
        ["--check-parameter", "maxResponseTime=5"],
        ["--verification-dataset", str(tmp_path / "missing.csv"), "--predictions-column", "expected"],
        ["--verification-dataset", str(tmp_path / "data" / "sample.csv"), "--predictions-column", "nope"],
    ):
        result = runner.invoke(main, ["test-local", str(bundle), "--runtime", "process", *flags])
        assert result.exit_code == 2, (flags, result.output)
        assert "Traceback" not in result.output


# -- real servers --------------------------------------------------------------------------------


@pytest.mark.slow
def test_not_configured_the_three_are_skipped(tmp_path: Path) -> None:
    document = run(write_flask_bundle(tmp_path))
    assert document["overallStatus"] == "succeeded"
    assert list(document["testingStatus"]) == list(CHECK_NAMES)  # type: ignore[call-overload]
    for check in (PREDICTION_VERIFICATION, PERFORMANCE, STABILITY):
        assert status(document, check)["status"] == "skipped"
        assert document["configuration"][check] == "skip"  # type: ignore[index]


@pytest.mark.slow
def test_good_model_passes_all_seven_checks(tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path)
    expected = write_expected(bundle)
    report = report_of(
        bundle,
        verification_dataset=expected,
        checks=ALL_THREE,
        parameters={
            PREDICTION_VERIFICATION: {"predictionsColumn": "expected"},
            PERFORMANCE: {"numParallelUsers": 2},
            STABILITY: {"numPredictions": 40, "numParallelUsers": 4, "maxPayloadSize": 300},
        },
    )
    document = report.to_dict()
    assert {entry["status"] for entry in document["testingStatus"].values()} == {"succeeded"}, document
    verification = check_details(document, PREDICTION_VERIFICATION)
    assert verification["rowsMatching"] == verification["rowsCompared"] == 60
    performance = check_details(document, PERFORMANCE)
    assert performance["requests"] == 30 and performance["failedRequests"] == 0  # 1, 10, 60 rows x 10
    latency = performance["latencyMs"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]  # type: ignore[index]
    assert set(performance["latencyMsByRows"]) == {"1", "10", "60"}  # type: ignore[arg-type]
    # The process runtime measures the server's process group: gunicorn and its worker.
    assert performance["memorySource"].startswith("process group")  # type: ignore[union-attr]
    assert performance["peakMemoryBytes"] > 10 * 1024 * 1024  # type: ignore[operator]
    assert "p95" in status(document, PERFORMANCE)["message"]
    stability = check_details(document, STABILITY)
    assert stability["requests"] == 40 and stability["passingRate"] == 1.0
    junit = ET.fromstring(junit_xml(report))
    assert [case.get("name") for case in junit] == list(CHECK_NAMES)
    assert junit.get("failures") == "0" and junit.get("skipped") == "0"


@pytest.mark.slow
def test_wrong_predictions_fail_prediction_verification(tmp_path: Path) -> None:
    good = write_flask_bundle(tmp_path / "good")
    expected = write_expected(good)
    wrong = write_flask_bundle(tmp_path / "wrong", behaviour="wrong_predictions")
    document = run(
        wrong,
        verification_dataset=expected,
        parameters={PREDICTION_VERIFICATION: {"predictionsColumn": "expected", "matchingRate": 0.9}},
    )
    found = status(document, PREDICTION_VERIFICATION)
    assert found["status"] == "failed" and "rows match 'expected'" in found["message"], found
    assert document["overallStatus"] == "failed"
    details = check_details(document, PREDICTION_VERIFICATION)
    assert 0 < details["rowsMatching"] < 60  # type: ignore[operator]
    assert details["mismatches"][0]["expected"] != details["mismatches"][0]["predicted"]  # type: ignore[index]
    # The same model passes once the required rate is what it reaches: the rate is the judge.
    rate = details["matchingRate"]
    lenient = run(
        wrong,
        verification_dataset=expected,
        parameters={PREDICTION_VERIFICATION: {"predictionsColumn": "expected", "matchingRate": rate}},
    )
    assert status(lenient, PREDICTION_VERIFICATION)["status"] == "succeeded"


@pytest.mark.slow
def test_slow_model_fails_performance_and_stops_at_the_first_slow_request(tmp_path: Path) -> None:
    parameters = {PERFORMANCE: {"maxResponseTime": 1, "numParallelUsers": 2}}
    slow = run(
        write_flask_bundle(tmp_path / "slow", behaviour="slow"),
        checks={PERFORMANCE: "fail"},
        parameters=parameters,
        server_environment={"TEST_SLOW_SECONDS": "1.5"},
    )
    found = status(slow, PERFORMANCE)
    assert found["status"] == "failed" and "over maxResponseTime 1s" in found["message"], found
    details = check_details(slow, PERFORMANCE)
    assert details["requests"] <= 2 and details["notSent"] >= 28  # type: ignore[operator]
    good = run(write_flask_bundle(tmp_path / "good"), checks={PERFORMANCE: "fail"}, parameters=parameters)
    assert status(good, PERFORMANCE)["status"] == "succeeded", status(good, PERFORMANCE)


@pytest.mark.slow
def test_flaky_model_fails_stability_under_parallel_load(tmp_path: Path) -> None:
    parameters = {STABILITY: {"numPredictions": 50, "numParallelUsers": 4, "maxPayloadSize": 100}}
    flaky = run(
        write_flask_bundle(tmp_path / "flaky", behaviour="flaky"), checks={STABILITY: "warn"}, parameters=parameters
    )
    found = status(flaky, STABILITY)
    assert found["status"] == "warning" and "40 of 50 requests" in found["message"], found
    assert "flaky: request" in found["message"]
    assert flaky["overallStatus"] == "warning"
    good = run(write_flask_bundle(tmp_path / "good"), checks={STABILITY: "fail"}, parameters=parameters)
    assert status(good, STABILITY)["status"] == "succeeded", status(good, STABILITY)


@pytest.mark.slow
def test_cli_flags_turn_the_checks_on(tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path)
    expected = write_expected(bundle)
    junit = tmp_path / "report.xml"
    result = CliRunner().invoke(
        main,
        [
            "test-local",
            str(bundle),
            "--runtime",
            "process",
            "--json",
            "--verification-dataset",
            str(expected),
            "--predictions-column",
            "expected",
            "--comparison-precision",
            "0.01",
            "--check-parameter",
            "stabilityCheck.numPredictions=20",
            "--junit",
            str(junit),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["configuration"][PREDICTION_VERIFICATION] == "fail"  # implied by the dataset
    assert document["configuration"][STABILITY] == "fail"  # implied by its parameter
    assert document["configuration"][PERFORMANCE] == "skip"
    assert document["details"]["parameters"][PREDICTION_VERIFICATION]["comparisonPrecision"] == 0.01
    assert document["testingStatus"][STABILITY]["status"] == "succeeded"
    cases = {case.get("name"): case for case in ET.parse(junit).getroot()}
    assert set(cases) == set(CHECK_NAMES)
    assert cases[PERFORMANCE].find("skipped") is not None


@pytest.mark.docker
@pytest.mark.slow
def test_docker_runtime_reports_peak_memory_from_docker_stats(docker_client: object, tmp_path: Path) -> None:
    document = run(
        write_flask_bundle(tmp_path),
        runtime="docker",
        startup_timeout=60,
        labels={TEST_LABEL: TEST_RUN_ID},
        checks={PERFORMANCE: "fail"},
        parameters={PERFORMANCE: {"numParallelUsers": 2}},
    )
    assert status(document, PERFORMANCE)["status"] == "succeeded", document["testingStatus"]
    details = check_details(document, PERFORMANCE)
    assert details["memorySource"] == "docker stats" and details["memorySamples"] >= 1
    assert 10 * 1024 * 1024 < details["peakMemoryBytes"] < 512 * 1024 * 1024  # type: ignore[operator]
