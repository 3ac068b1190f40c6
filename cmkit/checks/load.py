"""Concurrent prediction requests for performanceCheck and stabilityCheck.

`numParallelUsers` clients, each on its own keep-alive connection, take request bodies from
one queue until it is empty, the time budget is spent, or a request says to stop. Every answer
is judged with errorCheck's rules, and every latency is kept for the percentiles.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from cmkit.checks.client import ModelClient
from cmkit.checks.predictions import Target, judge
from cmkit.checks.protocols import Payload


@dataclass(frozen=True)
class Request:
    rows: int
    body: Payload


@dataclass
class Outcome:
    rows: int
    seconds: float
    problem: str | None  # None: a valid answer


@dataclass(frozen=True)
class Latency:
    """p50/p95/p99/max/mean in milliseconds (numpy's linear-interpolated percentiles); None without answers."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            return cls()
        values = np.asarray(seconds) * 1000.0
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return cls(
            p50=round(float(p50), 2),
            p95=round(float(p95), 2),
            p99=round(float(p99), 2),
            max=round(float(values.max()), 2),
            mean=round(float(values.mean()), 2),
        )

    def to_dict(self) -> dict[str, float | None]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99, "max": self.max, "mean": self.mean}

    def describe(self) -> str:
        if self.p50 is None or self.p95 is None or self.p99 is None or self.max is None:
            return "no answers"
        shown = (("p50", self.p50), ("p95", self.p95), ("p99", self.p99), ("max", self.max))
        return ", ".join(f"{name} {value:.0f} ms" for name, value in shown)


# Fixed bucket edges, so that histograms of two runs compare bucket by bucket.
HISTOGRAM_EDGES_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


@dataclass
class LoadRun:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None  # why the run ended early, if it did
    not_sent: int = 0

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problem is not None]

    @property
    def latency(self) -> Latency:
        return Latency.of([o.seconds for o in self.outcomes])

    def histogram(self) -> dict[str, int]:
        """Requests per latency bucket (upper bounds in ms, 1-2-5 steps): the report's histogram."""
        counts = dict.fromkeys([f"<={edge}" for edge in HISTOGRAM_EDGES_MS] + [f">{HISTOGRAM_EDGES_MS[-1]}"], 0)
        for outcome in self.outcomes:
            ms = outcome.seconds * 1000.0
            edge = next((e for e in HISTOGRAM_EDGES_MS if ms <= e), None)
            counts[f"<={edge}" if edge is not None else f">{HISTOGRAM_EDGES_MS[-1]}"] += 1
        return counts

    def to_dict(self) -> dict[str, object]:
        """The figures a load check reports in its details."""
        return {
            "requests": len(self.outcomes),
            "failedRequests": len(self.failures),
            "notSent": self.not_sent,
            "seconds": round(self.seconds, 3),
            "requestsPerSecond": round(len(self.outcomes) / self.seconds, 1) if self.seconds > 0 else None,
            "latencyMs": self.latency.to_dict(),
            "latencyHistogramMs": self.histogram(),
            "stoppedEarly": self.stopped,
        }


def run_load(
    client: ModelClient,
    requests: Sequence[Request],
    target: Target,
    users: int,
    request_timeout: float,
    budget_seconds: float,
    cancel: threading.Event,
    stop_on: Callable[[Outcome], str | None] = lambda outcome: None,
) -> LoadRun:
    """Send `requests` from `users` concurrent clients, lent by `client` (its server and protocol,
    connections of their own); see the module docstring."""
    run = LoadRun()
    lock = threading.Lock()
    next_index = [0]
    stop = threading.Event()
    started = time.monotonic()
    lent = client.sibling(timeout=request_timeout, parallelism=users)

    def take() -> Request | None:
        with lock:
            if stop.is_set() or cancel.is_set() or next_index[0] >= len(requests):
                return None
            if time.monotonic() - started > budget_seconds:
                run.stopped = run.stopped or f"the time limit of {budget_seconds:g}s was reached"
                stop.set()
                return None
            next_index[0] += 1
            return requests[next_index[0] - 1]

    def user() -> None:
        while (request := take()) is not None:
            sent = time.monotonic()
            answer = lent.predict(request.body)
            seconds = time.monotonic() - sent
            verdict = judge(answer.status, answer.text, request.rows, target)
            outcome = Outcome(request.rows, seconds, None if verdict.ok else verdict.summary())
            with lock:
                run.outcomes.append(outcome)
                reason = stop_on(outcome)
                if reason and not stop.is_set():
                    run.stopped = reason
                    stop.set()

    try:
        with ThreadPoolExecutor(max_workers=users, thread_name_prefix="cmkit-load") as pool:
            for future in [pool.submit(user) for _ in range(users)]:
                future.result()
    finally:
        lent.close()
    run.seconds = time.monotonic() - started
    run.not_sent = len(requests) - len(run.outcomes)
    return run
