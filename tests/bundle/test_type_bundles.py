"""init and lint for the types that are not rows: unstructured models and agentic workflows.

init writes what each needs (its hooks, its sample input or none, metadata without a target),
and lint holds custom.py to the hook its type is served through.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cmkit.errors import InputError
from cmkit.lint import lint_bundle
from cmkit.scaffold import init_bundle, make_spec, sample_file


def _findings(bundle: Path) -> list[tuple[str, str, str]]:
    return [(f.rule, f.severity, f.message) for f in lint_bundle(bundle).findings]


@pytest.mark.parametrize(
    ("target_type", "hook", "sample"),
    [("unstructured", "score_unstructured", "data/sample.txt"), ("agenticworkflow", "chat", None)],
)
def test_init_writes_the_type_s_hook_and_input(tmp_path: Path, target_type: str, hook: str, sample: str | None) -> None:
    bundle = tmp_path / "m"
    result = init_bundle(bundle, make_spec(target_type, "m"))
    metadata = yaml.safe_load((bundle / "model-metadata.yaml").read_text())
    assert metadata["targetType"] == target_type
    # DRUM starts an agentic workflow only with a target name; an unstructured model needs none.
    assert metadata.get("inferenceModel") == ({"targetName": "resultText"} if hook == "chat" else None)
    assert metadata.get("validation") == ({"input": sample} if sample else None)
    assert sample_file(make_spec(target_type, "m").target_type) == sample
    assert f"def {hook}(" in (bundle / "custom.py").read_text()
    assert ("data/sample.csv" in result.files) is False
    readme = (bundle / "README.md").read_text()
    assert "@@" not in readme and ("predictUnstructured" in readme or "chat/completions" in readme)
    assert _findings(bundle) == []


def test_an_unstructured_model_may_name_a_target_but_gets_none_by_default() -> None:
    assert make_spec("unstructured", "m").target_name is None
    assert make_spec("unstructured", "m", target_name="label").target_name == "label"
    with pytest.raises(InputError, match="surrounding spaces"):
        make_spec("unstructured", "m", target_name=" x")


def test_lint_holds_custom_py_to_its_type_s_hook(tmp_path: Path) -> None:
    bundle = tmp_path / "u"
    init_bundle(bundle, make_spec("unstructured", "u"))
    custom = bundle / "custom.py"
    custom.write_text(custom.read_text().replace("def score_unstructured(", "def score_other("))
    [(rule, severity, message)] = _findings(bundle)
    assert (rule, severity) == ("hooks-target-type", "error")
    assert message.startswith("unstructured models are served through score_unstructured(model, data, query")

    agent = tmp_path / "a"
    init_bundle(agent, make_spec("agenticworkflow", "a"))
    (agent / "custom.py").write_text("def load_model(code_dir):\n    return None\n")
    [(rule, severity, message)] = _findings(agent)
    assert (rule, severity) == ("hooks-target-type", "error") and "chat(completion_create_params, model)" in message

    rows = tmp_path / "r"
    init_bundle(rows, make_spec("regression", "r"))
    with (rows / "custom.py").open("a") as handle:
        handle.write("\n\ndef score_unstructured(model, data, query, **kwargs):\n    return ''\n")
    [(rule, severity, message)] = _findings(rows)
    assert (rule, severity) == ("hooks-target-type", "warning") and "never calls it" in message
