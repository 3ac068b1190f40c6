"""HTTP calls to a model server: readiness pings and `predict_no_state` requests.

Built on urllib3's connection pool rather than requests: sideEffects sends up to thousands of
single-row requests, and the client's own per-request cost competes with the server for the
same CPUs. Parallel requests reuse keep-alive connections (one per worker thread at most).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError

T = TypeVar("T")
R = TypeVar("R")
JSON_HEADERS = {"Content-Type": "application/json"}


class ServerUnreachable(Exception):
    """No HTTP answer at all (connection refused, reset, timeout)."""


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


class ModelClient:
    def __init__(self, url: str, timeout: float = 600.0, parallelism: int = 4) -> None:
        parts = urlsplit(url.rstrip("/"))
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
        return int(response.status)

    def predict(self, body: bytes) -> Answer:
        try:
            response = self._pool.urlopen(
                "POST",
                f"{self.prefix}/predict_no_state/",
                body=body,
                headers=JSON_HEADERS,
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
