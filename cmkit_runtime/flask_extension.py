"""DRUM's Flask extension: a bundle's `custom_flask.py` with `init_app(app)` gets the server's app.

DataRobot's `flask_extension_httpauth` template uses it to put HTTP basic auth in front of every
route; DRUM imports the file from the code folder and calls `init_app(app)` once per app, after
its own routes exist. A file without `init_app` is left alone, as DRUM leaves it.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from flask import Flask

EXTENSION_FILE = "custom_flask.py"
log = logging.getLogger("cmkit_runtime")


def apply(app: Flask, code_dir: Path) -> bool:
    """Run the bundle's init_app(app), if it has one; True when it did."""
    path = code_dir / EXTENSION_FILE
    if not path.is_file():
        return False
    spec = importlib.util.spec_from_file_location("custom_flask", path)
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    init_app = getattr(module, "init_app", None)
    if not callable(init_app):
        log.warning("%s defines no init_app(app): not applied", EXTENSION_FILE)
        return False
    init_app(app)
    log.info("%s: init_app(app) applied", EXTENSION_FILE)
    return True
