"""The request bodies `POST $URL_PREFIX/predict_no_state/` reads, told apart by Content-Type.

- `application/json` (DataRobot's contract, and the default for any other type):
  `{"X": {"column": [value, ...], ...}}`.
- `application/vnd.cmkit.columnar+json`, this runtime's own:
  `{"columns": ["a", "b", ...], "rows": N, "values": [a1, ..., aN, b1, ..., bN, ...]}`: the
  names once and every value in one flat list, column after column (JSON null is a missing
  value). The same DataFrame comes out of both (tests/test_runtime_frames.py holds them to it).

Why a second form: parsing JSON costs a Python list per column per request, and cmkit's
nullValueImputation check sends one request per column. At 10,000 columns that was 8 of a
request's 12 ms of parsing; one flat list costs 1-2 ms. `GET $URL_PREFIX/info/` lists the forms
under "requestFormats", and cmkit uses the columnar one only for that check's requests, so
every other check still goes through the JSON that DataRobot sends.
"""

JSON = "application/json"
COLUMNAR = "application/vnd.cmkit.columnar+json"
REQUEST_FORMATS = (JSON, COLUMNAR)
