#!/usr/bin/env python3
"""Extract the custom-models API reference into `cmkit/emulator/api_reference.json`.

The seed (`../shared/seeds/000_86e9bcfdbd582f67.txt`) is DataRobot's public REST reference for
the "Custom models" chapter, flattened to text: one section per route (`GET /api/v2/...¶`), then
the named JSON schemas after the `Schemas¶` line. The emulator validates every request against
what this script extracts, so the reference stays the single source of truth:

- per route: method, path, path and query parameters (type, required, enum, and the range or
  default that a description states, e.g. "(1-1000, default 100)"), the body schema's name and
  whether the body is JSON or multipart, the documented statuses with their schema names, and
  the documented response headers;
- every named schema, verbatim.

Usage: python tools/extract_api_reference.py [SEED] [--output FILE] [--check]
(`--check` exits 1 when the committed JSON differs from what the seed gives.)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# A copy of the seed kept in the repository, so the extraction can be checked anywhere.
DEFAULT_SEED = REPO / "tools" / "reference" / "datarobot-custom-models-api.txt"
DEFAULT_OUTPUT = REPO / "cmkit" / "emulator" / "api_reference.json"

ROUTE = re.compile(r"^(GET|POST|PATCH|PUT|DELETE) (/api/v2/\S+)¶$")
PARAM_ROW = re.compile(r"^(\w+) \| (path|query|body|formData|header) \| (.*?) \| (true|false) \| (.*) \|$")
ENUM_ROW = re.compile(r"^(\w+) \| \[(.*)\] \|$")
STATUS_ROW = re.compile(r"^(\d{3}) \| ([^|]+) \| (.*?) \| (.*?) \|$")
HEADER_ROW = re.compile(r"^(\d{3}) \| ([\w-]+) \| (\w+) \| (.*?) \|$")
RANGE = re.compile(r"\((\d+)\s*-\s*(\d+)")
DEFAULT = re.compile(r"\bdefault (-?\d+)\b")
SCHEMA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _json_block(lines: list[str], start: int) -> tuple[Any, int]:
    """Parse the JSON value that starts at `lines[start]`; return it and the next line index.

    Blocks are pretty-printed one token per line, so counting brackets outside strings finds
    the end. `strict=False` because descriptions hold raw control characters.
    """
    depth = 0
    end = start
    while True:
        in_string = escaped = False
        for char in lines[end]:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = not in_string
            elif not in_string and char in "{[":
                depth += 1
            elif not in_string and char in "}]":
                depth -= 1
        end += 1
        if depth == 0:
            return json.loads("\n".join(lines[start:end]), strict=False), end


def _param_type(text: str) -> list[str]:
    """`integer`, `string,null` -> JSON schema type names."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _param(match: re.Match[str]) -> dict[str, Any]:
    name, where, type_text, required, description = match.groups()
    param: dict[str, Any] = {
        "name": name,
        "in": where,
        "type": _param_type(type_text),
        "required": required == "true",
        "description": description.strip(),
    }
    if where == "query":
        bounds = RANGE.search(description)
        if bounds:
            param["minimum"], param["maximum"] = int(bounds.group(1)), int(bounds.group(2))
        default = DEFAULT.search(description)
        if default:
            param["default"] = int(default.group(1))
    return param


class _Route:
    def __init__(self, method: str, path: str, summary: str) -> None:
        self.method = method
        self.path = path
        self.summary = summary
        self.params: list[dict[str, Any]] = []
        self.enums: dict[str, list[str]] = {}
        self.body: str | None = None
        self.body_format: str | None = None
        self.responses: list[dict[str, Any]] = []
        self.headers: list[dict[str, Any]] = []
        self.section = ""

    def to_dict(self) -> dict[str, Any]:
        for param in self.params:
            if param["name"] in self.enums and param["in"] == "query":
                param["enum"] = self.enums[param["name"]]
        return {
            "method": self.method,
            "path": self.path,
            "summary": self.summary,
            "pathParams": [p for p in self.params if p["in"] == "path"],
            "queryParams": [p for p in self.params if p["in"] == "query"],
            "body": self.body,
            "bodyFormat": self.body_format,
            "responses": self.responses,
            "headers": self.headers,
        }


def _read_row(route: _Route, line: str) -> None:
    """One table row of the current route; which table it belongs to is in `route.section`."""
    if route.section == "params" and (match := PARAM_ROW.match(line)):
        param = _param(match)
        if param["in"] == "body":
            route.body = param["type"][0]
        else:
            route.params.append(param)
    elif route.section == "enums" and (match := ENUM_ROW.match(line)):
        route.enums[match.group(1)] = [v.strip() for v in match.group(2).split(" , ")]
    elif route.section == "headers" and (match := HEADER_ROW.match(line)):
        status, name, kind, description = match.groups()
        route.headers.append({"status": int(status), "name": name, "type": kind, "description": description})
    elif route.section == "responses" and (match := STATUS_ROW.match(line)):
        status, meaning, description, schema = match.groups()
        schema_name = schema.strip()
        route.responses.append(
            {
                "status": int(status),
                "meaning": meaning.strip(),
                "description": description.strip(),
                "schema": None if schema_name == "None" else schema_name,
            }
        )


SECTIONS = {
    "Parameters": "params",
    "Enumerated Values¶": "enums",
    "Responses¶": "responses",
    "Response Headers¶": "headers",
    "Example responses¶": "examples",
}


def extract_routes(lines: list[str]) -> list[dict[str, Any]]:
    routes: list[_Route] = []
    current: _Route | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("Schemas¶"):
            break
        if match := ROUTE.match(line):
            current = _Route(match.group(1), match.group(2), lines[index + 1].strip())
            routes.append(current)
        elif current is None:
            pass
        elif line == "Body parameter¶":
            # JSON bodies are printed as JSON, multipart bodies as YAML; the schema itself is
            # taken by name from the Schemas section, so only the format matters here.
            current.body_format = "json" if lines[index + 1].startswith("{") else "multipart"
            current.section = "body"
        elif line in SECTIONS:
            current.section = SECTIONS[line]
        elif current.section == "examples" and line.startswith("{"):
            _, index = _json_block(lines, index)  # inline response schemas: skip, names suffice
            continue
        else:
            _read_row(current, line)
        index += 1
    for route in routes:
        if route.body and route.body_format is None:
            route.body_format = "json"
    return [route.to_dict() for route in routes]


def extract_schemas(lines: list[str]) -> dict[str, Any]:
    start = next(i for i, line in enumerate(lines) if line.startswith("Schemas¶"))
    schemas: dict[str, Any] = {}
    index = start
    while index < len(lines) - 1:
        if SCHEMA_NAME.fullmatch(lines[index]) and lines[index + 1] == "{":
            schemas[lines[index]], index = _json_block(lines, index + 1)
            continue
        index += 1
    return dict(sorted(schemas.items()))


def build_reference(seed: Path) -> dict[str, Any]:
    lines = seed.read_text(encoding="utf-8").split("\n")
    reference = {
        "source": f"{seed.name}: DataRobot REST API reference, chapter '{lines[0].rstrip('¶')}'",
        "generator": "tools/extract_api_reference.py",
        "routes": extract_routes(lines),
        "schemas": extract_schemas(lines),
    }
    named = {r["body"] for r in reference["routes"] if r["body"]}
    named |= {s["schema"] for r in reference["routes"] for s in r["responses"] if s["schema"]}
    missing = sorted(named - set(reference["schemas"]))
    if missing:
        raise SystemExit(f"schemas named by routes but not defined: {', '.join(missing)}")
    return reference


def render(reference: dict[str, Any]) -> str:
    return json.dumps(reference, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("seed", nargs="?", type=Path, default=DEFAULT_SEED)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file is out of date")
    args = parser.parse_args(argv)
    text = render(build_reference(args.seed))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is out of date; rerun {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    reference = json.loads(text)
    print(f"{args.output}: {len(reference['routes'])} routes, {len(reference['schemas'])} schemas", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
