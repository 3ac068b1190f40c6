"""bench/ stays runnable: a quick run of every comparison (figures are printed, never asserted).

The run fails, and this test with it, when the runtime's lead over `drum server` dropped by more
than a quarter from bench/baseline.json (bench/guard.py): ratios of CPU per request, not times.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, REQUIRE_DOCKER

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def require_wrk() -> None:
    """wrk is a tool like the Docker engine: a laptop without it skips, CI (which installs it) fails."""
    if shutil.which("wrk") is None:
        message = "bench needs wrk, the load generator (apt-get install wrk; .ci/run installs it)"
        if REQUIRE_DOCKER:
            pytest.fail(f"{message} (CMKIT_REQUIRE_DOCKER=1: the bench smoke test must run)")
        pytest.skip(message)


def test_bench_quick_run_completes(docker_client: object) -> None:
    require_wrk()
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run"), "--quick"], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "| figure | cmkit | DRUM or floor | ratio | target |" in result.stdout
    figures = (
        "nullValueImputation",
        "single-row req/s",
        "server CPU per single-row request",
        "Guard (fails on a drop of more than 25% from bench/baseline.json)",
        "ok: template model: server CPU per single-row request",
        "edit loop",
        "sideEffects row-by-row",
        "peak RSS",
        "columns",
        "feature impact",
    )
    for figure in figures:
        assert figure in result.stdout, figure
