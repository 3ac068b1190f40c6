"""`cmkit-runtime serve`: start the model server, configured as DataRobot configures a container.

    PORT                     port to listen on, on all interfaces (default 8080)
    ADDRESS                  host:port to listen on (DRUM's variable); PORT wins when both are set
    URL_PREFIX               path the routes are mounted under; may contain "/" or be empty
    CODE_DIR                 the bundle (default: --code-dir, else the current directory)
    CUSTOM_MODEL_WORKERS     worker processes, each loading its own copy of the model
                             (default: the number of CPUs, at least 1)
    CUSTOM_MODEL_THREADS     request threads per worker (default 1: predictions are CPU-bound and
                             hold Python's GIL, so more threads only add contention)
    CUSTOM_MODEL_ACCESS_LOG  1 logs every request to stdout (default off: it costs throughput)
    CUSTOM_MODEL_LOAD_WAIT   seconds a prediction arriving during the model load waits (default 60)

It runs gunicorn in this process (its custom-application API), so SIGTERM from `docker stop`
reaches the master directly. The master imports the serving stack (Flask, pandas) once, before
it forks the workers; the model is imported and loaded only in the workers.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from cmkit_runtime import __version__
from cmkit_runtime.workers import APP_LOAD_ERROR, GENERATION, HOOKS_FLAG, loading_marker

USAGE_ERROR = 2


class UsageError(Exception):
    """A setting the server cannot start with."""


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"{name} must be a positive integer, not {raw!r}")
    return int(raw)


def bind_address(environ: Mapping[str, str]) -> str:
    if environ.get("PORT"):
        return f"0.0.0.0:{environ['PORT']}"
    return environ.get("ADDRESS") or "0.0.0.0:8080"


def gunicorn_options(environ: Mapping[str, str], code_dir: str) -> dict[str, Any]:
    """gunicorn's settings for this environment (every value checked here, not by gunicorn)."""
    from cmkit_runtime import inlineworker  # gunicorn's: imported when serving, not for `--help`

    options: dict[str, Any] = {
        "bind": bind_address(environ),
        "chdir": code_dir,
        "workers": _positive(environ, "CUSTOM_MODEL_WORKERS", os.cpu_count() or 1),
        # gthread workers keep idle keep-alive connections in a poller instead of tying up a thread;
        # inlineworker's serves a request on the thread that accepted it (its doc says why).
        "worker_class": f"{inlineworker.__name__}.InlineThreadWorker" if inlineworker.usable() else "gthread",
        "threads": _positive(environ, "CUSTOM_MODEL_THREADS", 1),
        "keepalive": 60,
        # In-flight requests may finish, and the server still stops well within 5 s of SIGTERM.
        "graceful_timeout": 3,
        "errorlog": "-",
        "accesslog": "-" if environ.get("CUSTOM_MODEL_ACCESS_LOG") == "1" else None,
        # The control socket would be shared by every server of a user.
        "control_socket_disable": True,
        "child_exit": child_exit,
        "worker_exit": worker_exit,
        "on_reload": on_reload,
        "when_ready": when_ready,
        "on_exit": on_exit,
        "post_fork": post_fork,
    }
    # Workers touch a heartbeat file every second; on a container's overlay filesystem that can
    # stall, so use memory-backed /dev/shm where there is one (not on macOS).
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        options["worker_tmp_dir"] = "/dev/shm"
    return options


_halting = False


def worker_exit(server: Any, worker: Any) -> None:
    """In a worker that exits in order (e.g. SIGTERM during a slow load): that is no load failure.

    Then it leaves without the interpreter's teardown, which frees pandas, NumPy and the model
    object by object: 0.3 s of CPU per worker here, on every stop and every reload (where it
    competes with the new workers' first requests). Exit handlers still run, output is flushed.
    """
    with contextlib.suppress(OSError):
        os.remove(loading_marker(os.getppid(), worker.pid))
    leaving = sys.exc_info()[1]  # gunicorn calls this hook while the worker's SystemExit propagates
    if isinstance(leaving, SystemExit):
        _leave(leaving.code if isinstance(leaving.code, int) else 1)


def _leave(code: int) -> NoReturn:
    """Exit without the interpreter's teardown; exit handlers still run, output is flushed."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


def on_exit(server: Any) -> None:
    """In the master, as it exits: no loading marker of its workers outlives it.

    A worker killed during its load (SIGKILL after the graceful timeout) leaves its marker to
    child_exit, and a master that stops may exit before it reaps every such worker.
    """
    prefix = os.path.basename(loading_marker(server.pid, 0))[:-1]
    folder = os.path.dirname(loading_marker(server.pid, 0))
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            if name.startswith(prefix):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))


def post_fork(server: Any, worker: Any) -> None:
    """In a new worker, first of all: its loading marker (the app creates it too, later), so that
    `/info/`'s `workersLoading` counts a reload's new workers from the moment they exist."""
    with contextlib.suppress(OSError), open(loading_marker(server.pid, worker.pid), "w"):
        pass


def when_ready(server: Any) -> None:
    """In the master, once it listens and before it forks the first workers: the serving stack.

    Flask, pandas and NumPy imported here are imported once, and every worker forks with them
    (copy-on-write: their pages are shared, not one copy per worker); a worker then imports only
    the model's code and loads the model. Each worker used to import them itself: 0.6 s of CPU
    per worker at every start, all at once on a laptop's cores. Connections that arrive
    meanwhile wait in the listen queue.
    """
    _preload()


def on_reload(server: Any) -> None:
    """In the master on SIGHUP (cmkit's --watch after an edit), before it forks the new workers.

    They inherit the next generation, which `/info/` reports, and the serving stack (when_ready
    imported it already; a reload keeps it).
    """
    _preload()
    os.environ[GENERATION] = str(int(os.environ.get(GENERATION) or 0) + 1)


def _preload() -> None:
    import gc

    import cmkit_runtime.server  # noqa: F401  # preloaded in the master, so new workers fork with it

    gc.freeze()  # what the master holds now is never collected in a worker: its pages stay shared


def _exit_if_stopped(server: Any) -> None:
    """In a master that is stopping, once its last worker is reaped: exit now, as its halt would.

    gunicorn's stop waits in steps of 0.1 s until it sees no workers, then sleeps once more,
    and the interpreter's teardown took another 0.1 s here: 0.3 s of every stop (a test-local
    run's, each edit of --watch in Docker) with nothing left to do but the halt's log line and
    on_exit. Not during a halt for a failed load (exit 4), nor while serving or reloading (the
    listeners are open then).
    """
    # gunicorn's arbiter attributes; a version without them simply stops the usual way.
    listeners, workers = getattr(server, "LISTENERS", None), getattr(server, "WORKERS", None)
    stopping = listeners == [] and workers == {} and not getattr(server, "dirty_arbiter_pid", 0)
    if stopping and not _halting:
        server.log.info("Shutting down: %s", server.master_name)
        on_exit(server)
        _leave(0)


def child_exit(server: Any, worker: Any) -> None:
    """In the master, after any worker exits: halt once if it died while loading the model.

    Whatever killed it (an exception in the load, logged by the worker, or a signal such as the
    out-of-memory killer's SIGKILL, which gunicorn alone would answer with a new worker, forever).
    """
    global _halting
    from gunicorn.errors import HaltServer

    marker = loading_marker(server.pid, worker.pid)
    if not os.path.exists(marker):
        _exit_if_stopped(server)
        return
    with contextlib.suppress(OSError):
        os.remove(marker)
    if not _halting:  # later workers dying during the halt must not raise it again
        _halting = True
        raise HaltServer(
            f"worker {worker.pid} died while loading the model (an error in the load, logged above, "
            "or a kill such as the out-of-memory killer's)",
            APP_LOAD_ERROR,
        )


def serve(code_dir: str, environ: Mapping[str, str]) -> None:
    from gunicorn.app.base import BaseApplication

    options = gunicorn_options(environ, code_dir)
    # URL_PREFIX is normalised and CODE_DIR set for the workers, which read their environment.
    os.environ["CODE_DIR"] = code_dir
    os.environ[HOOKS_FLAG] = "1"

    class Runtime(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from cmkit_runtime.server import create_app

            return create_app(code_dir)

    Runtime().run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cmkit-runtime", description="cmkit's model server")
    parser.add_argument("--version", action="version", version=f"cmkit-runtime {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the model in a bundle folder")
    serve_parser.add_argument("--code-dir", help="the bundle (default: $CODE_DIR, else the current directory)")
    args = parser.parse_args(argv)
    code_dir = os.path.abspath(args.code_dir or os.environ.get("CODE_DIR") or os.getcwd())
    if not os.path.isdir(code_dir):
        print(f"cmkit-runtime: {code_dir} is not a folder; pass the bundle with --code-dir", file=sys.stderr)
        return USAGE_ERROR
    try:
        serve(code_dir, os.environ)
    except UsageError as exc:
        print(f"cmkit-runtime: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0
