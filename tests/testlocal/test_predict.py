"""`cmkit predict`: a CSV predicted through test-local's runtime, in `drum score`'s columns."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from cmkit.cli import main
from cmkit.predict import as_drum_frame, drum_columns
from cmkit_runtime.target import Target
from tests.support.bundles import linear_prediction, write_quick_bundle

PROCESS = ["--runtime", "process"]


def test_stdin_to_stdout_in_drums_shape(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    rows = "a,b\n1.0,2\n,4\n"
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS], input=rows)
    assert result.exit_code == 0, result.stderr
    read = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [float(r["Predictions"]) for r in read] == [linear_prediction("1.0", "2"), linear_prediction("", "4")]
    assert "predicted 2 rows" in result.stderr


def test_a_file_to_a_file_and_json(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    output = tmp_path / "predictions.csv"
    flags = ["--input", str(bundle / "data" / "sample.csv"), "--output", str(output), "--json"]
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS, *flags])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] and document["rows"] == 20 and document["diagnosis"] is None
    assert output.read_text().splitlines()[0] == "Predictions" and len(output.read_text().splitlines()) == 21


def test_a_model_that_does_not_start_is_diagnosed(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle", behaviour="crash_at_start")
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS, "--json"], input="a,b\n1,2\n")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["predictions"] is None and document["diagnosis"]["code"] == "server-exited"
    assert "server-exited: the server exited with code 3 before it was ready" in result.stderr
    assert "cannot load the model: crash_at_start" in result.stderr  # the evidence


def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS], input="")
    assert result.exit_code == 2 and "the dataset is empty" in result.stderr


def test_classifier_columns_are_drums() -> None:
    binary = Target("binary", ("yes", "no"))
    assert drum_columns(binary) == ["no", "yes"]  # DRUM: negative, then positive
    frame = as_drum_frame([[0.25, 0.75]], binary)  # errorCheck's values: in the target's label order
    assert frame.to_dict(orient="records") == [{"no": 0.75, "yes": 0.25}]
    assert drum_columns(Target("multiclass", ("a", "b", "c"))) == ["a", "b", "c"]
