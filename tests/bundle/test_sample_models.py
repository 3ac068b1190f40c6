"""sample_models/: in sync with the template and build.py, lint-clean, and each one behaving as documented.

The good sample models serve valid predictions on their test data through their own
start_server.sh; the broken bundles misbehave exactly in their one documented way (those that
need test-local's engine or Docker to show are covered by its tests).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import requests

from cmkit.lint import lint_bundle
from cmkit.metadata import load_metadata
from cmkit.scaffold import init_bundle, make_spec
from tests.conftest import REPO
from tests.runtime.test_server import strict_json
from tests.support.serving import Server, serve, start

SAMPLES = REPO / "sample_models"
BROKEN = SAMPLES / "broken"
BROKEN_NAMES = {
    "batch_dependent": "regression",
    "stateful": "regression",
    "null_crash": "regression",
    "nan_output": "regression",
    "wrong_count": "regression",
    "bad_probabilities": "binary",
    "ignores_url_prefix": "regression",
    "exits_at_start": "regression",
    "memory_hog": "regression",
    "slow_start": "regression",
    "not_a_point": "geopoint",
}
GOOD = ("regression_diabetes", "binary_breast_cancer", "multiclass_iris")


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_models_build", SAMPLES / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


build = load_build()


def bundle_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_broken_bundles_are_the_documented_ones() -> None:
    assert {b.name: b.target_type for b in build.BROKEN} == BROKEN_NAMES
    assert {p.name for p in BROKEN.iterdir() if p.is_dir() and not p.name.startswith("_")} == set(BROKEN_NAMES)
    readme = (BROKEN / "README.md").read_text()
    for name in BROKEN_NAMES:
        assert f"`{name}`" in readme


def test_template_derived_files_are_in_sync() -> None:
    """server.py, start_server.sh, metadata... equal what the template renders today (build.py wrote them)."""
    for path, file in build.derived_files().items():
        committed = REPO / path
        assert committed.read_bytes() == file.content, f"{path} drifted: run python sample_models/build.py"
        assert os.access(committed, os.X_OK) == file.executable, path


def test_bundles_hold_only_generated_and_hand_written_files() -> None:
    derived = build.derived_files()
    fitted = {
        f"sample_models/{s.folder}/{rel}" for s in build.SAMPLE_MODELS for rel in ("model.joblib", "data/test.csv")
    }
    for sample in build.SAMPLE_MODELS:
        folder = f"sample_models/{sample.folder}"
        expected = {p[len(folder) + 1 :] for p in (*derived, *fitted) if p.startswith(folder + "/")} | {"custom.py"}
        assert bundle_files(REPO / folder) == expected
    for broken in build.BROKEN:
        folder = f"sample_models/broken/{broken.name}"
        expected = {p[len(folder) + 1 :] for p in derived if p.startswith(folder + "/")} | set(broken.own)
        assert bundle_files(REPO / folder) == expected


@pytest.mark.parametrize(
    "bundle", [SAMPLES / n for n in GOOD] + [BROKEN / n for n in BROKEN_NAMES], ids=lambda p: p.name
)
def test_every_sample_bundle_lints_clean_and_names_its_data(bundle: Path) -> None:
    # Notes are allowed: most bundles here hold no start script, the environment provides it.
    assert [f for f in lint_bundle(bundle).findings if f.severity != "note"] == []
    meta = load_metadata(bundle)
    assert meta is not None and meta.validation_input and (bundle / meta.validation_input).is_file()


def test_pins_match_the_dev_environment() -> None:
    """The artifacts unpickle with the pinned versions, and `--runtime process` serves them from this venv."""
    for name, pin in build.PINS.items():
        assert version(name) == pin, name
    for sample in GOOD:
        assert (SAMPLES / sample / "requirements.txt").read_text().count("scikit-learn==1.9.1") == 1
    assert '"scikit-learn==1.9.1"' in (REPO / "pyproject.toml").read_text()


@pytest.mark.slow
def test_build_reproduces_the_committed_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SAMPLES / "build.py"), "--root", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    written = bundle_files(tmp_path)
    assert set(build.derived_files()) <= set(written)
    for path in written:
        if path.endswith("model.joblib"):
            assert_same_model(tmp_path / path, REPO / path)
        else:
            assert (tmp_path / path).read_bytes() == (REPO / path).read_bytes(), f"{path} is not reproduced"


def assert_same_model(built: Path, committed: Path) -> None:
    """A refitted artifact predicts what the committed one does on its held-out data.

    Not byte for byte: a fit's last bits depend on the CPU's floating-point kernels (BLAS), so
    another machine's pickle differs at the 1e-12 level while the models are the same.
    """
    import joblib

    data = pd.read_csv(committed.parent / "data" / "test.csv")
    new, old = joblib.load(built), joblib.load(committed)
    X = data[list(old.feature_names_in_)]
    method = "predict_proba" if hasattr(old, "predict_proba") else "predict"
    np.testing.assert_allclose(getattr(new, method)(X), getattr(old, method)(X), rtol=1e-9, atol=1e-12)


# --- The good sample models, served ----------------------------------------------------------------


def validation_columns(bundle: Path) -> tuple[dict[str, list[object]], pd.Series, str]:
    meta = load_metadata(bundle)
    assert meta is not None and meta.validation_input and meta.target_name
    data = pd.read_csv(bundle / meta.validation_input)
    return data.to_dict(orient="list"), data[meta.target_name], meta.target_name


@pytest.fixture(scope="module", params=GOOD)
def sample_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    bundle = SAMPLES / request.param
    log = tmp_path_factory.mktemp(request.param) / "server.log"
    with serve(bundle, log, prefix="/deployments/x-1/model") as server:
        yield server, bundle


@pytest.mark.slow
def test_sample_model_predicts_its_test_data(sample_server: tuple[Server, Path]) -> None:
    server, bundle = sample_server
    columns, truth, _ = validation_columns(bundle)
    response = server.predict(columns)  # the target column included: the model ignores it
    assert response.status_code == 200, response.text
    predictions = strict_json(response)["predictions"]
    assert len(predictions) == len(truth)
    meta = load_metadata(bundle)
    assert meta is not None
    if meta.target_type == "regression":
        residual = float(np.mean((np.asarray(predictions) - truth.to_numpy()) ** 2))
        assert residual < 0.7 * float(truth.var())  # diabetes is noisy; R^2 > 0.3 is what a linear model gets
    else:
        labels = meta.class_labels or [meta.positive_class_label, meta.negative_class_label]
        assert all(list(p) == labels for p in predictions)
        assert np.allclose([sum(p.values()) for p in predictions], 1.0)
        predicted = [max(p, key=p.get) for p in predictions]
        assert (pd.Series(predicted) == truth).mean() > 0.9


@pytest.mark.slow
def test_sample_model_survives_a_null_column(sample_server: tuple[Server, Path]) -> None:
    server, bundle = sample_server
    columns, _, target = validation_columns(bundle)
    rows = {name: values[:3] for name, values in columns.items() if name != target}
    rows[next(iter(rows))] = [None, None, None]
    response = server.predict(rows)
    assert response.status_code == 200, response.text
    assert len(strict_json(response)["predictions"]) == 3


# --- The broken bundles, each misbehaving in its one way -------------------------------------------


def broken_rows(name: str, rows: int | None = None) -> dict[str, list[object]]:
    data = pd.read_csv(BROKEN / name / "data/sample.csv")
    return data.head(rows).to_dict(orient="list") if rows else data.to_dict(orient="list")


@pytest.mark.slow
def test_exits_at_start_exits_3_saying_why(tmp_path: Path) -> None:
    server = start(BROKEN / "exits_at_start", tmp_path / "server.log")
    try:
        assert server.process.wait(timeout=30) == 3
    finally:
        server.stop()
    assert "exits_at_start: refusing to start" in server.log()


# The runtime refuses to send what JSON or the contract cannot carry: these three answer 500 with
# the reason (errorCheck fails on it). The checks' own rules for such answers on the wire (a bare
# NaN token, a short list, probabilities off 1) are tested against raw servers in test_checks.py.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("nan_output", "predict() returned a non-finite value (NaN or infinity) for row 0"),
        ("wrong_count", "predict() returned 19 predictions for 20 rows"),
        ("bad_probabilities", "the class probabilities of row 0 sum to 1.4, not 1"),
    ],
)
def test_wire_faults_are_refused_with_the_reason(tmp_path: Path, name: str, reason: str) -> None:
    with serve(BROKEN / name, tmp_path / "server.log") as server:
        response = server.predict(broken_rows(name, 20))
        assert response.status_code == 500
        assert reason in strict_json(response)["message"]


@pytest.mark.slow
def test_ignores_url_prefix_serves_at_the_root_only(tmp_path: Path) -> None:
    server = start(BROKEN / "ignores_url_prefix", tmp_path / "server.log", prefix="/a/b-c/d")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{server.root}/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert requests.get(f"{server.root}/", timeout=5).status_code == 200
        assert requests.get(server.url("/"), timeout=5).status_code == 404
        assert server.predict(broken_rows("ignores_url_prefix", 2)).status_code == 404
        unprefixed = requests.post(f"{server.root}/predict_no_state/", json={"X": broken_rows("ignores_url_prefix", 2)})
        assert unprefixed.status_code == 200
    finally:
        server.stop()


@pytest.mark.slow
def test_batch_dependent_predicts_a_row_differently_alone(tmp_path: Path) -> None:
    with serve(BROKEN / "batch_dependent", tmp_path / "server.log") as server:
        batch = strict_json(server.predict(broken_rows("batch_dependent", 10)))["predictions"]
        alone = strict_json(server.predict(broken_rows("batch_dependent", 1)))["predictions"]
        assert alone[0] != pytest.approx(batch[0])


@pytest.mark.slow
def test_stateful_answers_the_same_request_differently(tmp_path: Path) -> None:
    env = {"CUSTOM_MODEL_WORKERS": "1"}  # one process, so both requests see the same state
    with serve(BROKEN / "stateful", tmp_path / "server.log", env=env) as server:
        rows = broken_rows("stateful", 3)
        first, second = (strict_json(server.predict(rows))["predictions"] for _ in range(2))
        assert first != second


@pytest.mark.slow
def test_null_crash_fails_only_on_missing_values(tmp_path: Path) -> None:
    with serve(BROKEN / "null_crash", tmp_path / "server.log") as server:
        rows = broken_rows("null_crash", 3)
        assert server.predict(rows).status_code == 200
        rows["bedrooms"] = [None, None, None]
        response = server.predict(rows)
        assert response.status_code == 500 and "predict() raised" in response.json()["message"]


@pytest.mark.slow
def test_slow_start_answers_503_while_loading(tmp_path: Path) -> None:
    with serve(
        BROKEN / "slow_start", tmp_path / "server.log", env={"CUSTOM_MODEL_WORKERS": "1"}, ready=False
    ) as server:
        deadline = time.monotonic() + 30
        status = None
        while status != 503 and time.monotonic() < deadline:
            try:
                status = requests.get(server.url("/"), timeout=5).status_code
            except requests.ConnectionError:
                time.sleep(0.05)
        assert status == 503  # the port is open, the model is not ready
        server.wait_ready()
        assert strict_json(server.predict(broken_rows("slow_start", 2)))["predictions"]
        assert server.log().count("model loaded in ") == 1


def address_space_limit(megabytes: int) -> Callable[[], None]:
    """Caps a server's virtual memory (in the child, before exec): a stand-in for a container's limit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (megabytes * 2**20, megabytes * 2**20))

    return limit


@pytest.mark.slow
def test_memory_hog_cannot_start_under_a_limit_a_normal_model_fits_in(tmp_path: Path) -> None:
    # glibc reserves 64 MB of address space per thread arena unless told otherwise.
    env = {"MALLOC_ARENA_MAX": "2", "CUSTOM_MODEL_WORKERS": "1"}
    limit = address_space_limit(700)
    control = tmp_path / "control"
    init_bundle(control, make_spec("regression", "control"))
    with serve(control, tmp_path / "control.log", env=env, preexec_fn=limit) as server:  # the limit is not too tight
        assert server.predict(broken_rows("memory_hog", 5)).status_code == 200
    hog = start(BROKEN / "memory_hog", tmp_path / "hog.log", env=env, preexec_fn=limit)
    try:
        code = hog.process.wait(timeout=60)
    finally:
        hog.stop()
    assert code != 0
    assert "Unable to allocate 800. MiB" in hog.log()


@pytest.mark.slow
def test_broken_bundles_stop_on_sigterm(tmp_path: Path) -> None:
    with serve(BROKEN / "wrong_count", tmp_path / "server.log") as server:
        started = time.monotonic()
        server.process.terminate()
        server.process.wait(timeout=30)
        assert time.monotonic() - started < 5.0


def test_broken_readme_table_matches_build() -> None:
    readme = (BROKEN / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [b.name for b in build.BROKEN]
