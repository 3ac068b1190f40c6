"""`test-local --html` and `push --html`: a model test's report as one self-contained HTML file.

Drawn from the `--json` document (`TestReport.to_dict()`, or push's document with DataRobot's
remote test in it), so a saved report renders the same:
the verdict per check, the diagnosis, performanceCheck's and stabilityCheck's latency
percentiles and histogram, feature impact as bars, the dataset and the environment. Inline
CSS and SVG only: no script, no font, no request to any network, so it opens from a CI
artifact or a pull request as it is.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

STATUS_COLOURS = {
    "succeeded": "#1a7f37",
    "warning": "#9a6700",
    "failed": "#cf222e",
    "skipped": "#6e7781",
    "aborted": "#6e7781",
    "canceled": "#6e7781",
}
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:60rem;color:#1f2328;
padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.75rem 0 .5rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #eaeef2;
vertical-align:top}th{background:#f6f8fa}.status{font-weight:600;white-space:nowrap}
.verdict{display:inline-block;padding:.15rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
.diagnosis{border:1px solid #cf222e;border-left-width:.4rem;border-radius:.3rem;padding:.6rem .9rem;
background:#fff5f5}.diagnosis code{font-weight:600}pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;
font-size:12px;white-space:pre-wrap;word-break:break-word}.muted{color:#6e7781}dl{display:grid;
grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{color:#6e7781}dd{margin:0}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _status(status: str) -> str:
    return f'<span class="status" style="color:{STATUS_COLOURS.get(status, "#1f2328")}">{_e(status)}</span>'


def _checks(document: Mapping[str, Any]) -> str:
    configuration = document.get("configuration") or {}
    diagnosed = bool(document.get("diagnosis"))

    def message(text: str) -> str:  # with a diagnosis, the log's lines are in its box and its file
        return text.splitlines()[0] if diagnosed and text else text

    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(configuration.get(name, ''))}</td><td>{_status(entry.get('status', ''))}"
        f"</td><td>{_e(message(str(entry.get('message', ''))))}</td></tr>"
        for name, entry in (document.get("testingStatus") or {}).items()
    )
    return f"<table><tr><th>check</th><th>level</th><th>status</th><th>message</th></tr>{rows}</table>"


def _diagnosis(found: Mapping[str, Any] | None) -> str:
    if not found:
        return ""
    evidence = "\n".join(str(line) for line in found.get("evidence") or [])
    log = f'<p class="muted">whole log: <code>{_e(found["logFile"])}</code></p>' if found.get("logFile") else ""
    return (
        f'<h2>Diagnosis</h2><div class="diagnosis"><p><code>{_e(found.get("code"))}</code> '
        f"{_e(found.get('message'))}: <strong>{_e(found.get('action'))}</strong></p>"
        + (f"<pre>{_e(evidence)}</pre>" if evidence else "")
        + log
        + "</div>"
    )


def bar_chart(items: Sequence[tuple[str, float]], unit: str = "", width: int = 640) -> str:
    """Horizontal bars, one per (label, value), scaled to the largest value: inline SVG."""
    if not items:
        return ""
    label_width, bar_height, gap = 190, 18, 6
    largest = max((value for _, value in items), default=0.0) or 1.0
    room = width - label_width - 110
    rows = []
    for index, (label, value) in enumerate(items):
        y = index * (bar_height + gap)
        length = max(0.0, value) / largest * room
        rows.append(
            f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end" font-size="12">{_e(label[:28])}</text>'
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="#0969da"/>'
            f'<text x="{label_width + length + 4:.1f}" y="{y + 13}" font-size="12">{value:.3g}{_e(unit)}</text>'
        )
    height = len(items) * (bar_height + gap)
    return f'<svg width="{width}" height="{height}" role="img" viewBox="0 0 {width} {height}">{"".join(rows)}</svg>'


def _load_check(name: str, result: Mapping[str, Any]) -> str:
    latency = result.get("latencyMs") or {}
    if not latency or latency.get("p50") is None:
        return ""
    cells = "".join(f"<td>{_e(latency.get(key))} ms</td>" for key in ("p50", "p95", "p99", "max", "mean"))
    summary = (
        f"<p>{_e(result.get('requests'))} requests, {_e(result.get('failedRequests'))} failed, "
        f"{_e(result.get('requestsPerSecond'))} requests/s</p>"
    )
    table = f"<table><tr><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>mean</th></tr><tr>{cells}</tr></table>"
    histogram = result.get("latencyHistogramMs") or {}
    shown = [(f"{bucket} ms", float(count)) for bucket, count in histogram.items() if count]
    chart = f"<h3>Latency histogram</h3>{bar_chart(shown, ' requests')}" if shown else ""
    return f"<h2>{_e(name)}</h2>{summary}{table}{chart}"


def _feature_impact(impact: Mapping[str, Any] | None) -> str:
    if not impact:
        return ""
    items = impact.get("featureImpacts") or []
    if impact.get("status") != "succeeded" or not items:
        return f"<h2>Feature impact</h2><p>{_e(impact.get('status'))}: {_e(impact.get('message', ''))}</p>"
    ranked = sorted(items, key=lambda item: -float(item.get("impactNormalized") or 0.0))[:20]
    bars = [(str(item.get("featureName")), float(item.get("impactNormalized") or 0.0)) for item in ranked]
    metric = _e(impact.get("metric", ""))
    return f"<h2>Feature impact</h2><p class='muted'>normalised {metric} increase</p>{bar_chart(bars)}"


def _run(details: Mapping[str, Any]) -> str:
    dataset = details.get("dataset") or {}
    image = details.get("image") or {}
    environment = details.get("environment") or {}
    entries = [
        ("dataset", f"{dataset.get('path')} ({dataset.get('rows')} rows)" if dataset else None),
        ("runtime", details.get("runtime")),
        ("environment", environment.get("environmentId") or (image.get("environment") if image else None)),
        ("URL prefix", details.get("urlPrefix")),
        ("run", details.get("runId")),
        ("total", f"{(details.get('durations') or {}).get('total')} s" if details.get("durations") else None),
    ]
    shown = "".join(f"<dt>{_e(key)}</dt><dd>{_e(value)}</dd>" for key, value in entries if value)
    return f"<h2>Run</h2><dl>{shown}</dl>" if shown else ""


def html_report(document: Mapping[str, Any], title: str = "cmkit test-local") -> str:
    """The whole page for a test-local `--json` document."""
    overall = str(document.get("overallStatus", ""))
    details = document.get("details") or {}
    checks = details.get("checks") or {}
    warnings = "".join(f"<li>{_e(w)}</li>" for w in details.get("warnings") or [])
    log = details.get("logTail") if overall == "failed" and not document.get("diagnosis") else None
    body = (
        _diagnosis(document.get("diagnosis"))
        + f"<h2>Checks</h2>{_checks(document)}"
        + (f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else "")
        + "".join(_load_check(name, checks.get(name) or {}) for name in ("performanceCheck", "stabilityCheck"))
        + _feature_impact(document.get("featureImpact"))
        + _run(details)
        + (f"<h2>Server log (last lines)</h2><pre>{_e(log)}</pre>" if log else "")
    )
    return _page(title, overall, body)


def push_html_report(document: Mapping[str, Any], title: str = "cmkit push") -> str:
    """The page for a push `--json` document: DataRobot's remote test, or the build that failed.

    The verdict is the remote test's; a failed dependency build (no test ran) is "failed" with
    its log tail; a push that ran no test says so instead of a verdict it never had.
    """
    test = document.get("test") or {}
    build_failed = document.get("buildStatus") == "failed"
    overall = "failed" if build_failed else str(test.get("overallStatus") or "not tested")
    log = document.get("buildLogTail") if build_failed and not document.get("diagnosis") else None
    body = (
        _diagnosis(document.get("diagnosis"))
        + (f"<h2>Checks</h2>{_checks(test)}" if test else "<p class='muted'>No test ran on DataRobot.</p>")
        + _remote(document, test)
        + (f"<h2>Dependency build log (last lines)</h2><pre>{_e(log)}</pre>" if log else "")
    )
    return _page(title, overall, body)


def _page(title: str, overall: str, body: str) -> str:
    verdict = f'<span class="verdict" style="background:{STATUS_COLOURS.get(overall, "#6e7781")}">{_e(overall)}</span>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}: {_e(overall)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1><p>{verdict}</p>{body}</body></html>\n"
    )


def _remote(document: Mapping[str, Any], test: Mapping[str, Any]) -> str:
    environment = test.get("executionEnvironment") or {}
    entries = [
        ("model", document.get("modelUrl") or document.get("modelId")),
        ("version", document.get("versionLabel")),
        ("files uploaded", document.get("filesUploaded")),
        ("dependency build", document.get("buildStatus")),
        ("environment", environment.get("name")),
        ("dataset", document.get("datasetId")),
        ("test", test.get("id")),
    ]
    shown = "".join(f"<dt>{_e(key)}</dt><dd>{_e(value)}</dd>" for key, value in entries if value is not None)
    return f"<h2>Push</h2><dl>{shown}</dl>" if shown else ""
