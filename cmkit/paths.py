"""Where cmkit's shipped files live (a source checkout or an installed wheel), and its cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from cmkit_runtime.formats import is_r_bundle

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """`templates/` of the checkout (editable installs), else the copy packaged in the wheel."""
    for candidate in (PACKAGE_DIR.parent / "templates", PACKAGE_DIR / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("cmkit's templates are missing from this installation")


def default_environment_dir() -> Path:
    return templates_dir() / "environments" / "python3"


def r_environment_dir() -> Path:
    return templates_dir() / "environments" / "r"


def default_environment_for(bundle: Path) -> Path:
    """The environment a bundle is built on without --environment: R's for an R model, else python3's."""
    return r_environment_dir() if is_r_bundle(bundle) else default_environment_dir()


def cache_dir() -> Path:
    """cmkit's cache folder: `$CMKIT_CACHE_DIR` (CI keeps it with its other caches), else the user's."""
    return Path(os.environ.get("CMKIT_CACHE_DIR") or platformdirs.user_cache_dir("cmkit"))
