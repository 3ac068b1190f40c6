"""YAML read with limits, so that a hostile or broken file is refused in milliseconds.

PyYAML follows aliases without bound (a 1 KB "billion laughs" document expands to gigabytes
when turned into Python objects) and composes nested collections recursively (100,000 levels
overflow the stack). Every YAML file cmkit reads (`model-metadata.yaml`, `drconfig.yaml`) goes
through `check_yaml` first: one pass over PyYAML's event stream, which is iterative and linear
in the file's size, measures the nesting depth and the size the document would have once every
alias is expanded, and refuses the file before anything is built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cmkit.errors import InputError
from cmkit.textfiles import read_utf8

# Real model-metadata.yaml and drconfig.yaml files are a few hundred bytes to a few KB.
MAX_YAML_BYTES = 64 * 1024
MAX_YAML_DEPTH = 64
# Nodes (scalars, mappings, sequences) of the document with every alias expanded.
MAX_YAML_NODES = 100_000

# libyaml's parser when PyYAML was built with it: 40 times faster than the pure-Python one on
# a file near the size cap (0.07 s instead of 3 s), with the same events and marks.
BASE_LOADER: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_START_EVENTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_END_EVENTS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def read_yaml_text(path: Path, max_bytes: int = MAX_YAML_BYTES) -> str:
    """A YAML file's text: a regular UTF-8 file within the size cap."""
    return read_utf8(path, max_bytes)


def yaml_error(exc: yaml.YAMLError, path: Path) -> InputError:
    """PyYAML's error as one line naming the file and the line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
    line = mark.line + 1 if mark is not None else None
    if "nesting depth" in str(problem):  # libyaml's own bound (1000), met before ours when it reads ahead
        return InputError(f"nested more than {MAX_YAML_DEPTH} levels deep", file=path, line=line, hint="flatten it")
    return InputError(
        f"invalid YAML: {problem}", file=path, line=line, hint="fix the indentation or quoting on that line"
    )


def check_yaml(text: str, path: Path, max_depth: int = MAX_YAML_DEPTH, max_nodes: int = MAX_YAML_NODES) -> None:
    """Refuse a document nested deeper than `max_depth` or expanding past `max_nodes` nodes."""
    sizes: dict[str, int] = {}  # expanded size of each anchored node
    # The open collections, outermost first: their anchors and their expanded sizes so far.
    anchors: list[str | None] = []
    counts: list[int] = []
    total = 0

    def add(count: int, event: yaml.Event) -> None:
        nonlocal total
        total += count
        if total > max_nodes:
            raise InputError(
                f"the document expands past {max_nodes} nodes (aliases like '*name' repeat what they point at)",
                file=path,
                line=_line(event),
                hint="write the values out instead of nesting aliases",
            )
        for level in range(len(counts)):
            counts[level] += count

    try:
        for event in yaml.parse(text, Loader=BASE_LOADER):
            if isinstance(event, _START_EVENTS):
                if len(counts) >= max_depth:
                    raise InputError(
                        f"nested more than {max_depth} levels deep",
                        file=path,
                        line=_line(event),
                        hint="flatten it",
                    )
                add(1, event)
                anchors.append(event.anchor)
                counts.append(0)
            elif isinstance(event, _END_EVENTS):
                anchor, size = anchors.pop(), counts.pop()
                if anchor is not None:
                    sizes[anchor] = 1 + size
            elif isinstance(event, yaml.ScalarEvent):
                add(1, event)
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                # An undefined alias is left for the composer, which names it.
                add(sizes.get(event.anchor or "", 1), event)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from exc


def compose_yaml(path: Path) -> yaml.Node | None:
    """A YAML file's node tree, every scalar a string (as DRUM's strictyaml reads it), within the limits."""
    text = read_yaml_text(path)
    check_yaml(text, path)
    try:
        return yaml.compose(text, Loader=BASE_LOADER)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from exc


def load_yaml(path: Path) -> Any:
    """A YAML file as Python values (YAML 1.1 types, as DataRobot's client reads drconfig), within the limits."""
    text = read_yaml_text(path)
    check_yaml(text, path)
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from exc


def _line(event: yaml.Event) -> int | None:
    """The 1-based line an event starts on (PyYAML's marks count from 0)."""
    return event.start_mark.line + 1 if event.start_mark is not None else None
