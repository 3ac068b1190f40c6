"""HTTP calls to a model server: readiness pings and `predict_no_state` requests.

Parallel requests reuse keep-alive connections: one `requests.Session` per worker thread, so a
burst of single-row requests costs one TCP handshake per worker, not one per row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import requests

T = TypeVar("T")
R = TypeVar("R")
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


class ModelClient:
    def __init__(self, url: str, timeout: float = 600.0, parallelism: int = 4) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.parallelism = max(1, parallelism)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # never route model traffic through the user's HTTP proxy
            self._local.session = session
        return session

    def ping(self, timeout: float = 5.0) -> int:
        """Status of `GET {url}/`; raises requests' ConnectionError while nothing listens."""
        return self._session().get(f"{self.url}/", timeout=timeout).status_code

    def predict(self, body: bytes) -> Answer:
        try:
            response = self._session().post(
                f"{self.url}/predict_no_state/", data=body, headers=JSON_HEADERS, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return Answer(0, f"request failed: {exc.__class__.__name__}: {exc}")
        return Answer(response.status_code, response.text)

    def map(self, func: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`func` over `items` on `parallelism` threads, results in order."""
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="cmkit-check") as pool:
            yield from pool.map(func, items)
