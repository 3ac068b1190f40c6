"""No module but the target module names a target type in a string: code asks `TargetType` instead.

A target type's name written as a literal (`target.type == "textgeneration"`, `"Binary" in
STRUCTURED`, a table keyed by `"regression"`) is a branch a new type silently misses. The rule,
judged on the syntax tree so that prose is left alone:

- a string constant that is exactly a type's name (DRUM's or the API's spelling, any case) is a
  violation wherever it stands (comparison, membership, dict key, call argument, match case),
  except in a docstring and in the allowances below, each with its reason and count;
- a comparison or membership test between something that holds a target type (`target_type`,
  `.type` of a target, `["targetType"]`, `.api_name`, `.drum_name`) and any string constant is a
  violation too, whatever the string says (a typo, a type cmkit does not know yet).

Messages that mention a type inside a longer sentence are not names and pass.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

import cmkit
import cmkit_runtime
from cmkit_runtime.target_types import TargetType

ROOTS = (Path(cmkit.__file__).resolve().parent, Path(cmkit_runtime.__file__).resolve().parent)
TARGET_MODULE = Path(cmkit_runtime.__file__).resolve().parent / "target_types.py"
NAMES = {spelling.lower() for member in TargetType for spelling in (member.drum_name, member.api_name)}
# (module, the literal) -> how often it may appear, and why it is not a target type.
ALLOWED = {
    ("cmkit_runtime/formats.py", "transform"): (1, "DRUM's transform hook, in the list of hook names"),
    ("cmkit_runtime/loader.py", "transform"): (2, "DRUM's transform hook: looked up, and named in its error"),
    ("cmkit/lint.py", "transform"): (2, "DRUM's transform hook: how the runtime calls it, for hook-signature"),
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _holds_target_type(node: ast.AST) -> bool:
    """An expression whose value is a target type or its name."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("lower", "upper"):
        return _holds_target_type(node.func.value)
    if isinstance(node, ast.Name):
        return node.id.lower().endswith(("target_type", "targettype"))
    if isinstance(node, ast.Attribute):
        if node.attr in ("api_name", "drum_name", "api_target_type") or node.attr.lower().endswith("target_type"):
            return True
        return node.attr == "type" and "target" in ast.unparse(node.value).lower()
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value in ("targetType", "target_type", "TARGET_TYPE")
    return False


def _strings(node: ast.AST) -> list[ast.Constant]:
    """The string constants a comparison operand is or holds (a tuple, list or set literal)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [c for element in node.elts for c in _strings(element)]
    return []


def violations(source: str) -> list[tuple[int, str, str]]:
    """(line, literal, why) for every violation in one module's source."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found: dict[int, tuple[int, str, str]] = {}
    for node in ast.walk(tree):
        is_string = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_string and id(node) not in skip and node.value.lower() in NAMES:
            found[id(node)] = (node.lineno, node.value, "a target type's name")
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_holds_target_type(operand) for operand in operands):
                for operand in operands:
                    for constant in _strings(operand):
                        found[id(constant)] = (constant.lineno, constant.value, "a target type compared with a string")
    return sorted(found.values())


def _modules() -> list[tuple[str, Path]]:
    modules = []
    for root in ROOTS:
        for path in sorted(root.rglob("*.py")):
            if path != TARGET_MODULE:
                modules.append((f"{root.name}/{path.relative_to(root).as_posix()}", path))
    return modules


def test_no_target_type_literal_outside_the_target_module() -> None:
    seen: Counter[tuple[str, str]] = Counter()
    problems = []
    for name, path in _modules():
        for line, literal, why in violations(path.read_text(encoding="utf-8")):
            key = (name, literal.lower())
            seen[key] += 1
            if key not in ALLOWED:
                problems.append(f"{name}:{line}: {literal!r} ({why}): ask TargetType's properties instead")
    assert not problems, "\n".join(problems)
    for key, (count, reason) in ALLOWED.items():
        assert seen[key] == count, f"{key}: {seen[key]} occurrences, {count} allowed ({reason})"


@pytest.mark.parametrize(
    "source",
    [
        'if target.type == "textgeneration": pass',
        'ok = model.doc["targetType"] != "Anomaly"',
        'STRUCTURED = ("Binary", "Regression")',
        'ok = kind in ("binary", "multiclass")',
        'METRICS = {"regression": "RMSE"}',
        'spec = make_spec("multiclass", "name")',
        'match kind:\n    case "anomaly": pass',
        'ok = config.target_type == "clustering"',
        'ok = spec.target_type.lower() != "text generation"',
        'ok = kind.api_name == "Whatever"',
        'ok = os.environ["TARGET_TYPE"] in {"x", "y"}',
    ],
)
def test_the_rule_catches(source: str) -> None:
    assert violations(source)


@pytest.mark.parametrize(
    "source",
    [
        '"""A binary or multiclass model: docstrings are prose."""',
        'def f():\n    """regression"""',
        'raise ValueError("binary models need both class labels")',
        'message = f"{kind} models take no class labels"',
        "ok = target.type is TargetType.BINARY",
        "ok = target.type.numeric_predictions",
        'ok = doc["customModelType"] == "inference"',
    ],
)
def test_the_rule_leaves_alone(source: str) -> None:
    assert violations(source) == []
