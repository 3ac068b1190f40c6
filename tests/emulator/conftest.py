"""The emulator tests' shared fixtures: the session's in-process emulator of stdlib models, and an
API session on it. A module that needs another emulator defines its own `emulator` fixture."""

from __future__ import annotations

import pytest
import requests

from tests.support.flask_transport import InProcessEmulator


@pytest.fixture(scope="module")
def emulator(stdlib_emulator: InProcessEmulator) -> InProcessEmulator:
    return stdlib_emulator


@pytest.fixture(scope="module")
def api(emulator: InProcessEmulator) -> requests.Session:
    return emulator.session()
