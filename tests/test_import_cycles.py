"""The import graph of cmkit/ and cmkit_runtime/, read from the source: layers and no cycles.

The layers, lowest first; a module imports modules of its own layer or of a lower one, never
of a higher one (docs/architecture.md, "Layers"):

1. runtime: `cmkit_runtime/`, the model server; it ships alone and imports nothing of cmkit.
2. libraries: every other module of `cmkit/` not named below (errors, events, paths, target,
   bundle, metadata, lint, contexts, safepaths, the API client...): the core's building blocks.
3. engine: `cmkit/engine/`, images and running servers.
4. checks: `cmkit/checks/`, the model-test checks against a running server.
5. commands: the core of the commands that compose them (`COMMANDS`): test-local, serve,
   watch, feature impact, push, env push, prune...
6. emulator: `cmkit/emulator/`, the local DataRobot API, which runs test-local's core.
7. cli: `cmkit/cli.py`, `render.py`, `params.py` and `__main__`: nothing below imports them.

A new module of `cmkit/` starts as a library, the strictest place: if it needs a check or the
engine, it belongs to a higher layer, and this file is where it says so.

No two modules import each other, directly or through others, counting every import: at
module level, inside functions (the usual way to dodge a cycle) and under `if TYPE_CHECKING:`
(an annotation ties two modules as much as a call).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import cmkit

ROOT = Path(cmkit.__file__).resolve().parent.parent
PACKAGES = ("cmkit", "cmkit_runtime")

LAYERS = ("runtime", "libraries", "engine", "checks", "commands", "emulator", "cli")
COMMANDS = frozenset(
    {
        "cmkit.testlocal",
        "cmkit.resolvedrun",
        "cmkit.report",
        "cmkit.serve",
        "cmkit.watch",
        "cmkit.junit",
        "cmkit.featureimpact",
        "cmkit.remoteenv",
        "cmkit.push",
        "cmkit.environments",
        "cmkit.prune",
        "cmkit.predict",
        "cmkit.warmserver",
    }
)
CLI = frozenset({"cmkit.cli", "cmkit.render", "cmkit.params", "cmkit.__main__"})

# Cycles known and being removed, each with the reason it is still here: none today.
ALLOWED_CYCLES: tuple[frozenset[str], ...] = ()


def layer(module: str) -> str:
    """The layer of a module, by its name (see the module docstring)."""
    if module.split(".")[0] == "cmkit_runtime":
        return "runtime"
    if module in CLI:
        return "cli"
    if module in COMMANDS:
        return "commands"
    for package in ("emulator", "checks", "engine"):
        if module == f"cmkit.{package}" or module.startswith(f"cmkit.{package}."):
            return package
    return "libraries"


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = (package, *path.relative_to(ROOT / package).with_suffix("").parts)
            modules[".".join(parts).removesuffix(".__init__")] = path
    return modules


def _nodes(tree: ast.AST, type_checking: bool) -> list[ast.AST]:
    """Every node, or every node but those under `if TYPE_CHECKING:` (imports for annotations only)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if (
            not type_checking
            and isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _imported(node: ast.AST, module: str, is_package: bool) -> set[str]:
    """The names an import statement brings in (a module, or a module's attributes)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
    return {base} | {f"{base}.{alias.name}" for alias in node.names}


@functools.cache  # parsed once per kind for all tests (half a second each); none changes the graph
def _imports(type_checking: bool = False) -> dict[str, set[str]]:
    """Every module of both packages and the modules of both it imports, at module level or in
    functions; with `type_checking`, also those imported for annotations only."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        found: set[str] = set()
        for node in _nodes(ast.parse(path.read_text(encoding="utf-8")), type_checking):
            found |= _imported(node, name, is_package)
        graph[name] = (found & modules.keys()) - {name}
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


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (each is at least one cycle)."""
    reach = {module: _reachable(graph, module) for module in graph}
    groups = {frozenset({m for m in reach[module] if module in reach[m]} | {module}) for module in graph}
    return sorted((g for g in groups if len(g) > 1), key=sorted)


def _edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((source, target) for source, targets in graph.items() for target in targets)


# -- layers --------------------------------------------------------------------------------------


def test_the_model_runtime_imports_nothing_of_cmkit() -> None:
    graph = _imports(type_checking=True)
    found = [(s, t) for s, t in _edges(graph) if layer(s) == "runtime" and layer(t) != "runtime"]
    assert not found, f"cmkit_runtime ships alone: {found}"


def test_no_core_module_imports_the_emulator() -> None:
    graph = _imports(type_checking=True)
    found = [(s, t) for s, t in _edges(graph) if layer(s) not in ("emulator", "cli") and layer(t) == "emulator"]
    assert not found, f"the core imports the emulator: {found}"


def test_the_cli_and_its_rendering_are_imported_by_nothing_in_the_core() -> None:
    graph = _imports(type_checking=True)
    found = [(s, t) for s, t in _edges(graph) if layer(s) != "cli" and layer(t) == "cli"]
    assert not found, f"the core imports the CLI: {found}"


def test_every_import_goes_down_the_layers() -> None:
    graph = _imports(type_checking=True)
    rank = {name: position for position, name in enumerate(LAYERS)}
    upward = [
        f"{source} ({layer(source)}) imports {target} ({layer(target)})"
        for source, target in _edges(graph)
        if rank[layer(target)] > rank[layer(source)]
    ]
    assert not upward, "\n".join(upward)


def test_each_layer_holds_modules() -> None:
    """The names above are real: a renamed module would otherwise fall silently into `libraries`."""
    modules = _modules().keys()
    assert not (COMMANDS | CLI) - modules, sorted((COMMANDS | CLI) - modules)
    assert {layer(module) for module in modules} == set(LAYERS)


# -- cycles --------------------------------------------------------------------------------------


def test_no_import_cycle_between_modules() -> None:
    cycles = _cycles(_imports(type_checking=True))
    unexpected = [sorted(group) for group in cycles if group not in ALLOWED_CYCLES]
    assert not unexpected, f"modules that import each other (directly or through others): {unexpected}"
    gone = [sorted(group) for group in ALLOWED_CYCLES if group not in cycles]
    assert not gone, f"these cycles are gone: remove them from ALLOWED_CYCLES: {gone}"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from cmkit.checks.context import Context", {"cmkit.checks.context", "cmkit.checks.context.Context"}),
        ("from . import wire", {"cmkit_runtime", "cmkit_runtime.wire"}),
        ("def f():\n    import cmkit.emulator.app", {"cmkit.emulator.app"}),
    ],
)
def test_the_parser_sees_imports_of_every_kind(source: str, found: set[str]) -> None:
    names: set[str] = set()
    for node in _nodes(ast.parse(source), type_checking=True):
        names |= _imported(node, "cmkit_runtime.server", is_package=False)
    assert names == found
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cmkit.cli\n")
    assert "cmkit.cli" in {n for node in _nodes(guarded, True) for n in _imported(node, "cmkit.x", False)}
    assert "cmkit.cli" not in {n for node in _nodes(guarded, False) for n in _imported(node, "cmkit.x", False)}


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]


# -- the emulator's state module -----------------------------------------------------------------


def test_no_module_the_emulator_service_imports_leads_back_to_it() -> None:
    graph = _imports()
    for module in ("cmkit.emulator.service", "cmkit.emulator.status"):
        assert module not in _reachable(graph, module), f"{module} imports itself through another module"


def test_the_resources_report_statuses_through_the_status_module() -> None:
    graph = _imports()
    assert "cmkit.emulator.service" not in _reachable(graph, "cmkit.emulator.status")
    assert {"cmkit.emulator.models", "cmkit.emulator.testing"} <= _reachable(graph, "cmkit.emulator.startup")
    assert not _reachable(graph, "cmkit.emulator.service") & {"cmkit.emulator.models", "cmkit.emulator.startup"}
