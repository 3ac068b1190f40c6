"""Wide data: the optimised null-value and sideEffects requests reach the same verdicts.

The bodies are built from per-column pieces, the runtime builds wide frames in one step, and
null-column requests of wide datasets carry a sample of rows; none of that may change what a
model is judged to do. The slow tests run a real server over 1,000 columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cmkit.checks.dataset import load_dataset
from cmkit.checks.protocols import PREDICT_NO_STATE as PNS
from cmkit.checks.protocols import encode_payload
from cmkit.checks.results import ERROR_CHECK, NULL_VALUE_IMPUTATION, SIDE_EFFECTS
from cmkit.checks.sampling import MIN_NULL_ROWS, null_check_rows, null_row_limit, parse_null_rows
from cmkit.errors import InputError
from cmkit.testlocal import TestLocalConfig, run_test_local
from cmkit_runtime.server import parse_columnar, parse_request
from tests.support.bundles import write_runtime_bundle


def mixed_csv(path: Path) -> Path:
    path.write_text('f,i,s,b,e,y\n1.5,3,x,True,,0\n,4,,False,,1\n2.25,-7,"a,b",True,,0\n1e-05,0,zz,False,,1\n')
    return path


def test_bodies_carry_what_the_plain_encoding_carries(tmp_path: Path) -> None:
    dataset = load_dataset(mixed_csv(tmp_path / "d.csv"), "y")
    columns = dataset.columns
    assert json.loads(dataset.payload().body) == json.loads(encode_payload(columns).body)
    for name in columns:
        expected = {**columns, name: [None] * dataset.rows}
        assert json.loads(dataset.with_null_column(name).body) == {"X": expected}
        sample = [0, 2]
        picked = {key: [values[i] for i in sample] for key, values in columns.items()}
        assert json.loads(dataset.with_null_column(name, sample).body) == {"X": {**picked, name: [None, None]}}
    payloads = dataset.row_payloads([3, 1])
    assert [json.loads(payload.body) for payload in payloads] == [
        {"X": {key: [values[i]] for key, values in columns.items()}} for i in (3, 1)
    ]
    # Each null-column body's columnar twin (cmkit_runtime/wire.py) gives the runtime the same frame.
    for name in columns:
        payload = dataset.with_null_column(name, [0, 2])
        assert payload.columnar is not None
        pd.testing.assert_frame_equal(parse_columnar(payload.columnar()), parse_request(payload.body))
    # Integers stay integers and floats floats on the wire, as the runtime's dtypes depend on it.
    assert b'"i":[3,4,-7,0]' in dataset.payload().body and b'"f":[1.5,null,2.25,' in dataset.payload().body


def test_an_infinite_value_is_an_input_error_naming_the_column(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,y\n1,inf,0\n2,3,1\n")
    with pytest.raises(InputError, match="column 'b', data row 1: 'inf' is not a finite number"):
        load_dataset(tmp_path / "d.csv", "y")


def test_an_integer_past_64_bits_is_an_input_error_naming_the_cell(tmp_path: Path) -> None:
    """Issue 27 item 10: pandas keeps it as a Python int, which the request encoder refused
    mid-check ("Integer exceeds 64-bit range", an internal error)."""
    (tmp_path / "d.csv").write_text("a,b,y\n1,99999999999999999999,0\n2,3,1\n")
    with pytest.raises(InputError, match="column 'b', data row 1: 99999999999999999999 is an integer beyond 64 bits"):
        load_dataset(tmp_path / "d.csv", "y")
    # The 64-bit extremes are numbers pandas keeps in int64/uint64, and they go on the wire as written.
    (tmp_path / "e.csv").write_text("a,b,y\n-9223372036854775808,18446744073709551615,0\n2,3,1\n")
    body = load_dataset(tmp_path / "e.csv", "y").payload().body
    assert b"18446744073709551615" in body and b"-9223372036854775808" in body


def test_null_rows_are_all_rows_until_the_budget_then_a_bounded_spread_sample() -> None:
    narrow = pd.DataFrame(np.zeros((2000, 40)))
    assert null_check_rows(narrow).indices is None  # 40 columns x 2,000 rows: every row
    assert null_check_rows(pd.DataFrame(np.zeros((100_000, 4)))).indices is not None
    wide = pd.DataFrame(np.ones((1000, 1000)))
    wide.iloc[[7, 500], 3] = np.nan
    selection = null_check_rows(wide)
    assert selection.indices is not None and selection.rows == len(selection.indices) == 50
    assert {0, 7, 500, 999} <= set(selection.indices)  # rows with nulls, first and last
    assert null_check_rows(wide, "all").indices is None
    assert null_check_rows(wide, 200).rows == 200
    assert null_row_limit(100, 10_000, "auto") == MIN_NULL_ROWS
    assert parse_null_rows("ALL") == "all" and parse_null_rows("25") == 25
    for bad in ("0", "-3", "some"):
        with pytest.raises(ValueError):
            parse_null_rows(bad)


# --- a real server over 1,000 columns ------------------------------------------------------------

FAULTY = '''"""Fails only when one particular column is entirely null, each in its own way."""
import numpy as np


def load_model(code_dir):
    return None


def predict(model, X):
    if X["x137"].isna().all():
        raise ValueError("x137 is required")
    values = X.to_numpy(dtype=float, na_value=np.nan)
    if X["x537"].isna().all():
        return values[:, 537]  # a NaN output
    if X["x937"].isna().all():
        return np.nansum(values, axis=1)[:-1]  # one prediction short
    return np.nansum(values, axis=1)
'''


def wide_bundle(tmp_path: Path, rows: int, columns: int) -> Path:
    bundle = write_runtime_bundle(tmp_path / "wide", "regression", "wide", FAULTY)
    generator = np.random.default_rng(4)
    frame = pd.DataFrame(generator.normal(size=(rows, columns)).round(3), columns=[f"x{i}" for i in range(columns)])
    frame.iloc[::9, 11] = np.nan  # some cells already missing
    frame["price"] = 1.0
    frame.to_csv(bundle / "data" / "sample.csv", index=False)
    return bundle


def faults(bundle: Path, null_rows: str | int, protocol: str | None = None) -> dict[str, Any]:
    config = TestLocalConfig(
        bundle=bundle, runtime="process", startup_timeout=60, null_rows=null_rows, protocol=protocol
    )
    document = run_test_local(config).to_dict()
    statuses = {name: entry["status"] for name, entry in document["testingStatus"].items()}
    assert statuses[ERROR_CHECK] == "succeeded" and statuses[SIDE_EFFECTS] == "succeeded", statuses
    assert statuses[NULL_VALUE_IMPUTATION] == "warning", document["testingStatus"]
    return document


@pytest.mark.slow
def test_one_failing_column_among_1000_is_found_sampled_or_not(tmp_path: Path) -> None:
    bundle = wide_bundle(tmp_path, rows=150, columns=1000)
    found = {}
    # The runtime's columnar bodies (the default against cmkit-runtime: values kept by each
    # worker, then one short request per column), sampled or not, and DataRobot's JSON bodies
    # (the protocol forced): the same columns fail for the same reasons.
    for setting, protocol, bodies in (("auto", None, "columnar"), ("all", None, "columnar"), ("auto", PNS, "json")):
        document = faults(bundle, setting, protocol)
        details = document["details"]["checks"][NULL_VALUE_IMPUTATION]
        found[setting, bodies] = {entry["column"]: entry["reason"] for entry in details["failingColumns"]}
        assert details["rowSelection"] == ("sample" if setting == "auto" else "all")
        assert details["rowsSent"] == (50 if setting == "auto" else 150)
        assert details["bodies"] == bodies
        assert details["valuesKept"] is (bodies == "columnar")  # the workers kept the values: short requests
        assert document["details"]["peakRssMiB"] > 0
    assert found["auto", "columnar"] == found["auto", "json"]
    found = {setting: reasons for (setting, bodies), reasons in found.items() if bodies == "columnar"}
    assert found["auto"].keys() == found["all"].keys() == {"x137", "x537", "x937"}
    assert "x137 is required" in found["auto"]["x137"]
    assert "non-finite" in found["auto"]["x537"] or "NaN" in found["auto"]["x537"], found["auto"]["x537"]
    assert "49 predictions for 50 rows" in found["auto"]["x937"]
    assert "149 predictions for 150 rows" in found["all"]["x937"]


def test_text_only_datasets_build_single_row_bodies(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("prompt,y\nhello,a\n,b\n")
    dataset = load_dataset(tmp_path / "d.csv", "y")
    assert [json.loads(payload.body) for payload in dataset.row_payloads([0, 1])] == [
        {"X": {"prompt": ["hello"]}},
        {"X": {"prompt": [None]}},
    ]


def test_null_rows_flag_refuses_a_bad_value_as_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cmkit.cli import main

    result = CliRunner().invoke(main, ["test-local", str(tmp_path), "--null-rows", "0"])
    assert result.exit_code == 2
    assert "use auto, all or a positive number of rows" in result.output
