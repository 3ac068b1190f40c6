"""The click parameter types: each converts one flag value through its rule's one home."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from cmkit.params import ENV_VAR, KEY_VALUE, LABEL_LIST, MEMORY_SIZE, EnvVar, merge


def _invoke(*args: str, host: dict[str, str] | None = None) -> tuple[int, str, dict[str, Any]]:
    seen: dict[str, Any] = {}

    @click.command()
    @click.option("--label", "labels", multiple=True, type=KEY_VALUE, callback=merge)
    @click.option("--env", multiple=True, type=EnvVar(host) if host is not None else ENV_VAR, callback=merge)
    @click.option("--memory", type=MEMORY_SIZE)
    @click.option("--class-labels", type=LABEL_LIST)
    def command(**values: Any) -> None:
        seen.update(values)

    result = CliRunner().invoke(command, list(args))
    return result.exit_code, result.output, seen


def test_repeated_key_value_flags_arrive_as_one_dict() -> None:
    code, output, seen = _invoke("--label", "a=1", "--label", "b=x=y", "--label", "c=", "--label", "a=2")
    assert code == 0, output
    assert seen["labels"] == {"a": "2", "b": "x=y", "c": ""}
    assert _invoke()[2]["labels"] == {}


@pytest.mark.parametrize("bad", ["novalue", "=value"])
def test_a_flag_that_is_not_key_value_is_a_usage_error(bad: str) -> None:
    code, output, _ = _invoke("--label", bad)
    assert code == 2
    assert f"Invalid value for '--label': {bad!r} is not KEY=VALUE" in output


def test_env_takes_a_bare_name_from_the_host_and_refuses_reserved_names() -> None:
    code, output, seen = _invoke("--env", "A=1", "--env", "HOME_VAR", "--env", "UNSET", host={"HOME_VAR": "here"})
    assert code == 0, output
    assert seen["env"] == {"A": "1", "HOME_VAR": "here"}
    code, output, _ = _invoke("--env", "URL_PREFIX=/x", host={})
    assert code == 2 and "--env URL_PREFIX is set by cmkit for every server" in output
    code, output, _ = _invoke("--env", "1BAD=x", host={})
    assert code == 2 and "is not KEY=VALUE" in output


def test_memory_sizes_read_as_docker_reads_them() -> None:
    assert _invoke("--memory", "512M")[2]["memory"] == 512 * 1024**2
    assert _invoke("--memory", "1Gi")[2]["memory"] == 1024**3
    assert _invoke()[2]["memory"] is None
    code, output, _ = _invoke("--memory", "lots")
    assert code == 2 and "bad memory size 'lots' (use e.g. 512M or 2G)" in output


def test_label_lists_keep_what_was_written_for_the_target_rule_to_judge() -> None:
    assert _invoke("--class-labels", "low, medium,high")[2]["class_labels"] == ("low", "medium", "high")
    # Empty labels stay: TargetSpec refuses them with the message init and test-local share.
    assert _invoke("--class-labels", "a,,b")[2]["class_labels"] == ("a", "", "b")
    assert _invoke()[2]["class_labels"] is None
