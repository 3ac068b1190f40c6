"""Datasets beyond a plain CSV (cmkit/emulator/datasetfiles.py): compressed, archived, other delimiters.

Each form is uploaded to `datasets/fromFile/` of the in-process emulator as a client sends it,
ingested (its `rowCount` is the CSV's), and a model test on it runs as on the CSV: the stdlib
model predicts its rows and predictionVerificationCheck matches them against the same file's
`y` column. What the emulator cannot read ends the ingestion in DataRobot's shape: the dataset's
`processingState` ERROR with its `error`, the status ERROR with the same message. The official
client's `Dataset.create_from_file` on these files is the slow test at the end.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from cmkit.emulator import datasetfiles
from cmkit.emulator.datasetfiles import Unreadable, as_csv
from tests.emulator.test_api import create_model, create_version
from tests.support.bundles import stdlib_files, training_csv
from tests.support.emulator_support import TOKEN, ended, tar_bytes, zip_bytes
from tests.support.flask_transport import BASE, FlaskTransport, InProcessEmulator
from tests.support.lazy import lazy_module

dr = lazy_module("datarobot")
CSV = training_csv(12)
ROWS = 12


def _tar(name: str, data: bytes, mode: str = "w:gz", extra: dict[str, bytes] | None = None) -> bytes:
    return tar_bytes({name: data, **(extra or {})}, mode)


def _delimited(delimiter: str) -> bytes:
    return CSV.decode().replace(",", delimiter).encode()


# The same 12 rows in each form DataRobot's catalog takes and the standard library reads.
FORMS: dict[str, tuple[str, bytes]] = {
    "gzip": ("train.csv.gz", gzip.compress(CSV)),
    "bzip2": ("train.csv.bz2", bz2.compress(CSV)),
    "xz": ("train.csv.xz", lzma.compress(CSV)),
    "zip": ("train.zip", zip_bytes({"folder/train.csv": CSV, "__MACOSX/._train.csv": b"\x00"})),
    "tar.gz": ("train.tar.gz", _tar("train.csv", CSV)),
    "tar": ("train.tar", _tar("train.csv", CSV, "w")),
    "tgz of a tsv": ("train.tgz", _tar("train.tsv", _delimited("\t"))),
    "tsv": ("train.tsv", _delimited("\t")),
    "semicolons": ("train.csv", _delimited(";")),
    "pipes in a zip": ("train.zip", zip_bytes({"train.txt": _delimited("|")})),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_reads_as_the_csv_value_for_value(form: str, tmp_path: Path) -> None:
    name, data = FORMS[form]
    upload = tmp_path / "upload"
    upload.write_bytes(data)
    work = tmp_path / "work"
    work.mkdir()
    table = as_csv(upload, name, work)
    assert table is not None and table.read_bytes() == CSV  # every value as written, comma-separated


def test_a_csv_is_used_as_uploaded_and_quoted_delimiters_do_not_count(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(b'name,"a;b;c"\n"x;y",1\n')
    assert as_csv(upload, "data.csv", tmp_path) is None
    upload.write_bytes(b"one column\n1\n2\n")
    assert as_csv(upload, "data.csv", tmp_path) is None


# What the emulator cannot read, and the one line it says. Named by the file (the ids below): the
# bytes made the id, and gzip's header holds the time it compressed, so two xdist workers
# importing this file a second apart had collected different tests (CI error).
UNREADABLE = [
    ("data.parquet", b"PAR1\x00\x00PAR1", "Parquet files (.parquet) are read by DataRobot, not by the emulator"),
    ("data.zip", zip_bytes({"data.xlsx": b"PK"}), "Excel files (.xlsx) are read by DataRobot"),
    (
        "two.zip",
        zip_bytes({"a.csv": CSV, "b.csv": CSV}),
        "the zip holds 2 files (a.csv, b.csv): upload an archive of one file",
    ),
    ("two.tar.gz", _tar("a.csv", CSV, extra={"b.csv": CSV}), "the tar holds 2 files"),
    ("cut.csv.gz", gzip.compress(CSV, mtime=0)[:40], "the compressed file cannot be read"),
    ("fake.tar", b"x" * 257 + b"ustar" + b"x" * 250, "the tar cannot be read: file could not be opened"),
    ("latin.csv.gz", gzip.compress("a;b\ncaf\xe9;1\n".encode("latin-1"), mtime=0), "the file is not UTF-8 text"),
]


@pytest.mark.parametrize(("name", "data", "message"), UNREADABLE, ids=[case[0] for case in UNREADABLE])
def test_what_the_emulator_cannot_read_is_one_line(name: str, data: bytes, message: str, tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(data)
    with pytest.raises(Unreadable, match=re.escape(message)) as raised:
        as_csv(upload, name, tmp_path)
    assert "\n" not in str(raised.value)


def test_a_bomb_stops_at_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasetfiles, "MAX_EXPANDED", 1000)  # the 5 GB limit, scaled down
    upload = tmp_path / "upload"
    upload.write_bytes(gzip.compress(b"a\n" + b"1\n" * 10_000))
    with pytest.raises(Unreadable, match="expands to more than"):
        as_csv(upload, "bomb.csv.gz", tmp_path)


# -- through the API: ingestion, then a model test on the dataset ----------------------------------


def _upload(
    emulator: InProcessEmulator, api: requests.Session, name: str, data: bytes
) -> tuple[str, requests.Response]:
    started = api.post(emulator.url("datasets/fromFile/"), files={"file": (name, data)}, allow_redirects=False)
    assert started.status_code == 202, started.text
    return str(started.json()["catalogId"]), ended(api, started.headers["Location"])


def _model_test(emulator: InProcessEmulator, api: requests.Session, dataset: str) -> dict[str, Any]:
    model = create_model(api, emulator)
    env_id = str(emulator.info["environmentId"])
    version = create_version(api, emulator, model["id"], stdlib_files(), baseEnvironmentId=env_id).json()
    started = api.post(
        emulator.url("customModelTests/"),
        json={
            "customModelId": model["id"],
            "customModelVersionId": version["id"],
            "datasetId": dataset,
            "configuration": {
                "predictionVerificationCheck": "fail",
                "nullValueImputation": "skip",
                "sideEffects": "skip",
            },
            "parameters": {"predictionVerificationCheck": {"datasetId": dataset, "predictionsColumn": "y"}},
        },
    )
    assert started.status_code == 202, started.text
    done = ended(api, started.headers["Location"])
    assert done.status_code == 303, done.text
    return dict(api.get(done.headers["Location"]).json())


@pytest.mark.parametrize("form", ["gzip", "tar.gz", "semicolons"])
def test_a_model_test_on_a_compressed_or_delimited_dataset_runs_as_on_the_csv(
    form: str, emulator: InProcessEmulator, api: requests.Session
) -> None:
    dataset, done = _upload(emulator, api, *FORMS[form])
    assert done.status_code == 303, done.text
    entry = api.get(emulator.url(f"datasets/{dataset}/")).json()
    assert (entry["processingState"], entry["rowCount"], entry["name"]) == ("COMPLETED", ROWS, FORMS[form][0])
    assert entry["datasetSize"] == len(FORMS[form][1])  # the upload's size, as the catalog reports it
    test = _model_test(emulator, api, dataset)
    assert test["overallStatus"] == "succeeded", test["testingStatus"]
    assert test["testingStatus"]["errorCheck"]["message"] == f"{ROWS} rows predicted"
    assert test["testingStatus"]["predictionVerificationCheck"]["status"] == "succeeded"


def test_an_unreadable_upload_ends_in_datarobots_error_shape(
    emulator: InProcessEmulator, api: requests.Session
) -> None:
    dataset, done = _upload(emulator, api, "data.parquet", b"PAR1\x00\x00PAR1")
    status = done.json()
    assert done.status_code == 200 and status["status"] == "ERROR"
    message = (
        "The file cannot be read as a dataset: Parquet files (.parquet) are read by DataRobot, not by the emulator"
    )
    assert status["message"].startswith(message)
    entry = api.get(emulator.url(f"datasets/{dataset}/")).json()
    assert entry["processingState"] == "ERROR" and entry["error"] == status["message"]


@pytest.mark.slow
def test_the_official_client_uploads_each_form(emulator: InProcessEmulator, tmp_path: Path) -> None:
    # The official client's own session (its multipart encoding, its polling), its transport onto
    # the in-process app: dr.Client() would first ask a real socket for the API version.
    client = dr.rest.RESTClientObject(auth=TOKEN, endpoint=emulator.endpoint)
    client.mount(BASE, FlaskTransport(emulator.flask.app))
    previous = dr.client.set_client(client)
    try:
        for form, (name, data) in FORMS.items():
            path = tmp_path / form.replace(" ", "-") / name
            path.parent.mkdir()
            path.write_bytes(data)
            dataset = dr.Dataset.create_from_file(file_path=str(path))
            assert (dataset.row_count, dataset.name, dataset.processing_state) == (ROWS, name, "COMPLETED"), form
        broken = tmp_path / "data.parquet"
        broken.write_bytes(b"PAR1\x00\x00PAR1")
        with pytest.raises(dr.errors.AsyncProcessUnsuccessfulError, match="Parquet files"):
            dr.Dataset.create_from_file(file_path=str(broken))
    finally:
        if previous is not None:
            dr.client.set_client(previous)
