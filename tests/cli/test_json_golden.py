"""`--json` of lint, deps, push (dry run and against the emulator) and test-local, byte for byte
against golden files (fast tier; the sample models under test-local are tests/testlocal/test_json_golden.py's).

What is normalised, and why, is tests/cli/golden.py's docstring.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from tests.cli import golden
from tests.support.bundles import training_csv, write_stdlib_bundle
from tests.support.emulator_support import TOKEN, FlaskEmulator
from tests.support.http_server import serving

SAMPLES = golden.REPO / "sample_models"
GOOD = ["regression_diabetes", "binary_breast_cancer", "multiclass_iris"]
BROKEN = sorted(p.name for p in (SAMPLES / "broken").iterdir() if p.is_dir())
ALL = [*GOOD, *(f"broken/{name}" for name in BROKEN)]
STDLIB_METADATA = "name: golden-{name}\ntype: inference\ntargetType: regression\ninferenceModel:\n  targetName: y\n"

pytestmark = pytest.mark.usefixtures("no_datarobot_configuration")


def invoke(*arguments: str, code: int | None = 0) -> str:
    result = CliRunner().invoke(main, list(arguments))
    if code is not None:
        assert result.exit_code == code, result.output
    return result.stdout


def golden_name(sample: str) -> str:
    return sample.replace("/", "-")


def lint_fixture(root: Path) -> Path:
    """A bundle with one of most lint findings: no shebang, bad requirements and metadata, a secret."""
    root.mkdir()
    (root / "start_server.sh").write_text("python serve.py\n")
    (root / "requirements.txt").write_text("pandas==2.2.2\nnot a requirement ==\n-e git+https://x/y\n")
    (root / "model-metadata.yaml").write_text("name: x\ntype: inference\ntargetType: binary\nvalidation: 3\n")
    (root / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (root / "server.py").write_text("MODEL_SERVER_HALTS_ON_LOAD_FAILURE = 1\n")
    (root / "gunicorn.conf.py").write_text("")
    return root


# --- lint and deps ------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ALL)
def test_lint_and_deps_of_the_sample_models(sample: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(golden.REPO)  # the documents name the bundle as it was given
    path = f"sample_models/{sample}"
    golden.check(f"lint-{golden_name(sample)}.json", invoke("lint", "--json", path))
    golden.check(f"deps-{golden_name(sample)}.json", invoke("deps", "--json", path))


def test_lint_and_deps_with_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lint_fixture(tmp_path / "bad")
    (tmp_path / "empty").mkdir()
    golden.check("lint-findings.json", invoke("lint", "--json", "bad", "empty", code=1), tmp_path)
    golden.check("lint-from-files.json", invoke("lint", "--json", "--from-files", "bad/server.py", code=1), tmp_path)
    golden.check("deps-errors.json", invoke("deps", "--json", "bad", "bad/requirements.txt", code=1), tmp_path)


# --- push ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ALL)
def test_push_dry_run_without_credentials(sample: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(golden.REPO)
    text = invoke("push", f"sample_models/{sample}", "--dry-run", "--json", "--environment-id", "env-1")
    golden.check(f"push-dry-run-{golden_name(sample)}.json", text)


def test_push_refused_is_one_error_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lint_fixture(tmp_path / "bad")
    golden.check("push-refused.json", invoke("push", "bad", "--dry-run", "--json", code=1), tmp_path)


@pytest.fixture
def served(tmp_path: Path, fast_api_polls: None) -> Iterator[tuple[FlaskEmulator, str]]:
    """An emulator of this test's own (ids and versions start afresh) on a loopback socket."""
    emulator = FlaskEmulator(tmp_path / "emulator")
    with serving(emulator.app) as base:
        yield emulator, base + "api/v2"
    emulator.close()


def push(endpoint: str, environment_id: str, bundle: Path | str, *extra: str, code: int = 0) -> str:
    arguments = ["push", str(bundle), "--json", "--endpoint", endpoint, "--token", TOKEN]
    return invoke(*arguments, "--environment-id", environment_id, *extra, code=code)


def test_push_of_the_sample_models_to_the_emulator(
    served: tuple[FlaskEmulator, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new model, the same bundle again (up to date), a changed copy (a patch), a dry run against it."""
    emulator, endpoint = served
    environment_id = emulator.environment_id()
    monkeypatch.chdir(golden.REPO)
    for sample in GOOD:
        golden.check(f"push-new-{sample}.json", push(endpoint, environment_id, f"sample_models/{sample}"), tmp_path)
    sample = "regression_diabetes"
    golden.check("push-up-to-date.json", push(endpoint, environment_id, f"sample_models/{sample}"), tmp_path)
    copy = tmp_path / sample
    shutil.copytree(SAMPLES / sample, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "custom.py").write_text((copy / "custom.py").read_text() + "\n# changed\n")
    (copy / ".cmkitignore").unlink()
    (copy / "notes.txt").write_text("new\n")
    golden.check("push-dry-run-patch.json", push(endpoint, environment_id, copy, "--dry-run"), tmp_path)
    golden.check("push-patch.json", push(endpoint, environment_id, copy, "--minor"), tmp_path)


def test_push_with_a_remote_model_test(
    served: tuple[FlaskEmulator, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote test's document (the emulator runs test-local on the stdlib model), passing and failing."""
    emulator, endpoint = served
    environment_id = emulator.environment_id()
    dataset = tmp_path / "train.csv"
    dataset.write_bytes(training_csv())
    for behaviour, code in (("good", 0), ("fails", 1)):
        bundle = write_stdlib_bundle(tmp_path / behaviour, behaviour)
        (bundle / "model-metadata.yaml").write_text(STDLIB_METADATA.format(name=behaviour))
        text = push(endpoint, environment_id, bundle, "--dataset", str(dataset), code=code)
        golden.check(f"push-test-{behaviour}.json", text, tmp_path)
    # --no-wait: the test is still in progress; its status has no style, and rendering it once
    # crashed (rich markup `[]in_progress[/]`) after the document, so stdout held two documents.
    text = push(endpoint, environment_id, tmp_path / "good", "--dataset", str(dataset), "--no-wait")
    json.loads(text)  # exactly one document
    golden.check("push-test-no-wait.json", text, tmp_path)


# --- test-local on the standard-library model (process runtime, milliseconds) -------------------


@pytest.fixture
def no_sigterm_handler() -> Iterator[None]:
    """test-local turns SIGTERM into KeyboardInterrupt for its cleanup: not for the rest of the session."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.mark.usefixtures("no_sigterm_handler")
@pytest.mark.parametrize(
    ("name", "behaviour", "flags", "code"),
    [
        ("good", "good", ("--feature-impact",), 0),
        (
            "later-checks",
            "good",
            (
                "--check-parameter",
                "performanceCheck.maxResponseTime=5",
                "--check-parameter",
                "stabilityCheck.numPredictions=5",
                "--check",
                "nullValueImputation=skip",
            ),
            0,
        ),
        ("fails", "fails", ("--feature-impact",), 1),
    ],
)
def test_test_local_of_the_stdlib_model(
    name: str, behaviour: str, flags: tuple[str, ...], code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_stdlib_bundle(tmp_path / "model", behaviour)
    (tmp_path / "model" / "model-metadata.yaml").write_text(STDLIB_METADATA.format(name=behaviour))
    (tmp_path / "train.csv").write_bytes(training_csv())
    junit = tmp_path / "junit.xml"
    arguments = ["test-local", "model", "--runtime", "process", "--json", "--dataset", "train.csv"]
    text = invoke(*arguments, "--junit", str(junit), *flags, code=code)
    golden.check(f"test-local-stdlib-{name}.json", text, tmp_path)
    golden.check(f"test-local-stdlib-{name}.junit.xml", junit.read_text(), tmp_path)


def test_test_local_that_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_sigterm_handler: None
) -> None:
    monkeypatch.chdir(tmp_path)
    bundle = write_stdlib_bundle(tmp_path / "model")
    (bundle / "start_server.sh").write_text("#!/bin/sh\necho cannot start >&2\nexit 3\n")
    (bundle / "model-metadata.yaml").write_text(STDLIB_METADATA.format(name="exits"))
    (tmp_path / "train.csv").write_bytes(training_csv())
    text = invoke("test-local", "model", "--runtime", "process", "--json", "--dataset", "train.csv", code=1)
    golden.check("test-local-stdlib-exits.json", text, tmp_path)
    (bundle / "start_server.sh").chmod(0o644)  # cannot be started at all: StartFailed, no server
    text = invoke("test-local", "model", "--runtime", "process", "--json", "--dataset", "train.csv", code=1)
    golden.check("test-local-stdlib-not-started.json", text, tmp_path)
