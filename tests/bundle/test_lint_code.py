"""`cmkit lint` on what will break at start: code that does not parse, hooks the runtime cannot
call, imports nothing installs, requirements that break beside the environment (issue 26)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.version import Version

from cmkit.cli import main
from cmkit.codescan import EnvironmentPackages, admits_from, environment_packages, find_conflicts, pip_name_for
from cmkit.lint import lint_bundle
from tests.support.bundles import metadata_yaml, write_static_bundle

BINARY = metadata_yaml(
    "cancer", "binary", "diagnosis", "  positiveClassLabel: malignant\n  negativeClassLabel: benign\n"
)
HOOKS = """import joblib
import pandas as pd


def load_model(code_dir):
    return joblib.load(code_dir + "/model.joblib")


def predict(model, X):
    return pd.DataFrame(model.predict_proba(X), columns=model.classes_)
"""


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A binary model as `cmkit init` writes one: a start script, hooks, joblib required."""
    return write_static_bundle(
        tmp_path / "bundle", metadata=BINARY, requirements="joblib==1.4.2\n", files={"custom.py": HOOKS}
    )


def findings(root: Path) -> list[tuple[str, str, int | None, str]]:
    return [(f.rule, f.file, f.line, f.severity) for f in lint_bundle(root).findings]


def lint_cli(root: Path) -> tuple[int, str, dict[str, object]]:
    """Exit code, the terminal's lines and the --json document of `cmkit lint`."""
    runner = CliRunner()
    text = runner.invoke(main, ["lint", str(root)])
    document = runner.invoke(main, ["lint", "--json", str(root)])
    assert text.exit_code == document.exit_code
    return text.exit_code, text.output, json.loads(document.output)


def only_finding(document: dict[str, object]) -> dict[str, object]:
    bundles = document["bundles"]
    assert isinstance(bundles, list)
    (found,) = bundles[0]["findings"]
    assert isinstance(found, dict)
    return found


def test_the_template_shaped_bundle_is_clean(bundle: Path) -> None:
    assert findings(bundle) == []


def test_a_syntax_error_with_a_start_script_is_an_error_with_its_line(bundle: Path) -> None:
    # The first mistake: every init bundle has a start script, and lint used to skip custom.py.
    (bundle / "custom.py").write_text(HOOKS + "\n\ndef broken(:\n    pass\n")
    code, output, document = lint_cli(bundle)
    assert code == 1
    assert f"{bundle}/custom.py:13: error [hooks-syntax] custom.py does not parse: invalid syntax" in output
    assert only_finding(document)["rule"] == "hooks-syntax"


def test_every_python_file_is_parsed(bundle: Path) -> None:
    (bundle / "lib").mkdir()
    (bundle / "lib" / "features.py").write_text("def scale(x):\n    return x *\n")
    assert findings(bundle) == [("python-syntax", "lib/features.py", 2, "error")]


def test_an_import_not_in_requirements_is_an_error_naming_what_to_add(bundle: Path) -> None:
    (bundle / "custom.py").write_text("import sklearn.pipeline\n" + HOOKS)
    code, output, document = lint_cli(bundle)
    assert code == 1
    expected = (
        "custom.py imports sklearn, which neither requirements.txt nor the environment installs: "
        "add scikit-learn to requirements.txt"
    )
    assert f"{bundle}/custom.py:1: error [import-not-in-requirements] {expected}" in output
    assert only_finding(document)["rule"] == "import-not-in-requirements"
    (bundle / "requirements.txt").write_text("joblib==1.4.2\nscikit-learn>=1.5\n")
    assert findings(bundle) == []


def test_imports_the_bundle_or_the_environment_provides_are_fine(bundle: Path) -> None:
    # The bundle's own modules, the standard library, the environment's packages (pandas, and
    # numpy: a dependency of them), relative imports, and optional imports under except ImportError.
    (bundle / "helpers.py").write_text("import json\nimport numpy\nimport flask\nfrom . import other\n")
    (bundle / "custom.py").write_text(
        "import helpers\ntry:\n    import torch\nexcept ImportError:\n    torch = None\n" + HOOKS
    )
    assert findings(bundle) == []


def test_an_environment_named_by_id_makes_a_missing_import_a_warning(bundle: Path) -> None:
    # Its packages are not known here: cmkit's default environment is what lint compares with.
    (bundle / "model-metadata.yaml").write_text(BINARY + "environmentID: 5e8c889607389fe0f466c72d\n")
    (bundle / "custom.py").write_text("import xgboost\n" + HOOKS)
    assert findings(bundle) == [("import-not-in-requirements", "custom.py", 1, "warning")]


def test_pandas_1_beside_numpy_2_is_the_abi_conflict(bundle: Path) -> None:
    (bundle / "requirements.txt").write_text("joblib==1.4.2\npandas>=1.0,<2.0\n")
    code, output, document = lint_cli(bundle)
    assert code == 1
    assert (
        "requirements.txt:2: error [requirement-conflict] pandas>=1.0,<2.0 beside the environment's numpy==" in output
    )
    assert "numpy.dtype size changed). Allow pandas>=2.2.2" in output
    assert only_finding(document)["rule"] == "requirement-conflict"
    (bundle / "requirements.txt").write_text("joblib==1.4.2\npandas>=1.5\nnumpy\n")
    assert findings(bundle) == []


def test_conflicts_follow_the_environment_pins(tmp_path: Path) -> None:
    numpy1 = environment_packages("numpy==1.26.4\n", tmp_path)
    numpy2 = environment_packages("numpy==2.1.0\n", tmp_path)
    assert find_conflicts([("numpy", "<2", 3)], numpy1) == []
    (conflict,) = find_conflicts([("numpy", "<2", 3)], numpy2)
    assert (conflict.line, conflict.environment_version, conflict.first_good) == (3, "2.1.0", "2.0.0")
    assert find_conflicts([("scikit-learn", "==1.3.2", 1)], numpy2)[0].first_good == "1.4.2"
    assert find_conflicts([("scikit-learn", "~=1.4", 1)], numpy2) == []
    # The second read comes from the cache, and reads the same.
    assert environment_packages("numpy==2.1.0\n", tmp_path) == numpy2
    assert EnvironmentPackages({"numpy": ">=2"}, frozenset()).version_of("numpy") is None


@pytest.mark.parametrize(
    ("specifier", "admits"),
    [
        ("<2.0", False),
        ("<=2.2.1", False),
        ("==2.1.*", False),
        ("==2.2.2", True),
        (">=1.0", True),
        ("~=2.1.0", False),
        ("~=2.2", True),
        (">2.2.1,<2.3", True),
        ("", True),
        ("!=2.2.2,<=2.2.2", False),
    ],
)
def test_admits_from(specifier: str, admits: bool) -> None:
    assert admits_from(specifier, Version("2.2.2")) is admits


def test_pip_names_of_imports() -> None:
    assert [pip_name_for(m) for m in ("sklearn", "yaml", "cv2", "PIL", "my_pkg")] == [
        "scikit-learn",
        "pyyaml",
        "opencv-python",
        "pillow",
        "my-pkg",
    ]


def test_hooks_the_runtime_cannot_call_are_errors(bundle: Path) -> None:
    (bundle / "custom.py").write_text("def load_model():\n    return 1\n\n\ndef predict(X):\n    return X\n")
    assert findings(bundle) == [
        ("hook-signature", "custom.py", 1, "error"),
        ("hook-signature", "custom.py", 5, "error"),
    ]
    assert "the runtime calls predict(model, X)" in lint_bundle(bundle).findings[1].message
    (bundle / "custom.py").write_text("def score(data, model):\n    return data\n")
    (found,) = lint_bundle(bundle).findings
    assert found.rule == "hook-signature" and "no **kwargs" in found.message
    (bundle / "custom.py").write_text("def score(data, model, *args, extra=1, **kwargs):\n    return data\n")
    assert findings(bundle) == []


def test_a_classifier_predicting_classes_instead_of_probabilities_is_a_warning(bundle: Path) -> None:
    (bundle / "custom.py").write_text(
        HOOKS.replace("model.predict_proba(X), columns=model.classes_", "model.predict(X)")
    )
    (found,) = lint_bundle(bundle).findings
    assert (found.rule, found.line, found.severity) == ("hooks-not-probabilities", 9, "warning")
    assert "a binary model returns one probability per class label" in found.message


def test_the_environment_is_the_one_named(bundle: Path, tmp_path: Path) -> None:
    # An environment of one's own that installs scikit-learn: the import is provided.
    (bundle / "custom.py").write_text("import sklearn\n" + HOOKS)
    environment = tmp_path / "environment"
    environment.mkdir()
    (environment / "requirements.txt").write_text("pandas==2.2.3\nscikit-learn==1.5.2\n")
    result = CliRunner().invoke(main, ["lint", str(bundle), "--environment", str(environment)])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, ["lint", str(bundle)]).exit_code == 1
