"""GeoPoint and vector database models: `cmkit predict` writes the bytes `drum score` writes.

Both types are scored row by row, as DRUM 1.18 scores them (`/predict/`, one column out, no float
cast): `cmkit init`'s examples, wrapped in DRUM's `score()` hook (DRUM has no `predict()` hook),
predicted by cmkit's runtime and by DRUM (bench/'s virtualenv) on the same rows, must give the
same CSV, byte for byte. DRUM starts a vector database only with TARGET_NAME set.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.scaffold import init_bundle, make_spec
from tests.support.drum import drum_score

pytestmark = pytest.mark.slow

# DRUM's hook around the template's own load_model and predict (kept in template_model.py).
SCORE_HOOK = '''import pandas as pd

from template_model import load_model as load_model
from template_model import predict


def score(data, model, **kwargs):
    return pd.DataFrame({"Predictions": predict(model, data)})
'''


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
