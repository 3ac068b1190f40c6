"""Unstructured models in cmkit-runtime: score_unstructured() called and answered as DRUM does.

DRUM 1.18's rules (datarobot_drum's unstructured helpers and Python model adapter), held here
through the runtime's WSGI app: a textual Content-Type (text/*, application/json, or none)
hands the hook a str decoded with the charset (utf-8 by default), any other one the bytes; the
hook gets mimetype, charset (when known), query and headers; it returns str (text/plain; utf-8),
bytes (application/octet-stream), None or (data, {"mimetype", "charset"}); anything else is a
500 naming what came back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from cmkit_runtime.unstructured import BadUnstructured, answer_of, request_arguments
from tests.support.bundles import write_runtime_bundle
from tests.support.inprocess import forget_bundle, loaded_client

# Echoes what it was given, so the test sees the hook's arguments; ?answer= picks a return shape.
ECHO = """
import json


def load_model(code_dir):
    return "loaded"


def score_unstructured(model, data, query, **kwargs):
    seen = {
        "model": model,
        "type": type(data).__name__,
        "data": data if isinstance(data, str) else data.hex(),
        "mimetype": kwargs.get("mimetype"),
        "charset": kwargs.get("charset", "absent"),
        "query": dict(query),
        "header": kwargs["headers"].get("X-Test"),
    }
    answer = query.get("answer", "json")
    if answer == "json":
        return json.dumps(seen), {"mimetype": "application/json"}
    if answer == "str":
        return "héllo"
    if answer == "bytes":
        return b"\\x00\\x01"
    if answer == "none":
        return None
    if answer == "latin":
        return "héllo", {"charset": "latin-1"}
    if answer == "int":
        return 10
    if answer == "triple":
        return "a", {}, 1
    if answer == "raise":
        raise RuntimeError("boom")
    raise AssertionError(answer)
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    bundle = write_runtime_bundle(tmp_path / "u", "unstructured", "u", ECHO)
    with loaded_client(bundle, {"URL_PREFIX": "/p/q"}, "/p/q") as test_client:
        yield test_client


def _post(client: FlaskClient, body: bytes, content_type: str | None, answer: str = "json") -> tuple[int, str, bytes]:
    headers = {"X-Test": "yes"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(f"/p/q/predictUnstructured/?answer={answer}&k=v", data=body, headers=headers)
    return response.status_code, response.headers.get("Content-Type", ""), response.data


def test_text_arrives_decoded_with_its_charset_and_the_rest_as_bytes(client: FlaskClient) -> None:
    status, content_type, body = _post(client, "héllo".encode("latin-1"), "text/plain; charset=latin-1")
    assert (status, content_type) == (200, "application/json; charset=utf-8")  # a str's charset: utf-8
    seen = json.loads(body)
    assert seen == {
        "model": "loaded",
        "type": "str",
        "data": "héllo",
        "mimetype": "text/plain",
        "charset": "latin-1",
        "query": {"answer": "json", "k": "v"},
        "header": "yes",
    }
    seen = json.loads(_post(client, b"{}", "application/json")[2])
    assert (seen["type"], seen["charset"]) == ("str", "utf-8")  # JSON is text; utf-8 when not named
    seen = json.loads(_post(client, b"abc", None)[2])
    assert (seen["type"], seen["mimetype"], seen["charset"]) == ("str", "text/plain", "utf-8")  # none is text
    seen = json.loads(_post(client, b"\x89PNG", "image/png")[2])
    assert seen == {**seen, "type": "bytes", "data": "89504e47", "mimetype": "image/png", "charset": "absent"}


def test_each_return_shape_answers_as_drum_does(client: FlaskClient) -> None:
    assert _post(client, b"x", "text/plain", "str") == (200, "text/plain; charset=utf-8", "héllo".encode())
    assert _post(client, b"x", "text/plain", "bytes") == (200, "application/octet-stream", b"\x00\x01")
    assert _post(client, b"x", "text/plain", "latin") == (200, "text/plain; charset=latin-1", "héllo".encode("latin-1"))
    assert _post(client, b"x", "text/plain", "none")[::2] == (200, b"")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("int", "score_unstructured() returned int; return str, bytes, None or (data,"),
        ("triple", "score_unstructured() returned a tuple of 3 values"),
        ("raise", "score_unstructured() raised RuntimeError: boom"),
    ],
)
def test_a_wrong_return_is_a_500_naming_it(client: FlaskClient, answer: str, message: str) -> None:
    status, content_type, body = _post(client, b"x", "text/plain", answer)
    assert (status, content_type) == (500, "application/json")
    assert message in body.decode()


def test_the_routes_are_drums_and_predict_no_state_is_not_one(client: FlaskClient) -> None:
    assert client.post("/p/q/predictionsUnstructured/?answer=str", data=b"x").status_code == 200
    refused = client.post("/p/q/predict_no_state/", json={"X": {"a": [1]}})
    assert refused.status_code == 404 and "/p/q/predictUnstructured/" in refused.get_json()["message"]
    capabilities = client.get("/p/q/capabilities/").get_json()
    assert capabilities["predictionRoutes"] == ["/predictUnstructured/", "/predictionsUnstructured/"]
    assert "supported_payload_formats" not in capabilities  # DRUM's marker: the checks would send CSV
    info = client.get("/p/q/info/").get_json()
    assert (info["modelFormat"], info["hooks"]) == ("drum-unstructured", ["load_model", "score_unstructured"])


def test_undecodable_text_is_a_500_saying_why() -> None:
    with pytest.raises(BadUnstructured, match="cannot be read as utf-8"):
        request_arguments(b"\xff\xfe", "text/csv")
    with pytest.raises(BadUnstructured, match="cannot be read as nope"):
        request_arguments(b"a", "text/csv; charset=nope")
    with pytest.raises(BadUnstructured, match="'ascii' cannot encode"):
        answer_of(("é", {"charset": "ascii"}))
    with pytest.raises(BadUnstructured, match=r"returned \(int, dict\)"):
        answer_of((1, {}))


def test_a_bundle_without_the_hook_does_not_load(tmp_path: Path) -> None:
    from cmkit_runtime.loader import LoadError, load
    from cmkit_runtime.target import Target

    bundle = write_runtime_bundle(tmp_path / "u", "unstructured", "u", "def load_model(d):\n    return 1\n")
    forget_bundle(bundle)
    try:
        with pytest.raises(LoadError, match=r"needs score_unstructured\(model, data, query, \*\*kwargs\)"):
            load(bundle, Target("unstructured"))
    finally:
        forget_bundle(bundle)
