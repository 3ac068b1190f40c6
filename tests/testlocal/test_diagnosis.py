"""test-local's diagnosis of the usual mistakes (issue 26): one line saying what is wrong and what
to do, the same code in --json, the whole log in the file the line names, exit 1.

The fast tests run real Python servers (the quick bundle's standard-library server, started by
the process runtime) whose code carries the mistake; the slow ones run cmkit's own runtime
(`cmkit init`'s template) and real pip.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from tests.conftest import REPO, TEST_LABEL, TEST_RUN_ID
from tests.support.bundles import metadata_yaml, write_quick_bundle, write_runtime_bundle

FAST = ["--runtime", "process", "--check", "sideEffects=skip", "--check", "nullValueImputation=skip"]
# The process runtime passes no PYTHONPATH of the host: this checkout's runtime, whatever is installed.
THIS_RUNTIME = ("--env", f"PYTHONPATH={REPO}")


def run(bundle: Path, *flags: str) -> tuple[int, str, dict[str, object]]:
    """test-local twice: its terminal output (stderr) and its --json document."""
    runner = CliRunner()
    shown = runner.invoke(main, ["test-local", str(bundle), *FAST, *flags])
    document = runner.invoke(main, ["test-local", str(bundle), *FAST, *flags, "--json"])
    assert shown.exit_code == document.exit_code, shown.stderr
    return shown.exit_code, shown.stderr, json.loads(document.stdout)


def diagnosis_line(stderr: str) -> str:
    """The diagnosis' line as the terminal shows it (`code: line`), without the log file's name."""
    (line,) = [line for line in stderr.splitlines() if "(whole log: " in line]
    return line.split(" (whole log: ")[0]


def logged(stderr: str) -> str:
    path = Path(stderr.split("(whole log: ", 1)[1].split(")", 1)[0])
    return path.read_text(encoding="utf-8")


def test_a_missing_module_says_what_to_add(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    (bundle / "features.py").write_text("import sklearn.preprocessing\n")
    server = bundle / "server.py"
    server.write_text("import features\n" + server.read_text())
    code, stderr, document = run(bundle)
    assert code == 1
    assert diagnosis_line(stderr) == (
        "missing-module: the model imports sklearn, which is not installed: add scikit-learn to requirements.txt"
    )
    found = document["diagnosis"]
    assert isinstance(found, dict) and found["code"] == "missing-module"
    assert found["evidence"][-1] == "ModuleNotFoundError: No module named 'sklearn'"
    assert "Traceback (most recent call last)" in logged(stderr)


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    (bundle / "custom.py").write_text("def predict(model, X):\n    return X\n\ndef broken(:\n    pass\n")
    server = bundle / "server.py"
    server.write_text(
        "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\nimport custom\n" + server.read_text()
    )
    code, stderr, document = run(bundle)
    assert code == 1
    assert diagnosis_line(stderr) == (
        "syntax-error: custom.py line 4 does not parse (SyntaxError: invalid syntax): "
        "fix the line; `cmkit lint` finds this before any build"
    )
    assert document["diagnosis"]["code"] == "syntax-error"  # type: ignore[index]


def test_class_names_that_are_not_the_labels_fail_errorcheck(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle", target="binary")
    labels = "  positiveClassLabel: 'yes'\n  negativeClassLabel: 'no'\n"
    (bundle / "model-metadata.yaml").write_text(metadata_yaml("quick", "binary", "y", labels, "data/sample.csv"))
    server = bundle / "server.py"
    answer = "[{'malignant': 0.25, 'benign': 0.75} for _ in a]"
    server.write_text(server.read_text().replace("[1.5 * x + 0.25 * y for x, y in zip(a, b)]", answer))
    code, stderr, document = run(bundle)
    assert code == 1
    assert diagnosis_line(stderr) == (
        "label-mismatch: the model's class names are not the configured labels: make the labels in "
        "model-metadata.yaml (or the label flags) the names the model returns"
    )
    assert document["diagnosis"]["code"] == "label-mismatch"  # type: ignore[index]
    assert document["testingStatus"]["errorCheck"]["status"] == "failed"  # type: ignore[index]


def test_a_target_type_the_metadata_contradicts_is_a_warning_naming_both(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")  # a regression model, as its metadata says
    labels = ["--positive-class-label", "yes", "--negative-class-label", "no"]
    code, stderr, document = run(bundle, "--target-type", "binary", *labels)
    warning = (
        "--target-type binary contradicts model-metadata.yaml's targetType regression: this run tests a binary "
        "model, DataRobot will create a regression one; drop the flag or fix the metadata"
    )
    assert f"warning: {warning}" in stderr
    assert warning in document["details"]["warnings"]  # type: ignore[index]
    # Its numbers are not probabilities: errorCheck fails, and the diagnosis says what the output lacks.
    assert code == 1 and document["diagnosis"]["code"] == "wrong-output"  # type: ignore[index]


@pytest.mark.slow
def test_the_runtime_refuses_class_names_that_are_not_the_labels(tmp_path: Path) -> None:
    # cmkit's runtime used to rename a classifier's columns by position: every check passed.
    custom = (
        "import pandas as pd\n\n\ndef load_model(code_dir):\n    return None\n\n\n"
        "def predict(model, X):\n"
        "    return pd.DataFrame({'benign': [0.75] * len(X), 'malignant': [0.25] * len(X)})\n"
    )
    bundle = write_runtime_bundle(
        tmp_path / "bundle", "binary", "cancer", custom, positive_class_label="yes", negative_class_label="no"
    )
    code, _, document = run(bundle, *THIS_RUNTIME)
    assert code == 1
    assert document["diagnosis"]["code"] == "label-mismatch"  # type: ignore[index]
    message = document["testingStatus"]["errorCheck"]["message"]  # type: ignore[index]
    assert "expected predictions to have columns ['no', 'yes']" in message
    assert "returned columns ['benign', 'malignant']" in message


@pytest.mark.slow
def test_a_missing_module_in_load_model_under_the_runtime(tmp_path: Path) -> None:
    custom = "def load_model(code_dir):\n    import joblib_extra\n\n\ndef predict(model, X):\n    return X\n"
    bundle = write_runtime_bundle(tmp_path / "bundle", "regression", "house", custom)
    code, stderr, document = run(bundle, *THIS_RUNTIME)
    assert code == 1
    assert diagnosis_line(stderr).endswith("add joblib-extra to requirements.txt")
    assert document["diagnosis"]["code"] == "missing-module"  # type: ignore[index]


@pytest.mark.slow
def test_an_unsatisfiable_pin_is_pips_line_without_its_colours(tmp_path: Path) -> None:
    # Real pip, offline (an empty index), coloured as on a terminal: what a dependency build prints.
    from cmkit.diagnosis import FailureEvidence, diagnose

    (tmp_path / "index").mkdir()
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(tmp_path / "index")]
    output = subprocess.run(
        [*pip, "scikit-learn==99.0.0"], capture_output=True, text=True, env={"FORCE_COLOR": "1", "PATH": "/usr/bin"}
    )
    assert output.returncode != 0 and "\x1b[" in output.stderr
    found = diagnose(FailureEvidence(build_log=output.stdout + output.stderr))
    assert found is not None and found.code == "unsatisfiable-requirement"
    assert found.line() == (
        "pip cannot find scikit-learn==99.0.0 (requirements.txt): fix the pin: "
        "`pip index versions scikit-learn` lists the versions that exist"
    )
    assert found.evidence[-1] == "ERROR: No matching distribution found for scikit-learn==99.0.0"


@pytest.mark.docker
def test_an_unsatisfiable_pin_in_the_dependency_build(tmp_path: Path, docker_client: object) -> None:
    # The pin: ~70 lines of pip output with colour codes in a table cell, before.
    custom = "def load_model(code_dir):\n    return None\n\n\ndef predict(model, X):\n    return X.iloc[:, 0]\n"
    bundle = write_runtime_bundle(tmp_path / "bundle", "regression", "house", custom)
    (bundle / "requirements.txt").write_text("scikit-learn==99.0.0\n")
    docker = ["--runtime", "docker", "--label", f"{TEST_LABEL}={TEST_RUN_ID}"]
    result = CliRunner().invoke(main, ["test-local", str(bundle), *docker, "--json"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)["diagnosis"]
    assert found["code"] == "unsatisfiable-requirement"
    assert found["message"] == "pip cannot find scikit-learn==99.0.0 (requirements.txt)"
    assert found["evidence"][-1] == "ERROR: No matching distribution found for scikit-learn==99.0.0"
    log = Path(found["logFile"]).read_text(encoding="utf-8")
    assert "No matching distribution found" in log and "\x1b[" not in log


@pytest.mark.docker
def test_pandas_1_beside_the_environments_numpy_2(tmp_path: Path, docker_client: object) -> None:
    # The ABI break: pip installs pandas 1.5 beside NumPy 2, and the import fails at start.
    # lint names the line before any build (tests/bundle/test_lint_code.py); this is the run's side.
    custom = "def load_model(code_dir):\n    return None\n\n\ndef predict(model, X):\n    return X.iloc[:, 0]\n"
    bundle = write_runtime_bundle(tmp_path / "bundle", "regression", "house", "import pandas\n" + custom)
    (bundle / "requirements.txt").write_text("pandas>=1.0,<2.0\n")
    docker = ["--runtime", "docker", "--label", f"{TEST_LABEL}={TEST_RUN_ID}"]
    result = CliRunner().invoke(main, ["test-local", str(bundle), *docker])
    assert result.exit_code == 1
    assert diagnosis_line(result.stderr).startswith(
        "numpy-abi: a package was built against NumPy 1.x and the environment has NumPy 2: require a release"
    )
    assert "ValueError: numpy.dtype size changed" in result.stderr
