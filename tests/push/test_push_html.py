"""`push --html`: DataRobot's remote test as the same self-contained page test-local writes (issue 26, item 5).

A real push to the emulator (its Flask app on a loopback socket, the standard-library model),
passing and failing; the page is checked as a file, and rendered in headless Chromium in the
slow tier.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.htmlreport import push_html_report
from tests.support.bundles import training_csv, write_stdlib_bundle
from tests.support.emulator_support import TOKEN, FlaskEmulator
from tests.support.http_server import serving
from tests.testlocal.test_html_report import console_messages, render

# What would make the page fetch something (the model's URL is shown as text, never linked).
FETCHES = re.compile(r"<script|<link|<img|<iframe|@import|url\(|(src|href)\s*=", re.IGNORECASE)
METADATA = "name: html-{name}\ntype: inference\ntargetType: regression\ninferenceModel:\n  targetName: y\n"


@pytest.fixture
def pushed(tmp_path: Path, fast_api_polls: None) -> Iterator[dict[str, Path]]:
    """The report pages of a passing and a failing push, with the exit code each gave."""
    emulator = FlaskEmulator(tmp_path / "emulator")
    dataset = tmp_path / "train.csv"
    dataset.write_bytes(training_csv())
    pages = {}
    with serving(emulator.app) as base:
        for behaviour, code in (("good", 0), ("fails", 1)):
            bundle = write_stdlib_bundle(tmp_path / behaviour, behaviour)
            (bundle / "model-metadata.yaml").write_text(METADATA.format(name=behaviour))
            page = tmp_path / f"{behaviour}.html"
            arguments = ["push", str(bundle), "--endpoint", base + "api/v2", "--token", TOKEN]
            arguments += ["--environment-id", emulator.environment_id(), "--dataset", str(dataset), "--html", str(page)]
            result = CliRunner().invoke(main, arguments)
            assert result.exit_code == code, result.output
            pages[behaviour] = page
    emulator.close()
    yield pages


def test_the_remote_test_is_the_page(pushed: dict[str, Path]) -> None:
    good = pushed["good"].read_text(encoding="utf-8")
    assert good.startswith("<!DOCTYPE html>") and not FETCHES.search(good)
    assert '<span class="verdict" style="background:#1a7f37">succeeded</span>' in good
    assert "<td>errorCheck</td>" in good and "<h2>Push</h2>" in good and "<dt>version</dt>" in good
    assert "<dd>http://127.0.0.1:" in good  # the model's page, as text
    failed = pushed["fails"].read_text(encoding="utf-8")
    assert '<span class="verdict" style="background:#cf222e">failed</span>' in failed
    assert "<h2>Diagnosis</h2>" in failed and "<code>predict-error</code>" in failed


def test_a_failed_build_and_no_test_are_said_as_such() -> None:
    build = push_html_report({"buildStatus": "failed", "buildLogTail": "ERROR: <no> such pin", "diagnosis": None})
    assert ">failed</span>" in build and "&lt;no&gt; such pin" in build and "No test ran" in build
    untested = push_html_report({"buildStatus": None, "test": None, "modelId": "m1", "versionLabel": "v2.0"})
    assert ">not tested</span>" in untested and "<dd>v2.0</dd>" in untested


def test_html_needs_a_test_to_wait_for(tmp_path: Path) -> None:
    bundle = write_stdlib_bundle(tmp_path / "good", "good")
    result = CliRunner().invoke(main, ["push", str(bundle), "--dry-run", "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "--html" in result.output and not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_the_push_pages_render_in_chromium_without_console_errors(pushed: dict[str, Path]) -> None:
    for page in pushed.values():
        assert console_messages(render(page, page.with_suffix(".png"))) == []
