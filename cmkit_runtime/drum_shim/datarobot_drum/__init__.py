"""A stand-in for the one part of DRUM models import: `from datarobot_drum import RuntimeParameters`.

cmkit's runtime puts this folder at the end of sys.path only when the real `datarobot_drum` is
not installed (loader.py), so a model written for DRUM runs unchanged without all of DRUM; where
DRUM is installed, DRUM's own class is imported. It reads what DataRobot (and cmkit) set:
`MLOPS_RUNTIME_PARAM_<name>` = `{"type": ..., "payload": ...}`.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["RuntimeParameters"]


class RuntimeParameters:
    """DRUM's reader of runtime parameters: `get(name)` returns the payload, `has(name)` says if it is set."""

    PARAM_PREFIX = "MLOPS_RUNTIME_PARAM"

    @classmethod
    def namespaced_param_name(cls, param_name: str) -> str:
        return f"{cls.PARAM_PREFIX}_{param_name}"

    @classmethod
    def has(cls, param_name: str) -> bool:
        return cls.namespaced_param_name(param_name) in os.environ

    @classmethod
    def get(cls, key: str) -> Any:
        name = cls.namespaced_param_name(key)
        if name not in os.environ:
            raise ValueError(f"Runtime parameter '{key}' does not exist!")
        try:
            document = json.loads(os.environ[name])
        except json.JSONDecodeError:
            raise ValueError(f"runtime parameter '{key}': {name} is not JSON") from None
        if not isinstance(document, dict) or "payload" not in document:
            raise ValueError(f"runtime parameter '{key}': {name} has no payload")
        return document["payload"]
