"""HTTP calls to a model server: readiness pings and prediction requests, in either protocol.

Checks hand `predict()` a `predict_no_state` body; the server's protocol (cmkit/checks/protocols.py:
detected at the first readiness answer, or forced) decides the route and the body sent.

Built on urllib3's connection pool rather than requests: sideEffects sends up to thousands of
single-row requests, and the client's own per-request cost competes with the server for the
same CPUs. Parallel requests reuse keep-alive connections (one per worker thread at most).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError

from cmkit.checks import protocols
from cmkit.checks.protocols import Detected

T = TypeVar("T")
R = TypeVar("R")


class ServerUnreachable(Exception):
    """No HTTP answer at all (connection refused, reset, timeout)."""


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


class ModelClient:
    def __init__(self, url: str, timeout: float = 600.0, parallelism: int = 4, protocol: str | None = None) -> None:
        self.url = url.rstrip("/")
        if protocol is not None:
            protocols.force(self.url, protocol)
        parts = urlsplit(self.url)
        self.prefix = parts.path
        self.timeout = timeout
        self.parallelism = max(1, parallelism)
        # Never through the user's HTTP proxy: the server is local (or on the engine's host).
        self._pool = urllib3.HTTPConnectionPool(
            parts.hostname or "127.0.0.1", parts.port or 80, maxsize=self.parallelism, block=True
        )

    def ping(self, timeout: float = 5.0) -> int:
        """Status of `GET {url}/`; ServerUnreachable while nothing listens."""
        try:
            response = self._pool.urlopen("GET", f"{self.prefix}/", retries=False, timeout=timeout)
        except HTTPError as exc:
            raise ServerUnreachable(exc.__class__.__name__) from exc
        if response.status == 200 and protocols.known(self.url) is None:
            self._detect(response.headers)
        return int(response.status)

    @property
    def protocol(self) -> Detected | None:
        """The server's protocol once known (forced, or detected by a readiness answer)."""
        return protocols.known(self.url)

    def _detect(self, headers: Any) -> Detected:
        found = protocols.from_headers(headers)
        if found is None:
            found = protocols.from_capabilities(*self._get("/capabilities/"))
            info = self._get("/info/")
            if protocols.offers_columnar(*info):
                found = replace(found, columnar=True, keeps=protocols.keeps_columnar(*info))
        return protocols.remember(self.url, found)

    def _get(self, route: str) -> tuple[int, str]:
        """Status and text of `GET {url}{route}`; (0, "") when there is no answer."""
        try:
            response = self._pool.urlopen("GET", f"{self.prefix}{route}", retries=False, timeout=5.0)
        except HTTPError:
            return 0, ""
        return int(response.status), response.data.decode("utf-8", "replace")

    def _resolved(self) -> Detected:
        known = protocols.known(self.url)
        if known is not None:
            return known
        try:
            response = self._pool.urlopen("GET", f"{self.prefix}/", retries=False, timeout=5.0)
        except HTTPError:
            return protocols.from_capabilities(0, "")  # unreachable: predict_no_state, not remembered
        return self._detect(response.headers)

    def predict(self, body: bytes) -> Answer:
        """POST one request; `body` is a `predict_no_state` body, sent in the server's protocol."""
        detected = self._resolved()
        sent, content_type = detected.request(body)
        answer = self._post(detected.protocol.route, sent, content_type)
        again = detected.resend(body, answer.status, answer.text)  # a worker without the kept values
        return answer if again is None else self._post(detected.protocol.route, again, content_type)

    def _post(self, route: str, body: bytes, content_type: str) -> Answer:
        try:
            response = self._pool.urlopen(
                "POST",
                f"{self.prefix}{route}",
                body=body,
                headers={"Content-Type": content_type},
                retries=False,
                timeout=self.timeout,
            )
        except HTTPError as exc:
            return Answer(0, f"request failed: {exc.__class__.__name__}: {exc}")
        return Answer(int(response.status), response.data.decode("utf-8", errors="replace"))

    def map(self, func: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`func` over `items` on `parallelism` threads, results in order."""
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="cmkit-check") as pool:
            yield from pool.map(func, items)

    def close(self) -> None:
        self._pool.close()
