"""gunicorn hooks of the model server; start_server.sh passes this file with --config. No need to edit it.

They make a model that cannot load stop the whole server instead of leaving it up and never
ready. While a worker loads the model, server.py keeps a marker file for it; the master's
`child_exit` hook finds the marker of a worker that died during its load, whatever killed it (an
exception in load_model, logged by server.py, or a signal, such as the kernel's out-of-memory
killer's SIGKILL, which gunicorn alone would answer by starting a new worker, forever), and halts
the server with gunicorn's "application failed to load" exit code (4).

This file runs in the master only: it must stay light (no flask, no pandas).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from gunicorn.errors import HaltServer

APP_LOAD_ERROR = 4
# Tells server.py (in the workers, which inherit the environment) that the master halts on a
# failed load, so a failing worker may simply exit: see ModelHolder._load.
os.environ["MODEL_SERVER_HALTS_ON_LOAD_FAILURE"] = "1"
_halting = False


def loading_marker(master_pid: int, worker_pid: int) -> str:
    """The file that exists while a worker loads its model (server.py names it the same way)."""
    return os.path.join(tempfile.gettempdir(), f"model-server-loading-{master_pid}-{worker_pid}")


def worker_exit(server: Any, worker: Any) -> None:
    """In a worker that exits in order (e.g. SIGTERM during a slow load): that is no load failure."""
    with contextlib.suppress(OSError):
        os.remove(loading_marker(os.getppid(), worker.pid))


def child_exit(server: Any, worker: Any) -> None:
    """In the master, after any worker exits: halt once if it died while loading the model."""
    global _halting
    marker = loading_marker(server.pid, worker.pid)
    if not os.path.exists(marker):
        return
    with contextlib.suppress(OSError):
        os.remove(marker)
    if not _halting:  # later workers dying during the halt must not raise it again
        _halting = True
        raise HaltServer(
            f"worker {worker.pid} died while loading the model (an error in load_model, logged above, "
            "or a kill such as the out-of-memory killer's)",
            APP_LOAD_ERROR,
        )
