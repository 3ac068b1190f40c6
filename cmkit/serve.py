"""`cmkit serve`: build and start a bundle for interactive use, until the user ends it.

The server is started as test-local starts it (same image, variables, limits) and waited for
with longRunningService's readiness rule; `serve --watch` is cmkit/watch.py's. Once it
answers, a note tells `cmkit predict` where (cmkit/warmserver.py); close() removes it.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmkit.checks.chat import offers_chat
from cmkit.checks.client import ModelClient
from cmkit.checks.protocols import Detected
from cmkit.checks.readiness import wait_until_ready
from cmkit.engine.base import ExitInfo, Server
from cmkit.events import Events
from cmkit.resolvedrun import TestLocalConfig, resolve_server
from cmkit.target import TargetType
from cmkit.testlocal import StartFailed, start_bundle
from cmkit.warmserver import remove_note, write_note


@dataclass
class ServeSession:
    """A served bundle: `close()` stops the server and removes what it made."""

    server: Server
    protocol: Detected | None = None  # what the server speaks (name, route, how it was found)
    target_type: TargetType | None = None  # as the server was told (TARGET_TYPE), when known
    chat: bool = False  # the model defines chat(): serve shows how to talk to it (its /capabilities/)
    note: Path | None = None  # the warm-server note `cmkit predict` finds it by (cmkit/warmserver.py)
    # How the server had ended when close() was first called: None while it still ran, so
    # the SIGTERM (or SIGKILL) that stop() sends does not count as the server failing.
    _closed: bool = field(default=False, init=False, repr=False)
    _exit_before_close: ExitInfo | None = field(default=None, init=False, repr=False)

    def close(self) -> None:
        if not self._closed:
            self._closed, self._exit_before_close = True, self.server.exit_info()
        remove_note(self.note)
        self.server.stop()

    def to_dict(self) -> dict[str, Any]:
        """What `serve` prints once the server answers."""
        return {
            **self.server.describe(),
            "url": self.url,
            "urlPrefix": self.server.url_prefix,
            "protocol": self.protocol.to_dict() if self.protocol else None,
            "targetType": self.target_type.drum_name if self.target_type else None,
            "chat": self.chat,
        }

    @property
    def url(self) -> str:
        return self.server.url + "/"

    def survivors(self) -> list[Any]:
        """After close(): processes the server started that are still running."""
        survived = (self.server.leftovers() or {}).get("survived")
        return list(survived) if isinstance(survived, list) else []

    @property
    def failed(self) -> bool:
        """The server ended on its own with an error (a Ctrl-C'd server did not fail)."""
        exit_info = self._exit_before_close if self._closed else self.server.exit_info()
        return not (exit_info is None or exit_info.exit_code in (0, None))


def serve_bundle(config: TestLocalConfig, events: Events | None = None, startup_timeout: float = 120.0) -> ServeSession:
    """Build and start a bundle for interactive use; returns once it answers 200 (or raises StartFailed)."""
    events = events or Events()
    settings = resolve_server(config)
    session = ServeSession(start_bundle(settings, events, uuid.uuid4().hex[:12]).server)
    # A client of its own (wait_ready's way), kept for the protocol it found: serve prints it.
    client = ModelClient(session.server.url, protocol=settings.protocol, headers=config.headers)
    try:
        ready = wait_until_ready(session.server, client, startup_timeout, threading.Event())
        session.chat = ready.status == "succeeded" and offers_chat(client.get("/capabilities/")[1])
    except BaseException:
        session.close()
        raise
    finally:
        client.close()
    if ready.status != "succeeded":
        session.close()
        raise StartFailed(ready.message)
    session.protocol = client.protocol
    session.target_type = TargetType.served_named(settings.contract.get("TARGET_TYPE"))
    session.note = write_note(session.server, settings.bundle, settings.contract)
    return session
