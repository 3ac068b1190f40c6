"""`--all`: test-local, lint and push over a repository's models, with one document for them all.

The models are `repository.select_models`'s; each gets the run the command would give it alone
(its folder and its GitHub Action definition fed into the same request, `TestLocalConfig` or
`PushOptions`). `--jobs N` runs N test-local runs at once, each in a worker process of its own:
the checks are Python (requests, JSON, judging) and processes run them on every core where
threads would share one interpreter lock; every run uses the same engine (Docker or processes)
and its own server. The aggregated document has the same shape whatever the number of models,
and one JUnit file holds one test suite per model.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cmkit.errors import CmkitError
from cmkit.repository import RepoModel, Selection
from cmkit.resolvedrun import TestLocalConfig

if TYPE_CHECKING:
    from cmkit.events import Events
    from cmkit.push import PushOptions

SUCCEEDED, FAILED, ERROR = "succeeded", "failed", "error"


@dataclass(frozen=True)
class ModelOutcome:
    """One model's run: its report (the command's own document) or the error that stopped it."""

    model: RepoModel
    status: str  # succeeded, failed or error (bad input: the run never started)
    seconds: float
    document: dict[str, Any] | None = None
    junit: str | None = None  # the model's JUnit test suite
    error: dict[str, object] | None = None
    exit_code: int = 0

    def to_dict(self, shards: int | None = None) -> dict[str, object]:
        return {
            **self.model.to_dict(shards),
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "report": self.document,
            "error": self.error,
        }


@dataclass(frozen=True)
class RepositoryResult:
    """Every selected model's outcome: `--json`'s document and the exit code."""

    command: str
    selection: Selection
    outcomes: list[ModelOutcome]
    seconds: float
    jobs: int = 1

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def exit_code(self) -> int:
        """2 when a model's input was bad, else 1 when one failed, else 0."""
        if self.count(ERROR):
            return 2
        return 1 if self.count(FAILED) else 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, object]:
        shards = self.selection.shard[1] if self.selection.shard else None
        return {
            "command": self.command,
            "ok": self.ok,
            "selection": self.selection.to_dict(),
            "jobs": self.jobs,
            "seconds": round(self.seconds, 3),
            "summary": {"succeeded": self.count(SUCCEEDED), "failed": self.count(FAILED), "error": self.count(ERROR)},
            "models": [o.to_dict(shards) for o in self.outcomes],
        }

    def junit_xml(self) -> str:
        """One JUnit file: a test suite per model (a model that never ran: one errored test case)."""
        suites = ET.Element("testsuites", name=f"cmkit {self.command} --all")
        tests = failures = errors = 0
        for outcome in self.outcomes:
            if outcome.junit is not None:
                suite = ET.fromstring(outcome.junit)
                suite.set("name", outcome.model.name)
            else:
                suite = ET.Element("testsuite", name=outcome.model.name, tests="1", failures="0", errors="1")
                case = ET.SubElement(suite, "testcase", classname="cmkit.test_local", name="start")
                message = str((outcome.error or {}).get("message", "error"))
                ET.SubElement(case, "error", message=message).text = message
            suite.set("file", outcome.model.path)
            tests += int(suite.get("tests", "0"))
            failures += int(suite.get("failures", "0"))
            errors += int(suite.get("errors", "0"))
            suites.append(suite)
        suites.set("tests", str(tests))
        suites.set("failures", str(failures))
        suites.set("errors", str(errors))
        return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def model_config(template: TestLocalConfig, model: RepoModel) -> TestLocalConfig:
    """The request one model gets: the shared flags, its own folder and definition."""
    return replace(template, bundle=model.folder, definition=model.definition)


def _worker_start(pids: Any) -> None:
    """A worker says who it is (so an interrupted run can end it) and turns SIGTERM into
    KeyboardInterrupt, so its server is stopped as on Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    pids.put(os.getpid())


@dataclass(frozen=True)
class RunResult:
    """What one model's run sends back across the process boundary (plain, picklable data)."""

    status: str
    seconds: float
    document: dict[str, Any] | None = None
    junit: str | None = None
    error: dict[str, object] | None = None
    exit_code: int = 0


def run_one(config: TestLocalConfig) -> RunResult:
    """One model's test-local run, in this process, timed here (not in a queue)."""
    from cmkit.events import Events
    from cmkit.junit import junit_xml
    from cmkit.testlocal import run_test_local

    start = time.monotonic()
    try:
        report = run_test_local(config, Events())
    except CmkitError as exc:
        return RunResult(ERROR, time.monotonic() - start, error=exc.to_dict(), exit_code=exc.exit_code)
    failed = report.overall_status == FAILED
    status = FAILED if failed else SUCCEEDED
    return RunResult(status, time.monotonic() - start, report.to_dict(), junit_xml(report), None, int(failed))


# What a worker needs imported before its first model: importing them once in the fork server
# (instead of once per worker, as spawn would) is most of a short model's run.
PRELOAD = ["cmkit.testlocal", "cmkit.junit", "cmkit.checks.suite", "pandas"]


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a server process that imported cmkit once: no fork of this process, which
    may hold threads and sockets, and no import per worker."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")  # macOS and Windows have no fork server
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _run_in_worker(config: TestLocalConfig) -> RunResult:
    """run_one in a worker: interrupted (SIGTERM from `_end_workers`), it has stopped its server on the
    way out and exits, rather than take the pool's next model."""
    try:
        return run_one(config)
    except KeyboardInterrupt:
        os._exit(128 + signal.SIGTERM)


def _runs(models: list[RepoModel], template: TestLocalConfig, jobs: int) -> Iterator[tuple[RepoModel, RunResult]]:
    """Each model's run as it finishes: one after another in this process, or in `jobs` worker processes."""
    if jobs <= 1 or len(models) <= 1:
        for model in models:
            yield model, run_one(model_config(template, model))
        return
    context = _worker_context()
    pids = context.SimpleQueue()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_start, initargs=(pids,))
    try:
        started = {pool.submit(_run_in_worker, model_config(template, model)): model for model in models}
        for future in as_completed(started):
            yield started[future], future.result()
    except BaseException:
        # Ctrl-C or SIGTERM: no model starts any more, and each running worker stops its server now
        # (waiting for the pool would run every queued model first).
        pool.shutdown(wait=False, cancel_futures=True)
        _end_workers(pids)
        raise
    pool.shutdown(wait=True)


def _end_workers(pids: Any) -> None:
    """SIGTERM to every worker (each stops its server and exits), then wait for them to be gone."""
    workers = []
    while not pids.empty():
        workers.append(int(pids.get()))
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30  # a server's stop is bounded (engine/process.py, docker.py)
    while workers and time.monotonic() < deadline:
        workers = [pid for pid in workers if _alive(pid)]
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_repository(
    selection: Selection,
    template: TestLocalConfig,
    jobs: int = 1,
    on_done: Callable[[ModelOutcome], None] | None = None,
) -> RepositoryResult:
    """test-local on every selected model, `jobs` at a time; outcomes in the models' order."""
    begun = time.monotonic()
    done: dict[int, ModelOutcome] = {}
    index = {id(model): i for i, model in enumerate(selection.models)}
    for model, run in _runs(selection.models, template, jobs):
        outcome = ModelOutcome(model, run.status, run.seconds, run.document, run.junit, run.error, run.exit_code)
        done[index[id(model)]] = outcome
        if on_done is not None:
            on_done(outcome)
    outcomes = [done[i] for i in range(len(selection.models))]
    return RepositoryResult("test-local", selection, outcomes, time.monotonic() - begun, jobs)


test_repository.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name


def push_repository(
    selection: Selection,
    template: PushOptions,
    allow_secrets: tuple[str, ...] = (),
    endpoint: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
    events: Events | None = None,
    on_done: Callable[[ModelOutcome], None] | None = None,
) -> RepositoryResult:
    """push on every selected model in turn (uploads share one connection's bandwidth: no jobs)."""
    from cmkit.push import push_bundle

    begun = time.monotonic()
    outcomes = []
    for model in selection.models:
        start = time.monotonic()
        options = replace(template, bundle=model.folder, definition=model.definition)
        try:
            result = push_bundle(options, allow_secrets, endpoint, token, dry_run, events)
            status = FAILED if result.failed else SUCCEEDED
            outcome = ModelOutcome(
                model, status, time.monotonic() - start, result.to_dict(), exit_code=int(result.failed)
            )
        except CmkitError as exc:
            status = ERROR if exc.exit_code == 2 else FAILED
            outcome = ModelOutcome(
                model, status, time.monotonic() - start, error=exc.to_dict(), exit_code=exc.exit_code
            )
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return RepositoryResult("push", selection, outcomes, time.monotonic() - begun)
