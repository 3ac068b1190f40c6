"""`cmkit test-local --json` (and `--junit`) on the sample models and the failing broken bundles,
process runtime, byte for byte against golden files (slow: each starts cmkit-runtime, ~2 s).

What is normalised, and why, is tests/cli/golden.py's docstring.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from tests.cli import golden
from tests.conftest import TEST_LABEL, TEST_RUN_ID

GOOD = ["regression_diabetes", "binary_breast_cancer", "multiclass_iris"]
# The broken bundles that fail or warn in the process runtime without options (memory_hog needs
# a memory limit, slow_start a short startup timeout). `stateful` is left out: its predictions
# count the requests, which the checks send concurrently, so its figures differ on every run
# (batch_dependent gives sideEffects' warning the same shape, deterministically).
BROKEN = [
    "bad_probabilities",
    "batch_dependent",
    "exits_at_start",
    "ignores_url_prefix",
    "nan_output",
    "null_crash",
    "wrong_count",
]
FAILING = {"bad_probabilities", "exits_at_start", "ignores_url_prefix", "nan_output", "wrong_count"}

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_datarobot_configuration")]


@pytest.fixture(autouse=True)
def no_sigterm_handler() -> Iterator[None]:
    """test-local turns SIGTERM into KeyboardInterrupt for its cleanup: not for the rest of the session."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def run_local(bundle: str, tmp_path: Path, *extra: str, code: int) -> tuple[str, str]:
    junit = tmp_path / "junit.xml"
    arguments = ["test-local", bundle, "--runtime", "process", "--json", "--junit", str(junit)]
    arguments += ["--label", f"{TEST_LABEL}={TEST_RUN_ID}", "--startup-timeout", "90", *extra]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == code, result.output
    return result.stdout, junit.read_text()


@pytest.mark.parametrize("sample", [*GOOD, *(f"broken/{name}" for name in BROKEN)])
def test_sample_models(sample: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(golden.REPO)  # the documents name the bundle and its dataset as given
    code = 1 if sample.removeprefix("broken/") in FAILING else 0
    document, junit = run_local(f"sample_models/{sample}", tmp_path, code=code)
    name = sample.replace("/", "-")
    golden.check(f"test-local-{name}.json", document, tmp_path)
    golden.check(f"test-local-{name}.junit.xml", junit, tmp_path)


def test_feature_impact_of_a_sample_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(golden.REPO)
    document, _ = run_local("sample_models/binary_breast_cancer", tmp_path, "--feature-impact", code=0)
    golden.check("test-local-feature-impact.json", document, tmp_path)
