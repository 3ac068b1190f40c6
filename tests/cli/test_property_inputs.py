"""Property test (issue 13): random bytes as requirements.txt, model-metadata.yaml, CSV and
drconfig.yaml files never make a command print a traceback; exit codes stay 0, 1 or 2."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cmkit.checks.dataset import load_dataset
from cmkit.cli import main
from cmkit.errors import InputError
from tests.support.bundles import metadata_yaml, write_static_bundle
from tests.support.property_tiers import tiers

# Pieces that steer random input towards the parsers' interesting corners.
YAML_PIECES = [
    "name: m\n", "type: inference\n", "targetType: binary\n", "inferenceModel:\n", "  classLabels: [a, b]\n",
    "a: &x [1, 2]\n", "b: [*x, *x, *x]\n", "*x", "&x ", "<<: *x\n", "- ", "[", "]", "{", "}", ",", ": ", "'", '"',
    "\t", "\n", "\r\n", "#", "!!python/object:os.system\n", "%YAML 1.1\n", "---\n", "...\n", "\x00", "\x85", "é",
    "\ufeff", "? ", "|\n", ">\n", "endpoint: http://[::1\n", "token: t\n", "ssl_verify: /nope\n",
    "connect_timeout: nan\n", "max_retries: -1\n", "endpoint: [1]\n",
]  # fmt: skip
REQUIREMENT_PIECES = [
    "numpy", "==", "1.2", ">=", "<", "~=", "!=", "===", ".*", ",", "[extra]", "; python_version<'3'", " @ ",
    "https://x/y.whl", "-e ", "-r other.txt", "--index-url x", "--hash=sha256:ab", "\\\n", "\n", "#", " ", "\t",
    "\x00", "é", "./local", "/abs", "pkg", "Pkg", "pkg_", "file:", "\r\n",
]  # fmt: skip
CSV_PIECES = [
    "a", "b", "price", ",", "\n", "\r\n", '"', '""', "1", "2.5", "nan", "inf", "-", "", " ", "\x00", "é", "\ufeff",
    "2024-01-01", "true", ";", "\t", "1e400", "a,b,price\n", "99999999999999999999", "-9223372036854775809",
    "18446744073709551615",
]  # fmt: skip
IGNORE_PIECES = [
    "!", "\\!", "*", "**", "/", "\\", "[", "]", "[!a]", "?", "#", " ", "\n", "\r\n", "data/", "*.csv", "!keep",
    "\x00", "é", "\ufeff", "a", "..", ".", "{", "}",
]  # fmt: skip


def hostile(pieces: list[str]) -> st.SearchStrategy[bytes]:
    structured = st.lists(st.sampled_from(pieces), max_size=40).map(lambda parts: "".join(parts).encode())
    return st.one_of(st.binary(max_size=600), structured, st.text(max_size=200).map(str.encode))


METADATA = metadata_yaml("m", target_name="price")


@contextmanager
def bundle() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cmkit-property-") as folder:
        # The server ends at once: the runs below are about input.
        yield write_static_bundle(Path(folder) / "bundle", "#!/bin/sh\nexit 3\n", metadata=METADATA, requirements="")


def run(*args: str | Path, env: dict[str, str] | None = None) -> int:
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert "Traceback" not in result.output, result.output
    assert "internal error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2), result.output
    return result.exit_code


@tiers(60)
def test_random_requirements(examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(hostile(REQUIREMENT_PIECES))
    def check(data: bytes) -> None:
        with bundle() as root:
            (root / "requirements.txt").write_bytes(data)
            run("deps", root / "requirements.txt")
            run("deps", "--json", root)
            run("lint", root)

    check()


@tiers(60)
def test_random_metadata(examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(hostile(YAML_PIECES))
    @example(b"name: *undefined\n")  # parses, then fails to compose: the sample may not draw it
    def check(data: bytes) -> None:
        with bundle() as root:
            (root / "model-metadata.yaml").write_bytes(data)
            run("lint", "--json", root)
            env = {"DATAROBOT_CONFIG_FILE": str(root / "none")}
            run("push", root, "--dry-run", "--environment-id", "e1", env=env)

    check()


@tiers(60)
def test_random_drconfig(examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(hostile(YAML_PIECES))
    @example(b"endpoint: *undefined\n")  # parses, then fails to load: the sample may not draw it
    def check(data: bytes) -> None:
        with bundle() as root:
            config = root.parent / "drconfig.yaml"
            config.write_bytes(data)
            env = {"DATAROBOT_CONFIG_FILE": str(config), "DATAROBOT_ENDPOINT": None, "DATAROBOT_API_TOKEN": None}
            # A config that happens to name a reachable endpoint is not possible here: port 9 refuses.
            code = run("push", root, "--dry-run", "--environment-id", "e1", env=env)  # type: ignore[arg-type]
            assert code in (0, 1, 2)

    check()


@tiers(300)
def test_random_csv_loads_or_is_an_input_error(examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(hostile(CSV_PIECES), st.sampled_from([None, "price", "a"]))
    @example(b"\x00\ninf", None)  # found by this test: pandas reads 'inf' as a float JSON cannot carry
    @example(b"a,price\n1,2\n-inf,3\n", "price")
    def check(data: bytes, target: str | None) -> None:
        with tempfile.TemporaryDirectory(prefix="cmkit-property-") as folder:
            path = Path(folder) / "data.csv"
            path.write_bytes(data)
            try:
                dataset = load_dataset(path, target)
            except InputError as exc:
                assert str(exc).startswith(str(path))
            else:
                assert dataset.rows > 0
                dataset.payload()  # strict JSON: never NaN
                dataset.row_payloads(range(min(dataset.rows, 3)))  # and never an integer JSON cannot carry

    check()


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(hostile(CSV_PIECES))
def test_random_csv_through_test_local(data: bytes) -> None:
    with bundle() as root:
        (root / "data.csv").write_bytes(data)
        run("test-local", root, "--runtime", "process", "--dataset", root / "data.csv", "--startup-timeout", "5")


NAMES = st.binary(min_size=1, max_size=12).filter(lambda name: b"/" not in name and b"\0" not in name)


@tiers(60)
def test_random_cmkitignore_and_file_names(examples: int) -> None:
    """Issue 27 item 13: a `.cmkitignore` line `!` and a file name of bytes ff fe were internal
    errors of push --dry-run after lint said ok. Any ignore file and any names: one line, exit 0-2."""
    env = {"DATAROBOT_CONFIG_FILE": "/nonexistent/drconfig.yaml", "DATAROBOT_API_TOKEN": "", "DATAROBOT_ENDPOINT": ""}

    @settings(max_examples=examples, deadline=None)
    @given(hostile(IGNORE_PIECES), st.lists(NAMES, max_size=3))
    @example(b"!\n", [])
    @example(b"", [b"\xff\xfe"])
    def check(ignore: bytes, names: list[bytes]) -> None:
        with bundle() as root:
            (root / ".cmkitignore").write_bytes(ignore)
            for name in names:
                if name not in (b".", b".."):
                    with contextlib.suppress(OSError):  # a name this file system refuses
                        os.close(os.open(os.path.join(os.fsencode(root), name), os.O_CREAT | os.O_WRONLY))
            run("lint", root)
            run("push", root, "--dry-run", env=env)  # no credentials: planned offline

    check()
