"""`cmkit init`: what it writes, what it refuses, and that the result lints clean and its model works."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cmkit.cli import main
from cmkit.lint import lint_bundle
from cmkit.metadata import load_metadata, validate_metadata
from cmkit.scaffold import make_spec, render_bundle, render_metadata
from tests.conftest import REPO
from tests.support.property_tiers import tiers

EXPECTED_FILES = [
    ".cmkitignore",
    ".pre-commit-config.yaml",
    "README.md",
    "custom.py",
    "data/sample.csv",
    "model-metadata.yaml",
    "model.json",
    "requirements.txt",
    "start_server.sh",
]
TYPE_ARGS = {
    "regression": ["--target-type", "regression"],
    "binary": ["--target-type", "binary", "--positive-class-label", "yes", "--negative-class-label", "no"],
    "multiclass": ["--target-type", "multiclass", "--class-labels", "low, medium,high,1"],
    "anomaly": ["--target-type", "anomaly"],
    "textgeneration": ["--target-type", "textgeneration"],
}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else b"<dir>", p.stat().st_mode)
        for p in sorted(root.rglob("*"))
    }


def import_custom(bundle: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"custom_{bundle.name}", bundle / "custom.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("target_type", list(TYPE_ARGS))
def test_init_writes_a_bundle_that_lints_clean(tmp_path: Path, target_type: str) -> None:
    bundle = tmp_path / "my-model"
    code, out, err = run("init", str(bundle), *TYPE_ARGS[target_type], "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document == {"bundle": str(bundle), "files": EXPECTED_FILES, "targetType": target_type}
    written = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert written == EXPECTED_FILES
    assert os.access(bundle / "start_server.sh", os.X_OK)
    report = lint_bundle(bundle)
    assert report.findings == []
    meta = load_metadata(bundle)
    assert meta is not None and meta.name == "my-model" and meta.target_type == target_type
    assert validate_metadata(meta, bundle) == []


def test_human_output_names_the_next_commands(tmp_path: Path) -> None:
    bundle = tmp_path / "m"
    code, out, err = run("init", str(bundle), "--target-type", "regression")
    assert code == 0 and out == ""
    for command in ("lint", "test-local", "push"):
        assert f"cmkit {command} {bundle}" in err


def test_next_commands_are_quoted_for_the_shell(tmp_path: Path) -> None:
    bundle = tmp_path / "my model"
    code, _, err = run("init", str(bundle), "--target-type", "anomaly")
    assert code == 0 and f"cmkit lint '{bundle}'" in err


def test_labels_and_target_name_reach_metadata_and_data(tmp_path: Path) -> None:
    bundle = tmp_path / "m"
    code, _, err = run(
        "init", str(bundle), "--target-type", "binary", "--name", "Churn: v2", "--target-name", "left",
        "--positive-class-label", "yes", "--negative-class-label", "no",
    )  # fmt: skip
    assert code == 0, err
    meta = load_metadata(bundle)
    assert meta is not None
    assert (meta.name, meta.target_name, meta.positive_class_label, meta.negative_class_label) == (
        "Churn: v2", "left", "yes", "no",
    )  # fmt: skip
    data = pd.read_csv(bundle / "data/sample.csv", dtype=str)
    assert data.columns[-1] == "left" and set(data["left"]) == {"yes", "no"}


def test_binary_labels_default_to_1_and_0_as_strings(tmp_path: Path) -> None:
    bundle = tmp_path / "m"
    assert run("init", str(bundle), "--target-type", "binary")[0] == 0
    text = (bundle / "model-metadata.yaml").read_text()
    assert yaml.safe_load(text)["inferenceModel"]["positiveClassLabel"] == "1"  # quoted: a string for any reader
    meta = load_metadata(bundle)
    assert meta is not None and (meta.positive_class_label, meta.negative_class_label) == ("1", "0")


def test_anomaly_sample_has_no_target(tmp_path: Path) -> None:
    bundle = tmp_path / "m"
    assert run("init", str(bundle), "--target-type", "anomaly")[0] == 0
    meta = load_metadata(bundle)
    assert meta is not None and meta.target_name is None and "inferenceModel" not in meta.data
    header = (bundle / "data/sample.csv").read_text().splitlines()[0].split(",")
    model = json.loads((bundle / "model.json").read_text())
    assert header == model["features"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-type", "multiclass"], "multiclass models need 2 or more class labels"),
        (["--target-type", "multiclass", "--class-labels", "only"], "multiclass models need 2 or more class labels"),
        (["--target-type", "multiclass", "--class-labels", "a,b,a"], "--class-labels repeats 'a'"),
        (["--target-type", "multiclass", "--class-labels", "a,,b"], "empty"),
        (["--target-type", "multiclass", "--class-labels", "a,b", "--positive-class-label", "a"], "not --positive"),
        (["--target-type", "regression", "--class-labels", "a,b"], "regression models take no class labels"),
        (["--target-type", "regression", "--positive-class-label", "1"], "regression models take no class labels"),
        (["--target-type", "anomaly", "--negative-class-label", "0"], "anomaly models take no class labels"),
        (["--target-type", "anomaly", "--target-name", "y"], "anomaly models have no target"),
        (["--target-type", "binary", "--positive-class-label", "0"], "are both '0'"),
        (["--target-type", "binary", "--class-labels", "a,b"], "binary models take --positive-class-label"),
        (["--target-type", "binary", "--positive-class-label", "a\nb"], "control character"),
        (["--target-type", "regression", "--target-name", "sqft"], "also a feature of the sample data"),
        (["--target-type", "multiclass", "--class-labels", "a,b", "--target-name", "feature_1"], "also a feature"),
        (["--target-type", "regression", "--template", "nope"], "unknown template 'nope'"),
        ([], "missing --target-type"),
    ],
)
def test_bad_combinations_are_usage_errors_on_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    bundle = tmp_path / "m"
    code, out, err = run("init", str(bundle), *args)
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert message in lines[0]
    assert not bundle.exists()


def test_bad_target_type_is_a_click_usage_error(tmp_path: Path) -> None:
    code, _, err = run("init", str(tmp_path / "m"), "--target-type", "ranking")
    assert code == 2 and "'ranking' is not one of" in err


def test_json_error_document(tmp_path: Path) -> None:
    code, out, _ = run("init", str(tmp_path / "m"), "--target-type", "multiclass", "--json")
    assert code == 2
    assert "2 or more class labels" in json.loads(out)["error"]["message"]


def test_non_empty_folder_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    bundle = tmp_path / "m"
    bundle.mkdir()
    (bundle / "custom.py").write_text("my precious model\n")
    (bundle / "notes").mkdir()
    (bundle / "notes" / "a.txt").write_text("keep\n")
    before = snapshot(bundle)
    code, out, err = run("init", str(bundle), "--target-type", "regression")
    assert code == 2 and out == ""
    assert "folder is not empty (custom.py, notes)" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(bundle) == before


def test_force_overwrites_template_files_and_keeps_the_rest(tmp_path: Path) -> None:
    bundle = tmp_path / "m"
    bundle.mkdir()
    (bundle / "custom.py").write_text("old\n")
    (bundle / "train.ipynb").write_text("{}\n")
    code, _, err = run("init", str(bundle), "--target-type", "regression", "--force")
    assert code == 0, err
    assert "def load_model" in (bundle / "custom.py").read_text()
    assert (bundle / "train.ipynb").read_text() == "{}\n"
    assert lint_bundle(bundle).findings == []


def test_force_still_refuses_a_folder_in_the_way_and_changes_nothing(tmp_path: Path) -> None:
    bundle = tmp_path / "m"
    (bundle / "custom.py").mkdir(parents=True)
    (bundle / "requirements.txt").write_text("numpy==2.0\n")
    before = snapshot(bundle)
    code, _, err = run("init", str(bundle), "--target-type", "regression", "--force")
    assert code == 2 and "custom.py: is in the way" in err
    assert snapshot(bundle) == before


def test_a_file_as_destination_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.write_text("x")
    code, _, err = run("init", str(target), "--target-type", "regression", "--force")
    assert code == 2 and "Directory 'm' is a file" in err.replace(str(tmp_path) + "/", "")
    assert target.read_text() == "x"


def test_a_fresh_git_repository_counts_as_empty(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "m")], check=True)
    code, _, err = run("init", str(tmp_path / "m"), "--target-type", "anomaly")
    assert code == 0, err


def test_target_type_is_prompted_for_on_a_terminal(tmp_path: Path) -> None:
    """A real pseudo-terminal on stdin: the command asks, reads the answer, and writes the bundle."""
    leader, follower = pty.openpty()
    bundle = tmp_path / "m"
    process = subprocess.Popen(
        [sys.executable, "-m", "cmkit", "init", str(bundle)],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Target type" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                seen += os.read(leader, 1024)
        assert b"Target type" in seen and b"regression" in seen
        os.write(leader, b"anomaly\n")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    meta = load_metadata(bundle)
    assert meta is not None and meta.target_type == "anomaly"


@pytest.mark.parametrize("target_type", ["regression", "binary", "anomaly"])
def test_example_model_predicts_its_sample_data(tmp_path: Path, target_type: str) -> None:
    bundle = tmp_path / "m"
    assert run("init", str(bundle), *TYPE_ARGS[target_type])[0] == 0
    custom = import_custom(bundle)
    model = custom.load_model(str(bundle))
    data = pd.read_csv(bundle / "data/sample.csv")
    predictions = custom.predict(model, data)
    assert predictions.shape == (len(data),)
    if target_type == "regression":
        residual = ((data["price"] - predictions) ** 2).mean()
        assert residual < 0.2 * data["price"].var()  # a real fit: R^2 > 0.8
    elif target_type == "binary":
        accuracy = ((predictions > 0.5) == (data["churned"] == "yes")).mean()
        assert accuracy > 0.7
    else:
        assert predictions.argmax() in set(data.index[data["temperature_c"] > data["temperature_c"].quantile(0.9)])


@pytest.mark.parametrize("labels", [["a", "b"], ["cat", "dog", "bird"], [str(i) for i in range(12)]])
def test_multiclass_example_is_written_for_the_labels(tmp_path: Path, labels: list[str]) -> None:
    bundle = tmp_path / "m"
    assert run("init", str(bundle), "--target-type", "multiclass", "--class-labels", ",".join(labels))[0] == 0
    custom = import_custom(bundle)
    model = custom.load_model(str(bundle))
    data = pd.read_csv(bundle / "data/sample.csv", dtype={"class": str})
    assert list(data["class"].unique()) == labels
    probabilities = custom.predict(model, data)
    assert probabilities.shape == (len(data), len(labels))
    assert abs(probabilities.sum(axis=1) - 1).max() < 1e-9
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    accuracy = (pd.Series(predicted) == data["class"]).mean()
    assert accuracy > (0.9 if len(labels) <= 3 else 0.5)  # clusters crowd as classes multiply


def test_missing_values_are_imputed_by_the_example_models(tmp_path: Path) -> None:
    for target_type in TYPE_ARGS:
        bundle = tmp_path / target_type
        assert run("init", str(bundle), *TYPE_ARGS[target_type])[0] == 0
        custom = import_custom(bundle)
        model = custom.load_model(str(bundle))
        data = pd.read_csv(bundle / "data/sample.csv").head(4)
        data[data.columns[0]] = None  # a whole column of nulls, as JSON null arrives
        predictions = custom.predict(model, data)
        assert pd.notna(predictions).all(), target_type


printable = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=","), min_size=1, max_size=12
).filter(lambda s: s == s.strip())


@tiers(60)
def test_any_labels_round_trip_through_metadata_and_sample_data(examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(labels=st.lists(printable, min_size=2, max_size=5, unique=True), name=printable)
    # Found by this test: str.splitlines() also splits on U+2028, which CSV readers do not.
    @example(labels=["0", "0\u20280"], name="0")
    def check(labels: list[str], name: str) -> None:
        spec = make_spec("multiclass", name, class_labels=labels)
        files = {f.path: f.content for f in render_bundle(spec)}
        meta = yaml.load(files["model-metadata.yaml"], Loader=yaml.BaseLoader)  # as DRUM and cmkit read it
        assert meta["name"] == name and meta["inferenceModel"]["classLabels"] == labels
        rows = list(csv.reader(io.StringIO(files["data/sample.csv"].decode(), newline="")))
        assert [row[-1] for row in rows[1 : len(labels) + 1]] == labels
        assert json.loads(files["model.json"])["classes"] == labels

    check()


def test_binary_labels_round_trip_with_yaml_specials() -> None:
    spec = make_spec("binary", "m", positive_class_label="yes", negative_class_label="null")
    meta = yaml.load(render_metadata(spec), Loader=yaml.BaseLoader)
    expected = {"targetName": "churned", "positiveClassLabel": "yes", "negativeClassLabel": "null"}
    assert meta["inferenceModel"] == expected
    # A reader that resolves types must still see strings, not True and None.
    assert yaml.safe_load(render_metadata(spec))["inferenceModel"] == expected


def test_bundle_pre_commit_config_uses_the_hooks_of_this_repository() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    config = yaml.safe_load((REPO / "templates/bundles/python/common/.pre-commit-config.yaml").read_text())
    local = {h["id"]: h for h in config["repos"][0]["hooks"]}
    assert set(local) == set(hooks) == {"cmkit-lint", "cmkit-deps"}
    for hook_id, hook in hooks.items():
        for key in ("name", "entry", "require_serial", "types", "files"):
            assert local[hook_id].get(key) == hook.get(key), (hook_id, key)


@pytest.mark.slow
def test_bundle_pre_commit_config_runs_cmkit_hooks(tmp_path: Path) -> None:
    """The real pre-commit runs the bundle's hooks: clean on a fresh bundle, failing on a broken one."""
    repo = tmp_path / "model"
    assert run("init", str(repo), "--target-type", "regression")[0] == 0
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PRE_COMMIT_COLOR": "never",
    }

    def pre_commit() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pre_commit", "run", "--all-files"]
        return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600)

    clean = pre_commit()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "cmkit lint" in clean.stdout and "cmkit deps" in clean.stdout
    (repo / "requirements.txt").write_text("numpy!=1.0\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    broken = pre_commit()
    assert broken.returncode == 1
    assert "requirements.txt:1" in broken.stdout and "requirements-invalid" in broken.stdout
