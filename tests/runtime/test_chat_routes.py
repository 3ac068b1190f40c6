"""cmkit-runtime's chat routes, as DRUM 1.18 serves them, through the WSGI app.

chat() answers on /chat/completions and /v1/chat/completions: a ChatCompletion as JSON, chunks
as server-sent events ending with [DONE]; what DRUM refuses (a dict, an iterator of strings) is a
500 naming it; /models lists get_supported_llm_models() for TextGeneration models only; a model
without chat() gets DRUM's 404 messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import Client

from cmkit_runtime.server import HotRoutes
from tests.checks.test_chat_check import CHAT
from tests.support.bundles import write_runtime_bundle
from tests.support.inprocess import loaded_client

# ?-less routing: the test picks chat()'s answer from the prompt.
BODY = """kind = completion_create_params["messages"][-1]["content"]
    if kind == "dict":
        return {"object": "chat.completion"}
    if kind == "strings":
        return iter(["a", "b"])
    if kind == "empty":
        return iter([])
    if kind == "breaks":
        def broken():
            yield chunk("one")
            raise RuntimeError("lost the LLM")
        return broken()
    if kind == "raises":
        raise ValueError("no")
    if stream:
        return iter([chunk("hi "), chunk(None, "stop")])
    return completion("hi")"""
HEADERS = """

def chat(completion_create_params, model, **kwargs):
    return completion(kwargs["headers"].get("X-Test", "none"))


def get_supported_llm_models(model):
    raise RuntimeError("no list")
"""
PREDICT_ONLY = "def predict(model, X):\n    return ['ok'] * len(X)\n"


@contextlib.contextmanager
def _client(bundle: Path, target_type: str) -> Iterator[FlaskClient]:
    with loaded_client(bundle, {"URL_PREFIX": "/m", "TARGET_TYPE": target_type}, "/m") as client:
        yield client


def _ask(
    client: FlaskClient, content: str, stream: bool = False, route: str = "/m/chat/completions"
) -> tuple[int, str, bytes]:
    body = {"model": "m", "messages": [{"role": "user", "content": content}], "stream": stream}
    response = client.post(route, json=body)
    return response.status_code, response.mimetype, response.data


@pytest.fixture
def chat_model(tmp_path: Path) -> Iterator[FlaskClient]:
    bundle = write_runtime_bundle(tmp_path / "c", "textgeneration", "c", CHAT.replace("BODY", BODY))
    with _client(bundle, "textgeneration") as client:
        yield client


def test_a_completion_is_json_and_a_stream_is_events_ending_with_done(chat_model: FlaskClient) -> None:
    status, mimetype, body = _ask(chat_model, "hello", route="/m/v1/chat/completions")
    assert (status, mimetype) == (200, "application/json") and b'"object":"chat.completion"' in body
    status, mimetype, body = _ask(chat_model, "hello", stream=True)
    assert (status, mimetype) == (200, "text/event-stream")
    events = body.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""] and len(events) == 4
    assert all(event.startswith('data: {"id":"c1"') for event in events[:2])
    assert _ask(chat_model, "empty", stream=True)[2] == b"data: [DONE]\n\n"
    broken = _ask(chat_model, "breaks", stream=True)[2].decode()
    assert broken.startswith('data: {"id":"c1"') and '"message": "chat() stream failed: lost the LLM"' in broken


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("dict", "chat() returned dict; return an openai ChatCompletion"),
        ("strings", "chat() returned an iterator whose first item is a str"),
        ("raises", "chat() raised ValueError: no"),
    ],
)
def test_what_drum_refuses_is_a_500_naming_it(chat_model: FlaskClient, content: str, message: str) -> None:
    status, _, body = _ask(chat_model, content)
    assert status == 500 and message in body.decode()


def test_the_model_list_and_a_bad_body(chat_model: FlaskClient) -> None:
    listed = chat_model.get("/m/v1/models").get_json()
    model = {"id": "echo-1", "created": 0, "object": "model", "owned_by": "cmkit"}
    assert listed == {"object": "list", "data": [model]}
    assert chat_model.post("/m/chat/completions", data=b"[1]", content_type="application/json").status_code == 400
    assert chat_model.get("/m/capabilities/").get_json()["supported_methods"] == {"chat": True}


def test_headers_reach_a_hook_that_takes_them_and_a_failing_list_is_a_500(tmp_path: Path) -> None:
    bundle = write_runtime_bundle(tmp_path / "h", "textgeneration", "h", CHAT.replace("BODY", "pass") + HEADERS)
    with _client(bundle, "textgeneration") as client:
        response = client.post("/m/chat/completions", json={"messages": []}, headers={"X-Test": "seen"})
        assert response.get_json()["choices"][0]["message"]["content"] == "seen"
        failed = client.get("/m/models")
        assert failed.status_code == 500
        assert "get_supported_llm_models() raised RuntimeError" in failed.get_json()["message"]


@pytest.mark.parametrize(
    ("target_type", "chat_message", "models_status"),
    [
        ("textgeneration", "chat() is not implemented", 200),
        ("regression", "chat is not supported", 404),
    ],
)
def test_without_chat_drums_404s(tmp_path: Path, target_type: str, chat_message: str, models_status: int) -> None:
    bundle = write_runtime_bundle(tmp_path / "p", target_type, "p", PREDICT_ONLY)
    with _client(bundle, target_type) as client:
        status, _, body = _ask(client, "hello")
        assert status == 404 and chat_message in body.decode()
        models = client.get("/m/models")
        assert models.status_code == models_status
        if models_status == 200:
            assert models.get_json() == {"object": "list", "data": []}
        assert client.get("/m/capabilities/").get_json()["supported_methods"] == {"chat": False}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"model": "m", "messages": [{"role": "user", "content": "hello"}]}', "application/json"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": true}', "application/json"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "breaks"}], "stream": true}', "application/json"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "dict"}]}', "application/json"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "raises"}]}', "application/json"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hello"}]}', "text/plain"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hello"}]}', "application/vnd.x+json"),
        (b"[1, 2]", "application/json"),
        (b"\xff{", "application/json"),
    ],
)
def test_the_chat_routes_answer_in_front_of_flask_as_flask_does(
    chat_model: FlaskClient, body: bytes, content_type: str
) -> None:
    """The chat routes are hot routes (server.py's HotRoutes): status, headers and body are Flask's bytes."""
    hot = chat_model.application.wsgi_app
    assert isinstance(hot, HotRoutes) and "/m/chat/completions" in hot.routes
    answers = [
        Client(wsgi).post("/m/chat/completions", data=body, headers={"Content-Type": content_type, "X-Test": "1"})
        for wsgi in (chat_model.application, hot.flask_app)
    ]
    served, flask = answers
    assert (served.status, list(served.headers), served.get_data()) == (
        flask.status,
        list(flask.headers),
        flask.get_data(),
    )
