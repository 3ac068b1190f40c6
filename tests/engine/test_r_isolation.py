"""`--isolate` on an R bundle in the process runtime (cmkit/engine/rhost.py, cmkit/testlocal.py).

The server runs from a venv of the R environment's requirements.txt (the serving stack and rpy2),
and its R sees the R environment's packages, the ones requirements.txt names and what they depend
on, plus R's own library: a custom.R that attaches a package it does not declare fails to load, as
it would in the R environment's image, and passes once requirements.txt names it. Without
`--isolate` the host's R and cmkit's Python serve it, as before.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cmkit.engine.rhost import ENVIRONMENT_R_PACKAGES, isolated_r_environment
from cmkit.paths import r_environment_dir
from tests.support.bundles import write_files
from tests.support.rmodels import build_r_models, require_r
from tests.testlocal.test_samples import run, statuses

pytestmark = pytest.mark.slow
# praise: in Debian (r-cran-praise; r-cran-devtools pulls it in on CI), not in the R environment.
ATTACHES_PRAISE = "init <- function(code_dir) {\n  library(praise)\n}\n"


@pytest.fixture(scope="module")
def r_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_r_models(tmp_path_factory.mktemp("r-models"))


def test_isolate_gives_an_r_model_only_the_r_packages_it_declares(
    r_models: Path, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(cache))
    source = r_models / "lm_rds"
    bundle = write_files(
        tmp_path / "lm",
        {
            "model.rds": (source / "model.rds").read_bytes(),
            "custom.R": ATTACHES_PRAISE,
            "model-metadata.yaml": (source / "model-metadata.yaml").read_text(),
        },
    )
    options = {"dataset": source / "data" / "labelled.csv", "checks": {"nullValueImputation": "skip"}}
    on_host = run(bundle, "process", request, **options)  # type: ignore[arg-type]
    assert statuses(on_host)["errorCheck"] == "succeeded", on_host["testingStatus"]

    undeclared = run(bundle, "process", request, isolate=True, **options)  # type: ignore[arg-type]
    message = undeclared["testingStatus"]["longRunningService"]["message"]  # type: ignore[index]
    assert statuses(undeclared)["longRunningService"] == "failed"
    # The whole message on failure: pytest's own diff cuts the middle, where the server's log is.
    diagnosis = "custom.R needs the R package 'praise', which is not installed: add it to requirements.txt"
    assert diagnosis in message, message

    (bundle / "requirements.txt").write_text("praise\n")
    declared = run(bundle, "process", request, isolate=True, **options)  # type: ignore[arg-type]
    assert set(statuses(declared).values()) == {"succeeded", "skipped"}, declared["testingStatus"]
    # The Python side: one venv, of the R environment's pins (rpy2 among them), reused by both runs.
    (venv,) = (cache / "venvs").iterdir()
    pins = (r_environment_dir() / "requirements.txt").read_text().splitlines()
    rpy2 = next(line for line in pins if line.startswith("rpy2==")).split("==")[1]
    assert list(venv.glob(f"lib/python*/site-packages/rpy2-{rpy2}.dist-info")), venv

def test_the_isolated_library_holds_the_environments_packages_the_declared_ones_and_their_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_r()
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    bundle = write_files(tmp_path / "m", {"custom.R": "", "requirements.txt": "praise  # a comment\n"})
    variables = isolated_r_environment(bundle, os.environ)
    library = Path(variables["R_LIBS_SITE"])
    assert variables["R_LIBS_USER"] == str(library)
    held = {path.name for path in library.iterdir()}
    assert {"praise", "glmnet", "caret", "recipes", "stringi"} <= held
    assert "devtools" not in held and "testthat" not in held  # installed here, named by nothing
    assert all((library / name).resolve().is_dir() for name in held)
    assert "Matrix" in ENVIRONMENT_R_PACKAGES  # R's own library (.Library) holds it here: not linked
    assert isolated_r_environment(bundle, os.environ) == variables  # the same folder again

