"""The emulator's model tests on an R model, as a user gets there: `cmkit emulator`, `cmkit env push
templates/environments/r`, then `cmkit push` of an R bundle on that environment with its test.

The model is an `lm` trained by R in the test (tests/support/rmodels.py) with custom.R hooks; its
requirements.txt names an R package the R environment lacks (praise), which the dependency build
installs (Docker: Debian's r-cran-praise in the dependency layer; process: the host's R must have
it: r-cran-devtools, which .ci/run installs, pulls it in). All seven checks run and pass, the
prediction verification against R's own `predict()`. The same path with DataRobot's official
client (its own upload of the R environment's folder, the dependency build, the model test) runs
in the Docker tier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cmkit.checks.results import CHECK_NAMES
from cmkit.cli import main
from cmkit.paths import r_environment_dir
from tests.support.bundles import write_files
from tests.support.emulator_support import TOKEN, Emulator
from tests.support.lazy import lazy_module
from tests.support.rmodels import build_r_models

dr = lazy_module("datarobot")  # the official client: imported only by the test that uses it

pytestmark = pytest.mark.slow
RUNTIMES = ["process", pytest.param("docker", marks=pytest.mark.docker)]
# init() attaches the declared package: the model loads only where the dependency build installed it.
HOOKS = """\
init <- function(code_dir) {
  library(praise)
}

transform <- function(data, model) {
  data[is.na(data)] <- 0
  data
}
"""


@pytest.fixture(scope="module")
def r_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_r_models(tmp_path_factory.mktemp("r-models"))


@pytest.fixture
def emulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Emulator]:
    runtime = request.param
    if runtime == "docker":
        request.getfixturevalue("docker_client")  # skips without an engine (fails under CMKIT_REQUIRE_DOCKER=1)
    running = Emulator(tmp_path / "emulator-data", runtime=runtime).start()
    try:
        yield running
    finally:
        running.stop()


def lm_bundle(r_models: Path, folder: Path) -> Path:
    source = r_models / "lm_rds"
    return write_files(
        folder,
        {
            "model.rds": (source / "model.rds").read_bytes(),
            "custom.R": HOOKS,
            "requirements.txt": "praise\n",
            "model-metadata.yaml": (source / "model-metadata.yaml").read_text(),
        },
    )


def cli(emulator: Emulator, *arguments: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(main, [*arguments, "--endpoint", emulator.endpoint, "--token", TOKEN, "--json"])
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, document, result.output


@pytest.mark.usefixtures("no_datarobot_configuration")  # push reads only its flags
@pytest.mark.parametrize("emulator", RUNTIMES, indirect=True)
def test_an_r_model_passes_the_seven_checks_on_the_pushed_r_environment(
    emulator: Emulator, r_models: Path, tmp_path: Path
) -> None:
    code, environment, output = cli(emulator, "env", "push", str(r_environment_dir()), "--name", "R 4.2")
    assert code == 0 and environment["buildStatus"] == "success", output
    recorded = emulator.session().get(emulator.url(f"executionEnvironments/{environment['environmentId']}/")).json()
    assert recorded["programmingLanguage"] == "r"  # it installs rpy2
    source = r_models / "lm_rds"
    bundle = lm_bundle(r_models, tmp_path / "lm")
    code, pushed, output = cli(
        emulator,
        "push",
        str(bundle),
        "--environment-id",
        environment["environmentId"],
        "--dataset",
        str(source / "data" / "labelled.csv"),
        "--verification-dataset",
        str(source / "data" / "expected.csv"),
        "--predictions-column",
        "Predictions",
        "--check-parameter",
        "predictionVerificationCheck.comparisonPrecision=1e-9",
        "--check",
        "performanceCheck=fail",
        "--check",
        "stabilityCheck=fail",
        "--check-parameter",
        "stabilityCheck.numPredictions=20",
        "--check-parameter",
        "stabilityCheck.maxPayloadSize=25",
    )
    assert code == 0, output
    assert pushed["buildStatus"] == "success", output
    build_log = emulator.session().get(
        emulator.url(f"customModels/{pushed['modelId']}/versions/{pushed['versionId']}/dependencyBuildLog/")
    )
    assert "an R model: requirements.txt names the R packages praise" in build_log.text, build_log.text
    assert "pip" not in build_log.text and "wheel" not in build_log.text, build_log.text  # R's installer, not pip's
    status = pushed["test"]["testingStatus"]
    assert {name: status[name]["status"] for name in CHECK_NAMES} == dict.fromkeys(CHECK_NAMES, "succeeded"), status
    model = emulator.session().get(emulator.url(f"customModels/{pushed['modelId']}/")).json()
    assert model["language"] == "r"  # push tells DataRobot what DRUM will run


@pytest.mark.parametrize("emulator", [pytest.param("docker", marks=pytest.mark.docker)], indirect=True)
def test_the_official_client_tests_an_r_model_on_an_r_environment_it_uploaded(
    emulator: Emulator, r_models: Path, tmp_path: Path
) -> None:
    """DataRobot's client end to end: the R environment's folder as its version, the R bundle, its
    dependency build (R packages) and the model test of the seed's four checks."""
    dr.Client(endpoint=emulator.endpoint, token=TOKEN)
    environment = dr.ExecutionEnvironment.create(name="R (client)", programming_language="r")
    built = dr.ExecutionEnvironmentVersion.create(environment.id, str(r_environment_dir()), max_wait=1200)
    assert built.build_status == "success", built.get_build_log()
    model = dr.CustomInferenceModel.create(
        name="r-client", target_type=dr.TARGET_TYPE.REGRESSION, target_name="y", language="r"
    )
    bundle = lm_bundle(r_models, tmp_path / "lm")
    version = dr.CustomModelVersion.create_clean(model.id, base_environment_id=environment.id, folder_path=str(bundle))
    build = dr.CustomModelVersionDependencyBuild.start_build(model.id, version.id, max_wait=1200)
    assert build.build_status == "success", build.get_log()
    dataset = dr.Dataset.create_from_file(file_path=str(r_models / "lm_rds" / "data" / "labelled.csv"))
    test = dr.CustomModelTest.create(model.id, version.id, dataset_id=dataset.id, max_wait=1200)
    status = {name: check["status"] for name, check in test.detailed_status.items()}
    seed = ("long_running_service", "error_check", "null_value_imputation", "side_effects")
    assert {name: status[name] for name in seed} == dict.fromkeys(seed, "succeeded"), test.detailed_status
    assert test.overall_status == "succeeded"
