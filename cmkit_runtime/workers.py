"""What gunicorn's master and its workers share: loading markers and the variables that tell them.

Standard library only: cli.py imports it in the master before anything else, so that the
master's hooks need nothing more; the master imports the serving stack itself, on purpose, just
before it forks the workers (cli.when_ready).
"""

from __future__ import annotations

import contextlib
import os
import tempfile

# gunicorn's exit code for "the application could not be loaded": its master halts instead of
# starting a new worker (which would fail the same way, forever).
APP_LOAD_ERROR = 4
# Set by cli.py in the master: it halts the server when a worker dies while its loading marker exists.
HOOKS_FLAG = "MODEL_SERVER_HALTS_ON_LOAD_FAILURE"
# Set by cli.py's on_reload hook in the master before a SIGHUP forks new workers, which inherit it:
# `/info/` tells a watcher (cmkit's --watch) that the worker answering is one of the new ones.
GENERATION = "CMKIT_RUNTIME_GENERATION"


def loading_marker(master_pid: int, worker_pid: int) -> str:
    """The file that exists while a worker loads its model; the master's hook looks for it."""
    return os.path.join(tempfile.gettempdir(), f"cmkit-runtime-loading-{master_pid}-{worker_pid}")


def workers_loading(master_pid: int) -> int:
    """How many workers of this master are still loading their model (after a reload: the new ones)."""
    prefix = os.path.basename(loading_marker(master_pid, 0))[:-1]
    count = 0
    with contextlib.suppress(OSError):
        for name in os.listdir(tempfile.gettempdir()):
            pid = name[len(prefix) :]
            if name.startswith(prefix) and pid.isdigit():
                with contextlib.suppress(OSError):  # a marker a killed worker left is not a loading worker
                    os.kill(int(pid), 0)
                    count += 1
    return count
