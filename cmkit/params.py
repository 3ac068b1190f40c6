"""click parameter types for the values several commands take: KEY=VALUE pairs, memory sizes, label lists.

Each type converts one flag value and calls the rule's one home: `--env` the model
environment's (`runtime.modelenv.parse_env_flags`), `--class-labels` the target's
(`target.parse_label_list`; whether the labels suit the target type is `TargetSpec.validate`'s
call, made once every flag is known), memory sizes docker's own `parse_bytes`. A repeatable
KEY=VALUE option arrives in the command as one dict (`callback=merge`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import click

from cmkit.engine.modelenv import parse_env_flags
from cmkit.errors import InputError
from cmkit.target import parse_label_list

MEMORY_HINT = "use e.g. 512M or 2G"


def parse_memory(text: str) -> int:
    """`512M`, `1G`, `1.5Gi` or plain bytes -> bytes, in binary units, read as Docker reads them."""
    # Imported here: every command loads this module, and the docker SDK costs 0.1 s to import.
    from docker.errors import DockerException
    from docker.utils import parse_bytes

    cleaned = text.strip().lower().removesuffix("ib").removesuffix("i")  # 512MiB and 512Mi as 512M
    try:
        value = int(parse_bytes(cleaned)) if cleaned else 0
    except DockerException as exc:
        raise InputError(f"bad memory size '{text}'", hint=MEMORY_HINT) from exc
    if value <= 0:
        raise InputError(f"bad memory size '{text}'", hint=MEMORY_HINT)
    return value


class KeyValue(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.3
    """`KEY=VALUE` (the value may be empty or hold '=') -> {KEY: VALUE}: Docker labels."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, str]:
        if isinstance(value, Mapping):
            return dict(value)
        key, sep, text = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return {key: text}


class Header(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.3
    """`--header 'Name: value'` -> {Name: value}; a bad one is named without its value (a credential)."""

    name = "'NAME: VALUE'"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, str]:
        if isinstance(value, Mapping):
            return dict(value)
        name, sep, text = str(value).partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name) or "\n" in text or "\r" in text:
            self.fail(f"a header is 'Name: value' on one line (got one starting {name[:20]!r})", param, ctx)
        return {name: text.strip()}


class EnvVar(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.3
    """`--env KEY=VALUE`, or `--env KEY` for this environment's value (nothing when it is unset)."""

    name = "KEY[=VALUE]"

    def __init__(self, host: Mapping[str, str] | None = None) -> None:
        self.host = host  # None: os.environ as it is when the flag is parsed

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, str]:
        if isinstance(value, Mapping):
            return dict(value)
        try:
            return parse_env_flags([str(value)], os.environ if self.host is None else self.host)
        except InputError as exc:
            self.fail(str(exc), param, ctx)


class MemorySize(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.3
    """`512M`, `2G`, `1.5Gi` or bytes -> bytes."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_memory(str(value))
        except InputError as exc:
            self.fail(str(exc), param, ctx)


class LabelList(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.3
    """`a,b,c` -> ("a", "b", "c"), kept as written (empty or repeated labels are refused by TargetSpec)."""

    name = "LABEL,LABEL,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        return parse_label_list(str(value)) or ()


def merge(ctx: click.Context, param: click.Parameter, values: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The callback of a repeatable KEY=VALUE option: its values as one dict, later flags winning."""
    merged: dict[str, str] = {}
    for value in values:
        merged.update(value)
    return merged


KEY_VALUE = KeyValue()
HEADER = Header()
ENV_VAR = EnvVar()
MEMORY_SIZE = MemorySize()
LABEL_LIST = LabelList()
