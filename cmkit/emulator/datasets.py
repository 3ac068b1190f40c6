"""The minimal datasets API that model tests need: upload a dataset file, read its catalog entry.

Not part of the custom-models chapter; shaped after what DataRobot's client reads
(`Dataset.create_from_file`: 202 + status Location, then 303 to `datasets/{id}/`). The file may
be any form of delimited text, compressed or archived, or SAS (datasetfiles.py): ingestion
keeps one comma CSV of it, which everything that reads a dataset reads (`csv_path`).
"""

from __future__ import annotations

import csv
import tempfile
import threading
from pathlib import Path
from typing import TypedDict

from flask import Response, request

from cmkit.emulator.common import USER, new_id, now
from cmkit.emulator.datasetfiles import Unreadable, as_csv, remove, table_name
from cmkit.emulator.documents import Dataset, Internal
from cmkit.emulator.errors import ErrorResponse, invalid
from cmkit.emulator.http import Query, Routes, api_url, get_or_404, json_response, no_content
from cmkit.emulator.service import Emulator
from cmkit.emulator.status import INTERRUPTED, create_status, set_status
from cmkit.emulator.store import HashingFile, Kind, Resource
from cmkit.emulator.validation import file_name

KIND: Kind[Dataset] = Kind("dataset")


class DatasetCreated(TypedDict):
    """The 202 body of `datasets/fromFile/`."""

    statusId: str
    catalogId: str
    catalogVersionId: str


def create_from_file(emu: Emulator, upload: HashingFile | None, filename: str | None) -> DatasetCreated:
    """Store the file and ingest it in the background; the 202 body (with the status id)."""
    if upload is None:
        raise invalid("A file is required", {"file": "is required"})
    blob = emu.store.blobs.ingest(upload)
    dataset_id, version_id = new_id(), new_id()
    doc: Dataset = {
        "datasetId": dataset_id,
        "versionId": version_id,
        "name": file_name(filename, "data.csv"),
        "categories": [],
        "creationDate": now(),
        "createdBy": USER.username,
        "dataPersisted": True,
        "isDataEngineEligible": False,
        "isLatestVersion": True,
        "isSnapshot": True,
        "datasetSize": blob.size,
        "rowCount": None,
        "processingState": "RUNNING",
        "error": "",
    }
    status_id = create_status(emu, f"Dataset {doc['name']} ingestion", "dataset")
    emu.store.insert(KIND, dataset_id, doc, internal=Internal(sha256=blob.sha256, statusId=status_id))
    emu.jobs.submit(f"dataset:{dataset_id}", lambda cancel: _ingest(emu, dataset_id, cancel), quick=True)
    return {"statusId": status_id, "catalogId": dataset_id, "catalogVersionId": version_id}


def _ingest(emu: Emulator, dataset_id: str, cancel: threading.Event) -> None:
    resource = emu.store.get(KIND, dataset_id)
    if resource is None:
        return
    status_id = resource.internal["statusId"]
    set_status(emu, status_id, "RUNNING")
    workdir = Path(tempfile.mkdtemp(dir=emu.store.blobs.staging, prefix="dataset-"))
    try:
        table = as_csv(emu.store.blobs.path(resource.internal["sha256"]), resource.doc["name"], workdir)
        stored = emu.store.blobs.put_file(table) if table is not None else None
        rows = _count_rows(emu.store.blobs.path(stored.sha256) if stored else table or _upload(emu, resource))
    except Unreadable as exc:
        return _failed(emu, dataset_id, status_id, f"The file cannot be read as a dataset: {exc}")
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        return _failed(emu, dataset_id, status_id, f"The file is not a readable CSV: {exc}")
    finally:
        remove(workdir)
    internal = Internal(tableSha256=stored.sha256) if stored else None
    emu.store.update(KIND, dataset_id, Dataset(processingState="COMPLETED", rowCount=rows), internal=internal)
    set_status(emu, status_id, "COMPLETED", location=f"datasets/{dataset_id}/")


def _upload(emu: Emulator, resource: Resource[Dataset]) -> Path:
    return emu.store.blobs.path(resource.internal["sha256"])


def _failed(emu: Emulator, dataset_id: str, status_id: str, message: str) -> None:
    """DataRobot's shape of a failed ingestion: the catalog entry's error and the status's message."""
    emu.store.update(KIND, dataset_id, Dataset(processingState="ERROR", error=message))
    set_status(emu, status_id, "ERROR", message)


def _count_rows(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise ValueError("it is empty or has no header row")
        return sum(1 for _ in reader)


def run_name(emu: Emulator, dataset_id: str) -> str:
    """The name a run's copy of the dataset takes: the upload's, or the CSV's made of it."""
    resource = _dataset(emu, dataset_id)
    name = resource.doc["name"]
    return table_name(name) if resource.internal.get("tableSha256") else name


def get(emu: Emulator, dataset_id: str) -> Dataset:
    return _dataset(emu, dataset_id).doc


def _dataset(emu: Emulator, dataset_id: str) -> Resource[Dataset]:
    deleted = emu.store.get(KIND, dataset_id, include_deleted=True)
    if deleted is not None and deleted.deleted:
        # DataRobot's catalog keeps a deleted dataset's id: 410, not 404.
        raise ErrorResponse(410, f"Dataset {dataset_id} has been deleted")
    return get_or_404(emu, KIND, dataset_id, "Dataset")


def delete(emu: Emulator, dataset_id: str) -> None:
    """Soft delete: what was computed from it (tests, training data) keeps its stored file."""
    _dataset(emu, dataset_id)
    emu.store.delete(KIND, dataset_id)


def csv_path(emu: Emulator, dataset_id: str) -> Path:
    """The CSV of a dataset that finished ingestion (for model tests): the upload, or the CSV made of it."""
    resource = _dataset(emu, dataset_id)
    if resource.doc["processingState"] != "COMPLETED":
        state = resource.doc["processingState"]
        raise invalid(f"Dataset {dataset_id} is not ready for testing (processingState {state})")
    return emu.store.blobs.path(resource.internal.get("tableSha256") or resource.internal["sha256"])


def recover(emu: Emulator) -> None:
    for resource in emu.store.list(KIND):
        if resource.doc["processingState"] == "RUNNING":
            emu.store.update(KIND, resource.id, Dataset(processingState="ERROR", error=INTERRUPTED))


# -- datasets (outside the custom-models chapter) ------------------------------------------------

ROUTES = Routes()


@ROUTES.api("POST", "datasets/fromFile/", documented=False)
def http_create_dataset(emu: Emulator, query: Query) -> Response:
    file = request.files.get("file")
    body = create_from_file(emu, file.stream if file else None, file.filename if file else None)  # type: ignore[arg-type]
    return json_response(body, 202, {"Location": api_url(f"status/{body['statusId']}/")})


@ROUTES.api("GET", "datasets/{datasetId}/", documented=False)
def http_get_dataset(emu: Emulator, query: Query, datasetId: str) -> Response:
    return json_response(get(emu, datasetId))


@ROUTES.api("DELETE", "datasets/{datasetId}/", documented=False)
def http_delete_dataset(emu: Emulator, query: Query, datasetId: str) -> Response:
    delete(emu, datasetId)
    return no_content()
