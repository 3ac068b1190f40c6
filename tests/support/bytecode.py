"""Bytecode is cached for test runs also where PYTHONDONTWRITEBYTECODE is set.

Loaded first, through `-p tests.support.bytecode` in pyproject.toml's addopts, before the plugins that
pytest installs from entry points. pytest rewrites the assertions of every module of a plugin's
distribution (hypothesis, schemathesis, anyio: some 250 modules) and of every test module; with
PYTHONDONTWRITEBYTECODE=1 (set on some CI runners and dev containers) it may not keep the
result, nor may Python keep any compiled module, so each run compiled them all again: about
5 s of CPU of the fast tier's 30 s budget. Here, when the variable is set, compiled files go to
one folder outside the source tree, `.pytest_cache/pycache/` (git-ignored), and no
`__pycache__` folder appears next to the sources, which is what the variable is usually for.
Only this pytest process is affected: subprocesses get the environment unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

PYCACHE = Path(__file__).resolve().parents[2] / ".pytest_cache" / "pycache"

if sys.dont_write_bytecode and sys.pycache_prefix is None:
    sys.pycache_prefix = str(PYCACHE)
    sys.dont_write_bytecode = False
