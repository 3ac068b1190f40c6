"""`cmkit push`, the command, against a real `cmkit emulator` subprocess over HTTP (slow tier; one
dependency build in the Docker tier). `cmkit env push` over HTTP is in tests/environments/test_env_push.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cmkit.bundle import API_MAX_FILES
from cmkit.cli import main
from cmkit.scaffold import init_bundle, make_spec
from tests.conftest import TEST_RUN_ID
from tests.support.bundles import write_expected, write_flask_bundle
from tests.support.emulator_support import TOKEN, Emulator, seeded_environment_ready

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_datarobot_configuration")]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(tmp_path / "emulator-data").start()
    yield emu
    emu.stop()


def push(emulator: Emulator, bundle: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    arguments = ["push", str(bundle), "--endpoint", emulator.endpoint, "--token", TOKEN, "--json"]
    arguments += ["--environment-id", emulator.info["environmentId"], *args]
    result = CliRunner().invoke(main, arguments)
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result, document


def api(emulator: Emulator, path: str, **params: Any) -> Any:
    response = emulator.session().get(emulator.url(path), params=params)
    response.raise_for_status()
    return response.json()


def models(emulator: Emulator) -> list[dict[str, Any]]:
    return list(api(emulator, "customModels/", offset=0, limit=100)["data"])


def versions(emulator: Emulator, model_id: str) -> list[dict[str, Any]]:
    return list(api(emulator, f"customModels/{model_id}/versions/", offset=0, limit=100)["data"])


def journal(emulator: Emulator) -> list[dict[str, Any]]:
    response = emulator.session().get(emulator.root + "__emulator__/requests")
    return list(response.json()["requests"])


def clear_journal(emulator: Emulator) -> None:
    emulator.session().delete(emulator.root + "__emulator__/requests")


def writes(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in journal(emulator) if r["method"] not in ("GET", "HEAD")]


def bundle_with_artifact(root: Path) -> Path:
    bundle = write_flask_bundle(root, requirements="six==1.16.0\n")
    (bundle / "weights.bin").write_bytes(os.urandom(300_000))
    (bundle / "notes.txt").write_text("kept\n")
    return bundle


def test_first_push_then_up_to_date_then_one_file_then_a_deletion(emulator: Emulator, tmp_path: Path) -> None:
    bundle = bundle_with_artifact(tmp_path / "bundle")
    first, document = push(emulator, bundle)
    assert first.exit_code == 0, first.output
    assert document["createdModel"] and document["action"] == "new-version"
    assert document["filesUploaded"] == 8 and document["buildStatus"] == "success"
    (model,) = models(emulator)
    assert model["userProvidedId"] == "cmkit-fixture-good" and model["targetType"] == "Regression"
    (version,) = versions(emulator, model["id"])
    assert version["dependencies"][0]["packageName"] == "six"

    clear_journal(emulator)
    again, document = push(emulator, bundle)
    assert again.exit_code == 0 and document["action"] == "up-to-date" and document["filesUploaded"] == 0
    assert writes(emulator) == [] and len(versions(emulator, model["id"])) == 1
    assert "up to date" in again.stderr

    (bundle / "weights.bin").write_bytes(os.urandom(300_000))
    clear_journal(emulator)
    edited, document = push(emulator, bundle)
    assert edited.exit_code == 0 and document["action"] == "patch", edited.output
    assert document["plan"]["upload"] == [{"path": "weights.bin", "bytes": 300_000}]
    (upload,) = [r for r in writes(emulator) if r["path"].endswith("/versions/")]
    assert upload["method"] == "PATCH"
    assert 300_000 <= upload["bytesReceived"] < 2 * 300_000, "only the edited file may travel"
    latest = api(emulator, f"customModels/{model['id']}/versions/{document['versionId']}/")
    local_files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(item["filePath"] for item in latest["items"]) == local_files

    (bundle / "notes.txt").unlink()
    removed, document = push(emulator, bundle)
    assert removed.exit_code == 0 and document["action"] == "patch"
    assert document["plan"]["delete"] == ["notes.txt"] and document["filesUploaded"] == 0
    latest = api(emulator, f"customModels/{model['id']}/versions/{document['versionId']}/")
    assert "notes.txt" not in {item["filePath"] for item in latest["items"]}
    assert len(versions(emulator, model["id"])) == 3
    assert len(models(emulator)) == 1


def test_a_push_from_another_machine_uploads_every_file_but_never_a_second_model(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = bundle_with_artifact(tmp_path / "bundle")
    assert push(emulator, bundle)[0].exit_code == 0
    (bundle / "notes.txt").write_text("changed\n")
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "other-machine-cache"))
    result, document = push(emulator, bundle)
    assert result.exit_code == 0 and document["action"] == "new-version"
    assert document["filesUploaded"] == 8
    assert len(models(emulator)) == 1
    # Unchanged from there on: recognised as up to date even without the first machine's cache.
    assert push(emulator, bundle)[1]["action"] == "up-to-date"


def test_flaky_service_still_gives_one_model_and_one_version(tmp_path: Path) -> None:
    emu = Emulator(tmp_path / "data", extra=["--fault-rate", "0.3", "--fault-seed", "7"]).start()
    try:
        bundle = bundle_with_artifact(tmp_path / "bundle")
        result, document = push(emu, bundle)
        assert result.exit_code == 0, result.output
        emu.session().put(emu.root + "__emulator__/faults", json={"rate": 0})
        (model,) = models(emu)
        assert [v["id"] for v in versions(emu, model["id"])] == [document["versionId"]]
        faulted = [r for r in journal(emu) if r["status"] == 503]
        assert len(faulted) >= 3, "the fault rate must actually have hit this push"
    finally:
        emu.stop()


def test_a_dropped_connection_after_upload_does_not_duplicate_the_version(emulator: Emulator, tmp_path: Path) -> None:
    bundle = bundle_with_artifact(tmp_path / "bundle")
    rule = {"action": "drop", "count": 1, "method": "POST", "path": r"customModels/[^/]+/versions/$"}
    emulator.session().post(emulator.root + "__emulator__/faults", json=rule).raise_for_status()
    model_rule = {"action": "status", "status": 503, "count": 2, "method": "POST", "path": r"customModels/$"}
    emulator.session().post(emulator.root + "__emulator__/faults", json=model_rule).raise_for_status()
    result, _ = push(emulator, bundle)
    assert result.exit_code == 0, result.output
    (model,) = models(emulator)
    assert len(versions(emulator, model["id"])) == 1
    uploads = [r for r in journal(emulator) if r["method"] == "POST" and r["path"].endswith("/versions/")]
    assert uploads[0]["status"] is None, "the first upload's connection was dropped"


def test_two_pushes_at_once_create_one_model(emulator: Emulator, tmp_path: Path) -> None:
    bundles = [write_flask_bundle(tmp_path / name) for name in ("a", "b")]
    results: list[int] = []

    def run(bundle: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "cmkit",
            "push",
            str(bundle),
            "--endpoint",
            emulator.endpoint,
            "--token",
            TOKEN,
            "--environment-id",
            emulator.info["environmentId"],
        ]
        results.append(subprocess.run(command, capture_output=True, timeout=300).returncode)

    threads = [threading.Thread(target=run, args=(b,)) for b in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [0, 0]
    assert len(models(emulator)) == 1


def test_failing_remote_test_exits_1_with_the_reason(emulator: Emulator, tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path / "bundle", "nan_output")
    result, document = push(emulator, bundle, "--dataset", str(bundle / "data" / "sample.csv"))
    assert result.exit_code == 1, result.output
    assert document["test"]["overallStatus"] == "failed"
    assert document["test"]["testingStatus"]["errorCheck"]["status"] == "failed"
    # The table wraps long messages inside their cell: read it as the words it shows.
    assert "not valid JSON" in " ".join(result.stderr.replace("│", " ").split())


def test_passing_remote_test_with_check_configuration(emulator: Emulator, tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path / "bundle", "batch_dependent")
    result, document = push(
        emulator, bundle, "--dataset", str(bundle / "data" / "sample.csv"), "--check", "sideEffects=skip"
    )
    assert result.exit_code == 0, result.output
    assert document["test"]["overallStatus"] == "succeeded"
    assert document["test"]["testingStatus"]["sideEffects"]["status"] == "skipped"
    assert document["datasetId"]


def test_push_runs_the_later_checks_remotely(emulator: Emulator, tmp_path: Path) -> None:
    good = write_flask_bundle(tmp_path / "expected-from")
    expected = write_expected(good)
    bundle = write_flask_bundle(tmp_path / "bundle", "flaky")
    result, document = push(
        emulator,
        bundle,
        "--dataset",
        str(bundle / "data" / "sample.csv"),
        "--verification-dataset",
        str(expected),
        "--predictions-column",
        "expected",
        "--check",
        "performanceCheck=warn",
        "--check-parameter",
        "stabilityCheck.numParallelUsers=4",
        "--check-parameter",
        "stabilityCheck.numPredictions=20",
        "--check-parameter",
        "stabilityCheck.maxPayloadSize=50",
    )
    # One request in five fails: stabilityCheck (implied at fail by its parameters) fails.
    assert result.exit_code == 1, result.output
    status = document["test"]["testingStatus"]
    assert status["stabilityCheck"]["status"] == "failed", status
    assert status["performanceCheck"]["status"] == "warning", status  # its requests fail too
    assert status["predictionVerificationCheck"]["status"] in ("succeeded", "aborted"), status
    sent = [t for t in api(emulator, "customModelTests/", customModelId=document["modelId"])["data"]]
    assert sent[0]["testingStatus"]["stabilityCheck"]["status"] == "failed"


@pytest.mark.parametrize("problem", ["secret", "outside-symlink", "too-many-files", "bad-requirement"])
def test_refused_bundles_create_nothing(emulator: Emulator, tmp_path: Path, problem: str) -> None:
    bundle = write_flask_bundle(tmp_path / "bundle")
    if problem == "secret":
        (bundle / ".env").write_text("DATAROBOT_API_TOKEN=abc\n")
    elif problem == "outside-symlink":
        (tmp_path / "elsewhere.bin").write_bytes(b"x")
        (bundle / "model.bin").symlink_to(tmp_path / "elsewhere.bin")
    elif problem == "too-many-files":
        (bundle / "many").mkdir()
        for i in range(API_MAX_FILES):
            (bundle / "many" / f"{i}.txt").write_text("")
    else:
        (bundle / "requirements.txt").write_text("six!=1.0\n")
    clear_journal(emulator)
    result, _ = push(emulator, bundle)
    assert result.exit_code == 1, result.output
    assert "fails" in result.stderr
    assert journal(emulator) == [], "nothing may reach the API"
    if problem == "secret":
        allowed, _ = push(emulator, bundle, "--allow-secret", ".env")
        assert allowed.exit_code == 0, allowed.output


def test_dry_run_sends_nothing_and_shows_the_plan(emulator: Emulator, tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path / "bundle", requirements="six==1.16.0\n")
    clear_journal(emulator)
    result, document = push(emulator, bundle, "--dry-run")
    assert result.exit_code == 0, result.output
    assert writes(emulator) == []
    plan = document["plan"]
    assert plan["createModel"]["name"] == "fixture-good" and plan["action"] == "new-version"
    assert {item["path"] for item in plan["upload"]} >= {"app.py", "start_server.sh"}
    assert plan["dependencies"][0]["packageName"] == "six"
    assert "would create model" in result.stderr and "upload app.py" in result.stderr


def test_configuration_sources_and_the_token_never_shows(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_flask_bundle(tmp_path / "bundle")
    missing = CliRunner().invoke(main, ["push", str(bundle)])
    assert missing.exit_code == 2 and "drconfig.yaml" in missing.stderr

    config = tmp_path / "drconfig.yaml"
    config.write_text(f"endpoint: {emulator.endpoint}\ntoken: {TOKEN}\nssl_verify: false\n")
    monkeypatch.setenv("DATAROBOT_CONFIG_FILE", str(config))
    from_file = CliRunner().invoke(main, ["push", str(bundle), "--environment-id", emulator.info["environmentId"]])
    assert from_file.exit_code == 0, from_file.output
    assert TOKEN not in from_file.output

    monkeypatch.setenv("DATAROBOT_API_TOKEN", "wrong-token-ABC")
    refused = CliRunner().invoke(main, ["push", str(bundle), "--debug"])
    assert refused.exit_code != 0
    assert "401" in str(refused.exception) and "wrong-token-ABC" not in str(refused.exception)
    secret = "s3cret-token-XYZ"
    unreachable = subprocess.run(
        [
            sys.executable,
            "-m",
            "cmkit",
            "push",
            str(bundle),
            "--endpoint",
            "http://127.0.0.1:9/api/v2",
            "--token",
            secret,
            "--environment-id",
            "x",
            "--debug",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unreachable.returncode != 0 and "cannot reach" in unreachable.stderr
    assert secret not in unreachable.stdout + unreachable.stderr


@pytest.mark.docker
def test_failing_dependency_build_exits_1_with_the_log(tmp_path: Path, docker_client: object) -> None:
    emu = Emulator(tmp_path / "data", runtime="docker").start()
    try:
        seeded_environment_ready(emu)
        bundle = write_flask_bundle(tmp_path / "bundle", requirements=f"cmkit-no-such-package-{TEST_RUN_ID}==0.0.1\n")
        result, document = push(emu, bundle)
        assert result.exit_code == 1, result.output
        assert document["buildStatus"] == "failed"
        assert "No matching distribution found" in (document["buildLogTail"] or "")
        # The log's lines, not the emulator's JSON answer around them (`{"data": "..."}`).
        assert not document["buildLogTail"].lstrip().startswith("{"), document["buildLogTail"][:200]
        assert "dependency build failed" in result.stderr
    finally:
        emu.stop()


@pytest.mark.parametrize(
    ("target_type", "api_name", "sample", "success"),
    [
        ("transform", "Transform", "data/sample.csv", "10 rows transformed into 6 columns"),
        ("geopoint", "GeoPoint", "data/sample.csv", "24 rows predicted"),
        ("vectordatabase", "VectorDatabase", "data/sample.csv", "10 rows predicted"),
        ("unstructured", "Unstructured", "data/sample.txt", "answered with"),
        ("textgeneration", "TextGeneration", "data/sample.csv", "rows predicted"),
        ("agenticworkflow", "AgenticWorkflow", None, None),
    ],
)
def test_init_s_bundle_of_each_new_type_is_pushed_and_tested_remotely(
    emulator: Emulator, tmp_path: Path, target_type: str, api_name: str, sample: str | None, success: str | None
) -> None:
    bundle = tmp_path / target_type
    init_bundle(bundle, make_spec(target_type, target_type))
    dataset = ["--dataset", str(bundle / sample)] if sample else []  # an agent has no dataset to test on
    result, document = push(emulator, bundle, *dataset)
    assert result.exit_code == 0, result.output
    (model,) = models(emulator)
    assert model["targetType"] == api_name and document["createdModel"]
    if success is None:
        assert document.get("test") is None
        return
    assert document["test"]["overallStatus"] == "succeeded", document["test"]
    assert success in document["test"]["testingStatus"]["errorCheck"]["message"]
