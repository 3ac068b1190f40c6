"""test-local, lint and push over a repository's models: one document, one JUnit file, exit 0/1/2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.repository import select_models, shard_of
from cmkit.repositoryrun import test_repository as run_repository
from cmkit.resolvedrun import TestLocalConfig
from tests.support.bundles import write_quick_bundle

ENV = "5e8c889607389fe0f466c72d"
MODEL_YAML = (
    "user_provided_model_id: ID\ntarget_type: Regression\nsettings: {name: ID, target_name: y}\n"
    f"version: {{model_environment_id: {ENV}, memory: 256Mi, replicas: 2}}\n"
    "test:\n  test_data_id: 62ef8e053f9b9493db97af67\n  checks:\n"
    "    side_effects: {enabled: true, block_deployment_if_fails: true}\n"
)


def _repository(root: Path, behaviours: dict[str, str]) -> Path:
    for name, behaviour in behaviours.items():
        write_quick_bundle(root / name, behaviour=behaviour)
        (root / name / "model.yaml").write_text(MODEL_YAML.replace("ID", name))
    return root


def _run(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["test-local", "--all", *args, "--runtime", "process", "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_one_document_and_one_junit_file_for_the_whole_repository(tmp_path: Path) -> None:
    root = _repository(tmp_path / "repo", {"good": "good", "broken": "broken"})
    junit = tmp_path / "junit.xml"
    code, document = _run(str(root), "--junit", str(junit))
    assert code == 1
    assert document["command"] == "test-local" and document["ok"] is False
    assert document["summary"] == {"succeeded": 1, "failed": 1, "error": 0}
    models = {m["name"]: m for m in document["models"]}
    assert [m["name"] for m in document["models"]] == ["broken", "good"]
    assert models["good"]["status"] == "succeeded" and models["broken"]["status"] == "failed"
    assert models["good"]["report"]["configuration"]["sideEffects"] == "fail"  # its model.yaml's test
    assert models["broken"]["report"]["testingStatus"]["errorCheck"]["status"] == "failed"
    suites = ET.parse(junit).getroot()
    assert suites.tag == "testsuites" and [s.get("name") for s in suites] == ["broken", "good"]
    assert suites.get("failures") == "1" and suites.get("tests") == "14"


def test_the_document_has_one_shape_whatever_the_number_of_models(tmp_path: Path) -> None:
    root = _repository(tmp_path / "repo", {"good": "good"})
    code, one = _run(str(root))
    assert code == 0 and one["ok"] is True
    other = 3 - shard_of("good", 2)  # the shard without the one model
    code, none = _run(str(root), "--shard", f"{other}/2")
    assert code == 0 and none["models"] == [] and none["summary"] == {"succeeded": 0, "failed": 0, "error": 0}
    assert set(none) == set(one)
    assert {k: type(v) for k, v in none.items()} == {k: type(v) for k, v in one.items()}


def test_a_model_with_bad_input_is_reported_and_makes_the_exit_code_2(tmp_path: Path) -> None:
    root = _repository(tmp_path / "repo", {"good": "good"})
    write_quick_bundle(root / "untyped")
    (root / "untyped" / "model-metadata.yaml").write_text("name: untyped\ntype: inference\n")
    junit = tmp_path / "junit.xml"
    code, document = _run(str(root), "--junit", str(junit))
    assert code == 2
    untyped = document["models"][1]
    assert untyped["status"] == "error" and untyped["report"] is None
    assert "no target type" in untyped["error"]["message"]
    (error,) = ET.parse(junit).getroot().iter("error")
    assert "no target type" in (error.get("message") or "")


def test_lint_all_lints_each_model_folder_once(tmp_path: Path) -> None:
    root = _repository(tmp_path / "repo", {"a": "good", "b": "good"})
    (root / "b" / "model.yaml").write_text(MODEL_YAML.replace("ID", "b").replace("target_name: y", "target_name: z"))
    result = CliRunner().invoke(main, ["lint", "--all", str(root), "--json"])
    assert result.exit_code == 0, result.output
    bundles = json.loads(result.stdout)["bundles"]
    assert [Path(b["bundle"]).name for b in bundles] == ["a", "b"]
    rules = [f["rule"] for f in bundles[1]["findings"]]
    assert "definition-disagrees" in rules


@pytest.mark.usefixtures("no_datarobot_configuration")
def test_push_all_plans_the_models_the_github_action_would_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _repository(tmp_path / "repo", {"a": "good"})
    (root / "a" / "model.yaml").write_text(
        MODEL_YAML.replace("ID", "a").replace("replicas: 2}", "replicas: 2, exclude_glob_pattern: [model.yaml]}")
    )
    monkeypatch.setenv("GITHUB_REPOSITORY_ID", "4242")
    result = CliRunner().invoke(main, ["push", "--all", str(root), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    (model,) = json.loads(result.stdout)["models"]
    plan = model["report"]["plan"]
    create = plan["createModel"]
    assert create["userProvidedId"] == "4242/a" and create["isUnstructuredModelKind"] is False
    assert (create["name"], create["targetType"], create["targetName"]) == ("a", "Regression", "y")
    assert plan["baseEnvironmentId"] == ENV
    assert plan["versionSettings"] == {"maximumMemory": str(256 * 2**20), "replicas": "2"}
    uploaded = {f["path"] for f in plan["upload"]}
    assert "model.yaml" not in uploaded and "custom.py" not in uploaded and "server.py" in uploaded
    monkeypatch.delenv("GITHUB_REPOSITORY_ID")
    again = CliRunner().invoke(main, ["push", "--all", str(root), "--dry-run", "--json"])
    assert again.exit_code == 2 and "namespace" in json.loads(again.stdout)["models"][0]["error"]["message"]


@pytest.mark.slow
def test_jobs_run_the_models_in_worker_processes_with_the_same_outcome(tmp_path: Path) -> None:
    behaviours = {f"m{i}": ("broken" if i == 2 else "good") for i in range(4)}
    root = _repository(tmp_path / "repo", behaviours)
    template = TestLocalConfig(Path("."), runtime="process")
    alone = run_repository(select_models(root), template, jobs=1)
    together = run_repository(select_models(root), template, jobs=2)
    assert [o.status for o in together.outcomes] == [o.status for o in alone.outcomes]
    assert [o.model.name for o in together.outcomes] == ["m0", "m1", "m2", "m3"]
    assert together.exit_code == alone.exit_code == 1
    assert together.to_dict()["jobs"] == 2


@pytest.mark.docker
def test_jobs_share_one_docker_engine(tmp_path: Path, docker_client: object) -> None:
    """Two workers build and run their models' images on the one engine at once, and leave no container."""
    from cmkit.scaffold import init_bundle, make_spec
    from tests.conftest import TEST_LABEL, TEST_RUN_ID, cmkit_run_containers

    for index in range(3):
        init_bundle(tmp_path / "repo" / f"m{index}", make_spec("regression", f"m{index}"))
    template = TestLocalConfig(Path("."), runtime="docker", labels={TEST_LABEL: TEST_RUN_ID})
    result = run_repository(select_models(tmp_path / "repo"), template, jobs=2)
    assert [o.status for o in result.outcomes] == ["succeeded"] * 3, [o.document for o in result.outcomes]
    assert {o.document["details"]["runtime"] for o in result.outcomes if o.document} == {"docker"}
    assert cmkit_run_containers(docker_client) == []


def _processes_under(folder: Path) -> list[int]:
    """Live processes whose command line names a path under `folder` (the models' servers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(folder) in command and "cmkit" not in command:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_sigterm_stops_the_workers_and_their_servers_without_running_the_queue(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support.bundles import write_stdlib_bundle

    root = tmp_path / "repo"
    for index in range(4):  # servers that never listen: each run would wait its whole startup timeout
        write_stdlib_bundle(root / f"m{index}", behaviour="hangs", name=f"m{index}")
    command = [sys.executable, "-m", "cmkit", "test-local", "--all", str(root), "--jobs", "2", "--runtime", "process"]
    process = subprocess.Popen(command, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_processes_under(root)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_processes_under(root)) == 2, "two servers, one per worker"
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 128 + signal.SIGTERM
    assert time.monotonic() - began < 30  # not the 120 s startup timeouts of the queued models
    time.sleep(0.5)
    assert _processes_under(root) == []


def test_flags_that_describe_one_model_are_refused_with_all(tmp_path: Path) -> None:
    root = _repository(tmp_path / "repo", {"good": "good"})
    result = CliRunner().invoke(main, ["test-local", "--all", str(root), "--target-type", "binary", "--json"])
    assert result.exit_code == 2
    assert "--target-type describe one model" in json.loads(result.stdout)["error"]["message"]


def test_ending_the_workers_terminates_each_and_waits_for_it(tmp_path: Path) -> None:
    """What an interrupted --jobs run does to the workers that announced themselves (here: two sleepers)."""
    import multiprocessing
    import subprocess

    from cmkit.repositoryrun import _alive, _end_workers

    sleepers = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    pids = multiprocessing.get_context("spawn").SimpleQueue()
    for sleeper in sleepers:
        pids.put(sleeper.pid)
    reaped = [False, False]

    def reap() -> None:  # the fork server reaps real workers; here this test is their parent
        for index, sleeper in enumerate(sleepers):
            reaped[index] = sleeper.wait(timeout=10) == -15

    import threading

    reaper = threading.Thread(target=reap)
    reaper.start()
    _end_workers(pids)
    reaper.join()
    assert reaped == [True, True] and not any(_alive(s.pid) for s in sleepers)


def test_workers_fork_from_a_preloaded_fork_server_where_there_is_one() -> None:
    import multiprocessing

    from cmkit.repositoryrun import _worker_context

    context = _worker_context()
    expected = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    assert context.get_start_method() == expected
