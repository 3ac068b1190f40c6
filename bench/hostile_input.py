#!/usr/bin/env python3
"""How fast hostile input is refused, against the floor of linting a clean bundle in the same run.

The figures behind issue 13's "one line, exit 2, in well under a second": an alias bomb (9**9
scalars once expanded, from 400 bytes), YAML nested 30,000 deep, `/dev/zero` given to `deps`,
and, as the honest upper bound, a legitimate model-metadata.yaml just under the size cap.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, median_seconds
from cmkit.errors import InputError
from cmkit.lint import lint_bundle
from cmkit.metadata import load_metadata
from cmkit.requirements import parse_requirements_file
from cmkit.safeyaml import MAX_YAML_BYTES

METADATA = "name: m\ntype: inference\ntargetType: regression\n"
BOMB = (
    'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
    + "name: bomb\n"
)
DEEP = "name: [" + "[" * 30_000 + "]" * 30_000 + "]\n"  # 60 KB: within the size cap, refused for depth


def bundle(root: Path, metadata: str) -> Path:
    root.mkdir()
    script = root / "start_server.sh"
    script.write_text("#!/bin/sh\nexec python -m server\n")
    script.chmod(0o755)
    (root / "requirements.txt").write_text("numpy==2.0\n")
    (root / "model-metadata.yaml").write_text(metadata)
    return root


def near_cap() -> str:
    parameters = "".join(f"  - fieldName: p{i}\n    type: string\n" for i in range(10_000))
    text = METADATA + "runtimeParameterDefinitions:\n" + parameters
    return text[: text.rfind("\n  - ", 0, MAX_YAML_BYTES - 1)] + "\n"


def refused(action: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            action()
        except InputError:
            return
        raise AssertionError("the input was accepted")

    return run


def run(quick: bool = False) -> list[Row]:
    repeats = 3 if quick else 15
    with tempfile.TemporaryDirectory(prefix="cmkit-bench-hostile-") as folder:
        root = Path(folder)
        clean = bundle(root / "clean", METADATA)
        bomb, deep = bundle(root / "bomb", BOMB), bundle(root / "deep", DEEP)
        big_text = near_cap()
        big = bundle(root / "big", big_text)
        floor = median_seconds(lambda: lint_bundle(clean), repeats)
        cases: dict[str, Callable[[], object]] = {
            "alias bomb in model-metadata.yaml: lint": lambda: lint_bundle(bomb),
            "YAML nested 30,000 deep: lint": lambda: lint_bundle(deep),
            "`cmkit deps /dev/zero`: refused": refused(lambda: parse_requirements_file("/dev/zero")),
            f"legitimate model-metadata.yaml of {len(big_text):,} bytes (near the cap): read": lambda: load_metadata(
                big
            ),
        }
        rows = [Row("lint of a clean bundle (the floor)", f"{floor * 1000:.2f} ms")]
        for figure, action in cases.items():
            seconds = median_seconds(action, repeats)
            ratio = f"{seconds / floor:.1f}x"
            rows.append(Row(figure, f"{seconds * 1000:.2f} ms", f"{floor * 1000:.2f} ms", ratio, "< 1 s"))
        return rows


if __name__ == "__main__":
    from bench.common import table

    print(table(run("--quick" in sys.argv)))
