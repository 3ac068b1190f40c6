"""The emulator's answers to a docker context the core's unpacker (`cmkit.contexts`) refuses.

The unpacker is the core's, shared with `cmkit test-local --environment-id`; what the emulator
adds is the HTTP error: 413 past a cap, 422 for a bad member or an archive that is not a context.
"""

from __future__ import annotations

from pathlib import Path

from cmkit import contexts
from cmkit.emulator.errors import ErrorResponse, invalid
from cmkit.emulator.validation import Limits


def extract_context(archive: Path, target: Path, limits: Limits | None = None) -> None:
    """Unpack a zip or tar(.gz) docker context into `target`; ErrorResponse 413/422 when refused."""
    try:
        contexts.extract_context(archive, target, limits or Limits())
    except contexts.ContextRefused as exc:
        raise ErrorResponse(413 if exc.too_large else 422, exc.message, {contexts.FIELD: exc.reason}) from None
    except contexts.NotAContext as exc:
        raise invalid(f"Invalid docker context: {exc.message}", {contexts.FIELD: exc.message}) from None
