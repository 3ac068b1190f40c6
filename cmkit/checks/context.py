"""What every check is given: the run's `CheckOptions` and the `Context` of one server's checks.

Its own module so that the suite (`suite.py`, which orders and runs the checks) and each check
(`verification.py`, `performance.py`, ...) import it and not each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cmkit.checks import readiness
from cmkit.checks.client import ModelClient
from cmkit.checks.parameters import CheckParameters
from cmkit.checks.predictions import Target, Verdict
from cmkit.checks.readiness import Canceled
from cmkit.checks.results import DEFAULT_CONFIGURATION
from cmkit.checks.sampling import AUTO
from cmkit.engine.base import Server
from cmkit.events import Events

if TYPE_CHECKING:  # pandas is imported where datasets are loaded, off the critical path
    from cmkit.checks.dataset import Dataset, ExpectedPredictions


@dataclass
class CheckOptions:
    configuration: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CONFIGURATION))
    startup_timeout: float = 120.0
    side_effects_rows: int = 1000
    null_rows: str | int = AUTO  # rows per null-column request: auto, all or a number (checks/sampling.py)
    rtol: float = 1e-5
    atol: float = 1e-8
    parallelism: int = 8
    request_timeout: float = 600.0
    protocol: str | None = None  # predict_no_state or drum; None: detected from the server's answers
    headers: dict[str, str] = field(default_factory=dict)  # --header; may hold credentials: never reported
    parameters: CheckParameters = field(default_factory=CheckParameters)
    expected: ExpectedPredictions | None = None  # predictionVerificationCheck's column
    chat_stream_seconds: float = 60.0  # chatCompletions: a stream without [DONE] by then fails


@dataclass
class Context:
    """One server's checks: the server, the run's client (and the protocol it found), the data."""

    server: Server
    client: ModelClient
    dataset: Dataset | None
    target: Target
    options: CheckOptions
    events: Events
    cancel: threading.Event
    batch: Verdict | None = None  # errorCheck's whole-dataset answer, reused by the checks after it

    def level(self, check: str) -> str:
        return self.options.configuration.get(check, DEFAULT_CONFIGURATION[check])

    def raise_if_canceled(self) -> None:
        if self.cancel.is_set():
            raise Canceled()

    def death_note(self, check_oom: bool = True) -> str | None:
        return readiness.death_note(self.server, check_oom)
