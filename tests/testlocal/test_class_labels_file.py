"""CLASS_LABELS_FILE: labels holding spaces reach the server in a file, as DataRobot and DRUM pass them.

CLASS_LABELS splits on white space, so `Iris setosa` cannot travel in it; the server then gets
CLASS_LABELS_FILE, the path of a file with one label a line (DRUM turns the variable into its
`--class-labels-file`). The bundle's metadata has no labels here: only the file can give them, and
the model reads the file itself, as a DRUM model may.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cmkit.engine.base import target_files, target_variables
from cmkit.target import Target
from cmkit.testlocal import TestLocalConfig, run_test_local
from cmkit_runtime.target_types import TargetType
from tests.conftest import TEST_LABEL, TEST_RUN_ID

LABELS = ("Iris setosa", "Iris versicolor", "virginica")

READS_THE_FILE = '''

import os as _os

_load_from_json = load_model


def load_model(code_dir):
    """The labels file is read as DRUM reads it: one label a line, the spaces kept."""
    with open(_os.environ["CLASS_LABELS_FILE"], encoding="utf-8") as handle:
        labels = [line for line in handle.read().split("\\n") if line]
    assert labels == {labels!r}, labels
    return _load_from_json(code_dir)
'''


def test_labels_with_spaces_go_in_a_file_and_others_in_the_variable() -> None:
    spaced = Target(TargetType.MULTICLASS, LABELS)
    assert target_files(spaced) == {"CLASS_LABELS_FILE": "Iris setosa\nIris versicolor\nvirginica\n"}
    assert "CLASS_LABELS" not in target_variables(spaced)
    plain = Target(TargetType.MULTICLASS, ("a", "b", "c"))
    assert target_files(plain) == {} and target_variables(plain)["CLASS_LABELS"] == "a b c"
    assert target_files(Target(TargetType.BINARY, ("yes no", "other"))) == {}  # binary labels have their own pair


def labelled_by_file_only(root: Path) -> tuple[Path, Path]:
    """`cmkit init`'s multiclass model with its labels removed from the metadata, and the labels file."""
    from cmkit.scaffold import init_bundle, make_spec

    bundle = root / "spaced"
    init_bundle(bundle, make_spec("multiclass", "spaced", class_labels=LABELS))
    metadata = bundle / "model-metadata.yaml"
    metadata.write_text(re.sub(r"  classLabels:\n(  - .*\n)+", "", metadata.read_text()))
    assert "Iris setosa" not in metadata.read_text()
    with (bundle / "custom.py").open("a") as custom:
        custom.write(READS_THE_FILE.replace("{labels!r}", repr(list(LABELS))))
    labels_file = root / "labels.txt"
    labels_file.write_text("".join(f"{label}\n" for label in LABELS))
    return bundle, labels_file


def run(bundle: Path, labels_file: Path, runtime: str) -> dict[str, object]:
    from cmkit.target import read_labels_file

    config = TestLocalConfig(
        bundle=bundle,
        runtime=runtime,
        target_type="multiclass",
        class_labels=read_labels_file(labels_file),  # what cli.py makes of --class-labels-file
        startup_timeout=60,
        labels={TEST_LABEL: TEST_RUN_ID},
    )
    return run_test_local(config).to_dict()


@pytest.mark.slow
def test_the_process_runtime_passes_the_labels_file(tmp_path: Path) -> None:
    bundle, labels_file = labelled_by_file_only(tmp_path)
    document = run(bundle, labels_file, "process")
    assert document["overallStatus"] == "succeeded", document["testingStatus"]


@pytest.mark.docker
@pytest.mark.slow
def test_a_docker_server_reads_the_labels_file(tmp_path: Path) -> None:
    bundle, labels_file = labelled_by_file_only(tmp_path)
    document = run(bundle, labels_file, "docker")
    assert document["overallStatus"] == "succeeded", document["testingStatus"]
    assert document["details"]["runtime"] == "docker"  # type: ignore[index]
