"""`--watch` for `test-local` and `serve`: one server stays up, and every save reaches it.

The bundle's files are watched with watchfiles (inotify, FSEvents...), through the file set of
`cmkit.bundle` (built-in ignores and `.cmkitignore`): a burst of saves is one change once
nothing moved for `DEBOUNCE_STEP_MS`. What a change does depends on what it touches:

- code, artifacts, data (anything else of the bundle): no image build. Docker: the changed and
  removed files are brought into the running container (`cmkit.engine.reload`); the process
  runtime serves from the bundle folder itself. Then the model server reloads its workers
  (SIGHUP to cmkit-runtime's master), or restarts when it cannot (it exited, or is not
  cmkit-runtime).
- `requirements.txt`: the dependency layer is rebuilt and a new container started (the process
  runtime restarts its server: it serves from this Python environment and installs nothing).
- the `--environment` folder: the environment is rebuilt and a new container started.
- `model-metadata.yaml`: the checks' settings are read again; a new target type or labels need
  new container variables, so a new container (or process).
- the `--runtime-params-file` values, wherever the file is: read again; new values are new
  MLOPS_RUNTIME_PARAM_* variables, so a new container (or process), as for the metadata.

test-local then reruns the checks; each run's report has the shape of a single run's, plus
`details.watch` (what changed, what was done, the seconds since the save). A broken edit is a
failed run; the watch goes on, and the next good edit recovers. Everything started is removed
when the watch ends (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import watchfiles

from cmkit.bundle import IGNORE_FILE, BundleFile, ignore_spec, list_bundle
from cmkit.checks.readiness import wait_ready
from cmkit.checks.results import FAILED, CheckResult, not_started
from cmkit.engine.base import Server, free_port
from cmkit.engine.docker import DockerServer
from cmkit.engine.reload import (
    ContainerSync,
    SyncFailed,
    fetch_info,
    restart_container,
    signal_reload,
    wait_generation,
)
from cmkit.errors import CmkitError, InputError
from cmkit.events import Events
from cmkit.report import ReportDetails, StartInfo, TestReport
from cmkit.resolvedrun import ResolvedRun, ServerSettings, TestLocalConfig, resolve_config, resolve_server
from cmkit.testlocal import (
    LOG_TAIL_LINES,
    StartFailed,
    check_server,
    load_datasets,
    start_bundle,
)
from cmkit.warmserver import remove_note, write_note

if TYPE_CHECKING:
    from cmkit.checks.dataset import Dataset, ExpectedPredictions
    from cmkit.checks.sparse import SparseDataset
    from cmkit.checks.unstructured import RawDataset

# A burst of saves (an editor's temp file, rename, chmod; a formatter after it) is one change
# once nothing moved for this long; a steady stream is cut into changes every DEBOUNCE_MAX_MS.
DEBOUNCE_STEP_MS = 50
DEBOUNCE_MAX_MS = 1600
REQUIREMENTS = "requirements.txt"
METADATA = "model-metadata.yaml"

STARTED = "started"
RELOADED = "reloaded"  # new workers, same server process and container
RESTARTED = "restarted"  # the server process started again (same container, or same port)
DEPENDENCIES_REBUILT = "dependencies rebuilt"  # new dependency layer, new container
ENVIRONMENT_REBUILT = "environment rebuilt"  # new environment image, new container
NEW_SERVER = "new server"  # new container variables (target), or requirements in the process runtime


@dataclass(frozen=True)
class Change:
    """One debounced burst of saves, as the bundle's file set sees it."""

    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    environment: bool = False
    saved_at: float = field(default_factory=time.time)  # wall clock of the newest save
    inputs: tuple[str, ...] = ()  # files outside the bundle the run reads (--runtime-params-file), changed

    def touches(self, path: str) -> bool:
        return path in self.changed or path in self.removed

    def describe(self) -> str:
        names = [*self.changed, *(f"{path} (removed)" for path in self.removed), *self.inputs]
        if self.environment:
            names.append("the environment")
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        return shown or "nothing"

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "changed": list(self.changed),
            "removed": list(self.removed),
            "environment": self.environment,
        }
        if self.inputs:
            document["inputs"] = list(self.inputs)
        return document

    def then(self, later: Change) -> Change:
        """This change followed by `later`, as one (a change that could not be run is carried over)."""
        changed = (set(self.changed) - set(later.removed)) | set(later.changed)
        removed = (set(self.removed) - set(later.changed)) | set(later.removed)
        environment = self.environment or later.environment
        inputs = tuple(sorted({*self.inputs, *later.inputs}))
        return Change(tuple(sorted(changed)), tuple(sorted(removed)), environment, later.saved_at, inputs)


Signature = tuple[int, int, int]  # size, mtime in ns, mode: a save changes at least one


def signature(path: Path) -> Signature | None:
    """None: the file is absent (or unreadable), which is a state of its own."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns, stat.st_mode)


def snapshot(bundle: Path) -> dict[str, tuple[Signature, BundleFile]]:
    files = {}
    for file in list_bundle(bundle).files:
        with contextlib.suppress(OSError):  # removed between the listing and the stat
            stat = file.source.stat()
            files[file.path] = ((stat.st_size, stat.st_mtime_ns, stat.st_mode), file)
    return files


class BundleWatcher:
    """Yields a `Change` for each burst of saves that changes the bundle's file set."""

    def __init__(
        self,
        bundle: Path,
        environment: Path | None = None,
        stop: threading.Event | None = None,
        inputs: tuple[Path, ...] = (),
    ) -> None:
        """`inputs`: single files outside the bundle the run reads (the runtime parameters' values)."""
        self.bundle = Path(bundle).resolve()
        self.environment = Path(environment).resolve() if environment else None
        self.stop = stop or threading.Event()
        self.state = snapshot(self.bundle)  # what the server has
        resolved = (Path(path).resolve() for path in inputs)
        self.inputs = {path: signature(path) for path in resolved if not path.is_relative_to(self.bundle)}
        self._spec = ignore_spec(self.bundle)
        # One item per burst: touched the environment? None once the watch has stopped.
        self._bursts: queue.Queue[bool | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def _relevant(self, _change: watchfiles.Change, path: str) -> bool:
        """Cheap first filter on raw events; the snapshot decides what really changed."""
        target = Path(path)
        if self.environment and target.is_relative_to(self.environment):
            return "__pycache__" not in target.parts
        try:
            rel = target.relative_to(self.bundle).as_posix()
        except ValueError:
            return False
        return rel == IGNORE_FILE or not (self._spec.match_file(rel) or self._spec.match_file(rel + "/"))

    def pending(self, environment: bool = False) -> Change | None:
        """The change between what the server has and the bundle now, if any."""
        current = snapshot(self.bundle)
        changed = tuple(sorted(p for p, (sig, _) in current.items() if p not in self.state or self.state[p][0] != sig))
        removed = tuple(sorted(p for p in self.state if p not in current))
        now = {path: signature(path) for path in self.inputs}
        inputs = tuple(sorted(str(path) for path, sig in now.items() if sig != self.inputs[path]))
        if not (changed or removed or environment or inputs):
            return None
        self.state, self.inputs = current, now
        if IGNORE_FILE in changed or IGNORE_FILE in removed:
            self._spec = ignore_spec(self.bundle)
        mtimes = [current[p][0][1] / 1e9 for p in changed]
        mtimes += [sig[1] / 1e9 for path, sig in now.items() if str(path) in inputs and sig is not None]
        return Change(changed, removed, environment, max(mtimes) if mtimes else time.time(), inputs)

    def files(self, paths: tuple[str, ...]) -> list[BundleFile]:
        return [self.state[path][1] for path in paths if path in self.state]

    def start(self) -> None:
        """Start watching now (in a thread), so that no save made from here on can be missed."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="cmkit-watch", daemon=True)
            self._thread.start()
            if self.inputs:
                threading.Thread(target=self._watch_inputs, name="cmkit-watch-inputs", daemon=True).start()

    def _watch_inputs(self) -> None:
        """The input files' folders, not recursively (a values file may sit in a large home folder).

        A folder, not the file: editors save by renaming a new file over the old one.
        """
        folders = sorted({path.parent for path in self.inputs if path.parent.is_dir()})
        wanted = {str(path) for path in self.inputs}
        if not folders:
            return
        for _events in watchfiles.watch(
            *folders,
            watch_filter=lambda _change, path: path in wanted,
            debounce=DEBOUNCE_MAX_MS,
            step=DEBOUNCE_STEP_MS,
            stop_event=self.stop,
            raise_interrupt=False,
            recursive=False,
        ):
            self._bursts.put(False)

    def _watch(self) -> None:
        roots = [self.bundle, *([self.environment] if self.environment else [])]
        try:
            for events in watchfiles.watch(
                *roots,
                watch_filter=self._relevant,
                debounce=DEBOUNCE_MAX_MS,
                step=DEBOUNCE_STEP_MS,
                stop_event=self.stop,
                raise_interrupt=False,
            ):
                environment = self.environment is not None and any(
                    Path(path).is_relative_to(self.environment) for _, path in events
                )
                self._bursts.put(environment)
        finally:
            self._bursts.put(None)  # wakes the iterator now, not at its next poll

    def __iter__(self) -> Iterator[Change]:
        """Each burst of saves that changed the file set, until `stop` is set (or Ctrl-C)."""
        self.start()
        while not self.stop.is_set():
            try:
                burst = self._bursts.get(timeout=0.5)
            except queue.Empty:
                continue
            if burst is None:  # stopped
                return
            environment = burst
            with contextlib.suppress(queue.Empty):
                while True:  # saves made during the last run: one change
                    environment = bool(self._bursts.get_nowait()) or environment
            change = self.pending(environment)
            if change is not None:
                yield change


# --- the server that stays up -------------------------------------------------------------------


@dataclass
class Applied:
    """What bringing a change to the server did."""

    action: str
    start: StartInfo | None = None  # a server was started (or failed to): what starting it found
    durations: dict[str, float] = field(default_factory=dict)  # sync, reload
    reloaded_workers: bool | None = None  # reloaded: whether the new workers answered in time
    start_error: str | None = None  # the image could not be built or the server not started

    def all_durations(self) -> dict[str, float]:
        """The build's (when a server was started) and this change's own steps (the run adds checks and total)."""
        return {**(self.start.durations() if self.start else {}), **self.durations}


class LiveServer:
    """The one server a watch keeps up; reloaded after code edits, replaced after rebuilds."""

    def __init__(self, settings: ServerSettings, events: Events, on_started: Callable[[Server], None]) -> None:
        self.settings = settings
        self.events = events
        self.run_id = uuid.uuid4().hex[:12]
        self.server: Server | None = None
        self._sync: ContainerSync | None = None
        self._on_started = on_started
        self._port: int | None = None  # kept across new servers, so the URL stays

    def start(self) -> StartInfo:
        """Build and start (the first time, and after a rebuild: on the same port); StartFailed if it cannot."""
        if self._port is None:
            self._port = self._first_port()
        self.close()
        started = start_bundle(self.settings, self.events, self.run_id, self._port)
        self.server = started.server
        self._port = self.server.host_port or self._port
        self._sync = ContainerSync(self.server) if isinstance(self.server, DockerServer) else None
        self._on_started(self.server)
        return started.start

    def _first_port(self) -> int | None:
        """A local engine publishes on a port chosen here, which a restarted container keeps too
        (left to the engine, `docker start` picks a new one). A remote engine picks its own."""
        from cmkit.engine.docker import engine_host

        if self.settings.network_egress == "NONE" or (self.settings.runtime.docker and engine_host()):
            return None
        return free_port()

    def prepare(self) -> None:
        """Lookups the first edit would otherwise wait for."""
        if self._sync is not None:
            with contextlib.suppress(SyncFailed, CmkitError, OSError, ValueError):
                self._sync.owner()

    def apply(self, change: Change, files: list[BundleFile], settings: ServerSettings) -> Applied:
        rebuild = self._rebuild_reason(change, settings) if self.server is not None else STARTED
        self.settings = settings
        if rebuild is not None:
            return self.started(rebuild)
        assert self.server is not None
        began = time.monotonic()
        durations: dict[str, float] = {}
        if self._sync is not None:
            self._sync.apply(files, change.removed)
            durations["sync"] = round(time.monotonic() - began, 3)
        applied = self._reload_or_restart()
        durations["reload"] = round(time.monotonic() - began - durations.get("sync", 0), 3)
        return replace(applied, durations=durations)

    def started(self, action: str) -> Applied:
        """Start a new server; a failure to start is the applied change's outcome, not an error."""
        try:
            return Applied(action, self.start())
        except StartFailed as exc:
            return Applied(action, exc.start, start_error=exc.message)

    def _rebuild_reason(self, change: Change, settings: ServerSettings) -> str | None:
        if change.environment and self.server is not None and self.server.runtime == "docker":
            return ENVIRONMENT_REBUILT
        if change.touches(REQUIREMENTS):
            return DEPENDENCIES_REBUILT if self.server is not None and self.server.runtime == "docker" else NEW_SERVER
        if settings.contract != self.settings.contract:
            return NEW_SERVER
        return None

    def _reload_or_restart(self) -> Applied:
        server = self.server
        assert server is not None
        info = fetch_info(server) if server.exit_info() is None else None
        if info is not None and info.reloadable:
            try:
                reload = signal_reload(server, info)
            except (OSError, CmkitError):
                reload = None
            if reload is not None and wait_generation(server, reload.generation, self.settings.startup_timeout):
                return Applied(RELOADED, reloaded_workers=True)
            # New workers that did not answer in time (a loaded machine, a second edit in quick
            # succession) are not a failed model: the server restarts, and the checks wait for
            # it as for any start. Reporting the reload as failed judged 3 of 6 edits wrongly.
        if isinstance(server, DockerServer):
            restart_container(server)
            self._on_started(server)
            return Applied(RESTARTED)
        return Applied(RESTARTED, self.start())

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


# --- test-local --watch -------------------------------------------------------------------------


@dataclass
class WatchRun:
    """One run of the checks: the report and what led to it."""

    number: int
    action: str
    change: Change | None
    report: TestReport
    seconds_since_save: float | None

    @property
    def overall_status(self) -> str:
        return self.report.overall_status

    def to_dict(self) -> dict[str, Any]:
        document = self.report.to_dict()
        document["details"]["watch"] = {
            "run": self.number,
            "action": self.action,
            **(self.change.to_dict() if self.change else {"changed": [], "removed": [], "environment": False}),
            "secondsSinceSave": self.seconds_since_save,
        }
        return document


@dataclass(frozen=True)
class Serving:
    """serve --watch, after the start and after each change: where it serves, or why it does not."""

    url: str | None  # None when no server runs
    url_prefix: str | None
    message: str | None  # why the server does not answer; None when it does
    action: str
    change: Change | None = None
    seconds_since_save: float | None = None
    durations: dict[str, float] = field(default_factory=dict)
    start: StartInfo | None = None
    server: dict[str, object] = field(default_factory=dict)  # Server.describe(), when one runs

    @property
    def ready(self) -> bool:
        return self.message is None

    def to_dict(self) -> dict[str, Any]:
        """The line `serve --watch --json` prints."""
        document: dict[str, Any] = {
            **self.server,
            "url": self.url,
            "urlPrefix": self.url_prefix,
            "ready": self.ready,
            "message": self.message,
            "watch": {
                "action": self.action,
                **(self.change.to_dict() if self.change else {}),
                "secondsSinceSave": self.seconds_since_save,
                "durations": self.durations,
            },
        }
        if self.start is not None and self.start.image:
            document["image"] = self.start.image.to_dict()
        return document


class _DatasetCache:
    """The dataset, read again only when its file changed."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._loaded: tuple[Dataset | RawDataset | SparseDataset | None, ExpectedPredictions | None] = (None, None)

    def get(self, run: ResolvedRun) -> tuple[Dataset | RawDataset | SparseDataset | None, ExpectedPredictions | None]:
        """The dataset and predictionVerificationCheck's expected predictions."""
        path = run.dataset
        try:
            stat = path.stat() if path else None
        except OSError:
            stat = None
        key = (str(path), run.target.name, run.target.type, stat and (stat.st_size, stat.st_mtime_ns))
        if key != self._key:
            self._loaded, self._key = load_datasets(run), key
        return self._loaded


def watch_config(config: TestLocalConfig) -> TestLocalConfig:
    """What a watched server needs: bytecode is never cached, so an edit within a second still loads."""
    return replace(config, keep=False, server_environment={"PYTHONDONTWRITEBYTECODE": "1", **config.server_environment})


# A model that writes into its own folder (a log, a cache, a pickle) while it loads or predicts
# starts another run with every write: 49-88 runs in 15-25 s, forever. After this many changes
# in a row made only of files written while the previous run was going on, the watch stops.
SELF_TRIGGERED_RUNS = 3


class SelfWrites:
    """Counts changes that only the run before them could have made."""

    def __init__(self) -> None:
        self.since = time.time()  # the run going on: from its start...
        self.until: float | None = None  # ...to its end (None: still going on)
        self.in_a_row = 0

    def running(self) -> None:
        self.since, self.until = time.time(), None

    def ran(self) -> None:
        self.until = time.time()

    def check(self, change: Change, mtimes: list[float]) -> None:
        """InputError once SELF_TRIGGERED_RUNS changes in a row were written during the run before."""
        until = self.until if self.until is not None else time.time()
        # File times come from the kernel's coarse clock, a tick (up to 10 ms) behind time.time():
        # a save made just after a run ended must not look made during it.
        during = bool(mtimes) and not change.environment and all(self.since <= m < until - 0.02 for m in mtimes)
        self.in_a_row = self.in_a_row + 1 if during else 0
        if self.in_a_row >= SELF_TRIGGERED_RUNS:
            shown = ", ".join(change.changed[:5])
            raise InputError(
                f"stopped watching: the model writes into its own folder ({shown}) and each write starts "
                f"another run ({self.in_a_row} in a row)",
                hint=f"list these files in {IGNORE_FILE}, or write them outside the bundle (a temporary folder)",
            )


class Watch:
    """The watch loop of test-local (with checks) and serve (without)."""

    def __init__(
        self,
        config: TestLocalConfig,
        events: Events,
        stop: threading.Event | None = None,
        on_server: Callable[[Server], None] | None = None,
        serve_only: bool = False,
    ) -> None:
        """`on_server` is called with each server started (serve streams its logs); `serve_only`: no checks."""
        self.requested = watch_config(config)
        self.stop = stop or threading.Event()
        self.events = events
        self.serve_only = serve_only
        self.settings, self.run = self._resolve(None)
        inputs = (config.runtime_params_file,) if config.runtime_params_file else ()
        self.watcher = BundleWatcher(self.settings.bundle, self.settings.environment, self.stop, inputs)
        self.live = LiveServer(self.settings, events, on_server or (lambda server: None))
        self.datasets = _DatasetCache()
        self.runs = 0
        self.self_writes = SelfWrites()
        self.note: Path | None = None  # serve's warm-server note (cmkit/warmserver.py)
        self.watcher.start()

    def _resolve(self, current: ServerSettings | None) -> tuple[ServerSettings, ResolvedRun | None]:
        """The request resolved again (model-metadata.yaml may have changed); `serve` has no checks to run.

        The URL prefix stays the one the first run drew, and the runtime the one it chose: a
        watched server keeps its URL and where it runs.
        """
        requested = self.requested if current is None else replace(self.requested, url_prefix=current.url_prefix)
        runtime = current.runtime if current is not None else None
        if self.serve_only:
            return resolve_server(requested, runtime), None
        run = resolve_config(requested, runtime)
        return run.server, run

    def _checked_run(self) -> ResolvedRun:
        assert self.run is not None, "a serve-only watch runs no checks"
        return self.run

    def changes(self) -> Iterator[Change]:
        """Edits made while the first run was starting, then each burst of saves until stopped."""
        first = self.watcher.pending()
        for change in itertools.chain([first] if first is not None else [], self.watcher):
            mtimes = [self.watcher.state[p][0][1] / 1e9 for p in change.changed if p in self.watcher.state]
            self.self_writes.check(change, mtimes)
            self.self_writes.running()
            yield change

    def apply(self, change: Change) -> Applied:
        self.settings, self.run = self._resolve(self.settings)
        try:
            return self.live.apply(change, self.watcher.files(change.changed), self.settings)
        except SyncFailed as exc:
            return Applied(RESTARTED, start_error=f"the files could not be copied into the container: {exc}")

    # -- test-local ---------------------------------------------------------------------------

    def first_run(self) -> WatchRun:
        began = time.monotonic()
        applied = self.live.started(STARTED)
        if applied.start_error is not None:
            self.datasets.get(self._checked_run())  # a bad dataset is the user's first problem (exit 2)
        return self._report(STARTED, None, applied, began)

    def rerun(self, change: Change) -> WatchRun:
        started = time.monotonic()
        applied = self.apply(change)
        return self._report(applied.action, change, applied, started)

    def _report(self, action: str, change: Change | None, applied: Applied, started: float) -> WatchRun:
        run = self._checked_run()
        durations = applied.all_durations()
        dataset, expected = self.datasets.get(run)
        checked, log_tail = None, None
        if applied.start_error is not None or self.live.server is None:
            results = not_started(CheckResult(FAILED, applied.start_error or "the server is not running"))
            if self.live.server is not None:
                log_tail = self.live.server.logs(LOG_TAIL_LINES)
        else:
            checking = time.monotonic()
            checked = check_server(run, self.live.server, dataset, Events(), self.stop, expected)
            results = checked.results
            durations["checks"] = round(time.monotonic() - checking, 3)
        durations["total"] = round(time.monotonic() - started, 3)
        details = ReportDetails(
            self.live.run_id,
            run.server.url_prefix,
            durations,
            applied.start,
            reloaded_workers=applied.reloaded_workers,
            checked=checked,
            log_tail=log_tail,
        )
        self.runs += 1
        if self.runs == 1:
            self.live.prepare()
        since = round(time.time() - change.saved_at, 3) if change else None
        return WatchRun(self.runs, action, change, TestReport(results, dict(run.checks), details), since)

    def test_local(self, on_run: Callable[[WatchRun], None], on_error: Callable[[CmkitError], None]) -> None:
        """Run the checks now and after every change until `stop` is set or Ctrl-C; then clean up."""
        try:
            first = self.first_run()
            self.self_writes.ran()
            on_run(first)
            carried: Change | None = None
            for change in self.changes():
                change = carried.then(change) if carried else change
                try:
                    run = self.rerun(change)
                except CmkitError as exc:  # broken metadata, an unreadable dataset: say so, go on watching
                    self.self_writes.ran()
                    on_error(exc)
                    carried = change  # not brought to the server yet: with the next change
                    continue
                self.self_writes.ran()  # before the report is shown: what is saved after it is the user's
                carried = None
                on_run(run)
        finally:
            self.stop.set()
            self.live.close()

    # -- serve --------------------------------------------------------------------------------

    def serve(self, on_ready: Callable[[Serving], None], on_error: Callable[[CmkitError], None]) -> None:
        """Start, then bring every change to the server, reporting when it answers again."""
        try:
            serving = self._serving(None, Applied(STARTED, self.live.start()))
            self.self_writes.ran()
            on_ready(serving)
            carried: Change | None = None
            for change in self.changes():
                change = carried.then(change) if carried else change
                try:
                    applied = self.apply(change)
                except CmkitError as exc:
                    self.self_writes.ran()
                    on_error(exc)
                    carried = change
                    continue
                carried = None
                serving = self._serving(change, applied)
                self.self_writes.ran()
                on_ready(serving)
        finally:
            self.stop.set()
            remove_note(self.note)
            self.live.close()

    def _serving(self, change: Change | None, applied: Applied) -> Serving:
        server = self.live.server
        message = applied.start_error
        remove_note(self.note)  # the server changed: until it answers, predict starts its own
        self.note = None
        if server is not None and message is None:
            ready = wait_ready(server, self.settings.startup_timeout, self.stop, headers=self.requested.headers)
            message = None if ready.status == "succeeded" else ready.message
            if message is None:
                self.note = write_note(server, self.settings.bundle, self.settings.contract)
        return Serving(
            f"{server.url}/" if server else None,
            self.settings.url_prefix,
            message,
            applied.action,
            change,
            round(time.time() - change.saved_at, 3) if change else None,
            applied.all_durations(),
            applied.start,
            server.describe() if server else {},
        )
