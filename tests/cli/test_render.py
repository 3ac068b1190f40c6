"""cmkit/render.py: what a user reads on stderr for each command's result (fast tier).

Each rendering is fed the real result objects the core builds (or, for the commands whose
result is still a document, their `to_dict()`) and read back from a real rich console that is
not a terminal, as in CI logs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from cmkit import render
from cmkit.api.resources import ModelTest, ModelVersion
from cmkit.checks.parameters import CheckParameters
from cmkit.checks.protocols import DRUM, PREDICT_NO_STATE, PROTOCOLS, Detected
from cmkit.checks.results import ABORTED, FAILED, SUCCEEDED, WARNING, CheckResult, not_started
from cmkit.emulator.server import EmulatorReady
from cmkit.environments import EnvironmentPushResult
from cmkit.events import BYTES, WAITING
from cmkit.featureimpact import FeatureImpactItem, FeatureImpactOutcome, FeatureImpactResult
from cmkit.prune import Pruned, PruneOptions, PruneResult
from cmkit.push import ManifestCache, PushOptions, PushResult, plan_push, prepare_bundle
from cmkit.report import ReportDetails, ServerChecks, StartInfo, TestReport
from cmkit.serve import ServeSession
from cmkit.target import TargetType
from cmkit.watch import Change, Serving, WatchRun
from tests.support.bundles import write_quick_bundle

Shown = Callable[[], str]


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Iterator[Shown]:
    """render's console writes into a buffer (wide, not a terminal); the fixture reads it back."""
    buffer = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=buffer, width=200, highlight=False, soft_wrap=True))
    yield buffer.getvalue


def report(**results: CheckResult) -> TestReport:
    checks = {name: "fail" for name in results}
    return TestReport(results, checks, ReportDetails(log_tail="Traceback...\nValueError: broken on purpose"))


# --- test-local ---------------------------------------------------------------------------------


def test_the_report_table_shows_each_check_its_level_and_message(shown: Shown) -> None:
    protocol = {"name": "predict_no_state", "how": "detected"}
    results = {
        "longRunningService": CheckResult(SUCCEEDED, "ready in 0.1s", {"protocol": protocol}),
        "errorCheck": CheckResult(FAILED, "HTTP 500: [broken] on purpose"),
    }
    log = "Traceback...\nValueError: broken on purpose"
    checked = ServerChecks(results, None, CheckParameters(), {}, None, log)
    start = StartInfo("process", warnings=("the process runtime cannot enforce --maximum-memory",))
    failed = TestReport(results, {name: "fail" for name in results}, ReportDetails(start=start, checked=checked))
    render.test_report(failed.table())
    text = shown()
    assert "errorCheck" in text and "HTTP 500: [broken] on purpose" in text  # markup in messages is not eaten
    assert "overall: failed" in text
    assert "protocol: predict_no_state (detected)" in text
    assert "warning: the process runtime cannot enforce --maximum-memory" in text
    assert "last server log lines:" in text and "ValueError: broken on purpose" in text


def test_a_passing_report_shows_no_server_log(shown: Shown) -> None:
    render.test_report(report(longRunningService=CheckResult(SUCCEEDED, "ready")).table())
    assert "overall: succeeded" in shown() and "last server log lines" not in shown()


def test_feature_impact_ranks_features_or_says_why_it_did_not_run(shown: Shown) -> None:
    result = FeatureImpactResult(
        "RMSE",
        0.25,
        300,
        None,
        [FeatureImpactItem("x2", 3.5, 1.0), FeatureImpactItem("x7", 2.0, 0.571)],
        seconds=1.5,
    )
    render.feature_impact(FeatureImpactOutcome("succeeded", "", result))
    lines = shown().splitlines()
    assert "feature impact (RMSE, 300 rows)" in lines[0]
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "│" in line]
    bars = ["\u2588" * 20, "\u2588" * 11 + "\u258d"]  # the bar scales with the normalised impact
    assert cells == [["1", "x2", "1.000", bars[0], "3.5"], ["2", "x7", "0.571", bars[1], "2"]]
    assert "baseline RMSE 0.25, 1.50 s" in shown()

    render.feature_impact(FeatureImpactOutcome("skipped", "not run: errorCheck failed"))
    assert "feature impact: skipped not run: errorCheck failed" in shown()


def test_console_events_print_stages_checks_and_quarter_lines_off_a_terminal(shown: Shown) -> None:
    with render.ConsoleEvents(show_build_output=False) as events:
        events.stage("building the image")
        events.log("Step 1/3 : FROM python")  # hidden: show_build_output is off
        events.check("errorCheck", CheckResult(WARNING, "slow\nsecond line"))
        events.progress("waiting for the build", 1, 0, WAITING)
        events.progress("uploading", 0, 0, BYTES)  # an unknown total prints nothing
        for done in (0, 10, 512, 1024, 2048):
            events.progress("uploading", done, 2048, BYTES)
    text = shown()
    assert "> building the image" in text and "Step 1/3" not in text
    assert "errorCheck: warning slow" in text and "second line" not in text
    assert "waiting for the build" not in text
    assert [line.strip() for line in text.splitlines() if line.strip().startswith("uploading")] == [
        "uploading: 0 B of 2.0 KiB (0%)",
        "uploading: 512 B of 2.0 KiB (25%)",
        "uploading: 1.0 KiB of 2.0 KiB (50%)",
        "uploading: 2.0 KiB of 2.0 KiB (100%)",
    ]


def test_json_documents_go_to_stdout_whole_or_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    render.emit_json({"path": Path("/x"), "n": 1})
    render.emit_json_line({"ready": True})
    render.emit_json({"one": [1, 2]}, one_line=True)
    out = capsys.readouterr().out
    documents = out.split("\n}\n")
    assert json.loads(documents[0] + "}") == {"path": "/x", "n": 1}
    assert documents[1].splitlines() == ['{"ready": true}', '{"one": [1, 2]}']


def test_serving_says_where_and_how_to_predict(shown: Shown) -> None:
    server = SimpleNamespace(url="http://127.0.0.1:9000/m", url_prefix="/m")
    session = ServeSession(server, Detected(PROTOCOLS[DRUM], "detected"))  # type: ignore[arg-type]
    render.serving(session)
    text = shown()
    assert "serving http://127.0.0.1:9000/m/  (URL_PREFIX=/m)" in text
    assert "protocol: drum: POST http://127.0.0.1:9000/m/predict/ with the dataset as CSV (text/csv)" in text
    assert "try: curl http://127.0.0.1:9000/m/" in text


def test_serving_an_unstructured_model_names_its_route_and_a_curl(shown: Shown) -> None:
    server = SimpleNamespace(url="http://127.0.0.1:9000/m", url_prefix="/m")
    detected = Detected(PROTOCOLS[PREDICT_NO_STATE], "detected")
    session = ServeSession(server, detected, TargetType.UNSTRUCTURED)  # type: ignore[arg-type]
    render.serving(session)
    text = shown()
    assert "unstructured: POST http://127.0.0.1:9000/m/predictUnstructured/ with any body" in text
    assert "try: curl -s http://127.0.0.1:9000/m/predictUnstructured/ -H 'Content-Type: text/plain'" in text
    assert "predict_no_state" not in text


def test_serving_a_transform_names_its_route_and_a_curl(shown: Shown) -> None:
    server = SimpleNamespace(url="http://127.0.0.1:9000/m", url_prefix="/m")
    detected = Detected(PROTOCOLS[PREDICT_NO_STATE], "detected")
    render.serving(ServeSession(server, detected, TargetType.TRANSFORM))  # type: ignore[arg-type]
    text = shown()
    assert "transform: POST http://127.0.0.1:9000/m/transform/ with a CSV under the form key X" in text
    assert "try: curl -s http://127.0.0.1:9000/m/transform/ -F X=@FILE.csv" in text
    assert "sparse: curl -s http://127.0.0.1:9000/m/transform/ -F X=@FILE.mtx -F X.colnames=@NAMES.txt" in text
    assert "predict_no_state" not in text


def test_serving_a_chat_model_shows_curl_and_the_openai_client(shown: Shown) -> None:
    server = SimpleNamespace(url="http://127.0.0.1:9000/m", url_prefix="/m")
    session = ServeSession(server, Detected(PROTOCOLS[PREDICT_NO_STATE], "detected"), TargetType.TEXT_GENERATION)  # type: ignore[arg-type]
    session.chat = True
    render.serving(session)
    text = shown()
    assert "chat: OpenAI's API at http://127.0.0.1:9000/m/ (POST chat/completions, GET models)" in text
    assert "curl -s http://127.0.0.1:9000/m/chat/completions -H 'Content-Type: application/json'" in text
    assert 'OpenAI(base_url="http://127.0.0.1:9000/m/", api_key="local")' in text


# --- push, env push, prune, init, emulator -----------------------------------------------------


def dry_run_plan(tmp_path: Path) -> PushResult:
    """A dry run's plan for a new model, as push plans it without credentials."""
    bundle = write_quick_bundle(tmp_path / "bundle")
    options = PushOptions(bundle=bundle, environment_id="env1")
    return PushResult(plan_push(None, prepare_bundle(bundle), options, ManifestCache(tmp_path / "c")), dry_run=True)


def test_a_dry_run_lists_what_would_be_created_and_uploaded(shown: Shown, tmp_path: Path) -> None:
    result = dry_run_plan(tmp_path)
    render.push_result(result)
    text = shown()
    assert "dry run: nothing was sent" in text
    assert "would create model:" in text and '"targetType": "Regression"' in text
    assert f"version: new-version ({result.plan.reason})" in text
    sizes = {f.path: f.size for f in result.plan.upload}
    assert f"  upload server.py  {render._human_bytes(sizes['server.py'])}" in text
    assert "dependencies: none" in text


def test_a_push_names_the_version_its_build_and_test(shown: Shown, tmp_path: Path) -> None:
    plan = dry_run_plan(tmp_path).plan
    test = report(errorCheck=CheckResult(FAILED, "HTTP 500")).to_dict()
    result = PushResult(
        plan,
        model_id="m1",
        model_url="https://example.invalid/model/m1",
        version=ModelVersion("v2", "v2.0"),
        uploaded_files=3,
        uploaded_bytes=3 * 1024 * 1024,
        build_status="failed",
        build_log_tail="ERROR: No matching distribution for nosuchpackage",
        test=ModelTest.from_api(test),
    )
    render.push_result(result)
    text = shown()
    assert "dependency build failed; last log lines:" in text and "nosuchpackage" in text
    assert "overall: failed" in text  # the remote test's table
    assert "model m1 version v2 (v2.0): 3 file(s), 3.0 MiB; build failed; https://example.invalid/model/m1" in text


def test_a_failed_dependency_build_is_one_diagnosis_in_the_text_and_in_json(shown: Shown, tmp_path: Path) -> None:
    log = (
        "Step 5/8 : RUN pip install -r requirements.txt\n"
        "ERROR: Could not find a version that satisfies the requirement scikit-learn==99.0.0 "
        "(from versions: 1.5.0, 1.6.0)\n"
        "ERROR: No matching distribution found for scikit-learn==99.0.0"
    )
    result = PushResult(dry_run_plan(tmp_path).plan, build_status="failed", build_log_tail=log)
    found = result.diagnosis()
    assert found is not None and result.to_dict()["diagnosis"] == found.to_dict()
    render.push_result(result)
    text = shown()
    assert "dependency build failed" in text and "last log lines" not in text
    assert found.line() in text.replace("\n", " ") or found.problem in text
    assert PushResult(dry_run_plan(tmp_path / "other").plan).to_dict()["diagnosis"] is None


def test_env_push_says_uploaded_or_up_to_date_and_shows_a_failed_build(shown: Shown) -> None:
    render.environment_result(EnvironmentPushResult("e1", "ev1", True, False, "failed", "no base image", 2048))
    render.environment_result(EnvironmentPushResult("e1", "ev1", False, True, "success"))
    text = shown()
    assert "environment build failed; last log lines:\nno base image" in text
    assert "environment e1 version ev1: uploaded 2.0 KiB; build failed" in text
    assert "environment e1 version ev1: up to date; build success" in text


def test_prune_lists_each_object_and_counts_them(shown: Shown) -> None:
    objects = [
        Pruned("container", "c" * 64, "cmkit-run", 0.0, "stopped", removed=True),
        Pruned("image", "sha256:" + "a" * 64, "cmkit-code:x", 0.0, "code image", size=5 * 1024**2, kept="in use"),
    ]
    render.prune_result(PruneResult(PruneOptions(dry_run=False), objects))
    text = shown()
    assert "kept: in use" in text and "aaaaaaaaaaaa" in text and "5.0 MiB" in text
    assert "removed 1 container(s), 0 image(s) and 0 cache entries; kept 1" in text

    render.prune_result(PruneResult(PruneOptions(dry_run=True), []))
    assert "would remove 0 container(s), 0 image(s) and 0 cache entries; kept 0" in shown()


def test_prune_fits_80_columns_without_losing_a_column(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=buffer, width=80, highlight=False))
    wheel = "/root/.cache/cmkit/wheels/scikit_learn-1.9.1-cp311-cp311-manylinux_2_28_x86_64.whl"
    objects = [
        Pruned("image", "sha256:" + "a" * 64, "cmkit-code:10ae7748e28d-6da7ec1e9dbf", 0.0, "code image", size=5 << 20),
        Pruned("wheel", wheel, wheel, 0.0, "older than 7d", size=13 << 20, kept="in use"),
    ]
    render.prune_result(PruneResult(PruneOptions(dry_run=True), objects))
    lines = buffer.getvalue().splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in buffer.getvalue()
    assert lines[0].split() == ["action", "kind", "name", "age", "size", "why"]
    assert "aaaaaaaaaaaa" in buffer.getvalue() and "13.0 MiB" in buffer.getvalue()
    assert "/root/.cache/" in buffer.getvalue() and ".whl" in buffer.getvalue()  # the path, folded, not cut


def test_emulator_ready_prints_the_endpoint_token_and_environment(shown: Shown) -> None:
    render.emulator_ready(EmulatorReady("http://127.0.0.1:8080/api/v2", "tok-[1]", "/data", "process", "env1"))
    text = shown()
    assert "cmkit emulator serving http://127.0.0.1:8080/api/v2" in text
    assert "token:       tok-[1]" in text and "environment: env1 (Python 3.11, seeded)" in text


# --- --watch ------------------------------------------------------------------------------------


def watch_run(action: str, change: Change | None, results: dict[str, CheckResult], since: float | None) -> WatchRun:
    run_report = TestReport(
        results,
        {},
        ReportDetails(
            durations={"reload": 0.12, "checks": 0.3, "total": 0.5},
            log_tail="\n".join(f"log {i}" for i in range(30)),
        ),
    )
    return WatchRun(2, action, change, run_report, since)


def test_watch_run_headline_names_the_change_and_the_time_since_the_save(shown: Shown) -> None:
    change = Change(changed=("a.py", "b.py", "c.py", "d.py"), removed=("old.pkl",), environment=True)
    results = not_started(CheckResult(FAILED, "the server did not start: exited with code 1\nlast lines"))
    render.watch_run(watch_run("restarted", change, results, 0.75))
    text = shown()
    assert "a.py, b.py, c.py and 3 more: restarted (reload 0.12s, checks 0.30s)" in text
    assert "longRunningService: failed the server did not start: exited with code 1" in text
    assert f"errorCheck: {ABORTED} not run: longRunningService failed" in text
    assert "failed, 0.75s after the save" in text
    assert "log 29" in text and "log 17" not in text  # the log's last WATCH_LOG_LINES lines


def test_the_first_watch_run_says_started_and_its_total(shown: Shown) -> None:
    render.watching("/models/m")
    render.watch_run(watch_run("started", None, {"errorCheck": CheckResult(SUCCEEDED, "")}, None))
    text = shown()
    assert "> watching /models/m (Ctrl-C stops and removes the server)" in text
    assert "started\n" in text and "succeeded, in 0.5s" in text and "log 29" not in text


def test_serve_watch_says_serving_again_or_why_not(shown: Shown) -> None:
    edit = Change(changed=("custom.py",))
    url = "http://127.0.0.1:9/m/"
    render.watch_serving(Serving(url, "/m", None, "reloaded", edit, 0.4, {"reload": 0.2}))
    down = "the server exited with code 1"
    render.watch_serving(Serving(None, None, down, "restarted", edit, None, {"reload": 0.2}))
    render.watch_serving(Serving(url, "/m", None, "started"))
    render.watch_error(ValueError("model-metadata.yaml:3: bad targetType"))
    text = shown()
    assert "custom.py: reloaded (reload 0.20s): serving http://127.0.0.1:9/m/, 0.40s after the save" in text
    assert "custom.py: restarted (reload 0.20s): not serving\nthe server exited with code 1" in text
    assert "serving http://127.0.0.1:9/m/  (URL_PREFIX=/m)" in text
    assert "error: model-metadata.yaml:3: bad targetType (still watching)" in text


def test_feature_impact_bars_scale_to_the_top_feature() -> None:
    from cmkit.render import impact_bar

    assert impact_bar(1.0) == "\u2588" * 20
    assert impact_bar(0.5) == "\u2588" * 10
    assert impact_bar(0.984) == "\u2588" * 19 + "\u258b"  # 157 eighths: 19 full, 5/8
    assert impact_bar(0.0) == impact_bar(-0.2) == ""  # no impact, or the model did better without it


def test_skipped_checks_are_one_line_under_the_table(shown: Shown) -> None:
    skipped = CheckResult("skipped", "skipped by configuration")
    render.test_report(report(performanceCheck=skipped, stabilityCheck=skipped).table())
    text = shown()
    assert "skipped by configuration: performanceCheck, stabilityCheck" in text
    assert "│ performanceCheck" not in text
