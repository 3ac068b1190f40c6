"""`drum score` (DataRobot's DRUM, in bench/'s virtualenv) on a bundle, to compare predictions with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd

from bench.common import drum_venv_lock, drum_with


def drum_score(bundle: Path, data: Path, target_type: str, labels: tuple[str, ...], *extra: str) -> pd.DataFrame:
    """DRUM's batch predictions for `data` (labels: positive then negative for binary, else the class labels).

    `extra`: model frameworks to add to DRUM's virtualenv, then (from the first "--") drum flags.
    """
    return pd.read_csv(drum_score_file(bundle, data, target_type, labels, *extra))


def drum_score_file(bundle: Path, data: Path, target_type: str, labels: tuple[str, ...], *extra: str) -> Path:
    """The file `drum score --output` writes, for a byte-for-byte comparison (arguments: drum_score's)."""
    cut = next((i for i, item in enumerate(extra) if item.startswith("--")), len(extra))
    frameworks, flags = extra[:cut], list(extra[cut:])
    venv = drum_with(*frameworks)
    output = bundle.parent / f"{bundle.name}-drum.csv"
    command = [str(venv / "bin" / "drum"), "score", "--code-dir", str(bundle), "--input", str(data)]
    command += ["--target-type", target_type, "--output", str(output), *flags]
    if target_type == "binary":
        command += ["--positive-class-label", labels[0], "--negative-class-label", labels[1]]
    elif labels:
        command += ["--class-labels", *labels]
    with drum_venv_lock(shared=True):
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output
