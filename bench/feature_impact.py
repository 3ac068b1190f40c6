#!/usr/bin/env python3
"""Comparison 6: permutation feature impact of the diabetes sample model (10 features, 442 rows).

No other tool computes a custom model's feature impact locally, so the comparisons are with
floors measured in the same run, on the same server:

- the computation alone (`cmkit.featureimpact.compute` against the running server) against the
  requests it cannot avoid: the baseline batch and one batch per feature (11 requests of 442
  rows), sent one after the other;
- the whole command from a cold start, `cmkit test-local sample_models/regression_diabetes
  --runtime process --feature-impact` on scikit-learn's full diabetes data, with the two
  checks that feature impact does not need skipped (nullValueImputation, sideEffects): against
  the target of 10 s, and against the same command without `--feature-impact` (server start,
  errorCheck and CLI: what any local feature impact has to pay first).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, WORK, Row, median_seconds, python_env, ratio, table
from cmkit.checks.client import ModelClient
from cmkit.checks.dataset import load_dataset
from cmkit.checks.predictions import Target
from cmkit.featureimpact import compute
from cmkit.serve import serve_bundle
from cmkit.testlocal import TestLocalConfig

BUNDLE = REPO / "sample_models" / "regression_diabetes"
TARGET = "progression"


def diabetes_csv() -> Path:
    """scikit-learn's diabetes data (442 rows), with the column names the sample model uses."""
    from sklearn.datasets import load_diabetes

    path = WORK / "feature-impact" / "diabetes.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": TARGET})
    frame.to_csv(path, index=False)
    return path


def command_seconds(dataset: Path, repeats: int, feature_impact: bool) -> tuple[float, dict[str, object]]:
    command = [sys.executable, "-m", "cmkit", "test-local", str(BUNDLE), "--runtime", "process"]
    command += ["--dataset", str(dataset), "--json", "--check", "nullValueImputation=skip"]
    command += ["--check", "sideEffects=skip", *(["--feature-impact"] if feature_impact else [])]
    documents: list[dict[str, object]] = []

    def once() -> None:
        done = subprocess.run(command, capture_output=True, text=True, env=python_env(), check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        documents.append(json.loads(done.stdout))

    return median_seconds(once, repeats, warmup=1), documents[-1]


def computation_seconds(dataset_path: Path, repeats: int) -> tuple[float, float, list[str]]:
    """(feature impact on a running server, the floor of its 11 requests, the ranking)."""
    dataset = load_dataset(dataset_path, TARGET)
    session = serve_bundle(TestLocalConfig(bundle=BUNDLE, runtime="process"))
    try:
        url = session.server.url
        ranking: list[str] = []

        def impact() -> None:
            result = compute(url, dataset, Target("regression"))
            ranking[:] = [item.feature_name for item in result.impacts]

        ours = median_seconds(impact, repeats)
        client = ModelClient(url, parallelism=1)
        payload = dataset.payload()

        def requests_only() -> None:
            for _ in range(len(dataset.columns) + 1):
                if client.predict(payload).status != 200:
                    raise RuntimeError("the sample model failed to predict")

        floor = median_seconds(requests_only, repeats)
        client.close()
    finally:
        session.close()
    return ours, floor, ranking


def run(quick: bool = False) -> list[Row]:
    repeats = 1 if quick else 5
    dataset = diabetes_csv()
    ours, floor, ranking = computation_seconds(dataset, repeats * 2)
    whole, document = command_seconds(dataset, repeats, feature_impact=True)
    without, _ = command_seconds(dataset, repeats, feature_impact=False)
    impact = document["featureImpact"]
    assert isinstance(impact, dict) and impact["status"] == "succeeded", impact
    return [
        Row(
            "feature impact, diabetes (10 features x 442 rows), on a running server",
            f"{ours * 1000:.0f} ms",
            f"{floor * 1000:.0f} ms (11 batch requests in sequence)",
            ratio(ours, floor) + " of the floor",
            "",
        ),
        Row(
            "`test-local --runtime process --feature-impact`, diabetes 442 rows, cold: wall time",
            f"{whole:.2f} s",
            f"{without:.2f} s (same command without --feature-impact)",
            f"{whole - without:+.2f} s",
            "< 10 s",
        ),
        Row("feature impact ranking (top 4)", ", ".join(ranking[:4]), "", "", ""),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    print(table(run(options.quick)))
