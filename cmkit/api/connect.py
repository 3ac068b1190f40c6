"""One DataRobot client for one piece of work: created from the configuration, closed after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cmkit.api.client import DataRobotClient
from cmkit.api.config import load_api_config

T = TypeVar("T")


def with_client(endpoint: str | None, token: str | None, work: Callable[[DataRobotClient], T]) -> T:
    """`work(client)` with a client for the configured DataRobot (flags, environment, drconfig.yaml),
    closed afterwards whatever happens; MissingCredentials when nothing is configured."""
    api = DataRobotClient(load_api_config(endpoint, token))
    try:
        return work(api)
    finally:
        api.close()
