"""A deployed custom model version, running: launched on the emulator's job engine and predicting.

A deployment's model is served as `cmkit serve` serves a bundle (the stored version's files on
its environment, in the emulator's runtime: a container or a local process) and stays up while
the deployment holds it (`Emulator.served`). A prediction request is answered the way `cmkit
predict` answers one: the rows read as a CSV with every column a feature, one request to the
model server, its answer judged by errorCheck's rules; the values are then written in the
prediction API's shape (`data`: one entry per row, `prediction` and `predictionValues`).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmkit.emulator import leftovers, models, testing
from cmkit.emulator.documents import CustomModel, CustomModelVersion
from cmkit.emulator.errors import ErrorResponse, invalid
from cmkit.emulator.jobs import LogSink
from cmkit.emulator.service import Emulator
from cmkit.emulator.store import Resource
from cmkit_runtime.target_types import LabelKind

if TYPE_CHECKING:
    from cmkit.serve import ServeSession
    from cmkit_runtime.target import Target


class LaunchFailed(Exception):
    """The model did not start; the message says why (the server's own words when it has any)."""


@dataclass
class Live:
    """A running deployed model: its server, what it is told its target is, where its files are."""

    session: ServeSession
    target: Target
    protocol: str | None
    threshold: float
    workdir: Path
    version_id: str

    def close(self) -> None:
        self.session.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def launch(emu: Emulator, model_id: str, version_id: str, log: LogSink, cancel: threading.Event | None = None) -> Live:
    """Start a stored version's model and wait until it answers; LaunchFailed otherwise."""
    from cmkit.errors import CmkitError
    from cmkit.resolvedrun import resolve_config

    model = _record(emu, models.KIND, model_id)
    version = _record(emu, models.VERSION_KIND, version_id)
    workdir = emu.dir("deployments", uuid.uuid4().hex[:16])
    try:
        request = testing.model_request(
            emu,
            model,
            version,
            workdir,
            version.doc["baseEnvironmentVersionId"],
            checks={},
            maximum_memory=version.doc.get("maximumMemory"),
            network_egress=version.doc.get("networkEgressPolicy") or "PUBLIC",
            # The emulator's marker: a start after a killed emulator ends what it left running.
            server_environment={leftovers.MARKER_ENV: leftovers.marker(emu, f"deployment-{workdir.name}")},
        )
        run = resolve_config(request)
        log(f"launching custom model {model_id} version {version_id} with the {emu.engine.runtime} runtime")
        session = emu.engine.serve(request, log, run.server.startup_timeout)
    except (CmkitError, ErrorResponse) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        message = exc.message if isinstance(exc, CmkitError) else exc.body()["message"]
        raise LaunchFailed(str(message)) from exc
    log(f"the model answers at {session.url}")
    threshold = model.doc.get("predictionThreshold")
    return Live(session, run.target, run.server.protocol, 0.5 if threshold is None else threshold, workdir, version_id)


def _record(emu: Emulator, kind: Any, ident: str) -> Resource[Any]:
    # A deployment keeps its model even when the custom model is deleted afterwards.
    resource = emu.store.get(kind, ident, include_deleted=True)
    if resource is None:
        raise LaunchFailed(f"{kind} {ident} does not exist")
    return resource


def model_and_version(emu: Emulator, version_id: str) -> tuple[Resource[CustomModel], Resource[CustomModelVersion]]:
    version = _record(emu, models.VERSION_KIND, version_id)
    return _record(emu, models.KIND, str(version.parent)), version


# -- predictions ---------------------------------------------------------------------------------


def rows_csv(body: bytes, content_type: str, files: dict[str, bytes]) -> bytes:
    """The request's rows as CSV: a CSV body, a multipart `file`, or JSON records (a list of
    objects, as the prediction API takes them)."""
    if "file" in files:
        return files["file"]
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            records = json.loads(body or b"null")
        except ValueError as exc:
            raise invalid(f"The body is not valid JSON: {exc}") from exc
        if not isinstance(records, list) or not records or not all(isinstance(row, dict) for row in records):
            raise invalid("A JSON body must be a non-empty list of objects, one per row")
        columns: list[str] = []
        for row in records:
            columns.extend(name for name in row if name not in columns)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue().encode()
    if not body:
        raise invalid("No rows: send a CSV body (text/csv), JSON records or a multipart 'file'")
    return body


def predict_unstructured(live: Live, body: bytes, content_type: str | None) -> tuple[bytes, str | None]:
    """An unstructured model's answer to `body`, sent as is (as `predictionsUnstructured` does):
    its bytes and Content-Type; 422 when the model does not answer 200."""
    from cmkit.checks.client import ModelClient
    from cmkit.checks.unstructured import ROUTE

    client = ModelClient(live.session.server.url, protocol=live.protocol)
    try:
        answer = client.post_raw(ROUTE, body, content_type)
    finally:
        client.close()
    if answer.status != 200:
        text = answer.body[:500].decode("utf-8", errors="replace")
        raise invalid(f"The model failed to predict: HTTP {answer.status}: {text}")
    return answer.body, answer.content_type


def predict(live: Live, rows: bytes, folder: Path) -> list[dict[str, Any]]:
    """The model's predictions for `rows` (CSV), as the prediction API's `data` entries."""
    if live.target.type.unstructured:
        raise invalid("The deployment's model is unstructured: send its requests to predictionsUnstructured")
    from cmkit.checks.client import ModelClient
    from cmkit.checks.dataset import load_dataset
    from cmkit.checks.predictions import judge
    from cmkit.errors import CmkitError

    path = folder / f"rows-{uuid.uuid4().hex[:12]}.csv"
    path.write_bytes(rows)
    try:
        try:
            dataset = load_dataset(path)
        except CmkitError as exc:
            raise invalid(f"The rows are not a readable CSV: {exc.message}") from exc
        client = ModelClient(live.session.server.url, protocol=live.protocol)
        try:
            answer = client.predict(dataset.payload())
        finally:
            client.close()
    finally:
        path.unlink(missing_ok=True)
    verdict = judge(answer.status, answer.text, dataset.rows, live.target)
    if not verdict.ok or verdict.values is None:
        raise invalid(f"The model failed to predict: {verdict.summary()}")
    return [
        prediction_row(index, value, live.target, live.threshold) for index, value in enumerate(verdict.values.tolist())
    ]


def prediction_row(index: int, value: Any, target: Target, threshold: float) -> dict[str, Any]:
    """One row of the prediction API's answer from errorCheck's value for it (a number, or one
    probability per label in `target.labels` order): binary picks the positive class at
    `threshold` and reports it; multiclass picks the likeliest."""
    if not target.is_classification:
        name = target.name or "Predictions"
        return {"rowId": index, "prediction": value, "predictionValues": [{"label": name, "value": value}]}
    probabilities = dict(zip(target.labels, value, strict=True))
    values = [{"label": label, "value": probability} for label, probability in probabilities.items()]
    if target.type.label_kind is LabelKind.PAIR:
        positive, negative = target.labels
        chosen = positive if probabilities[positive] >= threshold else negative
        return {
            "rowId": index,
            "prediction": chosen,
            "predictionThreshold": threshold,
            "predictionValues": values,
        }
    chosen = max(probabilities, key=lambda label: probabilities[label])
    return {"rowId": index, "prediction": chosen, "predictionValues": values}
