"""cmkit_runtime's WSGI app for a bundle inside the test process, loaded, then forgotten.

A served runtime loads one bundle per process; a test run loads many in one. The loader
imports each bundle's own `custom.py` (it forgets another bundle's module itself), but it puts
the bundle's folder at the front of `sys.path`: `forget_bundle` takes it off again so a later
test's `import` never finds this bundle's files.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from flask.testing import FlaskClient

from cmkit_runtime.server import create_app

LOAD_DEADLINE = 10.0  # a safety net for a model that never loads, not a speed requirement


def forget_bundle(code_dir: Path) -> None:
    with contextlib.suppress(ValueError):
        sys.path.remove(str(code_dir.resolve()))


@contextlib.contextmanager
def loaded_client(bundle: Path, environ: Mapping[str, str], prefix: str = "") -> Iterator[FlaskClient]:
    """A test client of the bundle's app once `GET prefix/` answers 200 (the model has loaded)."""
    forget_bundle(bundle)
    client = create_app(bundle, environ=dict(environ)).test_client()
    deadline = time.monotonic() + LOAD_DEADLINE
    try:
        while client.get(f"{prefix}/").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.005)
        yield client
    finally:
        forget_bundle(bundle)
