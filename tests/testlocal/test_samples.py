"""test-local on the real sample models, the broken bundles and `cmkit init` templates, in both runtimes."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import pytest

from cmkit.checks.results import (
    ERROR_CHECK,
    LONG_RUNNING_SERVICE,
    NULL_VALUE_IMPUTATION,
    SEED_CHECKS,
    SIDE_EFFECTS,
)
from cmkit.scaffold import init_bundle, make_spec
from cmkit.testlocal import TestLocalConfig, run_test_local
from tests.conftest import REPO, TEST_LABEL, TEST_RUN_ID
from tests.support.bundles import write_runtime_bundle

SAMPLES = REPO / "sample_models"
GOOD = ["regression_diabetes", "binary_breast_cancer", "multiclass_iris"]
# bundle -> (check that must report, its status, a fragment of its message)
BROKEN = {
    "batch_dependent": (SIDE_EFFECTS, "warning", "rows differ when predicted alone"),
    "stateful": (SIDE_EFFECTS, "warning", "rows differ when predicted alone"),
    "null_crash": (NULL_VALUE_IMPUTATION, "warning", "columns fail when entirely null"),
    "nan_output": (ERROR_CHECK, "failed", "non-finite value (NaN or infinity)"),
    "wrong_count": (ERROR_CHECK, "failed", "predictions for"),
    "bad_probabilities": (ERROR_CHECK, "failed", "sum to 1.4, not 1"),
    "not_a_point": (ERROR_CHECK, "failed", "expected a point such as 'POINT (2.35 48.85)', got \"48.8236, 2.3186\""),
    "ignores_url_prefix": (LONG_RUNNING_SERVICE, "failed", "does the server mount its routes under URL_PREFIX"),
    "exits_at_start": (LONG_RUNNING_SERVICE, "failed", "exited with code 3"),
}
RUNTIMES = [
    pytest.param("process", marks=pytest.mark.slow),
    pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow]),
]


def run(bundle: Path, runtime: str, request: pytest.FixtureRequest, **options: object) -> dict[str, object]:
    if runtime == "docker":
        request.getfixturevalue("docker_client")  # skip (or fail in CI) without an engine
    options = {"startup_timeout": 90, **options}
    config = TestLocalConfig(bundle=bundle, runtime=runtime, labels={TEST_LABEL: TEST_RUN_ID}, **options)  # type: ignore[arg-type]
    return run_test_local(config).to_dict()


def statuses(document: dict[str, object]) -> dict[str, str]:
    """The seed's four checks (the three later ones, off by default, are tests/checks/test_later_checks.py's)."""
    return {
        name: entry["status"]
        for name, entry in document["testingStatus"].items()  # type: ignore[union-attr]
        if name in SEED_CHECKS
    }


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("sample", GOOD)
def test_good_sample_models_succeed(sample: str, runtime: str, request: pytest.FixtureRequest) -> None:
    document = run(SAMPLES / sample, runtime, request)
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    "target", ["regression", "binary", "multiclass", "anomaly", "textgeneration", "geopoint", "vectordatabase"]
)
def test_init_templates_succeed(target: str, runtime: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    labels = ("setosa", "versicolor", "virginica") if target == "multiclass" else ()
    bundle = tmp_path / f"{target}-model"
    init_bundle(bundle, make_spec(target, f"{target}-model", class_labels=labels))
    document = run(bundle, runtime, request)
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_bundle_is_caught_by_its_check(name: str, runtime: str, request: pytest.FixtureRequest) -> None:
    check, status, fragment = BROKEN[name]
    document = run(SAMPLES / "broken" / name, runtime, request)
    found = document["testingStatus"][check]  # type: ignore[index]
    assert found["status"] == status and fragment in found["message"], document["testingStatus"]
    others = {n: s for n, s in statuses(document).items() if n != check}
    if check == LONG_RUNNING_SERVICE:
        assert set(others.values()) == {"aborted"}
    elif check == ERROR_CHECK:
        assert others == {LONG_RUNNING_SERVICE: "succeeded", NULL_VALUE_IMPUTATION: "aborted", SIDE_EFFECTS: "aborted"}
    else:
        assert set(others.values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_slow_start_waits_through_503_and_times_out_when_short(runtime: str, request: pytest.FixtureRequest) -> None:
    bundle = SAMPLES / "broken" / "slow_start"
    assert set(statuses(run(bundle, runtime, request)).values()) == {"succeeded"}
    short = run(bundle, runtime, request, startup_timeout=3)
    message = short["testingStatus"][LONG_RUNNING_SERVICE]["message"]  # type: ignore[index]
    assert statuses(short)[LONG_RUNNING_SERVICE] == "failed" and "did not answer 200 within 3s" in message
    assert "HTTP 503" in message


@pytest.mark.docker
@pytest.mark.slow
def test_memory_hog_fails_long_running_service_with_the_oom_reason(request: pytest.FixtureRequest) -> None:
    document = run(SAMPLES / "broken" / "memory_hog", "docker", request, maximum_memory=512 * 1024**2)
    result = document["testingStatus"][LONG_RUNNING_SERVICE]  # type: ignore[index]
    assert result["status"] == "failed" and "OOM" in result["message"], result
    assert set(statuses(document)[name] for name in SEED_CHECKS[1:]) == {"aborted"}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_null_imputation_on_40_columns_loads_the_model_once(
    runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A model over whatever columns arrive; what matters here is the template's server.
    custom = (
        "def load_model(code_dir):\n    return None\n\n\n"
        "def predict(model, X):\n    return X.apply(lambda c: c.astype(float)).fillna(0.0).sum(axis=1).to_numpy()\n"
    )
    bundle = write_runtime_bundle(tmp_path / "wide", "regression", "wide", custom)
    columns = [f"x{i}" for i in range(40)]
    generator = random.Random(3)
    with (bundle / "data" / "wide.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, "target"])
        for _ in range(200):
            writer.writerow([f"{generator.gauss(0, 1):.3f}" for _ in columns] + ["1.0"])
    document = run(
        bundle,
        runtime,
        request,
        dataset=bundle / "data" / "wide.csv",
        target_name="target",
        server_environment={"CUSTOM_MODEL_WORKERS": "1"},
        checks={ERROR_CHECK: "skip", SIDE_EFFECTS: "skip"},
    )
    result = document["testingStatus"][NULL_VALUE_IMPUTATION]  # type: ignore[index]
    assert result == {"status": "succeeded", "message": "all 40 columns pass when null"}
    loads = re.findall(r"model loaded in", str(document["details"]["logTail"]))  # type: ignore[index]
    assert len(loads) == 1, document["details"]["logTail"]  # type: ignore[index]
