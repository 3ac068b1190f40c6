"""A model test's report as typed objects: what test-local, --watch and push render and print.

`TestReport` is test-local's result (and the emulator's model tests'); `ReportDetails` its
`details`: what only a local run can tell. Each type makes its camelCase JSON once, in
`to_dict()`, the `--json` document; `cmkit/render.py` reads the objects, never that document.
`TestTable` is what the final table shows, whether the test ran here (`TestReport.table()`) or
on DataRobot (`TestTable.from_api`, from the API's test resource that push waits for).
`StartInfo`, `ServerChecks` and `Leftovers` are the run's parts the details are composed of.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmkit.checks.parameters import CheckParameters
from cmkit.checks.results import LONG_RUNNING_SERVICE, CheckResult, overall_status
from cmkit.diagnosis import Diagnosis, FailureEvidence, diagnose

if TYPE_CHECKING:
    from cmkit.engine.base import ExitInfo, Server
    from cmkit.engine.images import ModelImage
    from cmkit.featureimpact import FeatureImpactOutcome
    from cmkit.remoteenv import UsedEnvironment


@dataclass(frozen=True)
class ReportDetails:
    """The report's `details`, in the order the document lists them.

    Every part is optional: a run that could not start has no checked server, a --watch run no
    leftovers (its server stays up), a test's report what the test gives it.
    """

    run_id: str | None = None
    url_prefix: str | None = None
    durations: Mapping[str, float] | None = None
    start: StartInfo | None = None  # what starting the server found (runtime, image, warnings)
    reloaded_workers: bool | None = None  # --watch, after a reload: whether the new workers answered
    checked: ServerChecks | None = None  # the checks' server: dataset, parameters, protocol, server, exit, log
    log_tail: str | None = None  # the server's log when the checks did not run against it (--watch)
    leftovers: Leftovers | None = None  # what escaped the server's process group
    peak_rss_mib: float | None = None  # cmkit's own peak memory
    warnings: tuple[str, ...] = ()  # found after the run (leftovers), after the start's own

    @property
    def all_warnings(self) -> tuple[str, ...]:
        return (*(self.start.warnings if self.start else ()), *self.warnings)

    @property
    def protocol(self) -> tuple[str, str] | None:
        """The prediction protocol the checks used and how it was chosen (longRunningService's finding)."""
        found = self.checked.protocol if self.checked is not None else None
        return (str(found["name"]), str(found["how"])) if found else None

    @property
    def server_log(self) -> str | None:
        return self.checked.log_tail if self.checked is not None else self.log_tail

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.run_id is not None:
            document["runId"] = self.run_id
            document["urlPrefix"] = self.url_prefix
        if self.durations is not None:
            document["durations"] = dict(self.durations)
        start = self.start.to_details() if self.start is not None else {}
        # The run's own warnings join the start's where those are listed, else come after the
        # memory figure: the place each has in the document since the report was a dict.
        if self.warnings and "warnings" in start:
            start["warnings"] = [*start["warnings"], *self.warnings]
        document.update(start)
        if self.reloaded_workers is not None:
            document["reloadedWorkers"] = self.reloaded_workers
        if self.checked is not None:
            document.update(self.checked.to_details())
        elif self.log_tail is not None:
            document["logTail"] = self.log_tail
        if self.leftovers is not None:
            document.update(self.leftovers.to_details())
        if self.peak_rss_mib is not None:
            document["peakRssMiB"] = self.peak_rss_mib
        if self.warnings and "warnings" not in start:
            document["warnings"] = list(self.warnings)
        return document


@dataclass
class TestReport:
    """A model test's outcome: the API's checks and configuration, and what a local run adds."""

    __test__ = False  # not a pytest test class despite the name

    results: dict[str, CheckResult]
    configuration: dict[str, str]
    details: ReportDetails = field(default_factory=ReportDetails)
    server: Server | None = None  # still running when `keep` was asked
    feature_impact: FeatureImpactOutcome | None = None  # when asked for
    diagnosis: Diagnosis | None = None  # the failure recognised (cmkit/diagnosis.py), when the run failed

    @property
    def overall_status(self) -> str:
        return overall_status(self.results)

    def table(self) -> TestTable:
        rows = tuple(
            CheckRow(name, self.configuration.get(name, ""), r.status, r.message) for name, r in self.results.items()
        )
        return TestTable(
            rows,
            self.overall_status,
            self.details.protocol,
            self.details.all_warnings,
            self.details.server_log,
            self.diagnosis,
        )

    def to_dict(self) -> dict[str, Any]:
        """The `--json` document: the API's `GET /customModelTests/{id}` fields, then `details`."""
        checks = {name: {**r.details, "seconds": r.seconds} for name, r in self.results.items()}
        document = {
            "overallStatus": self.overall_status,
            "testingStatus": {name: r.to_api() for name, r in self.results.items()},
            "configuration": dict(self.configuration),
            "details": {**self.details.to_dict(), "checks": checks},
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
        }
        if self.feature_impact is not None:
            document["featureImpact"] = self.feature_impact.to_dict()
        return document


@dataclass(frozen=True)
class CheckRow:
    name: str
    level: str  # fail, warn or skip ("" when the test did not say)
    status: str
    message: str


@dataclass(frozen=True)
class TestTable:
    """What the final table of a model test shows, wherever the test ran."""

    __test__ = False

    rows: tuple[CheckRow, ...]
    overall: str
    protocol: tuple[str, str] | None = None  # name, how it was chosen
    warnings: tuple[str, ...] = ()
    log_tail: str | None = None
    diagnosis: Diagnosis | None = None

    @classmethod
    def from_api(cls, document: Mapping[str, Any]) -> TestTable:
        """The API's test resource (what push waited for); details only when the server gave them."""
        configuration = document.get("configuration") or {}
        rows = tuple(
            CheckRow(name, str(configuration.get(name, "")), entry.get("status", ""), entry.get("message", ""))
            for name, entry in (document.get("testingStatus") or {}).items()
        )
        details = document.get("details") or {}
        protocol = details.get("protocol")
        return cls(
            rows,
            str(document.get("overallStatus")),
            (str(protocol["name"]), str(protocol["how"])) if protocol else None,
            tuple(str(warning) for warning in details.get("warnings", [])),
            details.get("logTail"),
            _diagnosis_of(document, details),
        )


def _diagnosis_of(document: Mapping[str, Any], details: Mapping[str, Any]) -> Diagnosis | None:
    """A test resource's diagnosis: the emulator's (in its details), else recognised from what it says."""
    given = details.get("diagnosis")
    if isinstance(given, Mapping):
        return Diagnosis.from_dict(given)
    if document.get("overallStatus") != "failed":
        return None
    checks = {
        name: (str(entry.get("status", "")), str(entry.get("message", "")))
        for name, entry in (document.get("testingStatus") or {}).items()
    }
    # DataRobot's resource has no log: the checks' messages carry the server's last lines.
    log = "\n".join([str(details.get("logTail") or ""), *(message for _, message in checks.values())])
    return diagnose(FailureEvidence(server_log=log, checks=checks))


@dataclass(frozen=True)
class StartInfo:
    """What starting a bundle found out, whether or not its server started (the report's details)."""

    runtime: str | None = None
    environment: UsedEnvironment | None = None  # the DataRobot environment version fetched (--environment-id)
    image: ModelImage | None = None  # the three layers (Docker)
    build_seconds: float | None = None  # Docker: building the image, cached layers included
    build_log_tail: str | None = None  # the build's last lines when it failed
    warnings: tuple[str, ...] = ()

    def durations(self) -> dict[str, float]:
        return {} if self.build_seconds is None else {"build": self.build_seconds}

    def to_details(self) -> dict[str, Any]:
        """The report's `details` entries for the start (durations apart: the run adds its own)."""
        entries = {
            "environment": self.environment.to_dict() if self.environment else None,
            "runtime": self.runtime,
            "buildLogTail": self.build_log_tail,
            "image": self.image.to_dict() if self.image else None,
            "warnings": list(self.warnings) or None,
        }
        return {key: value for key, value in entries.items() if value is not None}


@dataclass(frozen=True)
class Leftovers:
    """What escaped the server's process group, and above all what could not be ended (after stop)."""

    processes: dict[str, object] | None
    warnings: tuple[str, ...] = ()

    @classmethod
    def of(cls, server: Server) -> Leftovers:
        leftovers = server.leftovers()
        if leftovers is None:
            return cls(None)
        if leftovers["survived"]:
            warning = f"processes started by the server are still running after the run: {leftovers['survived']}"
        elif leftovers["tracking"] == "process-group":
            warning = (
                "processes that leave the server's process group cannot be found on this system; "
                "check that nothing the server started is still running"
            )
        else:
            return cls(leftovers)
        return cls(leftovers, (warning,))

    def to_details(self) -> dict[str, Any]:
        return {} if self.processes is None else {"processes": self.processes}


@dataclass
class ServerChecks:
    """The checks' results against one server, and what the report tells about that server."""

    results: dict[str, CheckResult]
    dataset: CheckedDataset | None
    parameters: CheckParameters
    server: dict[str, object]  # Server.describe(): what each engine says of its server
    exit: ExitInfo | None
    log_tail: str

    @property
    def protocol(self) -> Any:
        """What longRunningService found out of the server's prediction protocol (its details' entry)."""
        return self.results[LONG_RUNNING_SERVICE].details.get("protocol")

    def to_details(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.to_dict() if self.dataset else None,
            "parameters": self.parameters.to_api(),
            "protocol": self.protocol,
            "server": self.server,
            "exit": self.exit.to_dict() if self.exit else None,
            "logTail": self.log_tail,
        }


@dataclass(frozen=True)
class CheckedDataset:
    """The dataset the checks sent, as the report names it."""

    path: str
    rows: int

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "rows": self.rows}
