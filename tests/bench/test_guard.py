"""The bench's guard and its generated docs sections, on files (the bench itself runs in test_bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import guard
from bench.common import Row, write_section

FIGURE = "template model: server CPU per single-row request"


def test_only_a_drop_of_more_than_a_quarter_fails() -> None:
    baseline = {FIGURE: 4.0, "other": 2.0}
    verdicts = guard.compare(baseline, {FIGURE: 3.1, "new figure": 9.0})
    assert [(v.figure, v.dropped) for v in verdicts] == [(FIGURE, False)]  # -22 %: noise
    (dropped,) = guard.compare(baseline, {FIGURE: 2.9})  # -28 %: issue 23's kind of drop
    assert dropped.dropped and "DROPPED" in dropped.line() and "-28%" in dropped.line()
    assert not guard.compare(baseline, {FIGURE: 6.0})[0].dropped  # faster never fails


def test_the_committed_baseline_holds_the_server_comparisons_leads() -> None:
    leads = guard.read_baseline()
    for model in ("template model", "sklearn sample (diabetes)", "DRUM hooks (template model)"):
        assert leads[f"{model}: server CPU per single-row request"] > 1


def test_write_baseline_merges_and_the_report_names_new_figures(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    assert guard.read_baseline(path) == {}
    guard.write_baseline({FIGURE: 4.0, "other": 2.0}, "first", path)
    guard.write_baseline({FIGURE: 3.5}, "second", path)
    assert json.loads(path.read_text()) == {"note": "second", "leads": {"other": 2.0, FIGURE: 3.5}}
    report = guard.report(guard.compare(guard.read_baseline(path), {FIGURE: 3.0}), ["new figure"])
    assert "ok: " + FIGURE in report and "new, not in the baseline: new figure" in report


def test_a_rows_lead_is_not_part_of_the_table() -> None:
    row = Row("f", "1 us", "4 us", "0.25x", "<= 0.33x", lead=4.0)
    assert row.markdown() == "| f | 1 us | 4 us | 0.25x | <= 0.33x |"


def test_a_runs_section_is_replaced_by_its_next_run_and_others_are_kept(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nprose\n")
    write_section(docs, "bench/run --only server", "| first |")
    write_section(docs, "bench/run", "| full |")
    write_section(docs, "bench/run --only server", "| second |\n")
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nprose\n\n### `bench/run --only server`\n")
    assert "| second |" in text and "| first |" not in text and "| full |" in text
    assert text.count("<!-- generated: bench/run --only server -->") == 1
