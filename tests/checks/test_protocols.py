"""The two prediction protocols: DRUM's CSV body read back as DRUM reads it, and detection rules.

DRUM reads a `/predict/` body with `pandas.read_csv` (and, for a one-column frame, again with
`skip_blank_lines=False`, so a blank line is a null): these tests read the CSV the same way. The
protocols against real servers are judged in tests/runtime/test_dropin_environment.py (DRUM in Docker)
and every test-local test (cmkit's runtime).
"""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from cmkit.checks import protocols
from cmkit.checks.client import ModelClient
from cmkit.checks.protocols import DRUM, PREDICT_NO_STATE, PROTOCOLS, Payload, csv_body, encode_payload
from tests.support.scripted_server import scripted


def read_as_drum(body: bytes) -> pd.DataFrame:
    frame = pd.read_csv(io.BytesIO(body))
    if frame.shape[1] == 1:
        frame = pd.read_csv(io.BytesIO(body), skip_blank_lines=False)
    return frame


def test_the_csv_body_carries_values_and_nulls_as_drum_reads_them() -> None:
    columns = {"x": [1.5, None, 0.1 + 0.2], "city": ["Paris, France", None, 'say "hi"'], "n": [1, 2, None]}
    frame = read_as_drum(PROTOCOLS[DRUM].request_body(encode_payload(columns)))
    assert list(frame.columns) == ["x", "city", "n"] and len(frame) == 3
    assert frame["x"][0] == 1.5 and frame["x"][2] == 0.1 + 0.2  # floats survive exactly
    assert frame["city"][0] == "Paris, France" and frame["city"][2] == 'say "hi"'
    assert frame.isna().sum().to_dict() == {"x": 1, "city": 1, "n": 1}


def test_a_single_column_of_nulls_keeps_its_rows() -> None:
    body = csv_body({"only": [None, None, None]})
    frame = read_as_drum(body)
    assert len(frame) == 3 and frame["only"].isna().all()


def test_a_body_without_kept_columns_is_parsed() -> None:
    raw = json.dumps({"X": {"a": [1, None]}}).encode()
    assert csv_body(Payload(raw).column_values()) == b'a\n1\n""\n'  # the csv module quotes a lone empty field


def test_predict_no_state_sends_the_checks_body_unchanged() -> None:
    body = encode_payload({"a": [1]})
    assert PROTOCOLS[PREDICT_NO_STATE].request_body(body) == b'{"X":{"a":[1]}}'


def test_detection_rules() -> None:
    found = protocols.from_headers({"X-Drum-Version": "1.18.1"})
    assert found is not None and found.protocol.name == DRUM and found.drum_version == "1.18.1"
    assert protocols.from_headers({"Server": "gunicorn"}) is None
    capabilities = json.dumps({"supported_payload_formats": {"csv": None}, "supported_methods": {}})
    assert protocols.from_capabilities(200, capabilities).protocol.name == DRUM
    assert protocols.from_capabilities(404, '{"message": "no route"}').protocol.name == PREDICT_NO_STATE
    assert protocols.from_capabilities(200, "<html>").protocol.name == PREDICT_NO_STATE


def test_a_forced_protocol_is_not_replaced_by_a_detection() -> None:
    known = protocols.KnownProtocol(PREDICT_NO_STATE)
    known.remember(protocols.from_capabilities(200, '{"supported_payload_formats": {}}'))
    found = known.detected
    assert found is not None and found.protocol.name == PREDICT_NO_STATE and found.how == "forced"
    assert protocols.KnownProtocol().detected is None  # a new run knows nothing yet
    with pytest.raises(ValueError, match="unknown protocol 'grpc'"):
        protocols.KnownProtocol("grpc")


def test_the_protocol_is_the_runs_client_state_shared_with_the_clients_it_lends() -> None:
    # Before, it was remembered per URL at module level and forgotten at both ends of a run: a
    # port reused by the next server must not inherit what the last one spoke.
    with scripted(lambda n: 200) as server:  # no DRUM marker: predict_no_state
        run = ModelClient(server.url, protocol=DRUM)
        lent = run.sibling(timeout=1.0, parallelism=2)
        fresh = ModelClient(server.url)  # another run on the same URL
        fresh_lent = fresh.sibling(timeout=1.0, parallelism=1)
        try:
            assert run.protocol is not None and run.protocol.protocol.name == DRUM
            assert lent.protocol is run.protocol and (lent.timeout, lent.parallelism) == (1.0, 2)
            assert fresh.protocol is None
            assert fresh_lent.ping() == 200  # what a lent client detects, the run's client knows
            found = fresh.protocol
            assert found is not None and found.protocol.name == PREDICT_NO_STATE and found.how == "no DRUM marker"
            assert lent.ping() == 200 and run.protocol.how == "forced"  # forced stays forced
        finally:
            for client in (run, lent, fresh, fresh_lent):
                client.close()


def test_columnar_bodies_only_for_cmkit_runtime_and_only_for_bodies_that_have_a_twin() -> None:
    from dataclasses import replace

    from cmkit_runtime import wire

    info = json.dumps({"runtime": "cmkit-runtime", "requestFormats": [wire.JSON, wire.COLUMNAR]})
    assert protocols.offers_columnar(200, info)
    assert not protocols.offers_columnar(200, json.dumps({"runtime": "cmkit-runtime"}))  # runtime 0.2
    assert not protocols.offers_columnar(404, info) and not protocols.offers_columnar(200, "<html>")
    plain = protocols.from_capabilities(404, "")
    columnar = replace(plain, columnar=True)
    twin = protocols.Payload(b'{"X":{"a":[null]}}', columnar=lambda: b'{"columns":["a"],"rows":1,"values":[null]}')
    assert columnar.request(twin) == (b'{"columns":["a"],"rows":1,"values":[null]}', wire.COLUMNAR)
    assert columnar.sent_as(encode_payload({"a": [1]})) == "json"  # no twin: DataRobot's JSON
    assert plain.request(twin) == (b'{"X":{"a":[null]}}', "application/json")
    assert columnar.to_dict()["columnar"] is True and "columnar" not in plain.to_dict()
    assert protocols.Detected(PROTOCOLS[DRUM], "forced").sent_as(twin) == "csv"


def test_kept_values_go_short_and_the_whole_body_follows_only_a_worker_without_them() -> None:
    from dataclasses import replace

    from cmkit_runtime import wire

    info = json.dumps({"requestFormats": [wire.JSON, wire.COLUMNAR], "columnarKeep": True})
    assert protocols.keeps_columnar(200, info)
    assert not protocols.keeps_columnar(200, json.dumps({"requestFormats": [wire.COLUMNAR]}))  # runtime 0.3
    assert not protocols.keeps_columnar(500, info) and not protocols.keeps_columnar(200, "[]")
    kept = protocols.KeptTwin(short=lambda: b'{"from":"k","nulls":[0]}', whole=lambda: b"whole")
    body = protocols.Payload(b'{"X":{"a":[null]}}', columnar=lambda: b"inline", kept=kept)
    columnar = replace(protocols.from_capabilities(404, ""), columnar=True)
    keeping = replace(columnar, keeps=True)
    assert columnar.request(body) == (b"inline", wire.COLUMNAR)  # runtime 0.3: nulls inline
    assert keeping.request(body) == (b'{"from":"k","nulls":[0]}', wire.COLUMNAR)
    assert keeping.to_dict()["columnarKeep"] is True and "columnarKeep" not in columnar.to_dict()
    missing = json.dumps({"message": "this worker keeps no values under 'k'", "missing": "k"})
    assert keeping.resend(body, 409, missing) == b"whole"
    assert keeping.resend(body, 409, '{"message": "other conflict"}') is None
    assert keeping.resend(body, 409, "<html>") is None
    assert keeping.resend(body, 500, missing) is None
    assert columnar.resend(body, 409, missing) is None  # it never sent the short form
    assert keeping.resend(encode_payload({"a": [1]}), 409, missing) is None
