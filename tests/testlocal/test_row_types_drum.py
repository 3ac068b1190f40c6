"""GeoPoint, vector database and text generation models: `cmkit predict` writes the bytes `drum score` writes.

These types are scored row by row, as DRUM 1.18 scores them (`/predict/`, one column out, no float
cast): `cmkit init`'s examples, wrapped in DRUM's `score()` hook (DRUM has no `predict()` hook),
and a bundle shaped like DataRobot's `python3_dummy_textgen` template, predicted by cmkit's
runtime and by DRUM (bench/'s virtualenv) on the same rows, must give the same CSV, byte for
byte. DRUM starts a vector database or a text generation model only with TARGET_NAME set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.scaffold import init_bundle, make_spec
from tests.support.drum import drum_score

pytestmark = pytest.mark.slow

# DRUM's hook around the template's own load_model and predict (kept in template_model.py).
SCORE_HOOK = """import pandas as pd

from template_model import load_model as load_model
from template_model import predict


def score(data, model, **kwargs):
    return pd.DataFrame({"Predictions": predict(model, data)})
"""


def drum_hooked_template(folder: Path, target_type: str) -> Path:
    spec = make_spec(target_type, folder.name)
    init_bundle(folder, spec)
    (folder / "template_model.py").write_text((folder / "custom.py").read_text())
    (folder / "custom.py").write_text(SCORE_HOOK)
    return folder


@pytest.mark.parametrize(("target_type", "target_name"), [("geopoint", "depot"), ("vectordatabase", "relevant")])
def test_cmkit_predict_writes_drum_score_s_bytes(
    target_type: str, target_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = drum_hooked_template(tmp_path / target_type, target_type)
    rows = tmp_path / "rows.csv"
    pd.read_csv(bundle / "data" / "sample.csv").drop(columns=[target_name]).to_csv(rows, index=False)
    ours = tmp_path / "ours.csv"
    flags = ["--runtime", "process", "--input", str(rows), "--output", str(ours)]
    result = CliRunner().invoke(main, ["predict", str(bundle), *flags])
    assert result.exit_code == 0, result.stderr
    monkeypatch.setenv("TARGET_NAME", target_name)
    drum_score(bundle, rows, target_type, ())
    theirs = bundle.parent / f"{bundle.name}-drum.csv"
    assert ours.read_bytes() == theirs.read_bytes()
    assert len(ours.read_text().splitlines()) == len(pd.read_csv(rows)) + 1


# Shaped like DataRobot's python3_dummy_textgen template (datarobot-user-models, model_templates/):
# DRUM hooks only, no metadata; score() answers each row's `input` reversed, in a column of its
# own name. Its README runs it with `--target-type textgeneration` on a CSV of one column, input.
DUMMY_TEXTGEN = """import pandas as pd


def load_model(code_dir):
    return "unused"


def score(data, model, **kwargs):
    return pd.DataFrame({"output": [text[::-1] for text in data["input"].tolist()]})
"""
TEXTS = ["Hello World", 'a, quoted "text"', "énorme ☃", "354 * 139 = "]


def test_the_dummy_textgen_template_passes_test_local_and_predicts_drum_score_s_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "python3_dummy_textgen"
    bundle.mkdir()
    (bundle / "custom.py").write_text(DUMMY_TEXTGEN)
    rows = tmp_path / "simple_text.csv"
    pd.DataFrame({"input": TEXTS}).to_csv(rows, index=False)
    target = ["--target-type", "textgeneration", "--target-name", "resultText", "--runtime", "process"]
    ours = tmp_path / "ours.csv"
    result = CliRunner().invoke(main, ["predict", str(bundle), *target, "--input", str(rows), "--output", str(ours)])
    assert result.exit_code == 0, result.stderr
    monkeypatch.setenv("TARGET_NAME", "resultText")  # DRUM refuses a text generation model without one
    drum_score(bundle, rows, "textgeneration", ())
    theirs = bundle.parent / f"{bundle.name}-drum.csv"
    assert ours.read_bytes() == theirs.read_bytes()
    assert pd.read_csv(ours)["Predictions"].tolist() == [text[::-1] for text in TEXTS]
    # test-local's dataset names its target column (cmkit's rule, checked before the run): the texts
    # with the answers expected of them.
    dataset = tmp_path / "dataset.csv"
    pd.DataFrame({"input": TEXTS, "resultText": [text[::-1] for text in TEXTS]}).to_csv(dataset, index=False)
    tested = CliRunner().invoke(main, ["test-local", str(bundle), *target, "--dataset", str(dataset), "--json"])
    document = json.loads(tested.stdout)
    statuses = {name: check["status"] for name, check in document["testingStatus"].items()}
    assert tested.exit_code == 0 and statuses["errorCheck"] == statuses["sideEffects"] == "succeeded", statuses
    # The template reverses a missing text no better under DRUM: nullValueImputation warns (its
    # default level), as it would on DataRobot, and the test passes with that warning.
    assert statuses["nullValueImputation"] == document["overallStatus"] == "warning"
    assert "score() raised TypeError" in document["testingStatus"]["nullValueImputation"]["message"]
