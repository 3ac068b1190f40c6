"""The emulator's state module sits in no import cycle: resources import it, it imports none of them."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import cmkit

PACKAGE = Path(cmkit.__file__).resolve().parent


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for annotations only)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


@functools.cache  # parsed once for both tests (half a second each); neither changes the graph
def _imports() -> dict[str, set[str]]:
    """Every cmkit module and the cmkit modules it imports at run time, at module level or in functions."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("cmkit", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = found & modules.keys()
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return seen


def test_no_module_the_emulator_service_imports_leads_back_to_it() -> None:
    graph = _imports()
    for module in ("cmkit.emulator.service", "cmkit.emulator.status"):
        assert module not in _reachable(graph, module), f"{module} imports itself through another module"


def test_the_resources_report_statuses_through_the_status_module() -> None:
    graph = _imports()
    assert "cmkit.emulator.service" not in _reachable(graph, "cmkit.emulator.status")
    assert {"cmkit.emulator.models", "cmkit.emulator.testing"} <= _reachable(graph, "cmkit.emulator.startup")
    assert not _reachable(graph, "cmkit.emulator.service") & {"cmkit.emulator.models", "cmkit.emulator.startup"}
