"""`test-local --html`: one self-contained page, checked as a file and rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.htmlreport import bar_chart, html_report
from tests.support.bundles import write_quick_bundle

FAST = ["--runtime", "process", "--check", "sideEffects=skip", "--check", "nullValueImputation=skip"]
# What would make the page fetch something: a script, a stylesheet, an image, a font, a frame.
FETCHES = re.compile(r"<script|<link|<img|<iframe|@import|url\(|https?://", re.IGNORECASE)


def report_of(bundle: Path, tmp_path: Path, *flags: str) -> str:
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["test-local", str(bundle), *FAST, *flags, "--html", str(page)])
    assert result.exit_code in (0, 1), result.stderr
    return page.read_text(encoding="utf-8")


def test_a_passing_run_shows_each_check_and_the_latency_histogram(tmp_path: Path) -> None:
    page = report_of(write_quick_bundle(tmp_path / "bundle"), tmp_path, "--check", "performanceCheck=fail")
    assert page.startswith("<!DOCTYPE html>") and not FETCHES.search(page)
    assert '<span class="verdict" style="background:#1a7f37">succeeded</span>' in page
    for check in ("longRunningService", "errorCheck", "performanceCheck", "stabilityCheck"):
        assert f"<td>{check}</td>" in page
    assert "<h2>performanceCheck</h2>" in page and "<h3>Latency histogram</h3>" in page and "<svg" in page
    assert "<h2>Diagnosis</h2>" not in page


def test_a_failing_run_leads_with_its_diagnosis(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    (bundle / "features.py").write_text("import sklearn\n")
    (bundle / "server.py").write_text("import features\n" + (bundle / "server.py").read_text())
    page = report_of(bundle, tmp_path)
    assert "<h2>Diagnosis</h2>" in page and "<code>missing-module</code>" in page
    assert "add scikit-learn to requirements.txt" in page and not FETCHES.search(page)


def test_text_is_escaped_and_bars_scale() -> None:
    page = html_report(
        {"overallStatus": "failed", "testingStatus": {"errorCheck": {"status": "failed", "message": "<b>"}}}
    )
    assert "&lt;b&gt;" in page and "<b>" not in page
    svg = bar_chart([("a", 2.0), ("b", 1.0)], width=500)
    assert 'width="200.0"' in svg and 'width="100.0"' in svg  # the largest fills the room (500 - 190 - 110)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(page: Path, screenshot: Path) -> str:
    """Chromium's log of loading `page` headless (console messages included), after a screenshot."""
    assert CHROMIUM, "Chromium is needed: apt-get install chromium (.ci/run installs it)"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
        "--window-size=1100,1400",
        f"--screenshot={screenshot}",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert screenshot.stat().st_size > 1_000
    return done.stderr


def console_messages(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.slow
def test_the_reports_render_in_chromium_without_console_errors(tmp_path: Path) -> None:
    # The control first: a page that logs an error must be seen, or the check below proves nothing.
    control = tmp_path / "control.html"
    control.write_text("<!DOCTYPE html><title>x</title><script>console.error('seen'); nothing();</script>")
    assert console_messages(render(control, tmp_path / "control.png"))
    good = tmp_path / "good.html"
    good.write_text(report_of(write_quick_bundle(tmp_path / "good"), tmp_path, "--check", "performanceCheck=fail"))
    broken_bundle = write_quick_bundle(tmp_path / "broken")
    (broken_bundle / "server.py").write_text("import sklearn\n" + (broken_bundle / "server.py").read_text())
    broken = tmp_path / "broken.html"
    broken.write_text(report_of(broken_bundle, tmp_path))
    for page in (good, broken):
        assert console_messages(render(page, page.with_suffix(".png"))) == []
