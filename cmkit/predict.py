"""`cmkit predict`: one CSV predicted by a bundle, through the runtime test-local uses.

The bundle is resolved and started as test-local starts it (`resolve_config`, `start_bundle`:
the same cached image layers in Docker, the same start script as a process), waited for with
the readiness rule, sent the whole input as one request, and its answer judged by errorCheck's
rules. The predictions come back in the shape `drum score --output` writes: a `Predictions`
column for regression, anomaly and text generation, one probability column per class label
for classifiers (binary: negative, then positive; multiclass: the declared order). A failure is
a `Diagnosis`, as test-local's.

A transform model gets its rows on `/transform/` (a CSV, or a sparse Matrix Market `.mtx` file
with DRUM's column file) and the transformed frame comes back as `drum score` writes it: the
frame's CSV, a sparse answer written dense.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmkit.checks.results import FAILED, SUCCEEDED
from cmkit.diagnosis import Diagnosis, FailureEvidence, diagnose, save_log
from cmkit.events import Events
from cmkit.paths import cache_dir
from cmkit.resolvedrun import ResolvedRun, TestLocalConfig, resolve_config
from cmkit.testlocal import StartFailed, start_bundle
from cmkit.warmserver import AttachedServer, WarmServer, find_warm_server
from cmkit_runtime.target import Target
from cmkit_runtime.target_types import LabelKind

if TYPE_CHECKING:
    import pandas as pd

    from cmkit.checks.client import ModelClient
    from cmkit.checks.dataset import Dataset
    from cmkit.checks.sparse import SparseDataset
    from cmkit.engine.base import Server

PREDICTIONS_COLUMN = "Predictions"  # DRUM's column for single-column targets
WARM_PING_SECONDS = 2.0  # a warm server answers its readiness route at once, or is not used


@dataclass(frozen=True)
class PredictResult:
    """The predictions (DRUM score's shape), or why there are none."""

    rows: int
    predictions: pd.DataFrame | None = None
    problem: str | None = None
    diagnosis: Diagnosis | None = None
    warm_server: str | None = None  # the URL of the `cmkit serve` server used; None: predict started one

    @property
    def ok(self) -> bool:
        return self.predictions is not None

    def to_dict(self) -> dict[str, Any]:
        """`cmkit predict --json`: the predictions as records, or the problem and its diagnosis."""
        return {
            "ok": self.ok,
            "rows": self.rows,
            "predictions": self.predictions.to_dict(orient="records") if self.predictions is not None else None,
            "problem": self.problem,
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
            "warmServer": self.warm_server,
        }


def drum_columns(target: Target) -> list[str]:
    """The columns `drum score` writes for this target."""
    if target.type.label_kind is LabelKind.PAIR:
        positive, negative = target.labels
        return [negative, positive]
    if target.is_classification:
        return list(target.labels)
    return [PREDICTIONS_COLUMN]


def as_drum_frame(values: Any, target: Target) -> pd.DataFrame:
    """errorCheck's values (per label in `target.labels` order, or one per row) in DRUM's columns."""
    import pandas as pd

    if not target.is_classification:
        single: pd.DataFrame = pd.DataFrame({PREDICTIONS_COLUMN: list(values)})
        return single
    by_label: pd.DataFrame = pd.DataFrame(values, columns=list(target.labels))
    ordered: pd.DataFrame = by_label[drum_columns(target)]
    return ordered


def predict_bundle(
    config: TestLocalConfig,
    input_csv: Path,
    events: Events | None = None,
    cancel: threading.Event | None = None,
    reuse: bool = True,
) -> PredictResult:
    """Start the bundle, predict `input_csv` (every column sent as a feature), stop it.

    `reuse`: when `cmkit serve` runs this bundle with the same variables and unchanged files
    (cmkit/warmserver.py), predict on that server instead, and leave it running.
    """
    events = events or Events()
    run = resolve_config(replace(config, dataset=None, verification_dataset=None))
    dataset = _load_input(run, input_csv)  # bad input is exit 2 before anything starts
    run_id = uuid.uuid4().hex[:12]
    warm = _warm_server(run) if reuse else None
    if warm is not None:
        events.stage(f"predicting on the server `cmkit serve` runs at {warm.url}/ (--no-reuse starts one)")
        return replace(_predict(AttachedServer(warm), run, dataset, run_id, cancel), warm_server=warm.url + "/")
    try:
        server = start_bundle(run.server, events, run_id).server
    except StartFailed as exc:
        evidence = FailureEvidence(exc.message, exc.build_log, checks={"longRunningService": (FAILED, exc.message)})
        return _failed(dataset.rows, exc.message, evidence, exc.build_log or exc.message, run_id)
    try:
        return _predict(server, run, dataset, run_id, cancel)
    finally:
        server.stop()


def _load_input(run: ResolvedRun, path: Path) -> Dataset | SparseDataset:
    """The rows to send: a CSV, or (transform models) a sparse .mtx and its column file."""
    from cmkit.checks.dataset import load_dataset
    from cmkit.checks.sparse import load_sparse, sparse_input

    return load_sparse(path, run.sparse_column_file) if sparse_input(path, run.target.type) else load_dataset(path)


def _warm_server(run: ResolvedRun) -> WarmServer | None:
    """A warm server of the bundle that answers now (a note of a server that does not is ignored)."""
    from cmkit.checks.client import ModelClient, ServerUnreachable

    warm = find_warm_server(run.server.bundle, run.server.contract)
    if warm is None:
        return None
    client = ModelClient(warm.url, headers=run.headers)
    try:
        return warm if client.ping(timeout=WARM_PING_SECONDS) == 200 else None
    except ServerUnreachable:
        return None
    finally:
        client.close()


def _predict(
    server: Server, run: ResolvedRun, dataset: Any, run_id: str, cancel: threading.Event | None
) -> PredictResult:
    from cmkit.checks.client import ModelClient
    from cmkit.checks.predictions import judge
    from cmkit.checks.readiness import wait_until_ready

    target = run.target
    client = ModelClient(server.url, protocol=run.server.protocol, headers=run.headers)
    try:
        ready = wait_until_ready(server, client, run.server.startup_timeout, cancel or threading.Event())
        if ready.status != SUCCEEDED:
            return _failed_server(server, dataset.rows, "longRunningService", ready.message, ready.details, run_id)
        if target.type.transforms:
            return _transform(client, server, dataset, run_id)
        answer = client.predict(dataset.payload())
    finally:
        client.close()
    verdict = judge(answer.status, answer.text, dataset.rows, target)
    if not verdict.ok or verdict.values is None:
        return _failed_server(server, dataset.rows, "errorCheck", verdict.summary(), {}, run_id, target)
    return PredictResult(dataset.rows, as_drum_frame(verdict.values, target))


def _transform(client: ModelClient, server: Server, dataset: Dataset | SparseDataset, run_id: str) -> PredictResult:
    """The rows on /transform/ as the transform check sends them; the answer's frame, as drum score writes it."""
    from cmkit.checks.sparse import SparseDataset
    from cmkit.checks.transform import ROUTE, answer_frame, read_answer, request_body, sparse_body

    if isinstance(dataset, SparseDataset):
        body, content_type = sparse_body(dataset)
    else:
        body, content_type = request_body(dataset.features, dataset.path.name)
    read = read_answer(client.post_raw(ROUTE, body, content_type), dataset.rows)
    if read.problem is not None:
        return _failed_server(server, dataset.rows, "errorCheck", read.problem, {}, run_id)
    return PredictResult(dataset.rows, answer_frame(read))


def _failed_server(
    server: Server,
    rows: int,
    check: str,
    message: str,
    details: dict[str, Any],
    run_id: str,
    target: Target | None = None,
) -> PredictResult:
    log = server.logs(None)
    info = server.exit_info()
    evidence = FailureEvidence(
        log,
        exit_code=info.exit_code if info else None,
        oom_killed=bool((info and info.oom_killed) or details.get("oomKilled")),
        checks={check: (FAILED, message)},
        prediction=target.type.prediction if target else None,
    )
    return _failed(rows, message, evidence, log, run_id)


def _failed(rows: int, message: str, evidence: FailureEvidence, log: str, run_id: str) -> PredictResult:
    found = diagnose(evidence)
    if found is not None:
        found = save_log(found, log, cache_dir() / "logs", f"predict-{run_id}")
    return PredictResult(rows, problem=message.splitlines()[0] if message else "failed", diagnosis=found)
