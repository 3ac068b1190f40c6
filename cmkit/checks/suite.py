"""The seven model-test checks, run against one running server.

One server serves every check: the model is loaded once, whatever the number of columns or
rows (DRUM's local validation starts a process per column).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cmkit.checks import chat, readiness, transform, unstructured
from cmkit.checks.client import ModelClient, ServerUnreachable
from cmkit.checks.context import CheckOptions, Context
from cmkit.checks.performance import performance_check
from cmkit.checks.predictions import Target, Verdict, judge
from cmkit.checks.protocols import Payload
from cmkit.checks.readiness import Canceled
from cmkit.checks.results import (
    ABORTED,
    CANCELED,
    CHECK_NAMES,
    ERROR_CHECK,
    FAILED,
    LONG_RUNNING_SERVICE,
    NULL_VALUE_IMPUTATION,
    PERFORMANCE,
    PREDICTION_VERIFICATION,
    SIDE_EFFECTS,
    SKIPPED,
    STABILITY,
    SUCCEEDED,
    CheckResult,
    conclude,
    not_started,
)
from cmkit.checks.sampling import null_check_rows
from cmkit.checks.sampling import spread as _sample_rows
from cmkit.checks.sparse import SparseDataset
from cmkit.checks.stability import stability_check
from cmkit.checks.unstructured import RawDataset
from cmkit.checks.verification import prediction_verification
from cmkit.engine.base import Server
from cmkit.events import Events
from cmkit_runtime.formats import TRANSFORM_ROUTES, UNSTRUCTURED_ROUTES

if TYPE_CHECKING:  # pandas is imported where datasets are loaded, off the critical path
    from cmkit.checks.dataset import Dataset

MAX_LISTED = 5
# cmkit's checks beyond the API's seven, reported after them when they apply (not in the API's documents).
EXTRA_CHECKS = (chat.CHAT_CHECK,)
CHAT_ONLY = "not run: the model answers chat completions only (chat() without score()); see chatCompletions"


# --- longRunningService -------------------------------------------------------------------------


def wait_until_ready(ctx: Context) -> CheckResult:
    return readiness.wait_until_ready(ctx.server, ctx.client, ctx.options.startup_timeout, ctx.cancel)


def still_answering(ctx: Context, ready: CheckResult) -> CheckResult:
    """After the other checks the server must still be up and answering."""
    death = ctx.death_note()
    if death is None:
        with contextlib.suppress(ServerUnreachable):
            if ctx.client.ping(timeout=10.0) == 200:
                return ready
        death = f"GET {ctx.server.url_prefix}/ no longer answers 200"
    return CheckResult(FAILED, f"the server stopped during the checks: {death}", ready.details)


# --- prediction checks --------------------------------------------------------------------------


def _problem_with_death(ctx: Context, problem: str) -> str:
    death = ctx.death_note()
    return f"{problem}; {death}" if death else problem


def error_check(ctx: Context) -> CheckResult:
    assert ctx.dataset is not None
    answer = ctx.client.predict(ctx.dataset.payload())
    verdict = judge(answer.status, answer.text, ctx.dataset.rows, ctx.target)
    ctx.batch = verdict
    details: dict[str, object] = {"rows": ctx.dataset.rows, "invalidRows": [p.to_dict() for p in verdict.rows[:100]]}
    if verdict.ok:
        return conclude(ctx.level(ERROR_CHECK), None, f"{ctx.dataset.rows} rows predicted", details)
    return conclude(ctx.level(ERROR_CHECK), _problem_with_death(ctx, verdict.summary()), "", details)


def null_value_imputation(ctx: Context) -> CheckResult:
    dataset = ctx.dataset
    assert dataset is not None
    names = dataset.names
    selection = null_check_rows(dataset.features, ctx.options.null_rows)
    encoded = dataset.encoded(selection.indices)  # every column encoded once; each request swaps one

    def try_column(name: str) -> tuple[str, Verdict]:
        ctx.raise_if_canceled()
        answer = ctx.client.predict(encoded.with_null_column(name))
        return name, judge(answer.status, answer.text, encoded.rows, ctx.target)

    failing = [(name, verdict.summary()) for name, verdict in ctx.client.map(try_column, names) if not verdict.ok]
    detected = ctx.client.protocol
    details = {
        "columns": len(names),
        "rowsSent": encoded.rows,
        # What the requests were: "columnar" when cmkit-runtime offers its own body form, else
        # DataRobot's JSON (or DRUM's CSV). The model receives the same DataFrame either way.
        "bodies": detected.form(has_columnar_twin=True) if detected else "json",  # with_null_column's have one
        # Columnar bodies whose values each worker kept (cmkit_runtime/wire.py's "keep"): after
        # the first request on a connection, each request named them and its null column only.
        "valuesKept": bool(detected and detected.sends_short(has_kept_twin=True)),
        "rowsInDataset": dataset.rows,
        "rowSelection": "sample" if selection.sampled else "all",
        "failingColumns": [{"column": c, "reason": r} for c, r in failing],
    }
    sent = (
        f" ({encoded.rows:,} of {dataset.rows:,} rows per request; --null-rows all sends every row)"
        if selection.sampled
        else ""
    )
    if not failing:
        message = f"all {len(names)} columns pass when null{sent}"
        return conclude(ctx.level(NULL_VALUE_IMPUTATION), None, message, details)
    listed = "; ".join(f"'{column}': {reason}" for column, reason in failing[:MAX_LISTED])
    more = f"; and {len(failing) - MAX_LISTED} more" if len(failing) > MAX_LISTED else ""
    problem = f"{len(failing)} of {len(names)} columns fail when entirely null{sent}: {listed}{more}"
    return conclude(ctx.level(NULL_VALUE_IMPUTATION), _problem_with_death(ctx, problem), "", details)


def _same(alone: Any, batch: Any, ctx: Context) -> bool:
    """Numbers within the tolerances; text exactly."""
    if ctx.target.type.text_predictions:
        return bool(alone == batch)
    return bool(np.allclose(alone, batch, rtol=ctx.options.rtol, atol=ctx.options.atol))


def _format(values: np.ndarray, target: Target) -> str:
    if target.is_classification:
        return (
            "{" + ", ".join(f"{label}: {value:.6g}" for label, value in zip(target.labels, values, strict=True)) + "}"
        )
    if target.type.text_predictions:
        return repr(str(values))[:60]
    return f"{float(values):.9g}"


def _each_alone(
    ctx: Context, alone: Callable[[tuple[int, Payload]], tuple[int, Verdict]], indices: list[int]
) -> Iterator[tuple[int, Verdict]]:
    """The single-row requests, their bodies built a block of rows at a time.

    One pass over a block's columns builds all its bodies (per row, 1,000 columns cost 1,000
    pandas lookups); blocks bound the bodies held at once when rows are wide.
    """
    assert ctx.dataset is not None
    block = max(16, min(256, 100_000 // max(1, len(ctx.dataset.names))))
    for start in range(0, len(indices), block):
        chunk = indices[start : start + block]
        yield from ctx.client.map(alone, zip(chunk, ctx.dataset.row_payloads(chunk), strict=True))


@dataclass(frozen=True)
class RowMismatch:
    """A row whose prediction alone differs from its prediction in the batch (or is invalid)."""

    row: int
    batch: str  # the batch's prediction, formatted
    alone: str  # the prediction alone, formatted, or why it is invalid

    def to_dict(self) -> dict[str, object]:
        return {"row": self.row, "batch": self.batch, "alone": self.alone}


def side_effects(ctx: Context) -> CheckResult:
    dataset = ctx.dataset
    assert dataset is not None
    if ctx.batch is None:  # errorCheck was skipped: the batch is still needed for the comparison
        answer = ctx.client.predict(dataset.payload())
        ctx.batch = judge(answer.status, answer.text, dataset.rows, ctx.target)
    batch = ctx.batch
    if batch.values is None:
        return CheckResult(ABORTED, f"not run: the whole-dataset predictions are invalid ({batch.summary()})")
    batch_values = batch.values
    indices = _sample_rows(dataset.rows, ctx.options.side_effects_rows)

    def alone(request: tuple[int, Payload]) -> tuple[int, Verdict]:
        ctx.raise_if_canceled()
        answer = ctx.client.predict(request[1])
        return request[0], judge(answer.status, answer.text, 1, ctx.target)

    started = time.monotonic()
    mismatches: list[RowMismatch] = []
    for index, verdict in _each_alone(ctx, alone, indices):
        expected = batch_values[index]
        if verdict.values is None:
            mismatches.append(RowMismatch(index, _format(expected, ctx.target), verdict.summary()))
        elif not _same(verdict.values[0], expected, ctx):
            mismatches.append(RowMismatch(index, _format(expected, ctx.target), _format(verdict.values[0], ctx.target)))
    seconds = time.monotonic() - started
    details = {
        "rowsCompared": len(indices),
        "rowsPerSecond": round(len(indices) / seconds, 1) if seconds > 0 else None,
        "rtol": ctx.options.rtol,
        "atol": ctx.options.atol,
        "mismatches": [m.to_dict() for m in mismatches[:100]],
    }
    if not mismatches:
        message = f"{len(indices)} rows predicted alone match the batch"
        return conclude(ctx.level(SIDE_EFFECTS), None, message, details)
    listed = "; ".join(f"row {m.row}: batch {m.batch} vs alone {m.alone}" for m in mismatches[:MAX_LISTED])
    problem = f"{len(mismatches)} of {len(indices)} rows differ when predicted alone: {listed}"
    return conclude(ctx.level(SIDE_EFFECTS), _problem_with_death(ctx, problem), "", details)


# --- the suite ----------------------------------------------------------------------------------

PREDICTION_CHECKS: tuple[tuple[str, Callable[[Context], CheckResult]], ...] = (
    (ERROR_CHECK, error_check),
    (NULL_VALUE_IMPUTATION, null_value_imputation),
    (SIDE_EFFECTS, side_effects),
    (PREDICTION_VERIFICATION, prediction_verification),
    (PERFORMANCE, performance_check),
    (STABILITY, stability_check),
)


def _unstructured_checks(ctx: Context, raw: RawDataset | None, results: dict[str, CheckResult]) -> None:
    """errorCheck on the file as one body (checks/unstructured.py); the row-wise and load checks do not apply."""
    for name, _ in PREDICTION_CHECKS:
        ctx.raise_if_canceled()
        if name != ERROR_CHECK:
            results[name] = CheckResult(SKIPPED, unstructured.NOT_APPLICABLE)
        elif ctx.level(name) == "skip":
            results[name] = CheckResult(SKIPPED, "skipped by configuration")
        elif raw is None:
            results[name] = CheckResult(SKIPPED, "no test file: pass --dataset FILE or set validation.input")
        else:
            ctx.events.check_started(name)
            started = time.monotonic()
            results[name] = unstructured.error_check(ctx, raw)
            results[name].seconds = round(time.monotonic() - started, 3)
        ctx.events.check(name, results[name])


def _transform_checks(ctx: Context, sparse: SparseDataset | None, results: dict[str, CheckResult]) -> None:
    """errorCheck and nullValueImputation on /transform/ (checks/transform.py); the others compare predictions.

    `sparse`: a Matrix Market dataset (checks/sparse.py), sent as it is instead of `ctx.dataset`."""
    dataset = sparse or ctx.dataset
    applies = {ERROR_CHECK: transform.error_check, NULL_VALUE_IMPUTATION: transform.null_value_imputation}
    for name, _ in PREDICTION_CHECKS:
        ctx.raise_if_canceled()
        check = applies.get(name)
        held = CheckResult(SKIPPED, transform.NOT_APPLICABLE) if check is None else _held(ctx, name, results, dataset)
        if held is not None:
            results[name] = held
        elif check is not None and dataset is not None:
            ctx.events.check_started(name)  # as the prediction checks: a spinner, then the check once
            started = time.monotonic()
            results[name] = check(ctx, dataset)
            results[name].seconds = round(time.monotonic() - started, 3)
        ctx.events.check(name, results[name])


def _held(
    ctx: Context, name: str, results: dict[str, CheckResult], dataset: Dataset | SparseDataset | None = None
) -> CheckResult | None:
    """Why the prediction check `name` does not run (skipped or aborted), or None: it runs.

    `dataset`: the one the check would get, when not `ctx.dataset` (a transform's sparse one)."""
    if ctx.level(name) == "skip":
        return CheckResult(SKIPPED, "skipped by configuration")
    if (dataset or ctx.dataset) is None:
        return CheckResult(SKIPPED, "no dataset: pass --dataset or set validation.input")
    if name != ERROR_CHECK and results[ERROR_CHECK].status == FAILED:
        # A model that cannot predict on the plain dataset tells nothing about nulls or
        # row-wise consistency: the later checks would only repeat errorCheck's finding.
        return CheckResult(ABORTED, f"not run: {ERROR_CHECK} failed")
    return None


def _own_routes(target: Target, prefix: str) -> str | None:
    """A type served on a route of its own (DRUM's, on either server): the checks use it, not a protocol."""
    if target.type.transforms:
        return f"POST {prefix}{TRANSFORM_ROUTES[0]}"
    if target.type.unstructured:
        return f"POST {prefix}{UNSTRUCTURED_ROUTES[0]}"
    return None


def _timed(check: Callable[[Context], CheckResult], ctx: Context) -> CheckResult:
    started = time.monotonic()
    result = check(ctx)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def run_checks(
    server: Server,
    dataset: Dataset | RawDataset | SparseDataset | None,
    target: Target,
    options: CheckOptions,
    events: Events | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, CheckResult]:
    """Run every check against `server`; returns one result per check name, in API order."""
    ctx = Context(
        server=server,
        client=ModelClient(
            server.url,
            timeout=options.request_timeout,
            parallelism=options.parallelism,
            protocol=options.protocol,
            headers=options.headers,
        ),
        dataset=None if isinstance(dataset, RawDataset | SparseDataset) else dataset,
        target=target,
        options=options,
        events=events or Events(),
        cancel=cancel or threading.Event(),
    )
    results: dict[str, CheckResult] = {}
    try:
        ctx.events.stage(f"waiting for GET {server.url_prefix}/ to answer 200")
        ready = _timed(wait_until_ready, ctx)
        ctx.events.check(LONG_RUNNING_SERVICE, ready)
        protocol = ctx.client.protocol
        routes = _own_routes(target, server.url_prefix)
        if routes is not None:  # served on DRUM's routes of the type, whichever server answers
            how = f"DRUM's route of {target.type.value} models; no prediction protocol"
            ctx.events.stage(f"{target.type.value} model: checked on {routes} ({how})")
            # The report's "protocol:" line says the route, not the predict_no_state detected by
            # default; what was detected (DRUM's server or not) is kept beside it.
            ready.details["protocol"] = {"name": routes, "how": how, "detected": ready.details.get("protocol")}
        elif protocol is not None:
            ctx.events.stage(f"prediction protocol: {protocol.protocol.name} ({protocol.how})")
        if ready.status != SUCCEEDED:
            return not_started(ready)
        if isinstance(dataset, RawDataset) or target.type.unstructured:
            _unstructured_checks(ctx, dataset if isinstance(dataset, RawDataset) else None, results)
            results[LONG_RUNNING_SERVICE] = still_answering(ctx, ready)
            return {name: results[name] for name in CHECK_NAMES}
        if target.type.transforms:
            _transform_checks(ctx, dataset if isinstance(dataset, SparseDataset) else None, results)
            results[LONG_RUNNING_SERVICE] = still_answering(ctx, ready)
            return {name: results[name] for name in CHECK_NAMES}
        capabilities = ctx.client.get("/capabilities/")[1]
        chats = chat.offers_chat(capabilities)
        chat_only = chats and not chat.answers_predictions(capabilities)
        for name, check in PREDICTION_CHECKS:
            ctx.raise_if_canceled()
            held = CheckResult(SKIPPED, CHAT_ONLY) if chat_only else _held(ctx, name, results)
            if held is not None:
                results[name] = held
            else:
                ctx.events.check_started(name)
                results[name] = _timed(check, ctx)
            ctx.events.check(name, results[name])
        if chats:  # cmkit's own check, after the API's seven (checks/chat.py)
            ctx.events.check_started(chat.CHAT_CHECK)
            results[chat.CHAT_CHECK] = _timed(chat.chat_check, ctx)
            ctx.events.check(chat.CHAT_CHECK, results[chat.CHAT_CHECK])
        elif target.type.chats and not target.type.structured:  # chat() is all such a model answers
            missing = f"the model defines no chat(): {target.type} models are asked on /chat/completions"
            results[chat.CHAT_CHECK] = CheckResult(FAILED, missing)
            ctx.events.check(chat.CHAT_CHECK, results[chat.CHAT_CHECK])
        results[LONG_RUNNING_SERVICE] = still_answering(ctx, ready)
    except Canceled:
        for name in (LONG_RUNNING_SERVICE, *(n for n, _ in PREDICTION_CHECKS)):
            results.setdefault(name, CheckResult(CANCELED, "canceled"))
    finally:
        ctx.client.close()
    return {name: results[name] for name in (*CHECK_NAMES, *EXTRA_CHECKS) if name in results or name in CHECK_NAMES}
