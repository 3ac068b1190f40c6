"""`cmkit lint`: each problem it must catch, on small bundles built per test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.bundle import API_MAX_FILES, list_bundle
from cmkit.cli import main
from cmkit.lint import lint_bundle
from tests.support.bundles import metadata_yaml, write_static_bundle

METADATA = metadata_yaml("house-prices", target_name="price", validation="data/sample.csv")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    files = {"data/sample.csv": "a,price\n1,2\n", "custom.py": "def predict(model, X):\n    return X\n"}
    return write_static_bundle(tmp_path / "bundle", metadata=METADATA, requirements="numpy==2.0\n", files=files)


def rules(root: Path) -> list[tuple[str, str, int | None]]:
    return [(f.rule, f.file, f.line) for f in lint_bundle(root).findings]


def test_good_bundle_passes(bundle: Path) -> None:
    report = lint_bundle(bundle)
    assert report.ok and report.findings == []
    assert report.files == 5


def test_without_a_start_script_hooks_or_an_artifact_are_enough(bundle: Path) -> None:
    # The environment's runtime serves the bundle: a note, not an error.
    (bundle / "start_server.sh").unlink()
    assert rules(bundle) == [("start-script-provided", "start_server.sh", None)]
    assert lint_bundle(bundle).ok and "cmkit hooks" in lint_bundle(bundle).findings[0].message
    (bundle / "custom.py").write_text("from helpers import score\n")  # DRUM hooks, imported
    assert "DRUM hooks" in lint_bundle(bundle).findings[0].message
    (bundle / "custom.py").unlink()
    (bundle / "model.pkl").write_bytes(b"\x80\x04N.")
    assert rules(bundle) == [("start-script-provided", "start_server.sh", None)]


def test_without_a_start_script_no_model_is_an_error(bundle: Path) -> None:
    (bundle / "start_server.sh").unlink()
    (bundle / "custom.py").write_text("def helper():\n    return 1\n")
    assert rules(bundle) == [("start-script-missing", "start_server.sh", None)]
    (bundle / "a.pkl").write_bytes(b"")
    (bundle / "b.joblib").write_bytes(b"")
    assert "more than one artifact (a.pkl, b.joblib)" in lint_bundle(bundle).findings[0].message
    (bundle / "custom.py").write_text("def predict(model, X:\n")
    assert rules(bundle) == [("hooks-syntax", "custom.py", 1)]


@pytest.mark.parametrize("name", ["model.onnx", "model.h5", "model.pth", "MODEL.ONNX"])
def test_every_artifact_drum_loads_is_a_model_and_its_framework_must_be_required(bundle: Path, name: str) -> None:
    (bundle / "start_server.sh").unlink()
    (bundle / "custom.py").write_text("def transform(data, model):\n    return data\n")  # the templates' hook
    (bundle / name).write_bytes(b"\x08\x07")
    package = {".onnx": "onnxruntime", ".h5": "tensorflow", ".pth": "torch"}[Path(name).suffix.lower()]
    report = lint_bundle(bundle)
    assert report.ok and [(f.rule, f.severity) for f in report.findings] == [
        ("start-script-provided", "note"),
        ("artifact-framework-missing", "warning"),
    ]
    assert f"{name} is loaded with {package}, which requirements.txt does not name" in report.findings[1].message
    (bundle / "requirements.txt").write_text(f"{package}-cpu==1.0  # any variant of the package\n")
    assert rules(bundle) == [("start-script-provided", "start_server.sh", None)]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("model.jar", "a Java model: DataRobot runs it in its Java drop-in environment"),
        ("model.rds", "an R model, which is served in R only when the bundle has no custom.py"),
        ("model.keras", "DRUM loads Keras models from .h5 only"),
    ],
)
def test_an_artifact_no_builtin_predictor_loads_is_an_error_with_the_reason(bundle: Path, name: str, says: str) -> None:
    (bundle / "start_server.sh").unlink()
    (bundle / "custom.py").unlink()
    if name.endswith(".rds"):  # alone, an .rds is an R model (tests/bundle/test_r_bundles.py); beside custom.py not
        (bundle / "custom.py").write_text("def init(code_dir):\n    pass\n")
    (bundle / name).write_bytes(b"PK")
    (finding,) = lint_bundle(bundle).findings
    assert (finding.rule, finding.severity) == ("start-script-missing", "error")
    assert f"{name}, which no built-in predictor loads ({says}" in finding.message


def test_a_validation_input_outside_the_bundle_is_a_warning_as_datarobot_ignores_it(bundle: Path) -> None:
    # DataRobot's python3_sklearn template points to ../../tests/testdata/.
    metadata = METADATA.replace("data/sample.csv", "../../tests/testdata/juniors.csv")
    (bundle / "model-metadata.yaml").write_text(metadata)
    report = lint_bundle(bundle)
    (finding,) = report.findings
    assert report.ok and (finding.rule, finding.severity) == ("metadata-invalid", "warning")
    assert "outside the bundle: DataRobot ignores it at upload" in finding.message
    (bundle / "model-metadata.yaml").write_text(METADATA.replace("data/sample.csv", "data/missing.csv"))
    assert not lint_bundle(bundle).ok  # inside the bundle, a missing file stays an error


def test_runtime_parameter_definitions_are_checked_as_drum_reads_them(bundle: Path) -> None:
    good = "runtimeParameterDefinitions:\n  - fieldName: k\n    type: numeric\n    defaultValue: 5\n    maxValue: 10\n"
    (bundle / "model-metadata.yaml").write_text(METADATA + good)
    assert lint_bundle(bundle).findings == []
    (bundle / "model-metadata.yaml").write_text(METADATA + good.replace("maxValue: 10", "maxValue: 1"))
    (finding,) = lint_bundle(bundle).findings
    assert (finding.rule, finding.severity, finding.line) == ("metadata-invalid", "error", METADATA.count("\n") + 1)
    assert "runtime parameter 'k' (numeric): its defaultValue is above maxValue 1" in finding.message


def test_a_vendored_old_server_is_a_warning_with_the_fix(bundle: Path) -> None:
    (bundle / "server.py").write_text('HOOKS_FLAG = "MODEL_SERVER_HALTS_ON_LOAD_FAILURE"\n')
    (bundle / "gunicorn.conf.py").write_text("")
    (finding,) = lint_bundle(bundle).findings
    assert (finding.rule, finding.severity) == ("vendored-server", "warning")
    assert "rm server.py gunicorn.conf.py" in finding.message


def test_start_script_is_a_folder(bundle: Path) -> None:
    (bundle / "start_server.sh").unlink()
    (bundle / "start_server.sh").mkdir()
    assert [r[0] for r in rules(bundle)] == ["start-script-not-file"]


def test_start_script_symlink_is_not_a_regular_file(bundle: Path) -> None:
    (bundle / "start_server.sh").rename(bundle / "real.sh")
    (bundle / "start_server.sh").symlink_to("real.sh")
    assert [r[0] for r in rules(bundle)] == ["start-script-not-file"]


def test_start_script_not_executable(bundle: Path) -> None:
    (bundle / "start_server.sh").chmod(0o644)
    assert rules(bundle) == [("start-script-not-executable", "start_server.sh", 1)]


def test_start_script_without_shebang(bundle: Path) -> None:
    (bundle / "start_server.sh").write_text("python -m server\n")
    assert rules(bundle) == [("start-script-no-shebang", "start_server.sh", 1)]


def test_start_script_with_windows_line_endings(bundle: Path) -> None:
    (bundle / "start_server.sh").write_bytes(b"#!/bin/sh\r\nexec python -m server\r\n")
    assert rules(bundle) == [("start-script-crlf", "start_server.sh", 1)]


def test_requirements_errors_carry_their_line(bundle: Path) -> None:
    (bundle / "requirements.txt").write_text("numpy==2.0\n\n-e .\nfoo!=1\n")
    assert rules(bundle) == [
        ("requirements-invalid", "requirements.txt", 3),
        ("requirements-invalid", "requirements.txt", 4),
    ]


def test_undecodable_requirements(bundle: Path) -> None:
    (bundle / "requirements.txt").write_bytes(b"numpy\n\xff\n")
    assert rules(bundle) == [("requirements-unreadable", "requirements.txt", 2)]


def test_broken_yaml_names_the_line(bundle: Path) -> None:
    (bundle / "model-metadata.yaml").write_text("name: x\ntargetType: [regression\ninferenceModel: {}\n")
    ((rule, file, line),) = rules(bundle)
    assert (rule, file) == ("metadata-yaml", "model-metadata.yaml")
    assert line in (2, 3)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("type: inference\ntargetType: regression\n", "missing 'name'"),
        ("name: m\ntype: inference\n", "missing 'targetType'"),
        ("name: m\ntargetType: clustering\n", "not supported"),
        ("name: m\ntype: training\ntargetType: regression\n", "type 'training'"),
        (
            "name: m\ntargetType: binary\ninferenceModel:\n  positiveClassLabel: yes\n",
            "positiveClassLabel and",
        ),
        (
            "name: m\ntargetType: binary\ninferenceModel:\n  positiveClassLabel: a\n  negativeClassLabel: a\n",
            "must differ",
        ),
        ("name: m\ntargetType: multiclass\ninferenceModel:\n  classLabels: [a]\n", "2 or more"),
        ("name: m\ntargetType: multiclass\ninferenceModel:\n  classLabels: [a, b, a]\n", "duplicates"),
        ("name: m\ntargetType: regression\ninferenceModel:\n  classLabels: [a, b]\n", "take no class labels"),
        (
            "name: m\ntargetType: binary\ninferenceModel:\n  positiveClassLabel: 1\n  negativeClassLabel: 0\n"
            "  predictionThreshold: 1.5\n",
            "predictionThreshold",
        ),
        ("name: m\ntargetType: regression\nvalidation:\n  input: missing.csv\n", "does not exist"),
    ],
)
def test_metadata_rules(bundle: Path, yaml_text: str, message: str) -> None:
    (bundle / "model-metadata.yaml").write_text(yaml_text)
    report = lint_bundle(bundle)
    errors = [f for f in report.errors if f.rule == "metadata-invalid"]
    assert any(message in f.message for f in errors), report.findings


def test_metadata_labels_are_strings_like_drum(bundle: Path) -> None:
    (bundle / "model-metadata.yaml").write_text(
        "name: m\ntargetType: binary\ninferenceModel:\n  targetName: y\n  positiveClassLabel: 1\n"
        "  negativeClassLabel: 0\n"
    )
    assert lint_bundle(bundle).ok


def test_unknown_metadata_key_is_a_warning_with_its_line(bundle: Path) -> None:
    (bundle / "model-metadata.yaml").write_text(METADATA + "flavour: vanilla\n")
    report = lint_bundle(bundle)
    assert report.ok
    (finding,) = report.findings
    assert (finding.severity, finding.line) == ("warning", 8)


def test_symlink_outside_the_bundle(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.pkl").write_text("weights")
    (bundle / "model.pkl").symlink_to(tmp_path / "outside.pkl")
    (bundle / "inside.py").symlink_to("custom.py")
    assert rules(bundle) == [("symlink-outside", "model.pkl", None)]


def test_directory_symlink_outside_and_broken_links(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (bundle / "shared").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (bundle / "gone.txt").symlink_to(bundle / "never-existed")
    assert sorted(r[0] for r in rules(bundle)) == ["symlink-broken", "symlink-outside"]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        (".env", "TOKEN=abc\n"),
        (".env.production", "TOKEN=abc\n"),
        ("keys/id_rsa", "whatever"),
        ("deploy.pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"),
        ("conf/sa.json", '{"type": "service_account", "private_key": "x"}'),
        (".aws/credentials", "[default]\naws_access_key_id = A\n"),
        ("notes.ini", "[default]\naws_secret_access_key = x\n"),
        ("store.p12", "binary"),
    ],
)
def test_secrets_are_refused(bundle: Path, path: str, content: str) -> None:
    target = bundle / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    assert rules(bundle) == [("secret-file", path, None)]


def test_ignored_secrets_and_templates_are_fine(bundle: Path) -> None:
    (bundle / ".env").write_text("TOKEN=abc\n")
    (bundle / ".env.example").write_text("TOKEN=\n")
    (bundle / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (bundle / ".cmkitignore").write_text(".env\n")
    assert lint_bundle(bundle).findings == []


def test_builtin_and_cmkitignore_rules(bundle: Path) -> None:
    for rel in [
        ".git/config",
        "__pycache__/x.pyc",
        ".venv/bin/python",
        "notebooks/.ipynb_checkpoints/a",
        "big/x.bin",
    ]:
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundle / rel).write_text("x")
    (bundle / ".cmkitignore").write_text("big/\n")
    paths = [f.path for f in list_bundle(bundle).files]
    assert paths == [
        ".cmkitignore",
        "custom.py",
        "data/sample.csv",
        "model-metadata.yaml",
        "requirements.txt",
        "start_server.sh",
    ]


def test_too_many_files(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cmkit.lint

    assert cmkit.lint.API_MAX_FILES == API_MAX_FILES == 1000  # DataRobot's limit, as lint applies it
    present = len(list_bundle(bundle).files)
    monkeypatch.setattr(cmkit.lint, "API_MAX_FILES", present + 4)  # same code path, 5 files instead of 1,000
    many = bundle / "many"
    many.mkdir()
    for i in range(4):
        (many / f"{i}.txt").write_text("")
    assert rules(bundle) == []  # at the limit
    (many / "one-more.txt").write_text("")
    assert rules(bundle) == [("too-many-files", ".", None)]


def test_file_over_the_api_limit(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cmkit.lint

    monkeypatch.setattr(cmkit.lint, "API_MAX_FILE_BYTES", 10)  # the real limit is 10 GB; same code path
    assert ("file-too-large", "data/sample.csv", None) in rules(bundle)


def test_cli_json_and_exit_codes(bundle: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["lint", str(bundle), "--json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["ok"] is True
    (bundle / "start_server.sh").chmod(0o644)
    bad = runner.invoke(main, ["lint", str(bundle), "--json"])
    assert bad.exit_code == 1
    document = json.loads(bad.stdout)
    assert document["ok"] is False and [b["bundle"] for b in document["bundles"]] == [str(bundle)]
    finding = document["bundles"][0]["findings"][0]
    assert finding == {
        "file": "start_server.sh",
        "line": 1,
        "rule": "start-script-not-executable",
        "severity": "error",
        "message": finding["message"],
    }
    human = runner.invoke(main, ["lint", str(bundle)])
    assert "[start-script-not-executable]" in human.stderr


def test_cli_json_shape_does_not_depend_on_the_number_of_bundles(bundle: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "start_server.sh").write_text("no shebang\n")
    one = json.loads(CliRunner().invoke(main, ["lint", str(bundle), "--json"]).stdout)
    two = json.loads(CliRunner().invoke(main, ["lint", str(bundle), str(other), "--json"]).stdout)
    assert set(one) == set(two) == {"ok", "bundles"}
    assert (one["ok"], two["ok"]) == (True, False)
    assert two["bundles"][0] == one["bundles"][0]
    assert set(two["bundles"][1]) == set(one["bundles"][0])


def test_cli_missing_bundle_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["lint", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_from_files_lints_each_bundle_once(bundle: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "start_server.sh").write_text("no shebang\n")
    os.chdir(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "lint",
            "--from-files",
            "--json",
            "bundle/custom.py",
            "bundle/data/sample.csv",
            "other/start_server.sh",
            "README.md",
        ],
    )
    assert result.exit_code == 1
    bundles = json.loads(result.stdout)["bundles"]
    assert [(b["bundle"], b["ok"]) for b in bundles] == [("bundle", True), ("other", False)]
