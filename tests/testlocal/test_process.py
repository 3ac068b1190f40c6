"""test-local with the process runtime: real gunicorn servers started from real start_server.sh files."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.checks.results import ERROR_CHECK, LONG_RUNNING_SERVICE, NULL_VALUE_IMPUTATION, SEED_CHECKS, SIDE_EFFECTS
from cmkit.cli import main
from cmkit.testlocal import TestLocalConfig, run_test_local
from tests.conftest import CMKIT_COMMAND
from tests.support.bundles import write_flask_bundle

pytestmark = pytest.mark.slow


def run(bundle: Path, **options: object) -> dict[str, object]:
    options = {"startup_timeout": 30, **options}
    config = TestLocalConfig(bundle=bundle, runtime="process", **options)  # type: ignore[arg-type]
    return run_test_local(config).to_dict()


def statuses(document: dict[str, object]) -> dict[str, str]:
    """The seed's four checks (the three later ones, off by default, are tests/checks/test_later_checks.py's)."""
    return {
        name: entry["status"]
        for name, entry in document["testingStatus"].items()  # type: ignore[union-attr]
        if name in SEED_CHECKS
    }


@pytest.mark.parametrize("target", ["regression", "binary", "multiclass"])
def test_good_bundles_succeed(tmp_path: Path, target: str) -> None:
    document = run(write_flask_bundle(tmp_path, target=target))
    assert document["overallStatus"] == "succeeded", document["testingStatus"]
    assert set(statuses(document).values()) == {"succeeded"}
    details = document["details"]
    assert details["runtime"] == "process"  # type: ignore[index]
    assert details["checks"][SIDE_EFFECTS]["rowsCompared"] == 60  # type: ignore[index]


@pytest.mark.parametrize(
    ("behaviour", "target", "check", "status", "fragment"),
    [
        ("nan_output", "regression", ERROR_CHECK, "failed", "not valid JSON"),
        ("wrong_count", "regression", ERROR_CHECK, "failed", "59 predictions for 60 rows"),
        ("bad_probabilities", "binary", ERROR_CHECK, "failed", "probabilities sum to"),
        ("batch_dependent", "regression", SIDE_EFFECTS, "warning", "rows differ when predicted alone"),
        ("stateful", "regression", SIDE_EFFECTS, "warning", "rows differ when predicted alone"),
    ],
)
def test_each_misbehaviour_is_reported_by_its_check(
    tmp_path: Path, behaviour: str, target: str, check: str, status: str, fragment: str
) -> None:
    document = run(write_flask_bundle(tmp_path, behaviour, target))
    found = document["testingStatus"][check]  # type: ignore[index]
    assert found["status"] == status and fragment in found["message"], document["testingStatus"]
    others = {name: s for name, s in statuses(document).items() if name not in (check, LONG_RUNNING_SERVICE)}
    if check == ERROR_CHECK:
        assert set(others.values()) == {"aborted"}
    else:
        assert set(others.values()) == {"succeeded"}
    assert statuses(document)[LONG_RUNNING_SERVICE] == "succeeded"


def test_null_column_crash_names_the_column(tmp_path: Path) -> None:
    document = run(write_flask_bundle(tmp_path, "null_crash", nulls=False))
    result = document["testingStatus"][NULL_VALUE_IMPUTATION]  # type: ignore[index]
    assert result["status"] == "warning"
    assert "1 of 3 columns fail when entirely null: 'a': HTTP 500: column a is entirely null" in result["message"]
    assert document["overallStatus"] == "warning"
    failing = document["details"]["checks"][NULL_VALUE_IMPUTATION]["failingColumns"]  # type: ignore[index]
    assert failing == [{"column": "a", "reason": "HTTP 500: column a is entirely null"}]
    strict = run(
        write_flask_bundle(tmp_path / "strict", "null_crash", nulls=False), checks={NULL_VALUE_IMPUTATION: "fail"}
    )
    assert strict["overallStatus"] == "failed"


def test_server_ignoring_url_prefix_fails_long_running_service(tmp_path: Path) -> None:
    script = '#!/bin/sh\nURL_PREFIX= exec gunicorn --bind "0.0.0.0:${PORT}" app:app\n'
    document = run(write_flask_bundle(tmp_path, start_script=script))
    result = document["testingStatus"][LONG_RUNNING_SERVICE]  # type: ignore[index]
    assert result["status"] == "failed" and "keeps answering HTTP 404" in result["message"]
    assert {s for n, s in statuses(document).items() if n != LONG_RUNNING_SERVICE} == {"aborted"}


def test_server_exiting_at_start_fails_at_once_with_its_log(tmp_path: Path) -> None:
    script = "#!/bin/sh\necho 'cannot find model.pkl' >&2\nexit 3\n"
    started = time.monotonic()
    document = run(write_flask_bundle(tmp_path, start_script=script), startup_timeout=60)
    result = document["testingStatus"][LONG_RUNNING_SERVICE]  # type: ignore[index]
    assert result["status"] == "failed"
    assert "exited with code 3" in result["message"] and "cannot find model.pkl" in result["message"]
    assert time.monotonic() - started < 30, "an exited server must not wait for the startup timeout"


def test_start_script_that_cannot_run(tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path)
    (bundle / "start_server.sh").chmod(0o644)
    document = run(bundle)
    assert "could not be started: Permission denied" in document["testingStatus"][LONG_RUNNING_SERVICE]["message"]  # type: ignore[index]
    # Every other check is aborted, and the report still says what the start found out.
    others = {entry["status"] for name, entry in document["testingStatus"].items() if name != LONG_RUNNING_SERVICE}  # type: ignore[union-attr]
    assert others == {"aborted"}
    details = document["details"]
    assert details["runtime"] == "process" and set(details["durations"]) == {"total"}  # type: ignore[index]
    assert {"runId", "urlPrefix"} <= set(details) and "image" not in details and "server" not in details  # type: ignore[operator]


def test_stop_is_the_whole_clean_up_and_keeps_the_log_text(tmp_path: Path) -> None:
    from cmkit.checks.readiness import wait_ready
    from cmkit.engine.process import ProcessServer
    from cmkit.events import Events
    from cmkit.testlocal import resolve_config, start_bundle

    bundle = write_flask_bundle(tmp_path)
    config = resolve_config(TestLocalConfig(bundle=bundle, runtime="process", maximum_memory=2**30))
    started = start_bundle(config.server, Events(), "stop-test")
    server = started.server
    assert isinstance(server, ProcessServer) and server.host_port == server.port
    assert started.start.runtime == "process" and any("--maximum-memory" in w for w in started.start.warnings)
    try:
        assert wait_ready(server, 30).status == "succeeded"
    finally:
        server.stop()
    assert not server.log_path.exists(), "the server's log file is the run's: stop() removes it"
    assert server.logs(None), "its text stays readable for the report"
    server.stop()  # idempotent
    assert server.exit_info() is not None and server.leftovers() is not None


def test_no_dataset_skips_prediction_checks(tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path)
    (bundle / "model-metadata.yaml").write_text("name: m\ntargetType: regression\n")
    document = run(bundle)
    assert statuses(document) == {
        LONG_RUNNING_SERVICE: "succeeded",
        ERROR_CHECK: "skipped",
        NULL_VALUE_IMPUTATION: "skipped",
        SIDE_EFFECTS: "skipped",
    }
    assert "no dataset" in document["testingStatus"][ERROR_CHECK]["message"]  # type: ignore[index]


def test_skip_configuration_and_side_effects_rows(tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path, "batch_dependent")
    document = run(bundle, checks={ERROR_CHECK: "skip", SIDE_EFFECTS: "fail"}, side_effects_rows=7)
    assert statuses(document)[ERROR_CHECK] == "skipped"
    assert statuses(document)[SIDE_EFFECTS] == "failed"
    assert document["details"]["checks"][SIDE_EFFECTS]["rowsCompared"] == 7  # type: ignore[index]


def test_server_is_stopped_after_the_run(tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path)
    report = run_test_local(TestLocalConfig(bundle=bundle, runtime="process"))
    pid = int(report.to_dict()["details"]["server"]["pid"])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_cli_json_junit_and_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write_flask_bundle(tmp_path / "good")
    junit = tmp_path / "report.xml"
    result = runner.invoke(main, ["test-local", str(good), "--runtime", "process", "--json", "--junit", str(junit)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["overallStatus"] == "succeeded"
    assert junit.read_text().count("<testcase") == 7  # one per check, skipped ones included
    warn_bundle = write_flask_bundle(tmp_path / "warn", "stateful")
    warn = runner.invoke(main, ["test-local", str(warn_bundle), "--runtime", "process"])
    assert warn.exit_code == 0 and "warning" in warn.stderr
    bad_bundle = write_flask_bundle(tmp_path / "bad", "nan_output")
    bad = runner.invoke(main, ["test-local", str(bad_bundle), "--runtime", "process"])
    assert bad.exit_code == 1
    missing_csv = str(tmp_path / "x.csv")
    missing = runner.invoke(main, ["test-local", str(good), "--runtime", "process", "--dataset", missing_csv])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    flag = runner.invoke(main, ["test-local", str(good), "--check", "sideEffects=sometimes"])
    assert flag.exit_code == 2


def test_serve_prints_the_url_serves_and_cleans_up_on_ctrl_c(tmp_path: Path) -> None:
    import signal
    import subprocess

    import requests

    bundle = write_flask_bundle(tmp_path)
    process = subprocess.Popen(
        [CMKIT_COMMAND, "serve", str(bundle), "--runtime", "process", "--json", "--url-prefix", "/a/b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        assert info["url"].endswith("/a/b/") and info["urlPrefix"] == "/a/b"
        answer = requests.post(info["url"] + "predict_no_state/", json={"X": {"a": [1.0], "b": [2], "when": ["x"]}})
        assert answer.json() == {"predictions": [2.0]}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(int(info["pid"]), 0)


# A model that "loads" for a minute: it writes its pid and its child's, then waits.
LOADING = """\
#!/bin/sh
sleep 120 &
echo "$$ $!" > "$(dirname "$0")/pids"
wait
"""


def test_a_run_killed_while_its_model_loads_is_swept_by_the_next(tmp_path: Path) -> None:
    """Issue 27 item 8: SIGKILL of test-local while the model loaded left its processes forever."""
    import signal
    import subprocess
    import sys

    from tests.support.bundles import metadata_yaml, write_static_bundle

    loading = write_static_bundle(tmp_path / "loading", LOADING, metadata=metadata_yaml("loading"))
    command = [sys.executable, "-m", "cmkit", "test-local", "--runtime", "process", "--startup-timeout", "100"]
    temporary = tmp_path / "tmp"  # where both runs keep their server logs
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary)}
    first = subprocess.Popen([*command, str(loading)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    pids_file = loading / "pids"
    deadline = time.monotonic() + 60
    while not pids_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    pids = [int(p) for p in pids_file.read_text().split()]
    try:
        assert all(Path(f"/proc/{pid}").exists() for pid in pids)  # left behind by the kill
        assert [path.name.startswith(f"cmkit-server-{first.pid}.") for path in temporary.iterdir()] == [True]
        other = write_static_bundle(tmp_path / "other", "#!/bin/sh\nexit 3\n", metadata=metadata_yaml("other"))
        next_run = subprocess.run([*command, str(other)], capture_output=True, timeout=60, env=env)
        assert next_run.returncode == 1, next_run.stderr
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
        assert list(temporary.iterdir()) == []  # the killed run's log too, and the next run's own
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
