"""The checks of a transform model, against cmkit-runtime's real WSGI app on a thread.

errorCheck sends the dataset as a CSV under `X` to /transform/ and reads the answer's frame row
for row; nullValueImputation sends each column entirely null; the checks that compare
predictions are skipped as not applicable (checks/transform.py).
"""

from __future__ import annotations

from pathlib import Path

from cmkit.checks.context import CheckOptions
from cmkit.checks.dataset import load_dataset
from cmkit.checks.results import CHECK_NAMES, DEFAULT_CONFIGURATION, ERROR_CHECK, LONG_RUNNING_SERVICE
from cmkit.checks.results import NULL_VALUE_IMPUTATION as NULLS
from cmkit.checks.suite import run_checks
from cmkit.checks.transform import NOT_APPLICABLE
from cmkit.events import RecordingEvents
from cmkit.scaffold import init_bundle, make_spec
from cmkit_runtime.target import Target
from cmkit_runtime.transform import ROWS_CHANGED
from tests.checks.test_seven_checks import InProcessServer
from tests.support.bundles import write_runtime_bundle


def _run(bundle: Path, **levels: str) -> dict[str, tuple[str, str]]:
    server = InProcessServer(bundle)
    try:
        options = CheckOptions(configuration={**DEFAULT_CONFIGURATION, **levels})
        dataset = load_dataset(bundle / "data" / "sample.csv")
        results = run_checks(server, dataset, Target("transform"), options, RecordingEvents())
    finally:
        server.stop()
    assert list(results) == list(CHECK_NAMES)
    return {name: (result.status, result.message) for name, result in results.items()}


def _transform(root: Path, body: str) -> Path:
    custom = f"def load_model(code_dir):\n    return None\n\n\ndef transform(data, model):\n    {body}\n"
    return write_runtime_bundle(root, "transform", "t", custom)


def test_init_s_transform_passes_its_two_checks(tmp_path: Path) -> None:
    bundle = tmp_path / "features"
    init_bundle(bundle, make_spec("transform", "features"))
    results = _run(bundle)
    assert results[LONG_RUNNING_SERVICE][0] == "succeeded"
    assert results[ERROR_CHECK] == ("succeeded", "10 rows transformed into 6 columns")
    assert results[NULLS] == ("succeeded", "all 4 columns pass when null")
    for name in CHECK_NAMES[3:]:
        assert results[name] == ("skipped", NOT_APPLICABLE)


def test_a_transform_that_drops_rows_fails_with_drums_line_and_the_rest_is_aborted(tmp_path: Path) -> None:
    results = _run(_transform(tmp_path / "t", "return data.dropna()"))
    assert results[ERROR_CHECK] == ("failed", f"HTTP 500: {ROWS_CHANGED}")
    assert results[NULLS] == ("aborted", f"not run: {ERROR_CHECK} failed")


def test_a_transform_that_cannot_meet_a_null_column_is_warned_column_by_column(tmp_path: Path) -> None:
    body = "if data['heating'].isna().all():\n        raise ValueError('no heating at all')\n    return data"
    results = _run(_transform(tmp_path / "t", body))
    assert results[ERROR_CHECK][0] == "succeeded"
    status, message = results[NULLS]
    assert status == "warning"
    reason = "HTTP 500: transform() raised ValueError: no heating at all"
    assert message == f"1 of 4 columns fail when entirely null: heating: {reason}"


def test_levels_skip_the_transform_checks(tmp_path: Path) -> None:
    results = _run(_transform(tmp_path / "t", "return data"), errorCheck="skip", nullValueImputation="skip")
    assert results[ERROR_CHECK] == results[NULLS] == ("skipped", "skipped by configuration")
