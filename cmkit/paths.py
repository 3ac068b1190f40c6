"""Where cmkit's shipped files live, in a source checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """`templates/` of the checkout (editable installs), else the copy packaged in the wheel."""
    for candidate in (PACKAGE_DIR.parent / "templates", PACKAGE_DIR / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("cmkit's templates are missing from this installation")


def default_environment_dir() -> Path:
    return templates_dir() / "environments" / "python3"
