"""requests onto a Flask app's test client: tests written against HTTP run in-process (fast tier).

A `requests.Session` with `FlaskTransport` mounted encodes every request exactly as it would for
a socket (multipart, query strings, redirects followed by requests itself), and the app answers
through Flask's test client, so the same test can run against `cmkit emulator` in a subprocess or
against `create_app` in the test's own process.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from tests.support.emulator_support import TOKEN, Emulator, FlaskEmulator

BASE = "http://emulator.test/"


class FlaskTransport(BaseAdapter):
    """A requests transport adapter whose far end is `app.test_client()`."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.client = app.test_client()

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        answer = self.client.open(
            url.path,
            method=request.method or "GET",
            query_string=url.query,
            headers=dict(request.headers),
            data=_body_bytes(request.body),
            base_url=f"{url.scheme}://{url.netloc}",
        )
        content = answer.get_data()
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.status.partition(" ")[2]
        response.headers = CaseInsensitiveDict(answer.headers.items())
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.url = request.url or ""
        response.request = request
        response.raw = io.BytesIO(content)
        response._content = content
        response._content_consumed = True  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        pass


def _body_bytes(body: Any) -> bytes:
    """What requests would have written to the socket (bytes, text, a file or an encoder)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if hasattr(body, "read"):
        return bytes(body.read())
    if isinstance(body, Iterable):  # a generator body: requests would send it chunked
        return b"".join(bytes(chunk) for chunk in body)
    raise TypeError(f"cannot send a body of type {type(body).__name__}")


class InProcessEmulator:
    """`create_app` on a real data dir, with the interface of `emulator_support.Emulator`."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.flask = FlaskEmulator(data_dir, **settings)
        self.info: dict[str, Any] = {
            "endpoint": BASE + "api/v2/",
            "environmentId": self.flask.environment_id(),
            "dataDir": str(data_dir),
        }
        self.process = None

    @property
    def endpoint(self) -> str:
        return str(self.info["endpoint"])

    @property
    def root(self) -> str:
        return BASE

    def url(self, path: str) -> str:
        return self.endpoint + path

    def session(self, scheme: str = "Bearer") -> requests.Session:
        session = requests.Session()
        session.mount(BASE, FlaskTransport(self.flask.app))
        session.headers["Authorization"] = f"{scheme} {TOKEN}"
        return session

    def stop(self) -> None:
        self.flask.close()


Emulated = Emulator | InProcessEmulator
# Parametrize a module's `emulator` fixture (see `start`): in-process, and in the slow tier also a
# real `cmkit emulator` subprocess over HTTP.
END_TO_END = pytest.mark.parametrize(
    "emulator", ["in-process", pytest.param("subprocess", marks=pytest.mark.slow)], indirect=True
)
# What only a served emulator has: its own process (its memory, signals, real model servers' time).
SUBPROCESS_ONLY = pytest.mark.parametrize(
    "emulator", [pytest.param("subprocess", marks=pytest.mark.slow)], indirect=True
)


def start(request: pytest.FixtureRequest, data_dir: Path) -> Emulated:
    """The emulator a test asked for through END_TO_END / SUBPROCESS_ONLY; in-process by default."""
    if getattr(request, "param", "in-process") == "subprocess":
        return Emulator(data_dir).start()
    return InProcessEmulator(data_dir)
