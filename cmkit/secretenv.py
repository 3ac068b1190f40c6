"""Credentials given through the environment, taken out of it as cmkit starts.

A model run by the process runtime is this user's process: it can read `/proc/<cmkit's
pid>/environ`, which shows the environment cmkit was started with, whatever `os.environ`
holds later (unsetenv only unlinks a variable; the kernel shows the original block). So the
values of SECRET_VARIABLES are copied into this module, overwritten in that block, then unset;
`secret()` gives them back to the code that needs them (the API configuration, the emulator).
"""

from __future__ import annotations

import contextlib
import ctypes
import os

SECRET_VARIABLES = ("DATAROBOT_API_TOKEN", "CMKIT_EMULATOR_TOKEN")
_taken: dict[str, str] = {}


def take_secrets() -> None:
    """Move SECRET_VARIABLES from the process environment into this module (idempotent)."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value is None:
            continue
        _taken[name] = value
        _overwrite(name)
        os.environ.pop(name, None)


def secret(name: str) -> str | None:
    """A secret variable's value: the environment's, else what `take_secrets` took from it."""
    return os.environ.get(name) or _taken.get(name)


def _overwrite(name: str) -> None:
    """Zero the value of `NAME=value` where the C environment holds it (the block the kernel
    shows in /proc/<pid>/environ, for a variable cmkit was started with)."""
    prefix = name.encode() + b"="
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no libc `environ`: nothing to do
        entries = ctypes.POINTER(ctypes.c_void_p).in_dll(ctypes.CDLL(None), "environ")
        index = 0
        while entries[index]:
            address = entries[index]
            assert address is not None
            text = ctypes.string_at(address)
            if text.startswith(prefix):
                ctypes.memset(address + len(prefix), 0, len(text) - len(prefix))
            index += 1
