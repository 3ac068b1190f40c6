"""chatCompletions: a chat model driven by the official `openai` client, its answers' shape judged.

DataRobot's model test has no such check yet; a chat model (one whose server says
`supported_methods.chat`, as DRUM's `/capabilities/` and cmkit-runtime's do) gets it after the
API's seven. It runs the `openai` client unmodified against `{prefix}/` as its base URL:

- `GET models` (TextGeneration models list theirs); the first id is the model asked for, else
  "cmkit-test".
- One non-streaming completion: HTTP 200, and the body is an OpenAI `ChatCompletion` by the
  client's own types (validated, so a missing `choices` or a bad `finish_reason` is named);
  object "chat.completion", an id, at least one choice with a message, every choice finished;
  `usage`, when given, adds up (prompt + completion = total).
- One streaming completion (`stream: true`), read as server-sent events through the client's
  raw stream: every event a `ChatCompletionChunk` by the client's types, one id for all, content
  only before a choice's finish reason, a finish reason by the end, `data: [DONE]` last and
  nothing after it, all within `--chat-stream-seconds` (a stream that never ends fails there).

The first problem found is the check's one line. Without the `openai` package (the `chat` extra)
the check is skipped and says how to install it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmkit.checks.results import FAILED, SKIPPED, SUCCEEDED, CheckResult

if TYPE_CHECKING:
    from cmkit.checks.context import Context

CHAT_CHECK = "chatCompletions"
DEFAULT_MODEL = "cmkit-test"
PROMPT = "Hello! In one sentence, what can you do?"
DONE = "[DONE]"


class Malformed(Exception):
    """The answer is not what OpenAI's API answers; the message says what is wrong."""


def offers_chat(capabilities: str) -> bool:
    """`GET /capabilities/`'s text says the model defines chat() (DRUM's key, which cmkit-runtime writes too)."""
    try:
        document = json.loads(capabilities)
    except ValueError:
        return False
    methods = document.get("supported_methods") if isinstance(document, dict) else None
    return isinstance(methods, dict) and methods.get("chat") is True


def answers_predictions(capabilities: str) -> bool:
    """False when the server says the model answers chat completions only (cmkit-runtime's "predictions")."""
    try:
        document = json.loads(capabilities)
    except ValueError:
        return True
    return not (isinstance(document, dict) and document.get("predictions") is False)


def _validation_problem(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the body"
        return f"{where}: {first.get('msg')}"
    return str(exc).splitlines()[0]


def judge_completion(document: Any) -> str:
    """The completion's shape by OpenAI's types; the one-line problem, or "" when it is sound."""
    from openai.types.chat import ChatCompletion

    if not isinstance(document, dict):
        return f"the body is a JSON {type(document).__name__}, not a chat completion object"
    if "choices" not in document:
        return "the completion has no choices"
    try:
        completion = ChatCompletion.model_validate(document)
    except ValueError as exc:
        return f"the completion is not OpenAI's ChatCompletion: {_validation_problem(exc)}"
    if completion.object != "chat.completion" or not completion.id:
        return f"the completion's object is {completion.object!r} and its id {completion.id!r}"
    if not completion.choices:
        return "the completion has an empty choices list"
    for choice in completion.choices:
        if choice.finish_reason is None:
            return f"choice {choice.index} has no finish_reason"
    usage = completion.usage
    if usage is not None and usage.prompt_tokens + usage.completion_tokens != usage.total_tokens:
        return f"usage does not add up: {usage.prompt_tokens} + {usage.completion_tokens} != {usage.total_tokens}"
    return ""


@dataclass
class StreamState:
    ids: set[str] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    started: set[int] = field(default_factory=set)
    chunks: int = 0
    done: bool = False


def judge_event(data: str, state: StreamState) -> str:
    """One `data:` event of the stream, in order; the one-line problem, or ""."""
    from openai.types.chat import ChatCompletionChunk

    if state.done:
        return f"an event after [DONE]: {data[:80]}"
    if data.strip() == DONE:
        state.done = True
        if state.chunks and state.started - state.finished:
            return f"the stream ended without a finish_reason for choice {min(state.started - state.finished)}"
        return ""
    state.chunks += 1
    try:
        chunk = ChatCompletionChunk.model_validate_json(data)
    except ValueError as exc:
        return f"chunk {state.chunks} is not OpenAI's ChatCompletionChunk: {_validation_problem(exc)}"
    state.ids.add(chunk.id)
    if len(state.ids) > 1:
        return f"chunk {state.chunks} has id {chunk.id!r}; a stream's chunks share one id"
    for choice in chunk.choices:
        if choice.index in state.finished and choice.delta.content:
            return f"chunk {state.chunks} has content for choice {choice.index} after its finish_reason"
        state.started.add(choice.index)
        if choice.finish_reason is not None:
            state.finished.add(choice.index)
    return ""


def _client(ctx: Context) -> Any:
    import openai

    return openai.OpenAI(
        base_url=f"{ctx.server.url}/", api_key="cmkit-local", max_retries=0, timeout=ctx.options.chat_stream_seconds
    )


def _model_id(client: Any) -> str:
    import openai

    try:
        listed = client.models.list()
    except openai.APIError:
        return DEFAULT_MODEL  # a 404 (not a TextGeneration model) or no list: any name does
    ids = [entry.id for entry in getattr(listed, "data", None) or [] if getattr(entry, "id", None)]
    return ids[0] if ids else DEFAULT_MODEL


def _non_streaming(client: Any, model: str) -> tuple[str, dict[str, Any]]:
    import openai

    messages = [{"role": "user", "content": PROMPT}]
    try:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    except openai.APIStatusError as exc:
        return f"non-streaming: HTTP {exc.status_code}: {_message(exc.response.text)}", {}
    except openai.APIError as exc:
        return f"non-streaming: no answer: {exc}", {}
    try:
        document = json.loads(raw.http_response.text)
    except ValueError:
        return "non-streaming: the body is not JSON", {}
    problem = judge_completion(document)
    return (f"non-streaming: {problem}" if problem else ""), document if isinstance(document, dict) else {}


def _streaming(client: Any, model: str, seconds: float) -> tuple[str, StreamState]:
    import openai

    state = StreamState()
    messages = [{"role": "user", "content": PROMPT}]
    deadline = time.monotonic() + seconds
    try:
        with client.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True
        ) as response:
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                return f"streaming: the answer is {content_type or 'untyped'}, not text/event-stream", state
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    return f"streaming: no [DONE] within {seconds:g}s ({state.chunks} chunks so far)", state
                if not line.startswith("data:"):
                    continue
                problem = judge_event(line[len("data:") :].strip(), state)
                if problem:
                    return f"streaming: {problem}", state
    except openai.APIStatusError as exc:
        return f"streaming: HTTP {exc.status_code}: {_message(exc.response.text)}", state
    except openai.APITimeoutError:
        return f"streaming: no event for {seconds:g}s ({state.chunks} chunks so far, no [DONE])", state
    except openai.APIError as exc:
        return f"streaming: no answer: {exc}", state
    if not state.done:
        return f"streaming: the stream ended after {state.chunks} chunks without data: [DONE]", state
    if state.chunks == 0:
        return "streaming: the stream has no chunk before [DONE]", state
    return "", state


def _message(text: str) -> str:
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"])[:200]
    return text.strip()[:200]


def chat_check(ctx: Context) -> CheckResult:
    """The check above, against the context's server."""
    try:
        import openai  # noqa: F401 - a check of the client's presence
    except ImportError:
        return CheckResult(SKIPPED, "the openai client is not installed: pip install 'cmkit[chat]'")
    client = _client(ctx)
    try:
        model = _model_id(client)
        problem, document = _non_streaming(client, model)
        ctx.raise_if_canceled()
        stream_problem, state = ("", StreamState()) if problem else _streaming(
            client, model, ctx.options.chat_stream_seconds
        )
    finally:
        client.close()
    details: dict[str, Any] = {"model": model, "completionId": document.get("id"), "streamChunks": state.chunks}
    problem = problem or stream_problem
    if problem:
        death = ctx.death_note()
        return CheckResult(FAILED, f"{problem}; {death}" if death else problem, details)
    return CheckResult(SUCCEEDED, f"a completion and a stream of {state.chunks} chunks, as OpenAI answers", details)
