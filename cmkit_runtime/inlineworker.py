"""gunicorn's gthread worker, serving its requests on its main thread when it has one request thread.

With one request thread per worker (CUSTOM_MODEL_THREADS=1, the default) gthread still passes
every request from its main thread, which accepts and polls, to a pool of one thread, and waits
for the pool to hand the connection back: two thread wake-ups per request, about a third of the
runtime's own time to a streamed chat answer's first chunk here (bench/chat.py).

This worker serves such a request on the main thread itself, once its bytes have arrived. A
connection whose bytes have not arrived waits in the main thread's poller, as a kept-alive
connection waits for its next request (gthread's own code, its keep-alive timeout), so a client
that connects and sends nothing never holds the thread. Requests stay one at a time, as with one
thread. While the main thread serves it cannot tell the master it is alive, so a heartbeat
thread does: a long streamed answer is not mistaken for a hung worker (gthread's main thread
goes on telling the master during any request, too). More threads: gthread unchanged.

gthread's methods are its own, not a public API: `usable()` checks the ones this worker calls,
and cli.py keeps plain gthread otherwise.
"""

from __future__ import annotations

import inspect
import select
import selectors
import threading
import time
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.config import Config
from gunicorn.workers.gthread import ThreadWorker

HEARTBEAT_SECONDS = 1.0

# The gthread methods this worker calls or overrides, with their parameters (gunicorn 25.1 to 27.0.1);
# _ReadOnce builds on Config.__getattr__ too.
BUILDS_ON = {
    "enqueue_req": ["self", "conn"],
    "handle": ["self", "conn"],
    "finish_request": ["self", "conn", "fs"],
    "on_client_socket_readable": ["self", "conn", "client"],
}


def usable() -> bool:
    """Whether this gunicorn's gthread worker and Config have the methods this worker builds on,
    as it calls them."""
    builds_on = [(ThreadWorker, name, parameters) for name, parameters in BUILDS_ON.items()]
    for owner, name, parameters in [*builds_on, (Config, "__getattr__", ["self", "name"])]:
        method = getattr(owner, name, None)
        if not callable(method) or list(inspect.signature(method).parameters) != parameters:
            return False
    return True


def _readable_now(sock: Any) -> bool:
    """poll(), not select(): a worker holding many kept-alive connections has descriptors past
    select()'s 1024, and guessing "readable" there would block the thread on a silent client."""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # closed meanwhile: handle() reports it, as gthread's pool would
        return True


class _ReadOnce(Config):  # type: ignore[misc]  # gunicorn is untyped
    """The worker's settings, each read from gunicorn's table once and then kept.

    gunicorn reads ~30 settings per request through `Config.__getattr__` (a table lookup and a
    call each, ~0.45 us); a worker's settings do not change while it runs (a reload starts new
    workers), so each value is kept as a plain attribute after its first read.
    """

    def __init__(self, config: Config) -> None:  # no super().__init__(): a view of `config`, not a new table
        self.__dict__.update(config.__dict__)

    def __getattr__(self, name: str) -> Any:
        value = super().__getattr__(name)
        self.__dict__[name] = value  # past Config.__setattr__, which refuses setting names
        return value


class InlineThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    cfg: Config  # gunicorn's Worker sets it

    def init_process(self) -> None:
        self.cfg = _ReadOnce(self.cfg)
        super().init_process()

    def run(self) -> None:
        if self.cfg.threads == 1:
            threading.Thread(target=self._heartbeat, name="cmkit-heartbeat", daemon=True).start()
        super().run()

    def _heartbeat(self) -> None:
        while self.alive:
            time.sleep(HEARTBEAT_SECONDS)
            self.notify()

    def enqueue_req(self, conn: Any) -> None:
        if self.cfg.threads != 1:
            super().enqueue_req(conn)
        elif _readable_now(conn.sock):
            self._serve(conn)
        else:
            self._wait_for_bytes(conn)

    def _serve(self, conn: Any) -> None:
        conn.data_ready = True  # gunicorn >= 26: handle() would otherwise wait for bytes that are there
        served: futures.Future[Any] = futures.Future()
        try:
            served.set_result(self.handle(conn))
        except Exception as exc:  # handle() reports its own errors; gthread's pool would hold this
            served.set_exception(exc)
        self.finish_request(conn, served)  # keep-alive, or close: as after a pool's request

    def _wait_for_bytes(self, conn: Any) -> None:
        """Into the poller with the kept-alive connections: their callback serves it once readable."""
        conn.sock.setblocking(False)
        conn.set_timeout()  # the same offset as theirs, so their queue stays in timeout order
        self.keepalived_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
