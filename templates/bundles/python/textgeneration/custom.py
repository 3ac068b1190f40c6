"""Your model: the one file of this bundle you edit. The environment's model runtime does the rest.

It calls two functions:

- `load_model(code_dir)` once per worker process, at start, in the background (the server
  answers 503 until it returns). Load artifacts here, never in predict(). If it raises, the
  server logs the traceback and exits.
- `predict(model, X)` for each request, possibly from several threads at once: X is a pandas
  DataFrame with the request's columns (here the prompt column, `promptText`); a missing value
  is NaN or None. Return one string per row of X, in row order.

It may also define `chat(completion_create_params, model)`, DataRobot's chat interface: the
runtime serves it on `POST /chat/completions` (and `/v1/chat/completions`), as OpenAI's API, and
`get_supported_llm_models(model)` on `GET /models`. chat() returns an openai `ChatCompletion`,
or, when the request asks `"stream": true`, an iterator of `ChatCompletionChunk` (sent as
server-sent events, ending with `data: [DONE]`). `cmkit test-local` drives it with the official
openai client (the chatCompletions check).

The model shipped here answers customer-support questions from a small table of topics (their
keywords and a reply) in model.json: a working text-generation start that needs no model
download. Replace it with yours (an LLM client, a local model...).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.completion_usage import CompletionUsage
from openai.types.model import Model

WORD = re.compile(r"[a-z']+")


def load_model(code_dir: str) -> dict[str, Any]:
    """Read the topics from the bundle folder (`code_dir`); predict() receives them."""
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        model: dict[str, Any] = json.load(handle)
    for topic in model["topics"]:
        topic["keywords"] = frozenset(topic["keywords"])
    return model


def reply(model: dict[str, Any], prompt: Any) -> str:
    """The reply of the topic sharing the most words with the prompt, or the fallback."""
    if not isinstance(prompt, str) or not prompt.strip():
        return str(model["empty"])
    words = set(WORD.findall(prompt.lower()))
    best = max(model["topics"], key=lambda topic: len(words & topic["keywords"]))
    return str(best["reply"]) if words & best["keywords"] else str(model["fallback"])


def predict(model: dict[str, Any], X: pd.DataFrame) -> list[str]:
    """One reply per row of X."""
    column = model["promptColumn"]
    if column not in X.columns:
        raise ValueError(f"missing the prompt column {column!r}")
    return [reply(model, prompt) for prompt in X[column]]


MODEL_ID = "support-topics"


def get_supported_llm_models(model: dict[str, Any]) -> list[Model]:
    """The model names chat requests may ask for (GET /models, openai's models.list())."""
    return [Model(id=MODEL_ID, created=0, object="model", owned_by="cmkit init")]


def chat(completion_create_params: dict[str, Any], model: dict[str, Any]) -> ChatCompletion | Iterator[Any]:
    """Answer the last user message; stream it word by word when asked."""
    messages = completion_create_params.get("messages") or []
    prompt = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    answer = reply(model, prompt if isinstance(prompt, str) else "")
    name = str(completion_create_params.get("model") or MODEL_ID)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if completion_create_params.get("stream"):
        return _stream(answer, name, completion_id, created)
    prompt_tokens, completion_tokens = len(WORD.findall(str(prompt).lower())), len(answer.split())
    message = ChatCompletionMessage(role="assistant", content=answer)
    return ChatCompletion(
        id=completion_id,
        object="chat.completion",
        created=created,
        model=name,
        choices=[Choice(index=0, finish_reason="stop", message=message)],
        usage=CompletionUsage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )


def _stream(answer: str, name: str, completion_id: str, created: int) -> Iterator[ChatCompletionChunk]:
    def chunk(delta: ChoiceDelta, finish_reason: Any = None) -> ChatCompletionChunk:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)
        return ChatCompletionChunk(
            id=completion_id, object="chat.completion.chunk", created=created, model=name, choices=[choice]
        )

    yield chunk(ChoiceDelta(role="assistant", content=""))
    for word in answer.split(" "):
        yield chunk(ChoiceDelta(content=word + " "))
    yield chunk(ChoiceDelta(), "stop")
