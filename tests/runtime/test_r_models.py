"""R models (custom.R hooks, .rds artifacts) served by cmkit_runtime through rpy2, as DRUM's R predictor serves them.

The models are trained in the test by R (tests/support/rmodels.py); predictions are compared with
R's own predict() on the same rows. Slow tier: R starts in seconds and caret takes a few more.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from cmkit.checks.results import PREDICTION_VERIFICATION
from cmkit.engine.rhost import host_problem
from cmkit.scaffold import init_bundle, make_spec
from tests.support.bundles import write_files
from tests.support.drum import drum_score
from tests.support.rmodels import LABELS, TARGETS, build_r_models, install_pack, require_r
from tests.support.serving import serve
from tests.testlocal.test_samples import run, statuses

pytestmark = pytest.mark.slow
STRUCTURED = sorted(TARGETS)
RPY2 = "rpy2==3.5.17"  # into DRUM's venv: rpy2 3.6 needs R 4.3+, Debian bookworm's is 4.2


@pytest.fixture(scope="module")
def r_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_r_models(tmp_path_factory.mktemp("r-models"))


def served(bundle: Path, data: pd.DataFrame, log: Path, env: dict[str, str] | None = None) -> pd.DataFrame:
    columns = {name: [None if pd.isna(v) else v for v in data[name]] for name in data.columns}
    with serve(bundle, log, prefix=None, env=env) as server:
        response = server.predict(columns)
    assert response.status_code == 200, response.text + log.read_text()[-3000:]
    predictions = response.json()["predictions"]
    if LABELS[bundle.name]:
        return pd.DataFrame(predictions)[list(LABELS[bundle.name])]
    return pd.DataFrame({"Predictions": predictions})


@pytest.mark.parametrize("name", STRUCTURED)
def test_predictions_are_rs_own(name: str, r_models: Path, tmp_path: Path) -> None:
    bundle = r_models / name
    data = pd.read_csv(bundle / "data" / "test.csv")
    ours = served(bundle, data, tmp_path / "server.log")  # the type and labels: model-metadata.yaml
    expected = pd.read_csv(bundle / "data" / "expected.csv", dtype=float)
    expected.columns = [str(c) for c in expected.columns]
    assert list(ours.columns) == list(expected.columns)
    np.testing.assert_allclose(ours.to_numpy(float), expected.to_numpy(float), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", STRUCTURED)
def test_predictions_are_drums(name: str, r_models: Path, tmp_path: Path) -> None:
    """`drum score` through DRUM's own R predictor (rpy2 in DRUM's venv; devtools, which its R glue
    loads, from Debian: .ci/run installs it) gives the same numbers."""
    bundle = r_models / name
    data = pd.read_csv(bundle / "data" / "test.csv")
    ours = served(bundle, data, tmp_path / "server.log")
    theirs = drum_score(bundle, bundle / "data" / "test.csv", TARGETS[name], LABELS[name], RPY2)
    theirs.columns = [str(c) for c in theirs.columns]
    assert sorted(theirs.columns) == sorted(ours.columns)  # DRUM writes a binary's columns in its own order
    theirs = theirs[list(ours.columns)]
    np.testing.assert_allclose(ours.to_numpy(float), theirs.to_numpy(float), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", STRUCTURED)
def test_r_models_pass_test_local_in_the_process(name: str, r_models: Path, request: pytest.FixtureRequest) -> None:
    bundle = r_models / name
    document = run(bundle, "process", request, dataset=bundle / "data" / "labelled.csv")
    # lm and caret's glm refuse a column R reads as logical (all NA): as under DRUM, the null
    # check warns; the models with a transform() that fills NAs pass it.
    expected = {"longRunningService": "succeeded", "errorCheck": "succeeded", "sideEffects": "succeeded"}
    found = statuses(document)
    assert {k: found[k] for k in expected} == expected, document["testingStatus"]
    if name in ("glm_hooks", "caret_multiclass"):
        assert found["nullValueImputation"] == "succeeded", document["testingStatus"]


def test_r_errors_carry_rs_message_and_call(r_models: Path, tmp_path: Path) -> None:
    bundle = write_files(
        tmp_path / "failing",
        {
            "custom.R": "score <- function(data, model, labels) {\n  check(data)\n}\n"
            'check <- function(data) stop("no score for ", nrow(data), " rows")\n',
            "model.rds": (r_models / "lm_rds" / "model.rds").read_bytes(),
        },
    )
    with serve(bundle, tmp_path / "server.log", prefix=None, env={"TARGET_TYPE": "regression"}) as server:
        response = server.predict({"x1": [1.0, 2.0], "x2": [0.0, 1.0], "x3": [1, 2]})
    assert response.status_code == 500
    assert response.json()["message"] == "R: Error in check(data) : no score for 2 rows"


def test_unstructured_r_model_like_datarobots_template(r_models: Path, tmp_path: Path) -> None:
    bundle = r_models / "word_count"
    library = install_pack(tmp_path / "r-library")
    env = {"TARGET_TYPE": "unstructured", "R_LIBS": str(library)}
    with serve(bundle, tmp_path / "server.log", prefix=None, env=env) as server:
        text = requests.post(server.url("/predictUnstructured/"), data="rough road leads to the stars\n", timeout=30)
        binary = requests.post(
            server.url("/predictUnstructured/?ret_mode=binary"),
            data="один два три".encode(),
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
    assert (text.status_code, text.text, text.headers["Content-Type"]) == (200, "6", "text/plain; charset=utf-8")
    assert binary.status_code == 200, binary.text
    assert binary.headers["Content-Type"] == "application/octet-stream"
    assert struct.unpack(">i", binary.content) == (3,)


def test_unstructured_r_model_passes_test_local(r_models: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bundle = r_models / "word_count"
    library = install_pack(tmp_path / "r-library")
    document = run(
        bundle, "process", request, dataset=bundle / "data" / "words.txt", server_environment={"R_LIBS": str(library)}
    )
    assert set(statuses(document).values()) <= {"succeeded", "skipped"}, document["testingStatus"]
    assert statuses(document)["longRunningService"] == "succeeded"


def test_a_missing_r_package_is_named_before_the_start(r_models: Path, request: pytest.FixtureRequest) -> None:
    require_r()
    bundle = r_models / "word_count"  # requirements.txt names pack, which Debian does not package
    assert host_problem(bundle) is not None and "R package pack," in (host_problem(bundle) or "")
    document = run(bundle, "process", request, dataset=bundle / "data" / "words.txt")
    assert document["testingStatus"]["longRunningService"]["status"] == "failed"  # type: ignore[index]
    assert "requirements.txt names the R package pack" in str(document["testingStatus"])


def test_a_missing_r_package_at_load_is_one_line(r_models: Path, tmp_path: Path) -> None:
    # The shape of DataRobot's r_lang template: init() attaches brnn (not packaged by Debian).
    bundle = write_files(
        tmp_path / "r_lang_like",
        {
            "custom.R": "init <- function(...) {\n  library(brnn)\n  library(glmnet)\n}\n",
            "model.rds": (r_models / "lm_rds" / "model.rds").read_bytes(),
        },
    )
    log = tmp_path / "server.log"
    with serve(bundle, log, prefix=None, env={"TARGET_TYPE": "regression"}, ready=False) as server:
        server.process.wait(timeout=120)
    assert "custom.R needs the R package 'brnn', which is not installed: add it to requirements.txt" in log.read_text()


def verified_run(bundle: Path, runtime: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """test-local with predictionVerificationCheck against R's own predictions (a regression's)."""
    return run(
        bundle,
        runtime,
        request,
        dataset=bundle / "data" / "labelled.csv",
        verification_dataset=bundle / "data" / "expected.csv",
        checks={PREDICTION_VERIFICATION: "fail"},
        parameters={PREDICTION_VERIFICATION: {"predictionsColumn": "Predictions", "comparisonPrecision": 1e-9}},
    )


def test_test_local_verifies_rs_predictions_in_the_process(r_models: Path, request: pytest.FixtureRequest) -> None:
    document = verified_run(r_models / "lm_rds", "process", request)
    assert statuses(document)["errorCheck"] == "succeeded"
    verification = document["testingStatus"][PREDICTION_VERIFICATION]  # type: ignore[index]
    assert verification["status"] == "succeeded", verification


@pytest.mark.docker
def test_r_models_in_cmkits_r_environment(r_models: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The r environment (Debian's R, rpy2, the runtime) serves an .rds as R predicts it, and custom.R hooks."""
    document = verified_run(r_models / "lm_rds", "docker", request)
    verification = document["testingStatus"][PREDICTION_VERIFICATION]  # type: ignore[index]
    assert verification["status"] == "succeeded", verification
    hooks = run(r_models / "glm_hooks", "docker", request, dataset=r_models / "glm_hooks" / "data" / "labelled.csv")
    assert set(statuses(hooks).values()) == {"succeeded"}, hooks["testingStatus"]


@pytest.mark.docker
def test_r_packages_come_from_debian_in_the_dependency_layer(
    r_models: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """requirements.txt names R packages: the environment lacks praise, the layer installs r-cran-praise
    (stringr it has already, through the packages it installs);
    pack is in neither Debian nor a reachable CRAN: the build fails naming it."""
    source = (r_models / "word_count" / "custom.R").read_text()
    words = write_files(
        tmp_path / "words",
        {
            "custom.R": source.replace("  library(pack)\n", "  library(praise)\n"),
            "requirements.txt": "stringr\npraise  # Debian's r-cran-praise\n",
            "model-metadata.yaml": (r_models / "word_count" / "model-metadata.yaml").read_text(),
            "data/words.txt": "rough road leads to the stars\n",
        },
    )
    document = run(words, "docker", request, dataset=words / "data" / "words.txt")
    assert statuses(document)["longRunningService"] == "succeeded", document["testingStatus"]
    assert "failed" not in statuses(document).values(), document["testingStatus"]
    missing = run(r_models / "word_count", "docker", request, dataset=words / "data" / "words.txt")
    message = str(missing["testingStatus"]["longRunningService"])  # type: ignore[index]
    assert "R package pack: Debian has no r-cran-pack" in message, message


@pytest.mark.parametrize("target", ["regression", "binary", "multiclass", "unstructured"])
def test_init_language_r_models_pass_test_local(target: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    require_r()
    labels = ("low", "mid", "high") if target == "multiclass" else ()
    bundle = init_bundle(tmp_path / target, make_spec(target, "m", class_labels=labels), template="r").bundle
    document = run(bundle, "process", request)
    found = statuses(document)  # an unstructured model skips the row checks
    assert found["errorCheck"] == "succeeded" and set(found.values()) <= {"succeeded", "skipped"}, found


def test_an_anomaly_model_is_predicted_as_regression_is(r_models: Path, tmp_path: Path) -> None:
    """DRUM's R predictor scores anomaly models with predict(model, data), as regression ones."""
    bundle = write_files(tmp_path / "anomaly", {"model.rds": (r_models / "lm_rds" / "model.rds").read_bytes()})
    data = pd.read_csv(r_models / "lm_rds" / "data" / "test.csv")
    columns = {name: data[name].tolist() for name in data.columns}
    with serve(bundle, tmp_path / "server.log", prefix=None, env={"TARGET_TYPE": "anomaly"}) as server:
        response = server.predict(columns)
    assert response.status_code == 200, response.text
    expected = pd.read_csv(r_models / "lm_rds" / "data" / "expected.csv")["Predictions"].to_numpy()
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_feature_impact_ranks_an_r_models_features(
    runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if runtime == "process":
        require_r()
    bundle = init_bundle(tmp_path / "r", make_spec("regression", "m"), template="r").bundle
    document = run(bundle, runtime, request, feature_impact=True)
    impact = document["featureImpact"]
    ranked = [entry["featureName"] for entry in impact["featureImpacts"]]  # type: ignore[index]
    assert ranked[0] == "sqft" and sorted(ranked) == ["age_years", "bedrooms", "distance_km", "sqft"], impact
