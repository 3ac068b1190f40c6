"""The hot prediction route, answered in front of Flask, answers exactly as the Flask route does.

Each request goes once through the app as served (HotRoutes first) and once straight to Flask's
own WSGI app (the route registered there): status line, headers and body must be the same bytes,
for the answers a model gives and for every refusal. Paths and methods the table does not hold
reach Flask unchanged.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client, EnvironBuilder, TestResponse, run_wsgi_app

from cmkit_runtime import wire
from cmkit_runtime.server import Answer, HotRoutes, create_app
from tests.support.bundles import write_runtime_bundle

PREFIX = "/deploy/v1"

MODEL = '''"""Predicts x + 1; a row whose x is 13 raises, one whose x is 7 gives infinity."""
import numpy as np


def load_model(code_dir):
    return None


def predict(model, X):
    x = X["x"].astype(float).to_numpy()
    if (x == 13).any():
        raise RuntimeError("unlucky")
    return np.where(x == 7, np.inf, x + 1)
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    bundle = write_runtime_bundle(tmp_path_factory.mktemp("hot") / "bundle", "regression", "hot", MODEL)
    sys.modules.pop("custom", None)  # the runtime imports the bundle's custom.py by that name
    served = create_app(bundle, {"URL_PREFIX": PREFIX, "TARGET_TYPE": "regression"})
    deadline = time.monotonic() + 30
    while Client(served).get(f"{PREFIX}/").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    yield served
    sys.modules.pop("custom", None)
    sys.path.remove(str(bundle))


def both(app: Flask, method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> TestResponse:
    """The answer as served, after checking Flask alone gives the same bytes."""
    hot = app.wsgi_app
    assert isinstance(hot, HotRoutes)
    answers = [
        Client(wsgi).open(path, method=method, data=body, headers={"Content-Type": content_type})
        for wsgi in (app, hot.flask_app)
    ]
    served, flask = answers
    assert (served.status, list(served.headers), served.get_data()) == (
        flask.status,
        list(flask.headers),
        flask.get_data(),
    )
    return served


def x(*values: Any) -> bytes:
    return json.dumps({"X": {"x": list(values), "other": [1.5] * len(values)}}).encode()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (x(1, 2), "application/json", 200, '{"predictions":[2.0,3.0]}'),
        (x(1.5), "application/json; charset=utf-8", 200, '{"predictions":[2.5]}'),
        (x(None), "application/json", 500, "non-finite"),
        (b"not json", "application/json", 422, "the body is not JSON"),
        (b'{"Y": 1}', "application/json", 422, 'no \\"X\\"'),
        (x(13), "application/json", 500, "RuntimeError: unlucky"),
        (x(7), "application/json", 500, "predict()"),
        (b'{"columns": ["x"], "rows": 1, "values": [4]}', wire.COLUMNAR, 200, '{"predictions":[5.0]}'),
        (b'{"from": "never-kept"}', wire.COLUMNAR, wire.KEPT_STATUS, "never-kept"),
        (b'{"columns": ["x"]}', wire.COLUMNAR, 422, "send"),
    ],
)
def test_a_prediction_is_answered_as_flask_answers_it(
    app: Flask, body: bytes, content_type: str, status: int, says: str
) -> None:
    answer = both(app, "POST", f"{PREFIX}/predict_no_state/", body, content_type)
    assert answer.status_code == status
    assert says in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", f"{PREFIX}/predict_no_state/", 405),
        ("POST", f"{PREFIX}/predict_no_state", 308),
        ("GET", f"{PREFIX}/info/", 200),
        ("GET", f"{PREFIX}/", 200),
        ("POST", "/predict_no_state/", 404),
    ],
)
def test_other_routes_and_methods_reach_flask(app: Flask, method: str, path: str, status: int) -> None:
    assert both(app, method, path, x(1)).status_code == status


def test_the_route_table_takes_new_routes(app: Flask) -> None:
    """A new prediction route is one more entry (a target type's own route, say)."""
    hot = app.wsgi_app
    assert isinstance(hot, HotRoutes)
    echo = HotRoutes(hot.flask_app, {"/echo/": ("PUT", lambda body, mimetype, _environ: Answer(201, body, mimetype))})
    answer = Client(echo).put("/echo/", data=b"hello", headers={"Content-Type": "Text/Plain; charset=x"})
    assert (answer.status, answer.get_data(), answer.headers["Content-Type"]) == ("201 CREATED", b"hello", "text/plain")


def test_a_route_that_raises_gets_flasks_bare_500(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    def broken(body: bytes, mimetype: str, _environ: object) -> Answer:
        raise MemoryError("no room")

    hot = app.wsgi_app
    assert isinstance(hot, HotRoutes)
    answer = Client(HotRoutes(hot.flask_app, {"/p/": ("POST", broken)})).post("/p/", data=b"{}")
    assert answer.status == "500 INTERNAL SERVER ERROR" and b"Internal Server Error" in answer.get_data()
    assert "Exception on /p/ [POST]" in caplog.text


def test_a_body_shorter_than_its_length_is_answered_as_flask_answers_it(app: Flask) -> None:
    """werkzeug's stream refuses a body that ends before its Content-Length (a client gone)."""
    environ = EnvironBuilder(f"{PREFIX}/predict_no_state/", method="POST", data=x(1)).get_environ()
    environ["CONTENT_LENGTH"] = str(len(x(1)) + 10)
    hot = app.wsgi_app
    assert isinstance(hot, HotRoutes)
    answers = []
    for wsgi in (app, hot.flask_app):
        environ["wsgi.input"].seek(0)
        answers.append(run_wsgi_app(wsgi, dict(environ)))
    (body, status, headers), (flask_body, flask_status, flask_headers) = answers
    assert (status, list(headers), b"".join(body)) == (flask_status, list(flask_headers), b"".join(flask_body))
    assert status.startswith("400")
