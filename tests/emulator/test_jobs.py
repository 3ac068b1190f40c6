"""The emulator's job runner and runtime helpers (cmkit/emulator/jobs.py) as a library.

What a model test or a build does inside a job is in tests/emulator/test_testing.py and
tests/emulator/test_api.py; DockerJobs' builds run in the Docker tier.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import docker
import pytest

from cmkit.checks.results import CheckResult
from cmkit.emulator.jobs import DockerJobs, JobFailed, JobRunner, LogEvents, ProcessJobs, data_dir_digest, labels_for


def test_a_crashing_job_is_logged_and_the_runner_keeps_going(caplog: pytest.LogCaptureFixture) -> None:
    runner = JobRunner(workers=1)

    def broken(cancel: threading.Event) -> None:
        raise ZeroDivisionError("a bug in a job")

    crashed = runner.submit("broken", broken)
    assert crashed.done.wait(10)
    assert any("background job broken crashed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    ran = threading.Event()
    assert runner.submit("after", lambda cancel: ran.set()).done.wait(10) and ran.is_set()
    assert runner.active() == [] and runner.cancel("broken") is False  # ended jobs are forgotten
    assert runner.shutdown(1.0) == []


def test_shutdown_cancels_waits_reports_the_stuck_and_refuses_new_jobs(caplog: pytest.LogCaptureFixture) -> None:
    runner = JobRunner(workers=2)
    release = threading.Event()

    def polite_job(cancel: threading.Event) -> None:
        cancel.wait(10)

    def stubborn_job(cancel: threading.Event) -> None:  # ignores its cancel, then fails
        release.wait(10)
        raise RuntimeError("ended late")

    polite = runner.submit("polite", polite_job)
    stubborn = runner.submit("stubborn", stubborn_job)
    assert sorted(runner.active()) == ["polite", "stubborn"]
    assert runner.shutdown(0.05) == ["stubborn"] and polite.done.is_set() and polite.cancel.is_set()
    with pytest.raises(RuntimeError, match="shutting down"):
        runner.submit("late", lambda cancel: None)
    caplog.set_level(logging.DEBUG, "cmkit.emulator")
    release.set()
    assert stubborn.done.wait(10)
    # A job failing once the emulator stopped is not a crash worth an error line.
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.DEBUG, "background job stubborn ended with the emulator") in messages


def test_labels_name_the_data_dir_and_log_events_write_lines(tmp_path: Path) -> None:
    labels = labels_for(tmp_path, {"team": "ml"})
    assert labels == {"cmkit": "1", "cmkit.emulator": data_dir_digest(tmp_path), "team": "ml"}
    assert data_dir_digest(tmp_path / ".." / tmp_path.name) == labels["cmkit.emulator"]  # the resolved path
    lines: list[str] = []
    events = LogEvents(lines.append)
    events.stage("starting")
    events.log("model loaded")
    events.check("errorCheck", CheckResult("succeeded", ""))
    assert lines == ["== starting", "model loaded", "errorCheck: succeeded"]


def test_the_docker_job_engine_carries_its_labels_without_talking_to_the_engine(tmp_path: Path) -> None:
    # Building needs an engine (Docker tier); constructing the job engine must not.
    # A pinned API version: the SDK then asks the (absent) engine nothing until it is used.
    client = docker.DockerClient(base_url=f"unix://{tmp_path / 'no-engine.sock'}", version="1.41")
    try:
        engine = DockerJobs(client, labels_for(tmp_path, {}))
        assert engine.runtime == "docker" and engine.labels()["cmkit.emulator"] == data_dir_digest(tmp_path)
        engine.labels()["cmkit"] = "changed"
        assert engine.labels()["cmkit"] == "1"  # a copy each time
    finally:
        client.close()


def test_the_process_runtime_checks_an_r_models_packages_on_this_machines_r(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An R model's requirements.txt names R packages, not pip requirements: the process runtime installs
    nothing, so a package this machine's R lacks fails the build (Docker installs it: the Docker tier)."""
    lines: list[str] = []
    ProcessJobs().build_dependencies(tmp_path, "# nothing but a comment\n", lines.append, r_model=True)
    assert lines[0] == "an R model: requirements.txt names the R packages (none)"
    monkeypatch.setenv("PATH", str(tmp_path))  # no Rscript here
    with pytest.raises(JobFailed, match="R is not installed on the emulator's machine"):
        ProcessJobs().build_dependencies(tmp_path, "stringr\n", lines.append, r_model=True)
    assert lines[-1] == "an R model: requirements.txt names the R packages stringr"
