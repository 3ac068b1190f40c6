"""The docs' examples, run: a command block marked runnable in README.md or docs/*.md must still be true.

A block is marked by an HTML comment on the line above its fence (invisible once rendered):

    <!-- example: runnable; setup: SHELL; exit: 1; docker -->

each part after `runnable` optional: `setup` runs first (not shown in the docs: files the
example assumes, such as `my_model`), `exit` is the last command's expected exit code (default
0; every other command must exit 0), `docker` puts the block in the Docker tier.

In the block, each `$ command` runs with bash in a fresh folder (holding links to the
repository's `sample_models` and `templates`, and `cmkit` on PATH: this checkout's), one after
the other. The lines after a command, up to the next, are output it must print, in that order
among whatever else it prints (progress lines are not shown in the docs); `...` within a line
matches anything, and white space and a table's rules are compared without their widths. A
block without `$` lines is a list of commands with no output shown.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- example: runnable(?P<options>(?:;.*?)?) -->\n```(?:sh|console|bash)\n", re.M)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Command:
    line: str
    output: tuple[str, ...] = ()


@dataclass(frozen=True)
class Example:
    where: str  # README.md:82
    commands: tuple[Command, ...]
    setup: str = ""
    exit_code: int = 0
    docker: bool = False
    options: dict[str, str] = field(default_factory=dict)


def parse_block(body: str) -> tuple[Command, ...]:
    lines = body.splitlines()
    if not any(line.startswith("$ ") for line in lines):
        return tuple(Command(line.split("  #")[0].strip()) for line in lines if line.strip())
    commands: list[Command] = []
    for line in lines:
        if line.startswith("$ "):
            commands.append(Command(line[2:]))
        elif commands:
            last = commands[-1]
            commands[-1] = Command(last.line, (*last.output, line.rstrip()))
    return tuple(commands)


def examples() -> list[Example]:
    found: list[Example] = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in MARKER.finditer(text):
            options: dict[str, str] = {}
            for part in filter(None, (p.strip() for p in match["options"].split(";"))):
                key, _, value = part.partition(":")
                options[key.strip()] = value.strip()
            body = text[match.end() : text.index("```", match.end())]
            where = f"{document.relative_to(REPO)}:{text[: match.start()].count(chr(10)) + 2}"
            found.append(
                Example(
                    where,
                    parse_block(body),
                    options.get("setup", ""),
                    int(options.get("exit", "0")),
                    "docker" in options,
                    options,
                )
            )
    return found


def normal(line: str) -> str:
    """Widths aside: a table's padding and rules depend on its widest cell, which the docs cannot know."""
    return re.sub(r"([━─])\1+", r"\1", " ".join(line.split()))


def pattern(expected: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(normal(part)) for part in expected.split("...")) + "$")


def shows(actual: list[str], expected: tuple[str, ...]) -> str | None:
    """None when the expected lines appear in `actual` in order; else the first that does not."""
    position = 0
    for line in expected:
        if line.strip() == "...":
            continue
        wanted = pattern(line.rstrip())
        while position < len(actual) and not wanted.match(normal(actual[position])):
            position += 1
        if position == len(actual):
            return line
        position += 1
    return None


def workspace(root: Path) -> dict[str, str]:
    """The folder an example runs in, and its environment: this checkout's cmkit first on PATH."""
    (root / "bin").mkdir()
    shim = root / "bin" / "cmkit"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cmkit "$@"\n')
    shim.chmod(0o755)
    work = root / "work"
    work.mkdir()
    for name in ("sample_models", "templates"):
        (work / name).symlink_to(REPO / name)
    environment = {
        **os.environ,
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    return environment


def run_example(example: Example, root: Path) -> None:
    environment = workspace(root)
    work = root / "work"

    def bash(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", line],
            cwd=work,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )

    if example.setup:
        done = bash(example.setup)
        assert done.returncode == 0, f"{example.where}: setup failed:\n{done.stdout}"
    for index, command in enumerate(example.commands):
        done = bash(command.line)
        wanted = example.exit_code if index == len(example.commands) - 1 else 0
        output = [line.rstrip() for line in ANSI.sub("", done.stdout).splitlines()]
        assert done.returncode == wanted, f"{example.where}: `{command.line}` exited {done.returncode}:\n{done.stdout}"
        missing = shows(output, command.output)
        printed = f"it printed:\n{done.stdout}"
        assert missing is None, f"{example.where}: `{command.line}` did not print\n  {missing}\n{printed}"


EXAMPLES = examples()


def test_the_docs_mark_their_examples_and_the_runner_reads_them() -> None:
    assert len(EXAMPLES) >= 5, [example.where for example in EXAMPLES]
    assert all(example.commands for example in EXAMPLES)
    assert shows(["> building", "predicted 114 rows to p.csv", "a,b"], ("predicted ... rows to p.csv", "a,b")) is None
    assert shows(["a,b", "predicted 1 rows"], ("predicted ... rows", "a,b")) == "a,b"  # order matters
    parsed = parse_block("$ cmkit lint m\nm/x: error\n$ ls\n")
    assert parsed == (Command("cmkit lint m", ("m/x: error",)), Command("ls"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "example",
    [pytest.param(e, marks=[pytest.mark.docker] if e.docker else [], id=e.where) for e in EXAMPLES],
)
def test_the_example_is_true(example: Example, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if example.docker:
        request.getfixturevalue("docker_client")  # skip (or fail in CI) without an engine
    run_example(example, tmp_path)
