"""cmkit/watch.py in this process: edits under `Watch.test_local` and `Watch.serve` (fast tier).

A real watch (watchfiles on tmp_path) of a real process-runtime server, the http.server of
write_quick_bundle (tests/support/bundles.py), which starts in a few hundredths of a second. It
is not cmkit-runtime, so a code edit restarts it (no SIGHUP reload: that and the Docker paths are
tests/testlocal/test_watch_cli.py's, slow tier). Each callback makes the next edit; a stop event
ends the watch as Ctrl-C would.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cmkit.errors import CmkitError
from cmkit.events import Events
from cmkit.report import ReportDetails, StartInfo
from cmkit.testlocal import TestLocalConfig
from cmkit.watch import NEW_SERVER, RESTARTED, STARTED, Applied, Change, Serving, Watch, WatchRun
from tests.support.bundles import write_quick_bundle

WATCH_TIMEOUT = 60.0
# The later checks cost time, not coverage of the watch: errorCheck is what the edits break.
CHECKS = {"nullValueImputation": "skip", "sideEffects": "skip"}


def edit(path: Path, text: str) -> None:
    """Save as many editors do (a new file renamed over the old): one event, never a half-written file.

    A plain write truncates first; on a loaded machine the writer can be descheduled for longer
    than the debounce between the truncation and the write, and the empty file would be a run.
    """
    draft = path.parent.parent / f".{path.name}.draft"
    draft.write_text(text)
    os.replace(draft, path)


def run_watch(target: Callable[[], None], stop: threading.Event, timeout: float = WATCH_TIMEOUT) -> None:
    """Run the watch loop on a thread (as the CLI does on the main one) until it returns, or fail
    after `timeout` seconds: a guard against a watch that hangs, not a measure of its speed."""
    failures: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:  # re-raised in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=body, name="test-watch")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        stop.set()
        thread.join(10)
        raise AssertionError("the watch did not end")
    if failures:
        raise failures[0]


def break_then_fix(config: TestLocalConfig, path: Path, broken: str) -> list[WatchRun]:
    """Watch `config` for three runs: the first, after `path` is edited to `broken`, and after it
    is edited back to what it was; they are returned once the watch has ended without an error."""
    good = path.read_text()
    stop = threading.Event()
    watch = Watch(config, Events(), stop)
    runs: list[WatchRun] = []
    errors: list[CmkitError] = []

    def on_run(run: WatchRun) -> None:
        runs.append(run)
        if len(runs) == 1:
            edit(path, broken)
        elif len(runs) == 2:
            edit(path, good)
        else:
            stop.set()

    run_watch(lambda: watch.test_local(on_run, errors.append), stop)
    assert errors == []
    return runs


def statuses(run: WatchRun) -> dict[str, str]:
    return {name: result.status for name, result in run.report.results.items()}


def test_edits_rerun_the_checks_and_a_broken_metadata_edit_is_carried_to_the_next(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    metadata = bundle / "model-metadata.yaml"
    good_metadata = metadata.read_text()
    stop = threading.Event()
    watch = Watch(TestLocalConfig(bundle, runtime="process", checks=CHECKS), Events(), stop)
    runs: list[WatchRun] = []
    errors: list[CmkitError] = []

    def on_run(run: WatchRun) -> None:
        runs.append(run)
        if len(runs) == 1:
            edit(bundle / "behaviour.txt", "broken\n")
        elif len(runs) == 2:
            edit(metadata, good_metadata.replace("regression", "no-such-type"))
        else:
            stop.set()

    def on_error(error: CmkitError) -> None:
        errors.append(error)
        edit(bundle / "requirements.txt", "numpy\n")  # with the metadata's fix: one run
        edit(bundle / "behaviour.txt", "good\n")
        edit(metadata, good_metadata)

    run_watch(lambda: watch.test_local(on_run, on_error), stop)

    first, broken, fixed = runs
    assert first.action == STARTED and first.overall_status == "succeeded" and first.change is None
    assert broken.action == RESTARTED and broken.change is not None and broken.change.changed == ("behaviour.txt",)
    assert statuses(broken)["errorCheck"] == "failed"
    assert "broken on purpose" in broken.report.results["errorCheck"].message
    assert len(errors) == 1 and "no-such-type" in str(errors[0])
    # The edit that could not run is carried into the next: requirements, metadata and code at once.
    assert fixed.change is not None
    assert set(fixed.change.changed) == {"behaviour.txt", "model-metadata.yaml", "requirements.txt"}
    assert fixed.action == NEW_SERVER  # the process runtime serves from this environment: a new server
    assert fixed.overall_status == "succeeded"

    documents = [run.to_dict() for run in runs]
    servers = [document["details"]["server"] for document in documents]
    assert len({server["pid"] for server in servers}) == 3  # each restart is a new process...
    assert len({server["url"] for server in servers}) == 1  # ...on the same port, under the same prefix
    watched = documents[2]["details"]["watch"]
    assert watched["run"] == 3 and watched["action"] == NEW_SERVER and watched["secondsSinceSave"] > 0
    assert documents[0]["details"]["watch"] == {
        "run": 1,
        "action": STARTED,
        "changed": [],
        "removed": [],
        "environment": False,
        "secondsSinceSave": None,
    }
    assert watch.live.server is None  # the watch's end removed its server


def test_serve_brings_each_edit_to_the_server_and_says_when_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cmkit.warmserver import find_warm_server

    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    bundle = write_quick_bundle(tmp_path / "bundle")
    (bundle / "model-metadata.yaml").write_text("name: quick\ntype: inference\n")  # serve needs no target
    stop = threading.Event()
    started: list[Any] = []
    config = TestLocalConfig(bundle, runtime="process", url_prefix="/m", startup_timeout=10)
    watch = Watch(config, Events(), stop, on_server=started.append, serve_only=True)
    served: list[dict[str, Any]] = []

    warm: list[str | None] = []  # what `cmkit predict` would find after each change

    def on_ready(serving: Serving) -> None:
        served.append(serving.to_dict())
        found = find_warm_server(bundle, watch.settings.contract)
        warm.append(found.url + "/" if found else None)
        if len(served) == 1:
            edit(bundle / "behaviour.txt", "crash_at_start\n")
        elif len(served) == 2:
            edit(bundle / "behaviour.txt", "good\n")
        else:
            stop.set()

    run_watch(lambda: watch.serve(on_ready, pytest.fail), stop)

    first, crashed, back = served
    assert first["ready"] and first["url"].endswith("/m/") and first["watch"]["action"] == STARTED
    assert crashed["watch"]["action"] == RESTARTED and crashed["watch"]["changed"] == ["behaviour.txt"]
    assert not crashed["ready"] and "exited with code 3" in crashed["message"]
    assert "cannot load the model" in crashed["message"]
    assert back["ready"] and back["url"] == first["url"] and back["message"] is None
    assert back["watch"]["secondsSinceSave"] > 0 and "total" not in back["watch"]["durations"]
    assert len(started) == 3  # serve streams the logs of each server started
    assert warm == [first["url"], None, back["url"]]  # a server that does not answer is not offered
    assert find_warm_server(bundle, watch.settings.contract) is None  # the note went with the watch


def test_a_server_that_cannot_start_is_a_failed_run_not_an_error(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    (bundle / "start_server.sh").chmod(0o644)
    stop = threading.Event()
    watch = Watch(TestLocalConfig(bundle, runtime="process"), Events(), stop)
    try:
        run = watch.first_run()
    finally:
        stop.set()
        watch.live.close()
    assert run.action == STARTED and statuses(run)["longRunningService"] == "failed"
    assert run.report.results["longRunningService"].message.startswith("start_server.sh could not be started")
    assert run.to_dict()["details"]["runtime"] == "process"


def test_applied_details_merge_the_start_and_the_reload() -> None:
    applied = Applied(RESTARTED, durations={"reload": 0.25}, reloaded_workers=True)
    details = ReportDetails(durations=applied.all_durations(), start=applied.start, reloaded_workers=True)
    assert details.to_dict() == {"durations": {"reload": 0.25}, "reloadedWorkers": True}
    rebuilt = Applied(RESTARTED, StartInfo("docker", build_seconds=1.5), durations={"reload": 0.25})
    assert rebuilt.all_durations() == {"build": 1.5, "reload": 0.25}


def test_a_change_describes_many_files_briefly() -> None:
    change = Change(changed=("a", "b", "c", "d", "e"), environment=True)
    assert change.describe() == "a, b, c, d and 2 more"
    assert Change().describe() == "nothing"
    assert change.to_dict() == {"changed": ["a", "b", "c", "d", "e"], "removed": [], "environment": True}


def test_a_model_writing_into_its_own_folder_stops_the_watch_with_a_clear_message(tmp_path: Path) -> None:
    """Issue 27 item 11: a model that wrote into its own folder triggered itself 49-88 times in
    15-25 s, forever. The watch now stops after SELF_TRIGGERED_RUNS such runs in a row, naming
    the files; the user's own edits during the watch (tests above) never count."""
    from cmkit.errors import InputError
    from cmkit.watch import SELF_TRIGGERED_RUNS

    bundle = write_quick_bundle(tmp_path / "bundle")
    start = bundle / "start_server.sh"
    writes = '#!/bin/sh\ndate +%s%N > "$(dirname "$0")/cache.txt"\n'
    start.write_text(start.read_text().replace("#!/bin/sh\n", writes, 1))
    stop = threading.Event()
    watch = Watch(TestLocalConfig(bundle, runtime="process", checks=CHECKS), Events(), stop)
    runs: list[WatchRun] = []
    with pytest.raises(InputError, match=r"the model writes into its own folder \(cache.txt\)") as stopped:
        run_watch(lambda: watch.test_local(runs.append, lambda error: None), stop)
    assert "list these files in .cmkitignore" in str(stopped.value)
    assert len(runs) == SELF_TRIGGERED_RUNS  # the first run and the ones its writes started, then no more
    assert watch.live.server is None


def test_serve_starts_a_new_server_when_the_runtime_parameters_values_change(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    definitions = "runtimeParameterDefinitions:\n  - fieldName: greeting\n    type: string\n"
    (bundle / "model-metadata.yaml").write_text(f"name: quick\ntype: inference\n{definitions}")
    values = tmp_path / "elsewhere" / "values.yaml"  # outside the bundle: only the input watch sees it
    values.parent.mkdir()
    values.write_text("greeting: hello\n")
    stop = threading.Event()
    started: list[Any] = []
    config = TestLocalConfig(bundle, runtime="process", startup_timeout=10, runtime_params_file=values)
    watch = Watch(config, Events(), stop, on_server=started.append, serve_only=True)
    served: list[dict[str, Any]] = []
    environs: list[bytes] = []  # what each server was started with, read while it runs

    def on_ready(serving: Serving) -> None:
        served.append(serving.to_dict())
        environs.append(Path(f"/proc/{started[-1].process.pid}/environ").read_bytes())
        if len(served) == 1:
            edit(values, "greeting: bonjour\n")
        else:
            stop.set()

    run_watch(lambda: watch.serve(on_ready, pytest.fail), stop)

    first, changed = served
    assert changed["ready"] and changed["url"] == first["url"]
    assert changed["watch"]["action"] == NEW_SERVER and changed["watch"]["inputs"] == [str(values.resolve())]
    assert len(started) == 2
    assert b"hello" in environs[0] and b"bonjour" not in environs[0]
    assert b"MLOPS_RUNTIME_PARAM_greeting=" in environs[1] and b"bonjour" in environs[1]


def test_a_change_carries_the_inputs_it_touched() -> None:
    first, later = Change(inputs=("/v/a.yaml",)), Change(changed=("custom.py",), inputs=("/v/b.yaml",))
    assert first.then(later).inputs == ("/v/a.yaml", "/v/b.yaml")
    assert first.describe() == "/v/a.yaml" and Change().to_dict().get("inputs") is None
