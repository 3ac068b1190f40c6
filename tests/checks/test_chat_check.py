"""chatCompletions: chat models driven by the official openai client, on cmkit-runtime over a loopback socket.

A good chat() (a completion, and a stream of chunks) passes; what OpenAI's API would never answer
fails with one line naming it: a dict without choices (refused by the server, as DRUM does), a
completion built without its choices, chunks with two ids, content after the finish reason, a
stream that never ends. tests/testlocal/test_chat_local.py runs init's example through test-local.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.checks.chat import (
    CHAT_CHECK,
    StreamState,
    _message,
    answers_predictions,
    judge_completion,
    judge_event,
    offers_chat,
)
from cmkit.checks.context import CheckOptions
from cmkit.checks.results import DEFAULT_CONFIGURATION, ERROR_CHECK
from cmkit.checks.suite import run_checks
from cmkit.events import RecordingEvents
from cmkit_runtime.target import Target
from tests.checks.test_seven_checks import InProcessServer
from tests.support.bundles import write_runtime_bundle

# chat() over openai's types; BODY picks what it returns.
CHAT = '''
import itertools
import time

from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.model import Model


def load_model(code_dir):
    return "echo"


def get_supported_llm_models(model):
    return [Model(id="echo-1", created=0, object="model", owned_by="cmkit")]


def chunk(content, finish=None, id="c1"):
    delta = ChoiceDelta(content=content) if content else ChoiceDelta()
    choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)
    return ChatCompletionChunk(id=id, object="chat.completion.chunk", created=0, model="echo-1", choices=[choice])


def completion(text):
    message = ChatCompletionMessage(role="assistant", content=text)
    choice = Choice(index=0, finish_reason="stop", message=message)
    return ChatCompletion(id="x1", object="chat.completion", created=0, model="echo-1", choices=[choice])


def chat(completion_create_params, model):
    text = "Echo: " + completion_create_params["messages"][-1]["content"]
    stream = completion_create_params.get("stream", False)
    BODY
'''
GOOD = """if stream:
        return iter([chunk(word + " ") for word in text.split()] + [chunk(None, "stop")])
    return completion(text)"""
BROKEN = {
    "a dict missing choices": (
        'return {"id": "x", "object": "chat.completion", "created": 0, "model": "m"}',
        "non-streaming: HTTP 500: chat() returned dict; return an openai ChatCompletion",
    ),
    "a completion built without choices": (
        'return ChatCompletion.model_construct(id="x", object="chat.completion", created=0, model="m")',
        "non-streaming: the completion has no choices",
    ),
    "two ids in a stream": (
        'return iter([chunk("a", id="1"), chunk("b", id="2"), chunk(None, "stop", id="2")]) if stream else '
        'completion("a")',
        "streaming: chunk 2 has id '2'; a stream's chunks share one id",
    ),
    "content after the finish": (
        'return iter([chunk(None, "stop"), chunk("late")]) if stream else completion("a")',
        "streaming: chunk 2 has content for choice 0 after its finish_reason",
    ),
    "a stream that never ends": (
        'return (chunk("more") for _ in itertools.count() if time.sleep(0.05) is None) if stream else '
        'completion("a")',
        "streaming: no [DONE] within 1s",
    ),
}


def _checks(bundle: Path) -> dict[str, tuple[str, str]]:
    server = InProcessServer(bundle)
    try:
        options = CheckOptions(configuration=dict(DEFAULT_CONFIGURATION), chat_stream_seconds=1.0)
        results = run_checks(server, None, Target("textgeneration"), options, RecordingEvents())
    finally:
        server.stop()
    return {name: (result.status, result.message) for name, result in results.items()}


def _bundle(root: Path, body: str) -> Path:
    return write_runtime_bundle(root, "textgeneration", "chat", CHAT.replace("BODY", body))


def test_a_chat_only_model_passes_the_chat_check_and_skips_the_row_checks(tmp_path: Path) -> None:
    results = _checks(_bundle(tmp_path / "good", GOOD))
    assert results[CHAT_CHECK] == ("succeeded", "a completion and a stream of 10 chunks, as OpenAI answers")
    assert results[ERROR_CHECK][0] == "skipped" and "chat completions only" in results[ERROR_CHECK][1]


# The stream that never ends waits a second for its deadline: the slow tier's.
@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if "never" in c else c for c in sorted(BROKEN)]
)
def test_a_malformed_answer_fails_with_one_line_naming_it(case: str, tmp_path: Path) -> None:
    body, message = BROKEN[case]
    status, shown = _checks(_bundle(tmp_path / "bad", body))[CHAT_CHECK]
    assert status == "failed" and shown.startswith(message) and "\n" not in shown, shown


def test_a_model_without_chat_gets_no_chat_check_unless_its_type_chats(tmp_path: Path) -> None:
    predict_only = "def predict(model, X):\n    return ['ok'] * len(X)\n"
    bundle = write_runtime_bundle(tmp_path / "tg", "textgeneration", "tg", predict_only)
    server = InProcessServer(bundle)
    try:
        results = run_checks(server, None, Target("textgeneration"), CheckOptions(), RecordingEvents())
        assert CHAT_CHECK not in results  # a text model may predict rows only
        agent = run_checks(server, None, Target("agenticworkflow"), CheckOptions(), RecordingEvents())
    finally:
        server.stop()
    message = "the model defines no chat(): agenticworkflow models are asked on /chat/completions"
    assert (agent[CHAT_CHECK].status, agent[CHAT_CHECK].message) == ("failed", message)


def test_the_judges_of_a_completion_and_of_a_stream() -> None:
    good = {
        "id": "a",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    }
    assert judge_completion(good) == ""
    assert judge_completion([]) == "the body is a JSON list, not a chat completion object"
    assert judge_completion({**good, "choices": []}) == "the completion has an empty choices list"
    bad_reason = {**good, "choices": [{**good["choices"][0], "finish_reason": "bored"}]}  # type: ignore[dict-item]
    assert judge_completion(bad_reason).startswith("the completion is not OpenAI's ChatCompletion: choices.0.finish")
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 4}
    assert judge_completion({**good, "usage": usage}) == "usage does not add up: 1 + 2 != 4"
    state = StreamState()
    assert judge_event('{"id": "a", "object": "chat.completion.chunk"}', state).startswith("chunk 1 is not")
    state = StreamState()
    chunk = '{"id": "a", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": '
    assert judge_event(chunk + '[{"index": 0, "delta": {"content": "x"}}]}', state) == ""
    assert judge_event("[DONE]", state) == "the stream ended without a finish_reason for choice 0"
    assert judge_event("{}", state) == "an event after [DONE]: {}"


def test_what_the_capabilities_say_and_how_a_refusal_is_worded() -> None:
    assert offers_chat('{"supported_methods": {"chat": true}}')
    assert not offers_chat('{"supported_methods": {"chat": false}}') and not offers_chat("<html>")
    assert not offers_chat('{"supported_payload_formats": {}}')  # an older DRUM says nothing
    assert not answers_predictions('{"predictions": false}')
    assert answers_predictions('{"supported_methods": {}}') and answers_predictions("not json")
    assert _message('{"message": "ERROR: no"}') == "ERROR: no"
    assert _message("<h1>oops</h1>\n") == "<h1>oops</h1>" and _message("[1]") == "[1]"
    completion = {"id": "", "object": "chat.completion", "created": 0, "model": "m", "choices": []}
    assert judge_completion(completion) == "the completion's object is 'chat.completion' and its id ''"
    done = StreamState()
    assert judge_event("[DONE]", done) == "" and done.done and done.chunks == 0


def test_streamed_text_with_unicode_line_separators_reaches_the_openai_client_whole(tmp_path: Path) -> None:
    """U+2028 and U+0085 stay raw in compact JSON; DRUM's str.splitlines() breaks its event there."""
    from openai import OpenAI

    text = "one\u2028two\x85three"
    body = f"return iter([chunk({text!r}), chunk(None, 'stop')])"
    server = InProcessServer(_bundle(tmp_path / "sep", body))
    try:
        client = OpenAI(base_url=server.url, api_key="none", max_retries=0)
        question = [{"role": "user", "content": "x"}]
        stream = client.chat.completions.create(model="echo-1", messages=question, stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == text
    finally:
        server.stop()
