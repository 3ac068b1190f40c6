"""A failure recognised: one line saying what is wrong and what to do, instead of a log.

The one home of failure recognition. It reads plain text (the build's log, the server's log,
the checks' messages) and an exit status, never an engine: whatever ran the model (Docker, a
local process, a hermetic venv, the emulator's jobs) hands its logs here. `diagnose` returns a
`Diagnosis` with a stable `code` (the `--json` field, JUnit's failure type, the emulator's test
log), the evidence (the pip conflict line, the exception's last frame) and, once `save_log` has
written the whole log, the file that holds it. `strip_ansi` is the rule for every log shown or
stored: colour codes never reach a table, a JSON document or a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from cmkit.codescan import pip_name_for
from cmkit_runtime.target_types import Prediction

# Stable codes: scripts and CI branch on them. Add, never rename.
SYNTAX_ERROR = "syntax-error"
MISSING_MODULE = "missing-module"
UNSATISFIABLE_REQUIREMENT = "unsatisfiable-requirement"
CONFLICTING_REQUIREMENTS = "conflicting-requirements"
NUMPY_ABI = "numpy-abi"
LOAD_MODEL_ERROR = "load-model-error"
WRONG_OUTPUT = "wrong-output"
PREDICT_ERROR = "predict-error"
LABEL_MISMATCH = "label-mismatch"
URL_PREFIX_IGNORED = "url-prefix-ignored"
STARTUP_TIMEOUT = "startup-timeout"
OUT_OF_MEMORY = "out-of-memory"
SERVER_EXITED = "server-exited"
BUILD_FAILED = "build-failed"
START_SCRIPT_FAILED = "start-script-failed"
CODES = (
    SYNTAX_ERROR,
    MISSING_MODULE,
    UNSATISFIABLE_REQUIREMENT,
    CONFLICTING_REQUIREMENTS,
    NUMPY_ABI,
    LOAD_MODEL_ERROR,
    WRONG_OUTPUT,
    PREDICT_ERROR,
    LABEL_MISMATCH,
    URL_PREFIX_IGNORED,
    STARTUP_TIMEOUT,
    OUT_OF_MEMORY,
    SERVER_EXITED,
    BUILD_FAILED,
    START_SCRIPT_FAILED,
)

# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences (pip and docker colour their output)."""
    return _ANSI.sub("", text).replace("\r\n", "\n")


@dataclass(frozen=True)
class Diagnosis:
    """What is wrong and what to do, the evidence for it, and where the whole log is."""

    code: str
    problem: str
    action: str
    evidence: tuple[str, ...] = ()
    log_file: str | None = None

    def line(self) -> str:
        """The one line a person reads first."""
        where = f" (whole log: {self.log_file})" if self.log_file else ""
        return f"{self.problem}: {self.action}{where}"

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.problem,
            "action": self.action,
            "evidence": list(self.evidence),
            "logFile": self.log_file,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> Diagnosis:
        """The diagnosis a test resource's details carry (the emulator's, or a saved report's)."""
        evidence = document.get("evidence")
        log_file = document.get("logFile")
        return cls(
            str(document.get("code", "")),
            str(document.get("message", "")),
            str(document.get("action", "")),
            tuple(str(e) for e in evidence) if isinstance(evidence, list) else (),
            str(log_file) if log_file else None,
        )


@dataclass(frozen=True)
class FailureEvidence:
    """What a failed run left to read: logs, how the server ended, the checks' verdicts."""

    server_log: str = ""
    build_log: str | None = None  # the image build's (or dependency install's) log when it failed
    exit_code: int | None = None  # None: still running, or never started
    oom_killed: bool = False
    checks: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # name -> (status, message)
    prediction: Prediction | None = None  # what one row's prediction is for the run's target type, when known

    def check(self, name: str) -> tuple[str, str]:
        return self.checks.get(name, ("", ""))


# What a valid prediction is, for the wrong-output hint: the type's own, when the run knows it.
VALID_PREDICTIONS = {
    Prediction.NUMBER: "a finite number",
    Prediction.PROBABILITIES: "a probability per class label, each in [0, 1], summing to 1",
    Prediction.TEXT: "a string",
    Prediction.POINT: "a point as well-known text, longitude first: 'POINT (2.35 48.85)' for Paris",
}
ANY_VALID_PREDICTION = (
    "a number for regression and anomaly, a probability per label for classifiers, a string for text "
    "generation and vector databases, 'POINT (longitude latitude)' for geopoints"
)


def _valid_prediction(prediction: Prediction | None) -> str:
    return VALID_PREDICTIONS.get(prediction, ANY_VALID_PREDICTION) if prediction else ANY_VALID_PREDICTION


# --- recognisers: each reads the evidence and returns a Diagnosis or None ------------------------


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in strip_ansi(text).splitlines()]


def _latest_versions(line: str, keep: int = 5) -> str:
    """pip's "(from versions: ...)" cut to the latest few: the ones a pin should name."""
    match = re.search(r"\(from versions: ([^)]*)\)", line)
    versions = match.group(1).split(", ") if match else []
    if len(versions) <= keep or match is None:
        return line
    return f"{line[: match.start()]}(from versions: ..., {', '.join(versions[-keep:])}){line[match.end() :]}"


def _unsatisfiable(build: list[str]) -> Diagnosis | None:
    pattern = re.compile(
        r"(?:Could not find a version that satisfies the requirement|No matching distribution found for) (\S+)"
    )
    found = [_latest_versions(line.strip()) for line in build if pattern.search(line)]
    if not found:
        return None
    match = pattern.search(found[-1])
    requirement = match.group(1) if match else "a requirement"
    name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0]
    return Diagnosis(
        UNSATISFIABLE_REQUIREMENT,
        f"pip cannot find {requirement} (requirements.txt)",
        f"fix the pin: `pip index versions {name}` lists the versions that exist",
        tuple(dict.fromkeys(found)),
    )


def _conflicting(build: list[str]) -> Diagnosis | None:
    markers = ("ResolutionImpossible", "conflicting dependencies", "The conflict is caused by:")
    if not any(marker in line for line in build for marker in markers):
        return None
    evidence: list[str] = []
    for index, line in enumerate(build):
        if "The conflict is caused by:" in line:
            evidence = [entry.strip() for entry in build[index + 1 : index + 6] if entry.strip()]
            evidence = [entry for entry in evidence if "depends on" in entry or "requested" in entry] or evidence
            break
        if "Cannot install" in line or "conflicting dependencies" in line:
            evidence = [line.strip()]
    return Diagnosis(
        CONFLICTING_REQUIREMENTS,
        "requirements.txt asks for versions that conflict (with each other or with the environment)",
        "loosen one of the pins named below so pip can satisfy both",
        tuple(evidence),
    )


def _numpy_abi(log: list[str]) -> Diagnosis | None:
    markers = ("numpy.dtype size changed", "compiled using NumPy 1.x cannot be run in", "_ARRAY_API not found")
    found = [line.strip() for line in log if any(marker in line for marker in markers)]
    if not found:
        return None
    return Diagnosis(
        NUMPY_ABI,
        "a package was built against NumPy 1.x and the environment has NumPy 2",
        "require a release built for NumPy 2 (pandas>=2.2.2, scikit-learn>=1.4.2, scipy>=1.13) "
        "or drop the old pin from requirements.txt; `cmkit lint` names the line",
        (found[0],),
    )


_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')


def _last_frame(log: list[str], before: int) -> str | None:
    for index in range(before, -1, -1):
        if _FRAME.match(log[index]):
            return log[index].strip()
    return None


def _syntax_error(log: list[str]) -> Diagnosis | None:
    for index in range(len(log) - 1, -1, -1):
        match = re.match(r"^\s*(SyntaxError|IndentationError|TabError): (.*)", log[index])
        if not match:
            continue
        frame = _last_frame(log, index)
        where = _FRAME.match(frame) if frame else None
        place = f"{Path(where.group(1)).name} line {where.group(2)}" if where else "the model's code"
        return Diagnosis(
            SYNTAX_ERROR,
            f"{place} does not parse ({match.group(1)}: {match.group(2)})",
            "fix the line; `cmkit lint` finds this before any build",
            tuple(e for e in (frame, log[index].strip()) if e),
        )
    return None


def _missing_module(log: list[str]) -> Diagnosis | None:
    pattern = re.compile(r"No module named '([^']+)'")
    for index in range(len(log) - 1, -1, -1):
        match = pattern.search(log[index])
        if not match:
            continue
        module = match.group(1)
        top = module.split(".", 1)[0]
        frame = _last_frame(log, index)
        return Diagnosis(
            MISSING_MODULE,
            f"the model imports {module}, which is not installed",
            f"add {pip_name_for(top)} to requirements.txt",
            tuple(e for e in (frame, log[index].strip()) if e),
        )
    return None


_EXCEPTION = re.compile(
    r"^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Exit|Interrupt)|KeyError|Exception)(?::\s?(.*))?$"
)


def _load_model_error(log: list[str]) -> Diagnosis | None:
    starts = [i for i, line in enumerate(log) if re.search(r"\bin (load_model|init)\b", line) and _FRAME.match(line)]
    if not starts:
        return None
    for index in range(starts[-1] + 1, len(log)):
        match = _EXCEPTION.match(log[index].strip())
        if match:
            frame = _last_frame(log, index)
            return Diagnosis(
                LOAD_MODEL_ERROR,
                f"load_model() raised {log[index].strip()}",
                'fix load_model() in custom.py (run it on its own: python -c "import custom; '
                "custom.load_model('.')\")",
                tuple(e for e in (frame, log[index].strip()) if e),
            )
    return None


def _script(log: list[str]) -> Diagnosis | None:
    found = [line for line in log if "start_server.sh could not be started" in line]
    if not found:
        return None
    return Diagnosis(
        START_SCRIPT_FAILED,
        "start_server.sh cannot be run",
        "make it executable (chmod +x start_server.sh) with a shebang on line 1; `cmkit lint` checks both",
        (found[0].strip(),),
    )


def _from_build(build: list[str]) -> Diagnosis | None:
    found = _unsatisfiable(build) or _conflicting(build) or _numpy_abi(build) or _syntax_error(build)
    if found is not None:
        return found
    errors = [line.strip() for line in build if line.strip().startswith(("ERROR", "error:"))]
    return Diagnosis(
        BUILD_FAILED,
        "the image build failed",
        "read the build's last error below; run again with --verbose for the whole build",
        tuple((errors or [line for line in build if line.strip()])[-3:]),
    )


# Words of errorCheck's (and the runtime's) messages about the output itself, not a crash.
OUTPUT_MARKERS = ("predictions for", "must return", "probabilit", "non-finite", "shape", "one number", "one string")


# The runtime's (and DRUM's) words for class names that are not the labels, and errorCheck's.
LABEL_MARKERS = ("expected predictions to have columns", "are not the class labels", "labels do not match")


def _from_checks(evidence: FailureEvidence) -> Diagnosis | None:
    status, message = evidence.check("longRunningService")
    first = message.splitlines()[0] if message else ""
    if status == "failed":
        if "instead of 200" in message:
            return Diagnosis(
                URL_PREFIX_IGNORED,
                "the server answers, but not under URL_PREFIX",
                "serve the routes under $URL_PREFIX (DataRobot mounts the model there) and listen on $PORT",
                (first,),
            )
        if "did not answer 200 within" in message:
            return Diagnosis(
                STARTUP_TIMEOUT,
                "the server did not become ready in time",
                "make load_model() faster, or give it longer with --startup-timeout",
                (first,),
            )
    status, message = evidence.check("errorCheck")
    if status in ("failed", "warning") and message:
        first = message.splitlines()[0]
        if any(marker in message.lower() for marker in LABEL_MARKERS):
            return Diagnosis(
                LABEL_MISMATCH,
                "the model's class names are not the configured labels",
                "make the labels in model-metadata.yaml (or the label flags) the names the model returns",
                tuple(line.strip() for line in message.splitlines()[:3]),
            )
        if first.startswith("HTTP 5") and not any(marker in first for marker in OUTPUT_MARKERS):
            raised = [line.strip() for line in _lines(evidence.server_log) if _EXCEPTION.match(line.strip())]
            return Diagnosis(
                PREDICT_ERROR,
                "the model fails on the test data (HTTP 500)",
                "fix predict()/score() for these rows; the traceback is in the log",
                tuple(dict.fromkeys((first, *raised[-1:]))),
            )
        return Diagnosis(
            WRONG_OUTPUT,
            "the model's predictions have the wrong shape or type",
            f"return one prediction per row: {_valid_prediction(evidence.prediction)}",
            (first,),
        )
    return None


def diagnose(evidence: FailureEvidence) -> Diagnosis | None:
    """The failure recognised, from the most specific evidence to the least; None when nothing failed."""
    if evidence.build_log:
        return _from_build(_lines(evidence.build_log))
    log = _lines(evidence.server_log)
    if evidence.oom_killed:
        return Diagnosis(
            OUT_OF_MEMORY,
            "the server was killed for exceeding its memory limit (OOM)",
            "load a smaller model or fewer workers, or raise --maximum-memory",
            tuple(line.strip() for line in log[-2:] if line.strip()),
        )
    found = _numpy_abi(log) or _syntax_error(log) or _missing_module(log) or _load_model_error(log) or _script(log)
    if found is not None:
        return found
    checked = _from_checks(evidence)
    if checked is not None:
        return checked
    if evidence.exit_code is not None and evidence.check("longRunningService")[0] == "failed":
        return Diagnosis(
            SERVER_EXITED,
            f"the server exited with code {evidence.exit_code} before it was ready",
            "read the log's last lines below; run the start script by hand to see it fail",
            tuple(line.strip() for line in log[-3:] if line.strip()),
        )
    return None


def save_log(diagnosis: Diagnosis, text: str, folder: Path, name: str) -> Diagnosis:
    """Write the whole log (ANSI stripped) to `folder/name.log`; the diagnosis then names it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.log"
        path.write_text(strip_ansi(text), encoding="utf-8")
    except OSError:  # no place for the log: the diagnosis still stands, without a file to name
        return diagnosis
    return replace(diagnosis, log_file=str(path))
