"""Permutation feature impact: the core against a real HTTP server, then `test-local --feature-impact`.

The purpose-built model (tests/support/bundles.py: write_two_of_ten) predicts from x2 and x7 only, out
of ten columns: whatever the target type, those two must rank first and the rest have no impact.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from cmkit.checks.dataset import load_dataset
from cmkit.checks.predictions import Target
from cmkit.errors import InputError
from cmkit.featureimpact import FeatureImpactFailed, FeatureImpactOptions, compute, rank, score
from tests.support.bundles import write_two_of_ten


class _Linear(BaseHTTPRequestHandler):
    """predict_no_state answering 3*x2 - 2*x7; a column named `boom` makes it answer 500."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["X"]
        if self.path != "/p/predict_no_state/" or "boom" in body:
            self.send_response(500)
            self.end_headers()
            return
        values = (3 * np.array(body["x2"], dtype=float) - 2 * np.array(body["x7"], dtype=float)).tolist()
        payload = json.dumps({"predictions": values}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def linear_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Linear)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/p"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def regression_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_two_of_ten(tmp_path_factory.mktemp("fi") / "regression")


def test_the_two_features_rank_first_and_rowcount_is_honoured(linear_server: str, regression_bundle: Path) -> None:
    dataset = load_dataset(regression_bundle / "data" / "train.csv", "y")
    result = compute(linear_server, dataset, Target("regression"), FeatureImpactOptions(row_count=120))
    document = result.to_api()
    names = [item["featureName"] for item in document["featureImpacts"]]
    assert names[:2] == ["x2", "x7"], document
    assert document["featureImpacts"][0]["impactNormalized"] == 1.0
    assert all(item["impactUnnormalized"] == 0.0 for item in document["featureImpacts"][2:])
    assert (document["rowCount"], result.rows, document["count"], result.metric) == (120, 120, 10, "RMSE")
    assert document["shapBased"] is False and document["ranRedundancyDetection"] is False
    default = compute(linear_server, dataset, Target("regression"))
    assert default.to_api()["rowCount"] is None and default.rows == 300  # "null for the default logic"


def test_row_count_beyond_the_data_and_models_that_fail_are_reported(
    linear_server: str, regression_bundle: Path, tmp_path: Path
) -> None:
    dataset = load_dataset(regression_bundle / "data" / "train.csv", "y")
    with pytest.raises(InputError, match="exceeds the 300 rows"):
        compute(linear_server, dataset, Target("regression"), FeatureImpactOptions(row_count=301))
    with pytest.raises(InputError, match="not available for anomaly"):
        compute(linear_server, dataset, Target("anomaly"))
    broken = tmp_path / "boom.csv"
    broken.write_text("x2,x7,boom,y\n" + "".join(f"{i},{i},{i},{i}\n" for i in range(20)))
    with pytest.raises(FeatureImpactFailed, match="HTTP 500"):
        compute(linear_server, load_dataset(broken, "y"), Target("regression"))


def test_scores_and_normalisation() -> None:
    binary = Target("binary", ("yes", "no"))
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert score(probabilities, np.array([0, 1]), binary) == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2)
    assert score(np.array([1.0, 3.0]), np.array([0.0, 3.0]), Target("regression")) == pytest.approx(np.sqrt(0.5))
    ranked = rank({"a": 0.5, "b": 2.0, "c": -0.1})
    assert [(i.feature_name, i.impact_normalized) for i in ranked] == [("b", 1.0), ("a", 0.25), ("c", -0.05)]
    assert {i.impact_normalized for i in rank({"a": 0.0, "b": -1.0})} == {0.0}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["regression", "binary"])
def test_test_local_feature_impact_json(target: str, tmp_path: Path) -> None:
    bundle = write_two_of_ten(tmp_path / target, target)
    command = [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--runtime", "process", "--feature-impact"]
    done = subprocess.run([*command, "--json", "--feature-impact-rows", "200"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    impact = json.loads(done.stdout)["featureImpact"]
    assert impact["status"] == "succeeded", impact
    assert {item["featureName"] for item in impact["featureImpacts"][:2]} == {"x2", "x7"}
    assert all(abs(item["impactNormalized"]) < 0.05 for item in impact["featureImpacts"][2:])
    assert impact["metric"] == ("RMSE" if target == "regression" else "LogLoss") and impact["rowCount"] == 200
    printed = subprocess.run(command, capture_output=True, text=True)
    assert printed.returncode == 0 and "feature impact (" in printed.stderr and " x2 " in printed.stderr


def test_anomaly_models_are_refused_before_anything_starts(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cmkit.cli import main
    from cmkit.scaffold import init_bundle, make_spec

    bundle = tmp_path / "anomaly"
    init_bundle(bundle, make_spec("anomaly", "anomaly"))
    # In this process: a subprocess spent most of a second importing test-local.
    args = ["test-local", str(bundle), "--runtime", "process", "--feature-impact-rows", "50"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 2 and "anomaly models have none" in done.stderr and "Traceback" not in done.output
