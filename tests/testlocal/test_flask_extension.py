"""flask_extension_httpauth: DRUM's custom_flask.py applied to the runtime's app, and test-local's
--header to get through it; a 401 is reported as such, with the hint, and the token is never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from tests.support.frameworks import TOKEN, httpauth_bundle
from tests.testlocal.test_samples import statuses


def run_cli(bundle: Path, *extra: str) -> tuple[dict[str, object], str]:
    result = CliRunner().invoke(main, ["test-local", str(bundle), "--runtime", "process", "--json", *extra])
    return json.loads(result.stdout), result.output


@pytest.mark.slow
def test_without_the_header_the_checks_get_401_with_the_hint(tmp_path: Path) -> None:
    document, _ = run_cli(httpauth_bundle(tmp_path / "model"))
    found = document["testingStatus"]["errorCheck"]  # type: ignore[index]
    assert found["status"] == "failed" and "HTTP 401" in found["message"], found
    assert "the server requires authentication: give it with --header 'Authorization: ...'" in found["message"]
    assert statuses(document)["longRunningService"] == "succeeded"  # ping stays open, as the template wants


@pytest.mark.slow
def test_with_the_header_every_check_passes_and_the_token_is_never_printed(tmp_path: Path) -> None:
    bundle = httpauth_bundle(tmp_path / "model")
    document, output = run_cli(bundle, "--header", f"Authorization: Bearer {TOKEN}")
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]
    assert TOKEN not in output


def test_a_malformed_header_is_refused_without_echoing_its_value(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["test-local", str(tmp_path), "--header", "Authorization Bearer secret-value"])
    assert result.exit_code == 2 and "a header is 'Name: value'" in result.output
    assert "secret-value" not in result.output
