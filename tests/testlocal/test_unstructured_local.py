"""test-local on unstructured models, in both runtimes, and against DRUM on the drop-in stand-in.

`cmkit init --target-type unstructured` passes on the first try; a model whose answer is not what
its Content-Type says fails errorCheck with one line; and DRUM's own server (the python3_sklearn
stand-in, tests/runtime/test_dropin_environment.py) answers the same bytes and Content-Type as
cmkit-runtime for the same custom.py and file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.checks.results import ERROR_CHECK, LONG_RUNNING_SERVICE
from cmkit.paths import default_environment_dir
from cmkit.scaffold import init_bundle, make_spec
from tests.conftest import REPO
from tests.support.bundles import write_runtime_bundle
from tests.testlocal.test_samples import RUNTIMES, run

DROPIN = default_environment_dir().parent / "python3_sklearn"
# The process runtime starts the cmkit-runtime installed in this interpreter; a checkout that is
# not the installed one (a worktree) must serve its own runtime, which this makes sure of.
THIS_RUNTIME = {"PYTHONPATH": str(REPO)}
# Like DataRobot's python3_unstructured template: words counted, ?ret_mode=binary as 4 bytes.
WORD_COUNT = '''
def load_model(code_dir):
    return "dummy"


def score_unstructured(model, data, query, **kwargs):
    text = data.decode("utf8") if isinstance(data, bytes) else data
    count = len(text.split())
    if query.get("ret_mode", "") == "binary":
        return count.to_bytes(4, byteorder="big"), {"mimetype": "application/octet-stream"}
    return str(count)
'''
WRONG_MIMETYPE = '''
def load_model(code_dir):
    return None


def score_unstructured(model, data, query, **kwargs):
    return "words: 10", {"mimetype": "application/json"}
'''


def _statuses(document: dict[str, object]) -> dict[str, tuple[str, str]]:
    testing = document["testingStatus"]
    assert isinstance(testing, dict)
    return {name: (entry["status"], entry["message"]) for name, entry in testing.items()}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_init_s_unstructured_model_passes(runtime: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bundle = tmp_path / "triage"
    init_bundle(bundle, make_spec("unstructured", "triage"))
    results = _statuses(run(bundle, runtime, request, server_environment=THIS_RUNTIME))
    assert results[LONG_RUNNING_SERVICE][0] == "succeeded", results
    assert results[ERROR_CHECK][0] == "succeeded", results
    assert results[ERROR_CHECK][1].endswith("(application/json; charset=utf-8)")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_wrong_mimetype_fails_the_error_check(runtime: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bundle = write_runtime_bundle(tmp_path / "wrong", "unstructured", "wrong", WRONG_MIMETYPE)
    results = _statuses(run(bundle, runtime, request, server_environment=THIS_RUNTIME))
    assert results[LONG_RUNNING_SERVICE][0] == "succeeded", results
    status, message = results[ERROR_CHECK]
    assert status == "failed" and "\n" not in message
    assert message.startswith("the answer says application/json; charset=utf-8 but is not JSON: "), message


@pytest.mark.docker
@pytest.mark.slow
def test_drum_and_cmkit_answer_the_same_bytes(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bundle = write_runtime_bundle(tmp_path / "words", "unstructured", "words", WORD_COUNT)
    (bundle / "data" / "sample.txt").write_text("one two three four five six seven eight nine ten\n")
    (bundle / "start_server.sh").unlink()  # hooks only: each environment's own start script serves them
    on_drum = run(bundle, "docker", request, environment=DROPIN, startup_timeout=180)
    on_cmkit = run(bundle, "docker", request)
    assert on_drum["details"]["protocol"]["detected"]["name"] == "drum"  # type: ignore[index]
    answers = []
    for document in (on_drum, on_cmkit):
        assert _statuses(document)[ERROR_CHECK][0] == "succeeded", document["testingStatus"]
        details = document["details"]["checks"][ERROR_CHECK]  # type: ignore[index]
        answers.append((details["answerPreview"], details["answerContentType"]))
    assert answers[0] == answers[1] == ("10", "text/plain; charset=utf-8")
