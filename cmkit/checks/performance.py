"""performanceCheck: response times under `numParallelUsers` concurrent clients.

As DataRobot's check does, it sends payloads of growing size, several requests each: here
1, 10, 100, ... rows up to the whole test dataset, `REQUESTS_PER_SIZE` requests per size. It
fails when one request takes longer than `maxResponseTime` (the run stops there), when the run
does not finish within `maxExecutionTime`, or when a request gets an invalid answer. The report
is what `drum perf-test` shows: the latency distribution (p50, p95, p99, max, per payload size
too) and the server's peak memory while under load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmkit.checks.context import Context
from cmkit.checks.load import Latency, Outcome, Request, run_load
from cmkit.checks.memory import PeakMemory
from cmkit.checks.protocols import encode_payload
from cmkit.checks.results import PERFORMANCE, CheckResult, conclude

if TYPE_CHECKING:
    from cmkit.checks.dataset import Dataset

REQUESTS_PER_SIZE = 10
# A request slower than maxResponseTime has failed the check: waiting a little past the limit
# tells "too slow" from "a little slow" without waiting for a model that never answers.
TIMEOUT_MARGIN_SECONDS = 1.0


def payload_sizes(rows: int) -> list[int]:
    sizes, size = [], 1
    while size < rows:
        sizes.append(size)
        size *= 10
    return [*sizes, rows]


def build_requests(dataset: Dataset) -> list[Request]:
    requests: list[Request] = []
    for size in payload_sizes(dataset.rows):
        body = encode_payload({name: values[:size] for name, values in dataset.columns.items()})
        requests.extend(Request(size, body) for _ in range(REQUESTS_PER_SIZE))
    return requests


def performance_check(ctx: Context) -> CheckResult:
    dataset = ctx.dataset
    assert dataset is not None
    parameters = ctx.options.parameters.performance
    limit = float(parameters.maxResponseTime)

    def too_slow(outcome: Outcome) -> str | None:
        if outcome.seconds > limit:
            return f"a request of {outcome.rows} rows took {outcome.seconds:.2f}s, over maxResponseTime {limit:g}s"
        return None

    memory = PeakMemory(ctx.server).start()
    try:
        run = run_load(
            ctx.client,
            build_requests(dataset),
            ctx.target,
            parameters.numParallelUsers,
            request_timeout=limit + TIMEOUT_MARGIN_SECONDS,
            budget_seconds=float(parameters.maxExecutionTime),
            cancel=ctx.cancel,
            stop_on=too_slow,
        )
    finally:
        memory.stop()
    ctx.raise_if_canceled()
    by_size = {
        str(size): Latency.of([o.seconds for o in run.outcomes if o.rows == size]).to_dict()
        for size in payload_sizes(dataset.rows)
    }
    details: dict[str, object] = {**run.to_dict(), "latencyMsByRows": by_size, **memory.to_dict()}
    details["parameters"] = vars(parameters)
    shown = (
        f"{len(run.outcomes)} requests of 1-{dataset.rows} rows from {parameters.numParallelUsers} user(s): "
        f"{run.latency.describe()}; {memory.describe()}"
    )
    problems = []
    if run.stopped:
        problems.append(run.stopped)
    if run.failures:
        problems.append(f"{len(run.failures)} request(s) failed, first: {run.failures[0].problem}")
    death = ctx.death_note()
    if death:
        problems.append(death)
    if problems:
        return conclude(ctx.level(PERFORMANCE), "; ".join(problems) + f" ({shown})", "", details)
    return conclude(ctx.level(PERFORMANCE), None, shown, details)
