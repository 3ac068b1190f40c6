"""Walk one `cmkit test-local` run from the CLI to the verdict and count how it moves between modules.

    python tools/trace_run.py sample_models/regression_diabetes [test-local flags...]

Runs `cmkit test-local BUNDLE --runtime process --json` in this process (click's CliRunner) with
a profiler on every thread and records each call that goes from one module of `cmkit/` or
`cmkit_runtime/` into another. It prints:

- modules: how many modules of the project the run passes through;
- moves: how many (caller module, callee module) pairs the run crosses, and calls: how many calls
  cross from one module into another in all;
- back: how many of those pairs run back up the layers: the callee's module imports the caller's
  (directly or through others), so the call reached it as a callback, a hook or an object handed
  down from above. A layered run has few.

The count is dynamic (what ran), not read from the text; the server's own process is not traced.
"""

from __future__ import annotations

import ast
import json
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("cmkit", "cmkit_runtime")


def module_of(path: str) -> str | None:
    try:
        relative = Path(path).resolve().relative_to(REPO)
    except ValueError:
        return None
    if relative.parts[0] not in PACKAGES or relative.suffix != ".py":
        return None
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str) -> set[str]:
    """The project modules `module` imports anywhere in its text (module level or in functions)."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = REPO / module.replace(".", "/") / "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def reachable(module: str) -> set[str]:
    """Every project module that `module` imports, directly or through others."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in imports_of(todo.pop()):
            if name not in seen and _exists(name):
                seen.add(name)
                todo.append(name)
    return seen


def _exists(module: str) -> bool:
    base = REPO / module.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    from click.testing import CliRunner

    from cmkit.cli import main as cli

    moves: Counter[tuple[str, str]] = Counter()
    order: dict[str, None] = {}  # modules in the order the run first entered them
    lock = threading.Lock()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or frame.f_back is None:
            return
        callee = module_of(frame.f_code.co_filename)
        caller = module_of(frame.f_back.f_code.co_filename)
        if callee and caller and callee != caller:
            with lock:
                moves[(caller, callee)] += 1
                order.setdefault(caller)
                order.setdefault(callee)

    args = ["test-local", argv[0], "--runtime", "process", "--json", *argv[1:]]
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    verdict = json.loads(result.stdout)["overallStatus"] if result.stdout.strip() else f"exit {result.exit_code}"
    modules = {m for pair in moves for m in pair}
    back = {pair: n for pair, n in moves.items() if pair[0] in reachable(pair[1])}
    report = {
        "verdict": verdict,
        "modules": len(modules),
        "moves": len(moves),
        "calls": sum(moves.values()),
        "back": len(back),
        "backPairs": sorted(f"{a} -> {b}" for a, b in back),
        "entered": list(order),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
