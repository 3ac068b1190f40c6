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
from typing import Any

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


@dataclass
class LoadRun:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None  # why the run ended early, if it did
    not_sent: int = 0

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problem is not None]


def latency(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max/mean in milliseconds (numpy's linear-interpolated percentiles)."""
    if not seconds:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    values = np.asarray(seconds) * 1000.0
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "max": round(float(values.max()), 2),
        "mean": round(float(values.mean()), 2),
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


def summary(run: LoadRun) -> dict[str, Any]:
    return {
        "requests": len(run.outcomes),
        "failedRequests": len(run.failures),
        "notSent": run.not_sent,
        "seconds": round(run.seconds, 3),
        "requestsPerSecond": round(len(run.outcomes) / run.seconds, 1) if run.seconds > 0 else None,
        "latencyMs": latency([o.seconds for o in run.outcomes]),
        "stoppedEarly": run.stopped,
    }


def describe_latency(figures: dict[str, float | None]) -> str:
    if figures["p50"] is None:
        return "no answers"
    return ", ".join(f"{name} {figures[name]:.0f} ms" for name in ("p50", "p95", "p99", "max"))
