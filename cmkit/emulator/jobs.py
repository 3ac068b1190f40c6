"""Background work: environment builds, dependency builds, model tests, dataset ingestion.

`JobRunner` runs job functions on a thread pool, each with a cancel event (set by a DELETE or
by shutdown). A `JobEngine` does the heavy lifting in the runtime the emulator chose
(`cmkit.engine.choice`): `DockerJobs` really builds images with test-local's `ImageBuilder` and
tests in containers; `ProcessJobs` validates what it can and runs model servers as local
processes. Model tests run test-local's request (`TestLocalConfig`) in both.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cmkit.engine.choice import DOCKER, PROCESS, RuntimeName
from cmkit.events import Events
from cmkit.requirements import parse_requirements_text

if TYPE_CHECKING:
    from docker import DockerClient

    from cmkit.emulator.documents import FeatureImpactResult, TestingOutcome
    from cmkit.engine.builder import ImageBuilder
    from cmkit.resolvedrun import TestLocalConfig
    from cmkit.serve import ServeSession

LOG = logging.getLogger("cmkit.emulator")
LogSink = Callable[[str], None]


class JobFailed(Exception):
    """A job ended in failure; the message says why (the log holds the details)."""


class JobCancelled(Exception):
    """A job stopped because its cancel event was set (DELETE or shutdown)."""


@dataclass
class Job:
    key: str
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class JobRunner:
    """Runs jobs in the background; `shutdown` cancels them and waits for them to record it.

    Each job gets its own daemon thread and waits for a slot (at most `workers` heavy jobs run at
    once). Daemon threads, unlike a ThreadPoolExecutor's, do not hold the process open: a Docker
    build cannot be interrupted, and one still running after shutdown's grace period must not
    keep the emulator from exiting (the next start records it as interrupted).
    """

    def __init__(self, workers: int = 8) -> None:
        self._slots = threading.BoundedSemaphore(workers)
        # Quick bookkeeping jobs (dataset ingestion) never wait behind builds and model tests.
        self._quick_slots = threading.BoundedSemaphore(2)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, key: str, work: Callable[[threading.Event], None], quick: bool = False) -> Job:
        job = Job(key)
        with self._lock:
            if self._closed:
                raise RuntimeError("the emulator is shutting down")
            self._jobs[key] = job
        slots = self._quick_slots if quick else self._slots
        threading.Thread(target=self._run, args=(job, work, slots), name=f"job {key}", daemon=True).start()
        return job

    def _run(self, job: Job, work: Callable[[threading.Event], None], slots: threading.BoundedSemaphore) -> None:
        try:
            with slots:
                if not job.cancel.is_set():
                    work(job.cancel)
        except Exception:  # a job records its own failures; this is a bug, keep the emulator alive
            if self._closed:
                LOG.debug("background job %s ended with the emulator", job.key, exc_info=True)
            else:
                LOG.exception("background job %s crashed", job.key)
        finally:
            with self._lock:
                self._jobs.pop(job.key, None)
            job.done.set()

    def cancel(self, key: str) -> bool:
        """Ask a job to stop; False when no such job is queued or running."""
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return False
        job.cancel.set()
        return True

    def active(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def shutdown(self, timeout: float = 10.0) -> list[str]:
        """Cancel every job and wait up to `timeout` for them to end; the keys still running."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()
        deadline = time.monotonic() + timeout
        for job in jobs:
            job.done.wait(max(0.0, deadline - time.monotonic()))
        return [job.key for job in jobs if not job.done.is_set()]


# -- job engines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltEnvironment:
    image: str | None  # the Docker image id, None when nothing was built
    size: int | None = None


class JobEngine(ABC):
    """The emulator's heavy work in its runtime: environment and dependency builds, model runs."""

    runtime: RuntimeName

    @abstractmethod
    def build_environment(self, context_dir: Path, log: LogSink) -> BuiltEnvironment:
        """Build (or check) an environment's docker context; JobFailed with the reason."""

    @abstractmethod
    def build_dependencies(self, context_dir: Path, requirements: str, log: LogSink, r_model: bool = False) -> None:
        """Install requirements.txt on the environment (or check it); JobFailed with the reason.

        `r_model`: the version is an R model, whose requirements.txt names R packages, one per line
        (`cmkit.engine.rhost`), which the R environment's `install-r-packages` installs.
        """

    def run_test(self, request: TestLocalConfig, log: LogSink, cancel: threading.Event) -> TestingOutcome:
        """A model test with cmkit's test-local engine: the report's document (overallStatus...)."""
        return run_test_local_report(self.in_runtime(request), log, cancel)

    def feature_impact(
        self, request: TestLocalConfig, row_count: int | None, log: LogSink, cancel: threading.Event
    ) -> FeatureImpactResult:
        """Permutation feature impact of a version, served as its model tests are."""
        return run_feature_impact(replace(self.in_runtime(request), feature_impact_rows=row_count), log, cancel)

    def serve(self, request: TestLocalConfig, log: LogSink, startup_timeout: float) -> ServeSession:
        """A deployed version's model server, started as `cmkit serve` starts one and left running:
        the caller closes it (a deployment deleted, its model replaced, the emulator stopped).
        StartFailed when it does not answer."""
        from cmkit.serve import serve_bundle

        return serve_bundle(self.in_runtime(request), LogEvents(log), startup_timeout)

    def in_runtime(self, request: TestLocalConfig) -> TestLocalConfig:
        """`request` run in this engine's runtime: the environment's context is built by Docker only.

        The process engine checks requirements.txt without installing it (docs/emulator.md): its
        servers run on the emulator's Python (`isolate=False`; a container is isolated anyway).
        """
        environment = request.environment if self.runtime == DOCKER else None
        return replace(request, runtime=self.runtime, environment=environment, labels=self.labels(), isolate=False)

    def labels(self) -> dict[str, str]:
        return {}


class ProcessJobs(JobEngine):
    """No Docker: environments are recorded, requirements checked, models run as local processes."""

    runtime = PROCESS

    def build_environment(self, context_dir: Path, log: LogSink) -> BuiltEnvironment:
        log(f"process runtime: {context_dir.name} has a Dockerfile; recorded without building it")
        log("models using this environment run as local processes in the emulator's Python")
        return BuiltEnvironment(image=None)

    def build_dependencies(self, context_dir: Path, requirements: str, log: LogSink, r_model: bool = False) -> None:
        if r_model:
            self._check_r_packages(requirements, log)
            return
        report = parse_requirements_text(requirements)
        for dependency in report.dependencies:
            log(f"requirements.txt:{dependency.line_number}: {dependency.line}")
        for error in report.errors:
            log(f"requirements.txt:{error.line_number}: error: {error.message}")
        if report.errors:
            raise JobFailed(f"requirements.txt has {len(report.errors)} invalid line(s)")
        log("process runtime: requirements checked; they are not installed (models use the emulator's Python)")

    @staticmethod
    def _check_r_packages(requirements: str, log: LogSink) -> None:
        """An R model's packages: this machine's R must have them (the process runtime installs nothing)."""
        import shutil

        from cmkit.engine.rhost import missing_r_packages

        names = log_r_packages(requirements, log)
        rscript = shutil.which("Rscript")
        if names and rscript is None:
            raise JobFailed("this is an R model and R is not installed on the emulator's machine")
        missing = missing_r_packages(names, rscript or "")
        if missing:
            raise JobFailed(f"the emulator's R does not have the R package(s) {', '.join(missing)}")
        log("process runtime: the emulator's R has them; nothing is installed (models use this machine's R)")


class DockerJobs(JobEngine):
    """Builds for real through test-local's `ImageBuilder`; objects carry the emulator's labels."""

    runtime = DOCKER

    def __init__(self, client: DockerClient, labels: Mapping[str, str], ca_bundle: Path | None = None) -> None:
        from cmkit.engine.images import BuildSettings

        self.client = client
        self._labels = dict(labels)
        self.settings = BuildSettings.from_environment(ca_bundle)

    def labels(self) -> dict[str, str]:
        return dict(self._labels)

    def _builder(self, log: LogSink) -> ImageBuilder:
        from cmkit.engine.builder import ImageBuilder

        return ImageBuilder(self.client, self.settings, on_log=log, labels=self._labels)

    def build_environment(self, context_dir: Path, log: LogSink) -> BuiltEnvironment:
        from cmkit.engine.images import BuildFailed

        try:
            built = self._builder(log).environment(context_dir)
        except BuildFailed as exc:
            raise JobFailed(str(exc)) from exc
        log(f"environment image {built.tag} ({built.image_id}){' from the cache' if built.cached else ''}")
        size = self.client.images.get(built.image_id).attrs.get("Size")
        return BuiltEnvironment(image=built.image_id, size=int(size) if size is not None else None)

    def build_dependencies(self, context_dir: Path, requirements: str, log: LogSink, r_model: bool = False) -> None:
        from cmkit.engine.images import BuildFailed

        builder = self._builder(log)
        if r_model:
            log_r_packages(requirements, log)
        try:
            environment = builder.environment(context_dir)
            built = builder.dependencies(environment, requirements, r_packages=r_model)
        except BuildFailed as exc:
            raise JobFailed(str(exc)) from exc
        log(f"dependency image {built.tag} ({built.image_id})")


def log_r_packages(requirements: str, log: LogSink) -> list[str]:
    """An R model's requirements.txt, as the build reads it: R package names, one per line."""
    from cmkit.engine.rhost import r_packages

    names = r_packages(requirements)
    log(f"an R model: requirements.txt names the R packages {', '.join(names) or '(none)'}")
    return names


def data_dir_digest(data_dir: Path) -> str:
    """A short name for a data directory, in labels and markers of what its emulator starts."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]


def labels_for(data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """Labels on every Docker object this emulator creates: cmkit's, its data dir's, the caller's."""
    return {"cmkit": "1", "cmkit.emulator": data_dir_digest(data_dir), **extra}


class LogEvents(Events):
    """test-local's progress events, written to the test's log as they happen."""

    def __init__(self, log: LogSink) -> None:
        self._log = log

    def stage(self, text: str) -> None:
        self._log(f"== {text}")

    def log(self, line: str) -> None:
        self._log(line)

    def check(self, name: str, result: Any) -> None:
        self._log(f"{name}: {result.status} {result.message}".rstrip())


def run_test_local_report(request: TestLocalConfig, log: LogSink, cancel: threading.Event) -> TestingOutcome:
    """Run cmkit's test-local engine on a stored version; its report's document, whose outcome a test records."""
    from cmkit.testlocal import run_test_local

    return cast("TestingOutcome", run_test_local(request, LogEvents(log), cancel).to_dict())


def run_feature_impact(request: TestLocalConfig, log: LogSink, cancel: threading.Event) -> FeatureImpactResult:
    """Permutation feature impact of a stored version on `request.dataset`: the API's document.

    JobFailed when the server does not start or the model fails on the data.
    """
    from cmkit.errors import CmkitError
    from cmkit.testlocal import run_feature_impact as run

    try:
        result = run(request, LogEvents(log), cancel)
    except CmkitError as exc:
        raise JobFailed(exc.message) from exc
    log(f"feature impact: baseline {result.metric} {result.baseline:.6g}, {result.rows} rows, {result.seconds:.2f} s")
    return cast("FeatureImpactResult", result.to_api())  # the document `cmkit.featureimpact` computes
