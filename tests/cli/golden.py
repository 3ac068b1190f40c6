"""Golden `--json` documents: a command's stdout compared byte for byte with a committed file.

The goldens in `tests/cli/golden/` were produced by main at d4a05b1, before the report, the push
result and the lint findings became typed objects: they pin the documents those types must keep
producing. Regenerate one only when a document is meant to change, with
`CMKIT_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_json_golden.py tests/testlocal/test_json_golden.py`,
and review the diff.

Only what is volatile by nature is normalised, on the text itself (so indentation, key order
and every other byte still count), each rule below with the reason:

- `tmp`: the test's temporary folder -> `<tmp>`; this checkout -> `<repo>` (machine paths).
- ports: `127.0.0.1:<n>` and `0.0.0.0:<n>` -> `:<port>` (free ports, chosen per run).
- `/cmkit-<8 hex>/`: test-local's random URL prefix -> `/cmkit-<prefix>/`.
- 24-hex ids (the emulator's object ids, random) -> `<id-N>`, numbered by first appearance, so
  that the same id seen twice still has to be the same.
- `"runId": "<12 hex>"` (uuid4) -> `<run-id>`, also in a diagnosis' log file name.
- numbers under time and memory keys (`seconds`, `startupSeconds`, every `durations` entry,
  `peakRssMiB`, `rowsPerSecond`, `secondsSinceSave`, latency figures) -> `<n>`: measured, not
  computed; `pid` -> `<n>`.
- seconds in messages and logs (`ready in 1.0s`, `loaded in 0.90s`) -> `<t>s`; latencies
  (`p50 1 ms`) -> `<t> ms`; memory (`peak memory 19.5 MiB`, `peakMemoryBytes`,
  `memorySamples`) -> `<m> MiB` / `<n>`.
- ISO timestamps (the emulator's `created`, `completedAt`) and gunicorn's log time stamps
  `[2026-01-01 00:00:00 +0000]` -> `<time>`; process ids in log lines (`[1234]`, `pid: 1234`,
  gunicorn's `Listening at: ... (1234)`) -> `<pid>`.
- `logTail` (when not empty) -> `<server log>`: the model server's own output, not cmkit's:
  its workers write in whichever order they run, how many booted before a failed run stopped
  the server is a race, which lines fall into the tail's window follows from both, and its
  tracebacks name this machine's site-packages.
- JUnit's `time="…"` attributes -> `time="<t>"`.
- `processes.tracking` (`cgroup` or `process-group`) -> `<tracking>`: what the machine offers
  (cgroup v2 or not), not what the run did. (Without cgroup v2 a run also adds a warning to
  `details.warnings`, which is not normalised: generate and compare on machines alike.)
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parent.parent.parent
UPDATE = os.environ.get("CMKIT_UPDATE_GOLDEN") == "1"

_TIMED_KEYS = (
    "seconds",
    "startupSeconds",
    "peakRssMiB",
    "rowsPerSecond",
    "secondsSinceSave",
    "pid",
    "build",
    "total",
    "checks",
    "sync",
    "reload",
    "p50",
    "p90",
    "p95",
    "p99",
    "max",
    "mean",
    "min",
    "latencySeconds",
    "requestsPerSecond",
    "elapsedSeconds",
    "executionSeconds",
    "responseSeconds",
    "maxResponseSeconds",
    "peakMemoryBytes",
    "memorySamples",
)
_NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(127\.0\.0\.1|0\.0\.0\.0|localhost):\d+"), r"\1:<port>"),
    (re.compile(r"/cmkit-[0-9a-f]{8}/"), "/cmkit-<prefix>/"),
    (re.compile(r'"runId": "[0-9a-f]{12}"'), '"runId": "<run-id>"'),
    (re.compile(r"test-local-[0-9a-f]{12}\.log"), "test-local-<run-id>.log"),
    (re.compile(r'"([<>]=?\d+)": \d+'), r'"\1": "<n>"'),  # latencyHistogramMs' buckets: measured
    (re.compile(rf'"({"|".join(_TIMED_KEYS)})": {_NUMBER}'), r'"\1": "<n>"'),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\]"), "[<time>]"),
    (re.compile(r"\[\d+\] \["), "[<pid>] ["),
    (re.compile(r"pid: \d+"), "pid: <pid>"),
    (re.compile(r":<port> \(\d+\)"), ":<port> (<pid>)"),
    (re.compile(r"\b(in|after) \d+(?:\.\d+)? ?s\b"), r"\1 <t>s"),
    (re.compile(r"\b\d+(?:\.\d+)? ms\b"), "<t> ms"),
    (re.compile(r"\b\d+(?:\.\d+)? MiB\b"), "<m> MiB"),
    (re.compile(r'time="[0-9.]+"'), 'time="<t>"'),
    (re.compile(r'"tracking": "(?:cgroup|process-group)"'), '"tracking": "<tracking>"'),
]
_ID = re.compile(r"\b[0-9a-f]{24}\b")


def normalise(text: str, tmp: Path | None = None) -> str:
    """`text` with only its volatile parts replaced (see the module's docstring)."""
    if tmp is not None:
        text = text.replace(str(tmp), "<tmp>")
    text = text.replace(str(REPO), "<repo>")
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    ids: dict[str, str] = {}
    text = _ID.sub(lambda match: ids.setdefault(match.group(0), f"<id-{len(ids) + 1}>"), text)
    return _server_logs(text)


def _server_logs(text: str) -> str:
    return re.sub(r'("logTail": )"(?:[^"\\]|\\.)+"', r'\1"<server log>"', text)


def check(name: str, text: str, tmp: Path | None = None) -> None:
    """Compare the normalised `text` with `golden/<name>`, byte for byte (or write it: CMKIT_UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    actual = normalise(text, tmp)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"no golden {path}: generate it with CMKIT_UPDATE_GOLDEN=1 (from a commit you trust)"
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "golden", "now", lineterm="")
        raise AssertionError(f"{name} differs from its golden:\n" + "\n".join(diff))
