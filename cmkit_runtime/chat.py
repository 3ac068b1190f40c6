"""Chat completions: DRUM's `chat(completion_create_params, model)` behind OpenAI's routes.

What DRUM 1.18 does, kept here so that a bundle answers the same under either server:

- `POST {prefix}/chat/completions` and `{prefix}/v1/chat/completions` (no trailing slash: the
  `openai` client's paths) call `chat(params, model)` with the request's JSON, or
  `chat(params, model, headers=...)` when the hook takes more than two parameters.
- It returns an `openai` `ChatCompletion` (its `object` is "chat.completion"): answered as JSON
  (`to_dict()`); or an iterator of `ChatCompletionChunk`: answered as server-sent events, one
  `data: {chunk}` event per chunk and `data: [DONE]` at the end, as OpenAI streams. Anything
  else (a dict, a list of strings...) is refused with a 500 naming what came back: DataRobot's
  server refuses it too, so a model must not pass here and fail there.
- A model without `chat()` gets 404 (TextGeneration and AgenticWorkflow: "chat() is not
  implemented"; other types: "chat is not supported").
- `GET {prefix}/models` and `{prefix}/v1/models` answer OpenAI's model list from
  `get_supported_llm_models(model)` (objects whose `object` is "model"), an empty list without
  the hook; only TextGeneration models serve it (404 otherwise), as DRUM.

The `openai` package is the model's dependency, never the runtime's: objects are written through
their own `to_dict()` / `to_json()` (pydantic's `model_dump` as a fallback).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request

from cmkit_runtime.formats import CHAT_HOOK
from cmkit_runtime.target_types import TargetType

log = logging.getLogger("cmkit_runtime")

MODELS_HOOK = "get_supported_llm_models"
CHAT_ROUTES = ("/chat/completions", "/v1/chat/completions")
MODELS_ROUTES = ("/models", "/v1/models")
COMPLETION = "chat.completion"
CHUNK = "chat.completion.chunk"
DONE = b"data: [DONE]\n\n"
EXPECTED = "return an openai ChatCompletion, or an iterator of ChatCompletionChunk when params['stream'] is true"


class BadChat(Exception):
    """chat() returned something DataRobot's server refuses; the message says what and what to return."""


@dataclass(frozen=True)
class ChatHooks:
    chat: Callable[..., Any] | None
    models: Callable[..., Any] | None

    @classmethod
    def of(cls, module: Any) -> ChatHooks:
        def hook(name: str) -> Callable[..., Any] | None:
            found = getattr(module, name, None) if module is not None else None
            return found if callable(found) else None

        return cls(hook(CHAT_HOOK), hook(MODELS_HOOK))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, hook in ((CHAT_HOOK, self.chat), (MODELS_HOOK, self.models)) if hook)


NO_CHAT = ChatHooks(None, None)


def as_document(value: Any, what: str) -> dict[str, Any]:
    """An openai object (or any pydantic model) as the JSON object it writes."""
    for writer in ("to_dict", "model_dump"):
        method = getattr(value, writer, None)
        if callable(method) and not isinstance(value, Mapping):
            written = method(mode="json") if writer == "model_dump" else method()
            if isinstance(written, dict):
                return written
    raise BadChat(f"{what} is a {type(value).__name__}, not an openai object; {EXPECTED}")


# An event's data lines end at CR, LF or CRLF and nowhere else (the SSE format). DRUM splits with
# str.splitlines(), which also breaks at U+2028, U+0085 and five more that JSON leaves raw inside a
# string: a client joins the parts with LF and gets a JSON string with a raw newline, which it refuses.
SSE_LINE_END = re.compile(r"\r\n|\r|\n")


def _chunk_bytes(chunk: Any) -> bytes:
    to_json = getattr(chunk, "to_json", None)
    text = str(to_json(indent=None) if callable(to_json) else json.dumps(as_document(chunk, "a streamed chunk")))
    if "\n" not in text and "\r" not in text:  # compact JSON: one line, the usual case
        return b"data: " + text.encode() + b"\n\n"
    return b"".join(b"data: " + line.encode() + b"\n" for line in SSE_LINE_END.split(text.rstrip("\r\n"))) + b"\n"


def stream_events(first: Any, rest: Iterator[Any]) -> Iterator[bytes]:
    """The chunks as server-sent events, then [DONE]; a chunk that cannot be written ends the stream
    with an error event (the status line is sent already)."""
    try:
        for chunk in itertools.chain([first], rest):
            yield _chunk_bytes(chunk)
    except Exception as exc:  # the hook's generator raised, or yielded what cannot be written
        log.exception("chat() stream failed")
        yield b"data: " + json.dumps({"error": {"message": f"chat() stream failed: {exc}"}}).encode() + b"\n\n"
        return
    yield DONE


def split_result(result: Any) -> tuple[dict[str, Any] | None, Iterator[bytes] | None]:
    """A completion's document, or a stream's events, from what chat() returned (DRUM's rules)."""
    if getattr(result, "object", None) == COMPLETION and not isinstance(result, Mapping):
        return as_document(result, "chat()'s completion"), None
    if isinstance(result, Mapping | str | bytes) or not hasattr(result, "__iter__"):
        raise BadChat(f"chat() returned {type(result).__name__}; {EXPECTED}")
    chunks = iter(result)
    try:
        first = next(chunks)
    except StopIteration:
        return None, iter([DONE])
    if type(first).__name__ != "ChatCompletionChunk" and getattr(first, "object", None) != CHUNK:
        raise BadChat(f"chat() returned an iterator whose first item is a {type(first).__name__}; {EXPECTED}")
    return None, stream_events(first, chunks)


@functools.lru_cache(maxsize=8)
def _takes_headers(hook: Callable[..., Any]) -> bool:
    """More than the two parameters (asked once per hook: inspect.signature costs ~15 us a call)."""
    return len(inspect.signature(hook).parameters) > 2


def call_chat(hook: Callable[..., Any], params: Any, model: Any, headers: Callable[[], dict[str, str]]) -> Any:
    """DRUM's call: the headers go to hooks that take more than the two parameters (and are
    gathered only for those: a few microseconds before every streamed answer's first chunk)."""
    if _takes_headers(hook):
        return hook(params, model, headers=headers())
    return hook(params, model)


def models_document(hook: Callable[..., Any] | None, model: Any) -> dict[str, Any]:
    listed: list[dict[str, Any]] = []
    for entry in hook(model) if hook else ():
        if getattr(entry, "object", None) == "model":  # DRUM keeps openai Model objects only
            listed.append(as_document(entry, "a listed model"))
    return {"object": "list", "data": listed}


@dataclass(frozen=True)
class ChatAnswer:
    """What a chat request is answered: a JSON document, or server-sent events (status 200)."""

    status: int
    document: Any = None
    events: Iterator[bytes] | None = None


EVENTS_MIMETYPE = "text/event-stream"


def _params(body: bytes, mimetype: str) -> Any:
    """The body's JSON as Flask's `get_json(silent=True)` reads it: None unless a JSON mimetype parses."""
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        return None
    try:
        return json.loads(body)
    except ValueError:  # bad JSON, or bytes that are no UTF encoding
        return None


def answer_chat(
    found: tuple[Any, ChatHooks] | None,
    target_type: TargetType,
    body: bytes,
    mimetype: str,
    headers: Callable[[], dict[str, str]],
) -> ChatAnswer:
    """One chat completions request, answered as DRUM answers it (the module's rules)."""
    if found is None:
        return ChatAnswer(503, {"message": "the model is still loading; retry later"})
    model, hooks = found
    if hooks.chat is None:
        missing = "chat() is not implemented" if target_type.chats else "chat is not supported"
        return ChatAnswer(404, {"message": f"ERROR: This model's chat interface was called, but {missing}."})
    params = _params(body, mimetype)
    if not isinstance(params, dict):
        return ChatAnswer(400, {"message": "the body must be a JSON object of chat completion parameters"})
    try:
        document, events = split_result(call_chat(hooks.chat, params, model, headers))
    except BadChat as exc:
        log.error("%s", exc)
        return ChatAnswer(500, {"message": str(exc)})
    except Exception as exc:
        log.exception("chat() failed")
        return ChatAnswer(500, {"message": f"chat() raised {type(exc).__name__}: {exc}"})
    return ChatAnswer(200, document, events)


def add_routes(
    app: Flask,
    prefix: str,
    target_type: TargetType,
    loaded: Callable[[], tuple[Any, ChatHooks] | None],
    json_response: Callable[[int, Any], Response],
) -> None:
    """The chat and model-list routes; `loaded()` waits for the model and gives it with its hooks.

    The server also answers the chat routes in front of Flask (server.py's HotRoutes), through
    the same `answer_chat`: this Flask view serves them when a custom_flask.py guards every route.
    """

    def chat() -> Response:
        answer = answer_chat(loaded(), target_type, request.get_data(), request.mimetype, lambda: dict(request.headers))
        if answer.events is not None:
            return Response(answer.events, status=200, mimetype=EVENTS_MIMETYPE)
        return json_response(answer.status, answer.document)

    def models() -> Response:
        found = loaded()
        if found is None:
            return json_response(503, {"message": "the model is still loading; retry later"})
        if not target_type.lists_llm_models:
            message = "ERROR: get_supported_llm_models is supported only for TextGen models"
            return json_response(404, {"message": message})
        model, hooks = found
        try:
            return json_response(200, models_document(hooks.models, model))
        except Exception as exc:
            log.exception("get_supported_llm_models() failed")
            return json_response(500, {"message": f"get_supported_llm_models() raised {type(exc).__name__}: {exc}"})

    for route in CHAT_ROUTES:
        app.add_url_rule(f"{prefix}{route}", route, chat, methods=["POST"])
    for route in MODELS_ROUTES:
        app.add_url_rule(f"{prefix}{route}", route, models, methods=["GET"])
