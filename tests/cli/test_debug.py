"""An unexpected failure is one line; `--debug` or CMKIT_DEBUG=1 lets its traceback out."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cmkit.cli import command


def failing_group() -> click.Group:
    @click.group()
    def group() -> None:
        """A stand-in program with one command that fails inside."""

    @command(group, "boom")
    def boom(as_json: bool) -> None:
        raise ValueError("a bug inside cmkit")

    return group


def test_internal_error_is_one_line_without_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMKIT_DEBUG", raising=False)
    result = CliRunner().invoke(failing_group(), ["boom"])
    assert result.exit_code == 1
    assert "a bug inside cmkit (internal error; rerun with --debug for the traceback)" in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("arguments", "environ"), [(["boom", "--debug"], {}), (["boom"], {"CMKIT_DEBUG": "1"})])
def test_debug_lets_the_exception_out(arguments: list[str], environ: dict[str, str]) -> None:
    result = CliRunner().invoke(failing_group(), arguments, env=environ)
    assert isinstance(result.exception, ValueError), result.output
