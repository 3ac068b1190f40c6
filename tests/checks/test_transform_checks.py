"""The checks of a transform model, against cmkit-runtime's real WSGI app on a thread.

errorCheck sends the dataset as a CSV under `X` to /transform/ and reads the answer's frame row
for row; nullValueImputation sends each column entirely null; the checks that compare
predictions are skipped as not applicable (checks/transform.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cmkit.checks.context import CheckOptions
from cmkit.checks.dataset import load_dataset
from cmkit.checks.results import CHECK_NAMES, DEFAULT_CONFIGURATION, ERROR_CHECK, LONG_RUNNING_SERVICE
from cmkit.checks.results import NULL_VALUE_IMPUTATION as NULLS
from cmkit.checks.sparse import SparseDataset, load_sparse
from cmkit.checks.suite import run_checks
from cmkit.checks.transform import NOT_APPLICABLE, SPARSE_NO_NULLS
from cmkit.errors import InputError
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


# -- a sparse (.mtx) dataset: sent as it is, with DRUM's column file -------------------------------

SPARSE_HOOK = "return data * 2 if hasattr(data, 'sparse') else data"
MTX = b"%%MatrixMarket matrix coordinate real general\n%\n3 2 2\n1 1 1.5\n3 2 4\n"


def _sparse_run(bundle: Path, dataset: SparseDataset) -> dict[str, tuple[str, str]]:
    server = InProcessServer(bundle)
    events = RecordingEvents()
    try:
        options = CheckOptions(configuration=dict(DEFAULT_CONFIGURATION))
        results = run_checks(server, dataset, Target("transform"), options, events)
    finally:
        server.stop()
    # Item 3 of issue 25's rest: no "prediction protocol: predict_no_state" line for a transform.
    how = "DRUM's route of transform models; no prediction protocol"
    assert f"== transform model: checked on POST /transform/ ({how})" in events.lines
    assert not any(line.startswith("== prediction protocol") for line in events.lines)
    protocol = results[LONG_RUNNING_SERVICE].details["protocol"]
    assert (protocol["name"], protocol["how"], protocol["detected"]["name"]) == (
        "POST /transform/",
        how,
        "predict_no_state",
    )
    return {name: (result.status, result.message) for name, result in results.items()}


def test_a_sparse_dataset_is_sent_with_its_names_and_the_sparse_answer_counted(tmp_path: Path) -> None:
    (tmp_path / "x.mtx").write_bytes(MTX)
    (tmp_path / "names.txt").write_text("left\nright\n")
    dataset = load_sparse(tmp_path / "x.mtx", tmp_path / "names.txt")
    assert (dataset.rows, dataset.columns, dataset.names) == (3, 2, ["left", "right"])
    results = _sparse_run(_transform(tmp_path / "t", SPARSE_HOOK), dataset)
    assert results[ERROR_CHECK] == ("succeeded", "3 rows transformed into 2 columns (sparse)")
    assert results[NULLS] == ("skipped", SPARSE_NO_NULLS)


def test_a_sparse_transform_that_drops_rows_fails_with_drums_line(tmp_path: Path) -> None:
    (tmp_path / "x.mtx").write_bytes(MTX)
    results = _sparse_run(_transform(tmp_path / "t", "return data.iloc[1:]"), load_sparse(tmp_path / "x.mtx"))
    assert results[ERROR_CHECK] == ("failed", f"HTTP 500: {ROWS_CHANGED}")


@pytest.mark.parametrize(
    ("data", "names", "message"),
    [
        (b"a,b\n1,2\n", None, "not a Matrix Market file: it must start with %%MatrixMarket"),
        (b"%%MatrixMarket matrix coordinate real general\n% only comments\n", None, "it has no size line"),
        (b"%%MatrixMarket matrix coordinate real general\nthree by two\n", None, "line 2: the size line must be"),
        (b"%%MatrixMarket matrix coordinate real general\n0 2 0\n", None, "the matrix has no rows"),
        (MTX, b"only\n", "the column file names 1 columns, x.mtx has 2"),
        (MTX, b"\xff\n", "must be UTF-8 text, one column name a line"),
    ],
)
def test_a_sparse_dataset_drum_could_not_read_is_exit_2(
    tmp_path: Path, data: bytes, names: bytes | None, message: str
) -> None:
    (tmp_path / "x.mtx").write_bytes(data)
    names_file = None
    if names is not None:
        names_file = tmp_path / "names.txt"
        names_file.write_bytes(names)
    with pytest.raises(InputError, match=re.escape(message)):
        load_sparse(tmp_path / "x.mtx", names_file)


def test_a_sparse_dataset_is_for_transform_models_only(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cmkit.cli import main

    bundle = tmp_path / "price"
    init_bundle(bundle, make_spec("regression", "price"))
    (tmp_path / "x.mtx").write_bytes(MTX)
    result = CliRunner().invoke(main, ["test-local", str(bundle), "--dataset", str(tmp_path / "x.mtx")])
    assert result.exit_code == 2, result.output
    assert "a sparse (.mtx) dataset is for transform models; this one is regression" in result.output
