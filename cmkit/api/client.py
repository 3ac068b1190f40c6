"""A small REST client for DataRobot's API: authentication, timeouts, retries, streamed uploads.

Reads (GET, DELETE) are retried by urllib3's `Retry` on connection errors, 429 and 5xx, with
backoff and `Retry-After`. Creates (POST, PATCH) are not retried here: a lost answer may hide a
create that happened, so callers look before re-creating (see `cmkit.push`), then call
`retry_after()` to wait the right time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any, TypeVar
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from cmkit import __version__
from cmkit.api.config import ApiConfig, redact_url
from cmkit.errors import CmkitError, InputError
from cmkit.events import Events

RETRY_STATUSES = (429, 500, 502, 503, 504)
READ_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "PUT"})
MAX_RETRY_WAIT = 30.0
MAX_ATTEMPTS = 8
T = TypeVar("T")


class ApiError(CmkitError):
    """The API answered an error (or could not be reached); never carries the token."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRY_STATUSES


class JobFailed(ApiError):
    """An async job's status ended ERROR/ABORTED/EXPIRED (its resource may still tell why)."""


# One multipart part: (field name, value) where value is a string or (filename, stream, content type).
Part = tuple[str, str | tuple[str, IO[bytes], str]]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:  # seconds or an HTTP date, as urllib3's own retries read it
        return float(Retry().parse_retry_after(value))
    except InvalidHeader:
        return None


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason
    if isinstance(body, dict) and "message" in body:
        message = body["message"]
        if isinstance(message, dict):
            return "; ".join(f"{k}: {v}" for k, v in message.items())
        errors = body.get("errors")
        return f"{message} ({errors})" if errors else str(message)
    return str(body)[:300]


class BoundedRetry(Retry):
    """urllib3's retries of reads, whose every wait is bounded: a server's Retry-After by
    MAX_RETRY_WAIT (backoff_max bounds only urllib3's own backoff: `Retry-After: 3600` on a read
    once slept an hour under `push --timeout 5`), and all of them by the client's deadline."""

    def __init__(self, *args: Any, deadline: Callable[[], float | None] = lambda: None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def new(self, **kw: Any) -> BoundedRetry:
        renewed = super().new(**kw)
        renewed.deadline = self.deadline
        return renewed

    def get_retry_after(self, response: Any) -> float | None:
        wait = super().get_retry_after(response)
        return None if wait is None else min(wait, MAX_RETRY_WAIT)

    def sleep(self, response: Any = None) -> None:
        wait = self.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
        wait = self.get_backoff_time() if wait is None else wait
        deadline = self.deadline()
        if deadline is not None:  # past it the retry happens at once: its answer decides
            wait = min(wait, max(0.0, deadline - time.monotonic()))
        if wait > 0:
            time.sleep(wait)


class DataRobotClient:
    def __init__(self, config: ApiConfig) -> None:
        if not config.token or any(ch.isspace() for ch in config.token):
            # requests would echo a malformed header value in its error: refuse it here instead.
            raise InputError("the API token is empty or contains whitespace", hint="copy the token again")
        self.config = config
        self.base = config.endpoint.rstrip("/") + "/"
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {config.token}", "User-Agent": f"cmkit/{__version__}"})
        self.session.verify = config.ssl_verify
        # When set (time.monotonic() seconds), no wait of this client lasts past it: push sets
        # it from --timeout.
        self.deadline: float | None = None
        retry = BoundedRetry(
            deadline=lambda: self.deadline,
            total=config.max_retries,
            connect=config.max_retries,
            read=config.max_retries,
            status=config.max_retries,
            backoff_factor=0.2,
            backoff_max=MAX_RETRY_WAIT,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=READ_METHODS,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else urljoin(self.base, path.lstrip("/"))

    def _redact(self, text: str) -> str:
        return text.replace(self.config.token, "***")

    def request(
        self,
        method: str,
        path: str,
        *,
        expected: Sequence[int] = (200, 201, 202, 204),
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One call (reads retried underneath); an ApiError for any answer not in `expected`."""
        kwargs.setdefault("allow_redirects", False)
        try:
            response = self.session.request(
                method,
                self.url(path),
                timeout=(self.config.connect_timeout, timeout or self.config.read_timeout),
                **kwargs,
            )
        except requests.RequestException as exc:
            # `from None`: the original exception's text may quote request headers.
            reason = self._redact(exc.__class__.__name__)
            raise ApiError(f"{method} {path}: cannot reach {redact_url(self.config.endpoint)} ({reason})") from None
        if response.status_code not in expected:
            raise ApiError(
                f"{method} {path}: HTTP {response.status_code}: {self._redact(_message(response))}",
                status=response.status_code,
                retry_after=_retry_after(response),
            )
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, expected=(200,), **kwargs).json()

    def post_json(
        self, path: str, body: Mapping[str, Any], expected: Sequence[int] = (200, 201, 202)
    ) -> requests.Response:
        return self.request("POST", path, json=dict(body), expected=expected)

    def upload(
        self,
        method: str,
        path: str,
        parts: Sequence[Part],
        progress: Callable[[int], None] | None = None,
        expected: Sequence[int] = (200, 201, 202),
    ) -> requests.Response:
        """A streamed multipart request: memory stays flat whatever the files' sizes."""
        encoder = MultipartEncoder(fields=list(parts))
        sent = [0]

        def on_read(monitor: MultipartEncoderMonitor) -> None:
            if progress is not None:
                progress(monitor.bytes_read - sent[0])
            sent[0] = monitor.bytes_read

        monitor = MultipartEncoderMonitor(encoder, on_read)
        return self.request(
            method,
            path,
            data=monitor,
            headers={"Content-Type": monitor.content_type},
            expected=expected,
            timeout=max(self.config.read_timeout, 600.0),
        )

    def pages(self, path: str, params: Mapping[str, Any] | None = None, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following `next`."""
        url: str | None = path
        query: dict[str, Any] | None = {"offset": 0, "limit": limit, **(params or {})}
        while url:
            page = self.get(url, params=query)
            yield from page.get("data", [])
            url, query = page.get("next"), None

    def wait_status(self, status_url: str, timeout: float, poll: float = 1.0) -> str:
        """Follow an async job's `status/` URL until it redirects (303) to the result: its Location."""

        def redirected(response: requests.Response) -> bool:
            if response.status_code == 303:
                return True
            body = response.json()
            state = str(body.get("status", "")).upper()
            if state in ("ERROR", "ABORTED", "EXPIRED"):
                raise JobFailed(f"the job at {status_url} ended {state}: {body.get('message', '')}", status=200)
            return False

        def fetch() -> requests.Response:
            return self.request("GET", status_url, expected=(200, 303))

        return poll_until(fetch, redirected, timeout, f"the job at {status_url}", poll).headers["Location"]

    def poll(
        self,
        path: str,
        done: Callable[[dict[str, Any]], bool],
        timeout: float,
        what: str,
        on_wait: Callable[[dict[str, Any]], None] | None = None,
        interval: float = 2.0,
    ) -> dict[str, Any]:
        """GET `path` until `done(resource)`; an ApiError once `timeout` seconds have passed."""
        return poll_until(lambda: dict(self.get(path)), done, timeout, what, interval, on_wait)

    def close(self) -> None:
        self.session.close()


def retry_after(error: ApiError, attempt: int) -> float:
    """How long to wait before retrying a create: the server's Retry-After, else backoff."""
    if error.retry_after is not None:
        return min(error.retry_after, MAX_RETRY_WAIT)
    return min(0.2 * 2.0**attempt, MAX_RETRY_WAIT)


def poll_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    what: str,
    interval: float,
    on_wait: Callable[[T], None] | None = None,
) -> T:
    """The one poll loop: `fetch()` until `done(value)`; an ApiError once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise ApiError(f"{what} did not finish within {timeout:g}s")
        if on_wait is not None:
            on_wait(value)
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
        value = fetch()
    return value


def create_with_lookup(create: Callable[[], T], lookup: Callable[[], T | None], what: str, events: Events) -> T:
    """Create something; after a failure, look for it before creating it again."""
    return call_with_retries(create, what, events, lookup)


def call_with_retries(
    call: Callable[[], T], what: str, events: Events, lookup: Callable[[], T | None] | None = None
) -> T:
    """The one retry loop for calls urllib3 does not retry (POST, PATCH).

    A retryable ApiError waits (the server's Retry-After, else backoff) and calls again, up to
    MAX_ATTEMPTS; before each new attempt `lookup` looks for what a lost answer may have created.
    """
    last: ApiError | None = None
    for attempt in range(MAX_ATTEMPTS):
        if attempt and lookup is not None:
            found = lookup()
            if found is not None:
                events.stage(f"{what}: the earlier attempt had succeeded")
                return found
        try:
            return call()
        except ApiError as exc:
            if not exc.retryable:
                raise
            last = exc
            wait = retry_after(exc, attempt)
            events.stage(f"{what}: {exc.message}; retrying in {wait:.1f}s")
            time.sleep(wait)
    assert last is not None
    raise last
