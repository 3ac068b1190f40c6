"""DataRobot's DRUM-format models, run unchanged by cmkit's runtime through `cmkit test-local`.

The bundles are written here from DRUM's public documentation of its hooks (`init`,
`load_model`, `transform`, `score` returning a DataFrame, `post_process`) and of its artifact
path (one pickled scikit-learn object, predicted through predict / predict_proba with the
classes mapped to the labels). None has a start script: the environment provides it, as
DataRobot's drop-in environments do. Each runs in both runtimes and gets the verdict DataRobot
would give.
"""

from __future__ import annotations

import json
import pickle
import shutil
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from cmkit.lint import lint_bundle
from tests.conftest import REPO
from tests.support.serving import serve
from tests.testlocal.test_samples import RUNTIMES, run, statuses

SAMPLES = REPO / "sample_models"
DIABETES = SAMPLES / "regression_diabetes"
CANCER = SAMPLES / "binary_breast_cancer"
IRIS = SAMPLES / "multiclass_iris"
METADATA = """\
name: {name}
type: inference
targetType: {target_type}
inferenceModel:
  targetName: {target}
{labels}validation:
  input: data/test.csv
"""


def _bundle(folder: Path, sample: Path, custom: str | None, labels: str = "") -> Path:
    """A DRUM-format bundle: custom.py (if any), the sample's data, metadata and requirements."""
    folder.mkdir(parents=True)
    (folder / "data").mkdir()
    shutil.copy(sample / "data" / "test.csv", folder / "data" / "test.csv")
    shutil.copy(sample / "requirements.txt", folder / "requirements.txt")
    meta = (sample / "model-metadata.yaml").read_text()
    target_type = "regression" if "regression" in meta else "binary" if "binary" in meta else "multiclass"
    target = next(line.split(":")[1].strip() for line in meta.splitlines() if "targetName" in line)
    (folder / "model-metadata.yaml").write_text(
        METADATA.format(name=folder.name, target_type=target_type, target=target, labels=labels)
    )
    if custom is not None:
        (folder / "custom.py").write_text(textwrap.dedent(custom))
    return folder


LINEAR_SCORE = """\
    import json
    from pathlib import Path

    import numpy as np
    import pandas as pd


    def load_model(code_dir):
        return json.loads((Path(code_dir) / "coefficients.json").read_text())


    def features(data, model):
        return data[model["features"]].astype(float).fillna(0.0).to_numpy()


    def score(data, model, **kwargs):
        # DRUM passes its TargetType enum, cmkit's runtime the string: its value is the name either way.
        assert getattr(kwargs["target_type"], "value", kwargs["target_type"]) == "regression"
        predictions = features(data, model) @ np.array(model["coef"]) + model["intercept"]
        return pd.DataFrame({"Predictions": predictions})
"""


def _coefficients(folder: Path) -> None:
    pipeline = joblib.load(DIABETES / "model.joblib")
    scaler, ridge = pipeline[-2], pipeline[-1]
    coef = ridge.coef_ / scaler.scale_
    intercept = float(ridge.intercept_ - np.sum(coef * scaler.mean_))
    document = {"features": list(pipeline.feature_names_in_), "coef": coef.tolist(), "intercept": intercept}
    (folder / "coefficients.json").write_text(json.dumps(document))


def hooks_only(folder: Path) -> Path:
    """load_model + score, no artifact the runtime must find, no start script."""
    bundle = _bundle(folder, DIABETES, LINEAR_SCORE)
    (bundle / "requirements.txt").write_text("")  # numpy and pandas come with the environment
    _coefficients(bundle)
    return bundle


def score_crashes_on_nulls(folder: Path) -> Path:
    custom = LINEAR_SCORE.replace(
        'data[model["features"]].astype(float).fillna(0.0)', 'data[model["features"]].astype("int64").astype(float)'
    )
    bundle = _bundle(folder, DIABETES, custom)
    (bundle / "requirements.txt").write_text("")
    _coefficients(bundle)
    return bundle


def score_keeps_state(folder: Path) -> Path:
    custom = LINEAR_SCORE.replace(
        "    def score(data, model, **kwargs):\n",
        "    CALLS = [0]\n\n\n    def score(data, model, **kwargs):\n        CALLS[0] += 1  # state between calls\n",
    ).replace('+ model["intercept"]', '+ model["intercept"] + CALLS[0]')
    bundle = _bundle(folder, DIABETES, custom)
    (bundle / "requirements.txt").write_text("")
    _coefficients(bundle)
    return bundle


def bare_pipeline(folder: Path) -> Path:
    """One pickled scikit-learn pipeline and nothing else: DRUM's artifact path."""
    bundle = _bundle(folder, CANCER, None, labels="  positiveClassLabel: malignant\n  negativeClassLabel: benign\n")
    with (bundle / "model.pkl").open("wb") as handle:
        pickle.dump(joblib.load(CANCER / "model.joblib"), handle)
    return bundle


TRANSFORM = """\
    def transform(data, model):
        # The classifier was fitted on millimetres without missing values; requests come in centimetres.
        return (data[list(model.feature_names_in_)] * 10.0).fillna(0.0)
"""


def transform_then_classifier(folder: Path) -> Path:
    """A transform hook before a pickled classifier that has neither an imputer nor the units."""
    from sklearn.linear_model import LogisticRegression

    data = pd.read_csv(IRIS / "data" / "test.csv")
    pipeline = joblib.load(IRIS / "model.joblib")
    features = list(pipeline.feature_names_in_)
    target = next(c for c in data.columns if c not in features)
    classifier = LogisticRegression(max_iter=2000).fit(data[features] * 10.0, data[target].astype(str))
    labels = "  classLabels:\n" + "".join(f"    - {label}\n" for label in classifier.classes_)
    bundle = _bundle(folder, IRIS, TRANSFORM, labels=labels)
    with (bundle / "model.pkl").open("wb") as handle:
        pickle.dump(classifier, handle)
    return bundle


def unknown_artifact(folder: Path) -> Path:
    bundle = _bundle(folder, DIABETES, None)
    (bundle / "model.onnx").write_bytes(b"\x08\x07")
    return bundle


GOOD_BUNDLES = [hooks_only, bare_pipeline, transform_then_classifier]


@pytest.mark.slow  # the bundles are built from the scikit-learn samples: 1.1 s to import scikit-learn
@pytest.mark.parametrize("make", GOOD_BUNDLES, ids=lambda f: f.__name__)
def test_drum_bundles_lint_clean_without_a_start_script(make: object, tmp_path: Path) -> None:
    report = lint_bundle(make(tmp_path / "m"))  # type: ignore[operator]
    assert report.ok and [f.rule for f in report.findings] == ["start-script-provided"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("make", GOOD_BUNDLES, ids=lambda f: f.__name__)
def test_drum_format_models_pass(make: object, runtime: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    document = run(make(tmp_path / "m"), runtime, request)  # type: ignore[operator]
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    ("make", "check", "fragment"),
    [
        (score_crashes_on_nulls, "nullValueImputation", "columns fail when entirely null"),
        (score_keeps_state, "sideEffects", "rows differ when predicted alone"),
    ],
    ids=["crash-on-nulls", "state-between-calls"],
)
def test_drum_format_faults_get_datarobots_verdict(
    make: object, check: str, fragment: str, runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    document = run(make(tmp_path / "m"), runtime, request)  # type: ignore[operator]
    found = document["testingStatus"][check]  # type: ignore[index]
    assert found["status"] == "warning" and fragment in found["message"], document["testingStatus"]
    others = {name: status for name, status in statuses(document).items() if name != check}
    assert set(others.values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_artifact_the_runtime_cannot_load_fails_at_once_naming_it(
    runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    document = run(unknown_artifact(tmp_path / "m"), runtime, request, startup_timeout=300)
    service = document["testingStatus"]["longRunningService"]  # type: ignore[index]
    assert service["status"] == "failed"
    assert "exited with code 4" in service["message"]
    assert "model.onnx: this runtime loads .pkl and .joblib artifacts" in service["message"]
    # At once, not after the 300 s startup timeout.
    assert document["details"]["checks"]["longRunningService"]["seconds"] < 60  # type: ignore[index]


@pytest.mark.slow
def test_info_names_the_format_the_hooks_and_the_target(tmp_path: Path) -> None:
    bundle = transform_then_classifier(tmp_path / "m")
    with serve(bundle, tmp_path / "server.log", prefix="/p") as server:
        info = requests.get(server.url("/info/"), timeout=5).json()
    assert info["modelFormat"] == "artifact" and info["hooks"] == ["transform"] and info["artifact"] == "model.pkl"
    assert info["targetType"] == "multiclass" and len(info["classLabels"]) == 3
    assert info["runtime"] == "cmkit-runtime" and info["loaded"] is True
    assert "model format artifact (hooks: transform, artifact model.pkl)" in server.log()
