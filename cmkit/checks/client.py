"""HTTP calls to a model server: readiness pings and prediction requests, in either protocol.

Checks hand `predict()` a `Payload` (a `predict_no_state` body and its other forms); the
server's protocol (cmkit/checks/protocols.py: detected at the first readiness answer, or forced)
decides the route and the body sent. What the server speaks is the client's own state
(`KnownProtocol`), shared with the clients it lends to the load checks (`sibling`): a new run's
client starts from nothing.

Built on urllib3's connection pool rather than requests: sideEffects sends up to thousands of
single-row requests, and the client's own per-request cost competes with the server for the
same CPUs. Parallel requests reuse keep-alive connections (one per worker thread at most).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError

from cmkit.checks import protocols
from cmkit.checks.protocols import Detected, KnownProtocol, Payload

T = TypeVar("T")
R = TypeVar("R")


# A server behind its own auth (DRUM's Flask extension, custom_flask.py) answers these to the checks.
AUTH_HINTS = {
    401: " (the server requires authentication: give it with --header 'Authorization: ...')",
    403: " (the server refused these credentials: check the value given with --header)",
}


class ServerUnreachable(Exception):
    """No HTTP answer at all (connection refused, reset, timeout)."""


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


@dataclass(frozen=True)
class RawAnswer:
    status: int
    content_type: str | None
    body: bytes


class ModelClient:
    """One run's client of one model server: `protocol` forces the prediction protocol (else the
    first readiness answer detects it); `known`, given by `sibling`, is another client's."""

    def __init__(
        self,
        url: str,
        timeout: float = 600.0,
        parallelism: int = 4,
        protocol: str | None = None,
        *,
        known: KnownProtocol | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        # --header: what a server behind its own auth (a custom_flask.py) needs on every request.
        self.headers = dict(headers or {})
        self._known = known if known is not None else KnownProtocol(protocol)
        parts = urlsplit(self.url)
        self.prefix = parts.path
        self.timeout = timeout
        self.parallelism = max(1, parallelism)
        # Never through the user's HTTP proxy: the server is local (or on the engine's host).
        self._pool = urllib3.HTTPConnectionPool(
            parts.hostname or "127.0.0.1", parts.port or 80, maxsize=self.parallelism, block=True, headers=self.headers
        )

    def ping(self, timeout: float = 5.0) -> int:
        """Status of `GET {url}/`; ServerUnreachable while nothing listens."""
        try:
            response = self._pool.urlopen("GET", f"{self.prefix}/", retries=False, timeout=timeout)
        except HTTPError as exc:
            raise ServerUnreachable(exc.__class__.__name__) from exc
        if response.status == 200 and self._known.detected is None:
            self._detect(response.headers)
        return int(response.status)

    @property
    def protocol(self) -> Detected | None:
        """The server's protocol once known (forced, or detected by a readiness answer)."""
        return self._known.detected

    def sibling(self, timeout: float, parallelism: int) -> ModelClient:
        """A client of the same server with connections of its own, speaking what this one found."""
        return ModelClient(self.url, timeout=timeout, parallelism=parallelism, known=self._known, headers=self.headers)

    def _detect(self, headers: Any) -> Detected:
        found = protocols.from_headers(headers)
        if found is None:
            found = protocols.from_capabilities(*self._get("/capabilities/"))
            info = self._get("/info/")
            if protocols.offers_columnar(*info):
                found = replace(found, columnar=True, keeps=protocols.keeps_columnar(*info))
        return self._known.remember(found)

    def get(self, route: str) -> tuple[int, str]:
        """Status and text of `GET {url}{route}` (e.g. /capabilities/); (0, "") without an answer."""
        return self._get(route)

    def _get(self, route: str) -> tuple[int, str]:
        """Status and text of `GET {url}{route}`; (0, "") when there is no answer."""
        try:
            response = self._pool.urlopen("GET", f"{self.prefix}{route}", retries=False, timeout=5.0)
        except HTTPError:
            return 0, ""
        return int(response.status), response.data.decode("utf-8", "replace")

    def _resolved(self) -> Detected:
        known = self._known.detected
        if known is not None:
            return known
        try:
            response = self._pool.urlopen("GET", f"{self.prefix}/", retries=False, timeout=5.0)
        except HTTPError:
            return protocols.from_capabilities(0, "")  # unreachable: predict_no_state, not remembered
        return self._detect(response.headers)

    def predict(self, payload: Payload) -> Answer:
        """POST one request, sent in the server's protocol."""
        detected = self._resolved()
        sent, content_type = detected.request(payload)
        answer = self._post(detected.protocol.route, sent, content_type)
        again = detected.resend(payload, answer.status, answer.text)  # a worker without the kept values
        return answer if again is None else self._post(detected.protocol.route, again, content_type)

    def _post(self, route: str, body: bytes, content_type: str) -> Answer:
        try:
            response = self._pool.urlopen(
                "POST",
                f"{self.prefix}{route}",
                body=body,
                headers={**self.headers, "Content-Type": content_type},
                retries=False,
                timeout=self.timeout,
            )
        except HTTPError as exc:
            return Answer(0, f"request failed: {exc.__class__.__name__}: {exc}")
        return Answer(int(response.status), response.data.decode("utf-8", errors="replace"))

    def post_raw(self, route: str, body: bytes, content_type: str | None) -> RawAnswer:
        """POST `body` as is to `route` (under the prefix): an unstructured model's request, whatever
        the server's protocol (DRUM and cmkit-runtime share the route); the answer's bytes kept."""
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            response = self._pool.urlopen(
                "POST", f"{self.prefix}{route}", body=body, headers=headers, retries=False, timeout=self.timeout
            )
        except HTTPError as exc:
            return RawAnswer(0, None, f"request failed: {exc.__class__.__name__}: {exc}".encode())
        return RawAnswer(int(response.status), response.headers.get("Content-Type"), bytes(response.data))

    def map(self, func: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`func` over `items` on `parallelism` threads, results in order."""
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="cmkit-check") as pool:
            yield from pool.map(func, items)

    def close(self) -> None:
        self._pool.close()
