"""test-local on chat models, in both runtimes: init's text-generation model and agent pass every check and
chatCompletions (the official openai client, non-streaming and streaming); a chat() that returns a
dict without choices fails chatCompletions with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.checks.chat import CHAT_CHECK
from cmkit.checks.results import SEED_CHECKS
from cmkit.scaffold import init_bundle, make_spec
from tests.testlocal.test_samples import RUNTIMES, run
from tests.testlocal.test_unstructured_local import THIS_RUNTIME

DICT_WITHOUT_CHOICES = '''

def chat(completion_create_params, model):
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m"}
'''


@pytest.mark.parametrize("target_type", ["textgeneration", "agenticworkflow"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_init_s_chat_models_pass(
    runtime: str, target_type: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bundle = tmp_path / "helpdesk"
    init_bundle(bundle, make_spec(target_type, "helpdesk"))
    document = run(bundle, runtime, request, server_environment=THIS_RUNTIME)
    testing = document["testingStatus"]
    assert isinstance(testing, dict)
    # The text model predicts its sample rows too; the agent answers chat completions only.
    rows = "succeeded" if target_type == "textgeneration" else "skipped"
    assert {testing[name]["status"] for name in SEED_CHECKS} == {"succeeded", rows}, testing
    assert testing[CHAT_CHECK]["status"] == "succeeded", testing[CHAT_CHECK]
    assert document["overallStatus"] == "succeeded"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_dict_without_choices_fails_the_chat_check(
    runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bundle = tmp_path / "broken"
    init_bundle(bundle, make_spec("textgeneration", "broken"))
    custom = bundle / "custom.py"
    custom.write_text(custom.read_text() + DICT_WITHOUT_CHOICES)  # replaces the example's chat()
    document = run(bundle, runtime, request, server_environment=THIS_RUNTIME)
    testing = document["testingStatus"]
    assert isinstance(testing, dict)
    status, message = testing[CHAT_CHECK]["status"], testing[CHAT_CHECK]["message"]
    assert status == "failed" and "\n" not in message
    assert message.startswith("non-streaming: HTTP 500: chat() returned dict; return an openai ChatCompletion"), message
    assert document["overallStatus"] == "failed"
