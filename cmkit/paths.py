"""Where cmkit's shipped files live (a source checkout or an installed wheel), and its cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """`templates/` of the checkout (editable installs), else the copy packaged in the wheel."""
    for candidate in (PACKAGE_DIR.parent / "templates", PACKAGE_DIR / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("cmkit's templates are missing from this installation")


def default_environment_dir() -> Path:
    return templates_dir() / "environments" / "python3"


def cache_dir() -> Path:
    """cmkit's cache folder: `$CMKIT_CACHE_DIR` (CI keeps it with its other caches), else the user's."""
    return Path(os.environ.get("CMKIT_CACHE_DIR") or platformdirs.user_cache_dir("cmkit"))
