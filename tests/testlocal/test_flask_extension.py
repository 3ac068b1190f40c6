"""flask_extension_httpauth: DRUM's custom_flask.py applied to the runtime's app, and test-local's
--header to get through it; a 401 is reported as such, with the hint, and the token is never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.resolvedrun import TestLocalConfig
from cmkit.serve import serve_bundle
from cmkit.testlocal import StartFailed
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


@pytest.mark.slow
def test_serve_waits_for_a_guarded_readiness_route_with_the_header(tmp_path: Path) -> None:
    bundle = httpauth_bundle(tmp_path / "model", guard_ping=True)
    with pytest.raises(StartFailed) as caught:  # without it, the readiness route answers 401
        serve_bundle(TestLocalConfig(bundle=bundle, runtime="process"), startup_timeout=30)
    assert "401" in caught.value.message
    headers = {"Authorization": f"Bearer {TOKEN}"}
    session = serve_bundle(TestLocalConfig(bundle=bundle, runtime="process", headers=headers), startup_timeout=30)
    try:
        assert session.to_dict()["protocol"] is not None  # ready: it answered 200 and was detected
    finally:
        session.close()


@pytest.mark.slow
def test_predict_sends_the_header(tmp_path: Path) -> None:
    bundle = httpauth_bundle(tmp_path / "model", guard_ping=True)
    rows = bundle / "data" / "test.csv"
    header = f"Authorization: Bearer {TOKEN}"
    result = CliRunner().invoke(
        main, ["predict", str(bundle), "--runtime", "process", "--input", str(rows), "--header", header]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Predictions" and len(result.stdout.splitlines()) > 2
    assert TOKEN not in result.output
