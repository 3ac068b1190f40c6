"""Imports that wait for first use, for modules whose tests are all in the slow tier.

pytest imports every test module to collect it, also when `-m 'not docker and not slow'`
deselects all of its tests afterwards: a module that imports DataRobot's client at its top costs
the fast tier most of a second for nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """The module `name`, executed on its first attribute access (importlib's LazyLoader)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
