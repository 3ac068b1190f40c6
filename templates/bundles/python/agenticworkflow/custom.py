"""Your agent: the one file of this bundle you edit. The environment's model runtime does the rest.

An agentic workflow answers chat completions, as OpenAI's API does: the runtime serves
`chat(completion_create_params, model)` on `POST /chat/completions` (and `/v1/chat/completions`)
and calls:

- `load_model(code_dir)` once per worker process, at start (the server answers 503 until it
  returns): build the agent here (its tools, a client of the LLM it plans with...).
- `chat(completion_create_params, model)` per request, possibly from several threads at once:
  the request's JSON (`messages`, `model`, `stream`...). Return an openai `ChatCompletion`, or,
  when `stream` is true, an iterator of `ChatCompletionChunk` (sent as server-sent events,
  ending with `data: [DONE]`). `cmkit test-local` drives it with the official openai client.

The agent shipped here plans with rules instead of an LLM, so it needs no download: one step
decides whether the last user message asks for arithmetic; if so it calls its one tool, a
calculator (arithmetic parsed with `ast`, never `eval`), and answers with the tool's result.
Replace the planner with your LLM and add tools.
"""

from __future__ import annotations

import ast
import operator
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta

ARITHMETIC = re.compile(r"[-+*/().\d\s]*\d[-+*/().\d\s]*[-+*/][-+*/().\d\s]*\d[-+*/().\d\s]*")
OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def calculator(expression: str) -> float:
    """The tool: + - * / and parentheses over numbers; ValueError for anything else."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")

    return value(ast.parse(expression.strip(), mode="eval").body)


def load_model(code_dir: str) -> dict[str, Callable[[str], float]]:
    """The agent's tools, by name; chat() receives them."""
    return {"calculator": calculator}


def plan_and_act(tools: dict[str, Callable[[str], float]], message: str) -> str:
    """One planning step (rules standing in for an LLM), then the tool call it chose, if any."""
    found = ARITHMETIC.search(message)
    if found is None:
        return "I am a calculator agent: ask me something like 'what is (2 + 3) * 4?'"
    expression = found.group(0).strip()
    try:
        result = tools["calculator"](expression)
    except (ValueError, SyntaxError, ZeroDivisionError) as exc:
        return f"The calculator could not compute {expression}: {exc}"
    return f"{expression} = {result:g}"


def chat(completion_create_params: dict[str, Any], model: dict[str, Callable[[str], float]]) -> Any:
    """Answer the last user message; stream it word by word when asked."""
    messages = completion_create_params.get("messages") or []
    prompt = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    answer = plan_and_act(model, prompt if isinstance(prompt, str) else "")
    name = str(completion_create_params.get("model") or "calculator-agent")
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if completion_create_params.get("stream"):
        return _stream(answer, name, completion_id, created)
    message = ChatCompletionMessage(role="assistant", content=answer)
    choice = Choice(index=0, finish_reason="stop", message=message)
    return ChatCompletion(id=completion_id, object="chat.completion", created=created, model=name, choices=[choice])


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
