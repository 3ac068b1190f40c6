"""The checks of an unstructured model: the test file as one body, the answer judged by its Content-Type.

Run against cmkit-runtime's app on a loopback socket (the same HTTP the engines' servers get);
tests/testlocal/test_unstructured_local.py runs them through test-local in both runtimes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.checks.client import RawAnswer
from cmkit.checks.context import CheckOptions
from cmkit.checks.results import CHECK_NAMES, DEFAULT_CONFIGURATION, ERROR_CHECK, LONG_RUNNING_SERVICE
from cmkit.checks.suite import run_checks
from cmkit.checks.unstructured import NOT_APPLICABLE, RawDataset, answer_problem, content_type_of, load_raw
from cmkit.errors import InputError
from cmkit.events import RecordingEvents
from cmkit.scaffold import SAMPLE_BODY
from cmkit_runtime.target import Target
from tests.checks.test_seven_checks import InProcessServer
from tests.support.bundles import write_runtime_bundle

# score_unstructured bodies that break the answer's contract, each with errorCheck's one line.
BROKEN = {
    "says JSON, is not": (
        'return "not json", {"mimetype": "application/json"}',
        "the answer says application/json; charset=utf-8 but is not JSON: Expecting value",
    ),
    "bytes not in its charset": (
        'return b"\\xff\\xfe", {"mimetype": "text/plain", "charset": "utf-8"}',
        "the answer says text/plain; charset=utf-8 but its bytes are not utf-8",
    ),
    "returns an int": ("return 10", "HTTP 500: score_unstructured() returned int; return str, bytes, None or (data"),
    "raises": ('raise ValueError("no text")', "HTTP 500: score_unstructured() raised ValueError: no text"),
}


def _bundle(root: Path, body: str) -> Path:
    custom = "def load_model(code_dir):\n    return None\n\n\n"
    custom += f"def score_unstructured(model, data, query, **kwargs):\n    {body}\n"
    return write_runtime_bundle(root, "unstructured", "u", custom)


def _run(bundle: Path, dataset: RawDataset | None) -> dict[str, tuple[str, str]]:
    server = InProcessServer(bundle)
    try:
        options = CheckOptions(configuration=dict(DEFAULT_CONFIGURATION))
        results = run_checks(server, dataset, Target("unstructured"), options, RecordingEvents())
    finally:
        server.stop()
    assert list(results) == list(CHECK_NAMES)
    return {name: (result.status, result.message) for name, result in results.items()}


def test_init_s_example_passes_with_its_sample_sent_whole(tmp_path: Path) -> None:
    from cmkit.scaffold import init_bundle, make_spec

    bundle = tmp_path / "triage"
    init_bundle(bundle, make_spec("unstructured", "triage"))
    raw = load_raw(bundle / SAMPLE_BODY)
    results = _run(bundle, raw)
    assert results[LONG_RUNNING_SERVICE][0] == results[ERROR_CHECK][0] == "succeeded"
    assert results[ERROR_CHECK][1].startswith(f"{len(raw.body)} bytes (text/plain; charset=utf-8) answered with")
    assert results[ERROR_CHECK][1].endswith("(application/json; charset=utf-8)")
    for name in CHECK_NAMES[2:]:  # no rows: the row-wise and load checks do not apply
        assert results[name] == ("skipped", NOT_APPLICABLE)


def test_without_a_file_the_error_check_is_skipped_not_failed(tmp_path: Path) -> None:
    results = _run(_bundle(tmp_path / "u", 'return "ok"'), None)
    assert results[LONG_RUNNING_SERVICE][0] == "succeeded"
    assert results[ERROR_CHECK] == ("skipped", "no test file: pass --dataset FILE or set validation.input")


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_answer_fails_the_error_check_with_one_line(case: str, tmp_path: Path) -> None:
    body, message = BROKEN[case]
    results = _run(_bundle(tmp_path / "u", body), RawDataset(tmp_path / "x.txt", b"some text", "text/plain"))
    status, shown = results[ERROR_CHECK]
    assert status == "failed" and shown.startswith(message) and "\n" not in shown, shown
    assert results[LONG_RUNNING_SERVICE][0] == "succeeded"


def test_the_judge_of_one_answer() -> None:
    assert answer_problem(RawAnswer(200, "application/octet-stream", b"\xff")) is None  # any bytes
    assert answer_problem(RawAnswer(200, "image/png", b"\x89PNG")) is None
    assert answer_problem(RawAnswer(200, "text/plain; charset=latin-1", "é".encode("latin-1"))) is None
    assert answer_problem(RawAnswer(200, None, b"")) is None
    assert answer_problem(RawAnswer(200, None, b"x")) == "the answer has no Content-Type"
    assert answer_problem(RawAnswer(404, "text/html", b"<h1>nope</h1>")) == "HTTP 404: <h1>nope</h1>"
    assert answer_problem(RawAnswer(0, None, b"request failed: timeout")) == "request failed: timeout"
    assert answer_problem(RawAnswer(200, "text/plain; charset=bogus", b"x")) is not None


def test_a_file_is_sent_with_the_type_its_extension_names(tmp_path: Path) -> None:
    assert content_type_of(Path("a.txt")) == "text/plain; charset=utf-8"
    assert content_type_of(Path("a.json")) == "application/json; charset=utf-8"
    assert content_type_of(Path("a.png")) == "image/png"
    assert content_type_of(Path("a.weird-extension")) == "application/octet-stream"
    with pytest.raises(InputError, match="not a file"):
        load_raw(tmp_path)


def test_test_local_loads_an_unstructured_model_s_file_whole_and_refuses_feature_impact(tmp_path: Path) -> None:
    from cmkit.scaffold import init_bundle, make_spec
    from cmkit.testlocal import TestLocalConfig, load_datasets, resolve_config

    bundle = tmp_path / "triage"
    init_bundle(bundle, make_spec("unstructured", "triage"))
    run = resolve_config(TestLocalConfig(bundle=bundle, runtime="process"))
    raw, expected = load_datasets(run)
    assert isinstance(raw, RawDataset) and expected is None
    assert raw.body == (bundle / SAMPLE_BODY).read_bytes() and raw.rows == 1
    with pytest.raises(InputError, match="feature impact permutes the columns of rows"):
        resolve_config(TestLocalConfig(bundle=bundle, runtime="process", feature_impact=True))
