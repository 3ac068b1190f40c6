"""bench/ stays runnable: a quick run of every comparison (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_bench_quick_run_completes(docker_client: object) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run"), "--quick"], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "| figure | cmkit | DRUM or floor | ratio | target |" in result.stdout
    figures = (
        "nullValueImputation",
        "single-row req/s",
        "edit loop",
        "sideEffects row-by-row",
        "peak RSS",
        "columns",
        "feature impact",
    )
    for figure in figures:
        assert figure in result.stdout, figure
