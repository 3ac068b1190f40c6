"""cmkit/diagnosis.py's recognisers on the text real failures print (pip, Python, the checks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.diagnosis import CODES, Diagnosis, FailureEvidence, diagnose, save_log, strip_ansi
from cmkit_runtime.target_types import Prediction

# pip 24's resolver on two pins that cannot both hold (its text, colours included).
PIP_CONFLICT = """\x1b[1mCollecting pandas==2.2.2\x1b[0m
ERROR: Cannot install -r requirements.txt (line 1) and numpy==1.26.4 because these package versions have \
conflicting dependencies.

The conflict is caused by:
    The user requested numpy==1.26.4
    pandas 2.2.2 depends on numpy>=2.0; python_version >= "3.12"

To fix this you could try to:
1. loosen the range of package versions you've specified
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""
NUMPY_ABI = """Traceback (most recent call last):
  File "/opt/code/custom.py", line 3, in <module>
    import pandas as pd
  File "pandas/_libs/interval.pyx", line 1, in init pandas._libs.interval
ValueError: numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88 \
from PyObject
"""
LOAD_MODEL = """[2026-01-01 00:00:00 +0000] [12] [INFO] Booting worker with pid: 12
Traceback (most recent call last):
  File "/opt/cmkit-runtime/cmkit_runtime/loader.py", line 70, in _cmkit
    model = load_model(str(code_dir))
  File "/opt/code/custom.py", line 9, in load_model
    return joblib.load(Path(code_dir) / "model.joblib")
FileNotFoundError: [Errno 2] No such file or directory: '/opt/code/model.joblib'
"""


def failed(check: str, message: str) -> dict[str, tuple[str, str]]:
    return {check: ("failed", message)}


def test_ansi_codes_are_stripped() -> None:
    assert strip_ansi("\x1b[31mERROR\x1b[0m: x\r\n\x1b]0;title\x07done") == "ERROR: x\ndone"


def test_conflicting_pins_show_pips_conflict_lines() -> None:
    found = diagnose(FailureEvidence(build_log=PIP_CONFLICT))
    assert found is not None and found.code == "conflicting-requirements"
    assert found.evidence == (
        "The user requested numpy==1.26.4",
        'pandas 2.2.2 depends on numpy>=2.0; python_version >= "3.12"',
    )


def test_the_numpy_abi_break_at_start() -> None:
    found = diagnose(FailureEvidence(NUMPY_ABI, exit_code=1, checks=failed("longRunningService", "did not start")))
    assert found is not None and found.code == "numpy-abi"
    assert found.evidence[0].startswith("ValueError: numpy.dtype size changed")
    assert "pandas>=2.2.2" in found.action


def test_an_exception_in_load_model_names_it_and_its_frame() -> None:
    found = diagnose(FailureEvidence(LOAD_MODEL, exit_code=3))
    assert found is not None and found.code == "load-model-error"
    assert found.problem == (
        "load_model() raised FileNotFoundError: [Errno 2] No such file or directory: '/opt/code/model.joblib'"
    )
    assert found.evidence[0] == 'File "/opt/code/custom.py", line 9, in load_model'


@pytest.mark.parametrize(
    ("evidence", "code"),
    [
        (FailureEvidence("Killed", exit_code=137, oom_killed=True), "out-of-memory"),
        (
            FailureEvidence(checks=failed("longRunningService", "GET /p/ keeps answering HTTP 404 instead of 200")),
            "url-prefix-ignored",
        ),
        (
            FailureEvidence(checks=failed("longRunningService", "GET /p/ did not answer 200 within 5s (last: x)")),
            "startup-timeout",
        ),
        (FailureEvidence("bye", exit_code=2, checks=failed("longRunningService", "exited")), "server-exited"),
        (FailureEvidence(checks=failed("errorCheck", "rows 0, 1: not a finite number")), "wrong-output"),
        (
            FailureEvidence(checks=failed("errorCheck", "HTTP 500: predict() returned 1 predictions for 2 rows")),
            "wrong-output",
        ),
        (FailureEvidence(checks=failed("errorCheck", "HTTP 500: predict() raised KeyError: 'a'")), "predict-error"),
        (FailureEvidence(build_log="Step 3/8\nERROR: failed to solve: exit code 1\n"), "build-failed"),
        (FailureEvidence("start_server.sh could not be started: Permission denied"), "start-script-failed"),
    ],
)
def test_each_failure_has_its_code(evidence: FailureEvidence, code: str) -> None:
    found = diagnose(evidence)
    assert found is not None and found.code == code and code in CODES


@pytest.mark.parametrize(
    ("prediction", "valid"),
    [
        (Prediction.POINT, "a point as well-known text, longitude first: 'POINT (2.35 48.85)' for Paris"),
        (Prediction.NUMBER, "a finite number"),
        (Prediction.PROBABILITIES, "a probability per class label, each in [0, 1], summing to 1"),
        (Prediction.TEXT, "a string"),
        (None, "a number for regression and anomaly, a probability per label for classifiers, a string for text "),
    ],
)
def test_the_wrong_output_hint_says_what_a_valid_prediction_of_the_type_is(
    prediction: Prediction | None, valid: str
) -> None:
    message = "24 invalid predictions: row 0: expected a point such as 'POINT (2.35 48.85)', got '48.8,2.3'"
    found = diagnose(FailureEvidence(checks=failed("errorCheck", message), prediction=prediction))
    assert found is not None and found.code == "wrong-output"
    assert found.action.startswith(f"return one prediction per row: {valid}")


def test_nothing_failed_nothing_diagnosed() -> None:
    assert diagnose(FailureEvidence("model loaded", checks={"errorCheck": ("succeeded", "")})) is None


def test_the_log_is_saved_stripped_and_named(tmp_path: Path) -> None:
    found = Diagnosis("missing-module", "x", "y", ("e",))
    saved = save_log(found, "\x1b[31mred\x1b[0m\n", tmp_path / "logs", "run")
    assert saved.log_file == str(tmp_path / "logs" / "run.log")
    assert (tmp_path / "logs" / "run.log").read_text() == "red\n"
    assert saved.line() == f"x: y (whole log: {saved.log_file})"
    assert Diagnosis.from_dict(saved.to_dict()) == saved
    (tmp_path / "file").write_text("")
    assert save_log(found, "text", tmp_path / "file", "run") == found  # no folder for it: no file named


def test_pips_version_list_is_cut_to_the_latest() -> None:
    versions = ", ".join(f"1.{minor}.0" for minor in range(30))
    log = f"ERROR: Could not find a version that satisfies the requirement x==9 (from versions: {versions})\n"
    found = diagnose(FailureEvidence(build_log=log))
    assert found is not None and found.evidence == (
        "ERROR: Could not find a version that satisfies the requirement x==9 "
        "(from versions: ..., 1.25.0, 1.26.0, 1.27.0, 1.28.0, 1.29.0)",
    )
