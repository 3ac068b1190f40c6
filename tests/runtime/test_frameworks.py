"""DataRobot's framework templates (XGBoost, ONNX) served by cmkit's runtime as DRUM serves them.

Each bundle (tests/support/frameworks.py) is what a template holds: one artifact and a transform
hook, or a load_model() returning the framework's object. Each must pass `cmkit test-local`, and
its predictions on the validation rows must be DRUM's (`drum score`, DRUM 1.18.1 with the same
framework versions) within 1e-6 (relative for float32 values).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support import frameworks
from tests.support.drum import drum_score
from tests.support.serving import serve
from tests.testlocal.test_samples import run, statuses

LABELS = {"binary": ("malignant", "benign"), "multiclass": ("setosa", "versicolor", "virginica")}
CASES: list[tuple[Callable[[Path, str], Path], str, str]] = [
    (frameworks.xgboost_booster, "regression", "xgboost"),
    (frameworks.xgboost_booster, "binary", "xgboost"),
    (frameworks.xgboost_booster, "multiclass", "xgboost"),
    (frameworks.xgboost_pipeline, "regression", "xgboost"),
    (frameworks.onnx_artifact, "regression", "onnxruntime"),
    (frameworks.onnx_artifact, "binary", "onnxruntime"),
    (frameworks.onnx_artifact, "anomaly", "onnxruntime"),
    (frameworks.onnx_session_hook, "multiclass", "onnxruntime"),
]
IDS = [f"{make.__name__}-{target}" for make, target, _ in CASES]


def served_predictions(bundle: Path, data: pd.DataFrame, target_type: str, log: Path) -> pd.DataFrame:
    """cmkit's runtime, as `--runtime process` starts it, on the rows: one column per label, or Predictions."""
    columns = {name: [None if pd.isna(v) else v for v in data[name]] for name in data.columns}
    with serve(bundle, log, prefix=None) as server:
        response = server.predict(columns)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    if target_type in LABELS:
        return pd.DataFrame(predictions)[list(LABELS[target_type])]
    return pd.DataFrame({"Predictions": predictions})


@pytest.mark.slow
@pytest.mark.parametrize(("make", "target_type", "framework"), CASES, ids=IDS)
def test_template_predictions_are_drums(
    make: Callable[[Path, str], Path], target_type: str, framework: str, tmp_path: Path
) -> None:
    bundle = make(tmp_path / "model", target_type)
    data = pd.read_csv(bundle / "data" / "test.csv")
    ours = served_predictions(bundle, data, target_type, tmp_path / "server.log")
    theirs = drum_score(bundle, bundle / "data" / "test.csv", target_type, LABELS.get(target_type, ()), framework)
    assert list(theirs.columns) == list(ours.columns)
    # Within 1e-6, relative for large values: XGBoost and ONNX predict in float32, and DRUM's CSV
    # prints a float32 to its own precision (248.89964 for 248.899643...).
    np.testing.assert_allclose(ours.to_numpy(float), theirs.to_numpy(float), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("make", "target_type", "framework"), CASES, ids=IDS)
def test_template_passes_test_local(
    make: Callable[[Path, str], Path], target_type: str, framework: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # ONNX computes in float32 (DRUM feeds it float32), and a batch is not summed in the order of
    # single rows: probabilities near 1e-4 move by ~6e-8 (measured), past the default atol of 1e-8.
    options = {"atol": 1e-6} if framework == "onnxruntime" else {}
    document = run(make(tmp_path / "model", target_type), "process", request, **options)
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.docker
@pytest.mark.slow
def test_onnx_template_passes_in_docker_with_its_requirements(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bundle = frameworks.onnx_artifact(tmp_path / "model", "binary")
    document = run(bundle, "docker", request, startup_timeout=300, atol=1e-6)  # float32: see above
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.docker
@pytest.mark.slow
def test_xgboost_template_passes_in_docker(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # A native Booster scored on a DMatrix, the path DRUM's XGBoost predictor takes; its
    # requirements (xgboost, scikit-learn) are installed into the image from the wheel cache.
    bundle = frameworks.xgboost_booster(tmp_path / "model", "multiclass")
    document = run(bundle, "docker", request, startup_timeout=300)
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]
    assert document["details"]["runtime"] == "docker"  # type: ignore[index]


@pytest.mark.docker
@pytest.mark.slow
def test_a_framework_missing_from_requirements_is_named_in_one_line(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bundle = frameworks.onnx_artifact(tmp_path / "model", "regression")
    (bundle / "requirements.txt").write_text("")  # cmkit's python3 environment has no onnxruntime
    document = run(bundle, "docker", request, startup_timeout=300)
    service = document["testingStatus"]["longRunningService"]  # type: ignore[index]
    assert service["status"] == "failed", service
    assert (
        "regression_model.onnx needs onnxruntime: add onnxruntime to the bundle's requirements.txt"
        in (service["message"])
    )
