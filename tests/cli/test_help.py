"""Help a person can read (issue 26): every command listed with one untruncated line, every option described."""

from __future__ import annotations

import click
from click.testing import CliRunner

from cmkit.cli import main


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix}{name} ")
    return found


def test_every_option_is_described() -> None:
    undescribed = [
        f"{name} {param.opts[0]}"
        for name, command in commands(main)
        for param in command.params
        if isinstance(param, click.Option) and not param.help
    ]
    assert undescribed == []


def test_cmkit_help_lists_each_command_on_one_whole_line() -> None:
    shown = CliRunner().invoke(main, ["--help"], terminal_width=80).output
    for name, command in commands(main):
        if " " not in name:
            assert command.short_help and f"  {command.short_help}\n" in shown, name
    assert "server.py" not in shown


def test_the_main_commands_show_examples() -> None:
    for name in ("test-local", "predict", "init"):
        shown = CliRunner().invoke(main, [*name.split(), "--help"], terminal_width=100).output
        assert "Examples:\n    cmkit " + name in shown, name


def test_every_command_shows_examples() -> None:
    for name, command in commands(main):
        if not isinstance(command, click.Group):
            shown = CliRunner().invoke(main, [*name.split(), "--help"], terminal_width=100).output
            assert "Examples:\n    cmkit " in shown or "Examples:\n    CMKIT_" in shown, name


def test_long_option_lists_are_grouped_in_sections() -> None:
    shown = CliRunner().invoke(main, ["test-local", "--help"], terminal_width=80).output
    sections = [line[:-1] for line in shown.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert sections[-5:] == ["Target", "Data and checks", "Server", "DataRobot", "Output"]
    target = shown.split("\nTarget:\n")[1].split("\n\n")[0]
    assert "--class-labels-file" in target and "--dataset" not in target
    assert "-h, --help" in shown.split("\nOutput:\n")[1]
    assert "Options:" not in shown  # every option of test-local has its section
    short = CliRunner().invoke(main, ["init", "--help"], terminal_width=80).output
    assert "\nOptions:\n" in short and "\nTarget:\n" not in short  # a short list stays whole
