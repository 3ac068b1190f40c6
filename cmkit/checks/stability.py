"""stabilityCheck: many requests of random sizes from parallel clients; enough must succeed.

`numPredictions` requests, each of a size drawn between `minPayloadSize` and `maxPayloadSize`
rows (rows drawn from the test dataset, with replacement, so a payload may be larger than the
dataset), sent by `numParallelUsers` concurrent clients. It passes when at least `passingRate`
of them get a valid answer (errorCheck's rules) and the server still answers afterwards. The
draws are seeded, so a failing run can be repeated exactly.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import TYPE_CHECKING

from cmkit.checks.client import ServerUnreachable
from cmkit.checks.context import Context
from cmkit.checks.load import Request, run_load
from cmkit.checks.memory import PeakMemory
from cmkit.checks.protocols import encode_payload
from cmkit.checks.results import STABILITY, CheckResult, conclude

if TYPE_CHECKING:
    from cmkit.checks.dataset import Dataset
    from cmkit.checks.parameters import StabilityParameters

SEED = 17
MAX_LISTED = 3


def build_requests(dataset: Dataset, parameters: StabilityParameters, seed: int = SEED) -> list[Request]:
    draw = random.Random(seed)
    requests = []
    for _ in range(parameters.numPredictions):
        size = draw.randint(parameters.minPayloadSize, parameters.maxPayloadSize)
        rows = [draw.randrange(dataset.rows) for _ in range(size)]
        body = encode_payload({name: [values[i] for i in rows] for name, values in dataset.columns.items()})
        requests.append(Request(size, body))
    return requests


def _still_up(ctx: Context) -> str | None:
    death = ctx.death_note()
    if death:
        return death
    with contextlib.suppress(ServerUnreachable):
        if ctx.client.ping(timeout=10.0) == 200:
            return None
    return f"GET {ctx.server.url_prefix}/ no longer answers 200"


def stability_check(ctx: Context) -> CheckResult:
    dataset = ctx.dataset
    assert dataset is not None
    parameters = ctx.options.parameters.stability
    memory = PeakMemory(ctx.server).start()
    try:
        run = run_load(
            ctx.client,
            build_requests(dataset, parameters),
            ctx.target,
            parameters.numParallelUsers,
            request_timeout=ctx.options.request_timeout,
            budget_seconds=math.inf,
            cancel=ctx.cancel,
        )
    finally:
        memory.stop()
    ctx.raise_if_canceled()
    total = len(run.outcomes)
    passed = total - len(run.failures)
    rate = passed / total if total else 0.0
    details = {**run.to_dict(), "passingRate": round(rate, 6), "seed": SEED, **memory.to_dict()}
    details["parameters"] = vars(parameters)
    shown = (
        f"{passed} of {total} requests of {parameters.minPayloadSize}-{parameters.maxPayloadSize} rows from "
        f"{parameters.numParallelUsers} user(s) succeeded ({rate:.1%}; {parameters.passingRate:.1%} required); "
        f"{run.latency.describe()}; {memory.describe()}"
    )
    problems = []
    if rate < parameters.passingRate:
        reasons = sorted({str(o.problem) for o in run.failures})
        problems.append(f"{shown}; failures: " + "; ".join(reasons[:MAX_LISTED]))
    down = _still_up(ctx)
    if down:
        problems.append(f"the server is down after the requests: {down}")
    if problems:
        return conclude(ctx.level(STABILITY), "; ".join(problems), "", details)
    return conclude(ctx.level(STABILITY), None, shown, details)
