"""Hostile and broken input to the commands: one clear line and exit 2 (or a finding), never a
traceback, never a hang (issue 13, items 10, 12 and 13)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cmkit.api.config import load_api_config
from cmkit.checks.dataset import load_dataset
from cmkit.cli import _interrupt_on_sigterm, command, main
from cmkit.engine.base import free_port
from cmkit.errors import InputError
from cmkit.lint import lint_bundle
from tests.support.bundles import metadata_yaml, write_static_bundle

METADATA = metadata_yaml("house-prices", target_name="price")
# Nine levels of nine aliases: 9**9 (387 million) scalars once expanded, from 400 bytes.
ALIAS_BOMB = (
    'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    + "".join(
        f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "name: bomb\n"
)
DEEP_YAML = "name: [" + "[" * 100_000 + "]" * 100_000 + "]\n"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    files = {"data/sample.csv": "a,price\n1,2\n"}
    return write_static_bundle(tmp_path / "bundle", metadata=METADATA, requirements="numpy==2.0\n", files=files)


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No DataRobot credentials from this machine leak into the tests."""
    for name in ("DATAROBOT_ENDPOINT", "DATAROBOT_API_TOKEN", "DATAROBOT_SSL_VERIFY"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "drconfig.yaml"
    monkeypatch.setenv("DATAROBOT_CONFIG_FILE", str(config))
    return config


def cli(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert "internal error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def one_error_line(result: Result, *fragments: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def findings(root: Path) -> list[tuple[str, str]]:
    return [(f.file, f.rule) for f in lint_bundle(root).findings]


# --- item 10: YAML bombs ------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_an_alias_bomb_is_a_lint_finding_not_a_hang(bundle: Path) -> None:
    (bundle / "model-metadata.yaml").write_text(ALIAS_BOMB)
    result = cli("lint", bundle)
    assert result.exit_code == 1
    assert "[metadata-yaml]" in result.output and "expands past" in result.output


@pytest.mark.timeout(30)
def test_an_alias_bomb_stops_test_local_and_push_at_once(bundle: Path, no_config: Path) -> None:
    (bundle / "model-metadata.yaml").write_text(ALIAS_BOMB)
    one_error_line(cli("test-local", bundle, "--runtime", "process"), "model-metadata.yaml:", "expands past")
    assert cli("test-local", bundle, "--runtime", "process").exit_code == 2
    pushed = cli("push", bundle, "--dry-run", "--environment-id", "e1")
    assert pushed.exit_code == 1  # refused before anything is planned, like any lint error
    one_error_line(pushed, "[metadata-yaml]", "expands past")


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("depth", "message"), [(100_000, "limit"), (30_000, "nested more than 64 levels")])
def test_deeply_nested_yaml_is_refused(bundle: Path, depth: int, message: str) -> None:
    # 100,000 levels are over the size cap already; 30,000 fit in it and meet the depth limit.
    (bundle / "model-metadata.yaml").write_text("name: [" + "[" * depth + "]" * depth + "]\n")
    assert ("model-metadata.yaml", "metadata-yaml") in findings(bundle)
    result = cli("test-local", bundle, "--runtime", "process")
    assert result.exit_code == 2
    one_error_line(result, "model-metadata.yaml", message)


def test_a_huge_metadata_file_is_refused_without_parsing(bundle: Path) -> None:
    (bundle / "model-metadata.yaml").write_text(METADATA + "description: " + "x" * 1_000_000 + "\n")
    result = cli("test-local", bundle, "--runtime", "process")
    assert result.exit_code == 2
    one_error_line(result, "model-metadata.yaml", "limit")


def test_legitimate_aliases_still_work(bundle: Path) -> None:
    (bundle / "model-metadata.yaml").write_text(
        "name: &n house-prices\ntype: inference\ntargetType: regression\ndescription: *n\n"
    )
    assert findings(bundle) == []


# --- item 12: exit 2 with one clear line ---------------------------------------------------------


def test_a_symlink_loop_in_a_bundle_is_reported_not_crashed_on(bundle: Path, no_config: Path) -> None:
    (bundle / "self").symlink_to("self")
    (bundle / "x1").symlink_to("x2")
    (bundle / "x2").symlink_to("x1")
    result = cli("lint", bundle)
    assert result.exit_code == 1
    assert {("self", "symlink-broken"), ("x1", "symlink-broken"), ("x2", "symlink-broken")} <= set(findings(bundle))
    assert "symlink loop" in result.output
    pushed = cli("push", bundle, "--dry-run", "--environment-id", "e1")
    assert pushed.exit_code == 1
    one_error_line(pushed, "symlink loop")


def test_an_ignored_symlink_loop_is_not_reported(bundle: Path) -> None:
    (bundle / "self").symlink_to("self")
    (bundle / ".cmkitignore").write_text("self\n")
    assert findings(bundle) == []


def test_a_requirements_file_that_is_a_symlink_loop(bundle: Path) -> None:
    (bundle / "requirements.txt").unlink()
    (bundle / "requirements.txt").symlink_to("requirements.txt")
    for target in (bundle, bundle / "requirements.txt"):
        result = cli("deps", target)
        assert result.exit_code == 2
        one_error_line(result, "requirements.txt", "symbolic links")
    assert ("requirements.txt", "requirements-unreadable") in findings(bundle)


@pytest.mark.timeout(30)
def test_deps_reads_only_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "requirements.txt"
    os.mkfifo(fifo)
    for target in (fifo, Path("/dev/zero")):  # a FIFO blocked forever, /dev/zero grew to gigabytes
        result = cli("deps", target)
        assert result.exit_code == 2
        one_error_line(result, str(target), "not a regular file")


def test_deps_caps_the_file_size(tmp_path: Path) -> None:
    big = tmp_path / "requirements.txt"
    big.write_text("numpy==2.0\n" * 200_000)
    result = cli("deps", big)
    assert result.exit_code == 2
    one_error_line(result, "limit")


def _without_file_permissions(command: list[str]) -> list[str]:
    """Run `command` so that file permissions apply: root ignores them unless it drops two capabilities."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", *command]


@pytest.mark.slow  # `python -m cmkit` in a process without file-permission capabilities (setpriv)
@pytest.mark.parametrize("kind", ["folder", "file"])
def test_unreadable_files_and_folders_are_exit_2(bundle: Path, kind: str) -> None:
    target = bundle / "private"
    if kind == "folder":
        target.mkdir()
        (target / "notes.txt").write_text("x")
    else:
        target.write_text("x")
    target.chmod(0)
    try:
        for args in (["lint", str(bundle)], ["push", str(bundle), "--dry-run", "--environment-id", "e1"]):
            command = _without_file_permissions([sys.executable, "-m", "cmkit", *args])
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr
            assert done.stderr.count("\n") == 1 and "private" in done.stderr and "cannot read" in done.stderr
    finally:
        target.chmod(0o755)


def _run_without_permissions(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = _without_file_permissions([sys.executable, "-m", "cmkit", *map(str, args)])
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.slow  # `python -m cmkit` in a process without file-permission capabilities (setpriv)
@pytest.mark.parametrize(("name", "command"), [("requirements.txt", "deps"), ("model-metadata.yaml", "test-local")])
def test_unreadable_inputs_of_deps_and_test_local(bundle: Path, name: str, command: str) -> None:
    (bundle / name).chmod(0)
    try:
        for args in ([command, bundle, "--runtime", "process"] if command == "test-local" else [command, bundle],):
            done = _run_without_permissions(*args)
            assert done.returncode == 2, done.stderr
            assert done.stderr.count("\n") == 1 and name in done.stderr and "Permission denied" in done.stderr
    finally:
        (bundle / name).chmod(0o644)


@pytest.mark.slow  # `python -m cmkit` in a process without file-permission capabilities (setpriv)
def test_an_unreadable_docker_context_file_is_an_input_error(tmp_path: Path) -> None:
    code = (
        "import sys; from cmkit.environments import context_files; from pathlib import Path\n"
        "try:\n    context_files(Path(sys.argv[1]))\nexcept Exception as exc:\n"
        "    print(type(exc).__name__, exc)"
    )
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "secret.txt").write_text("x")
    (tmp_path / "secret.txt").chmod(0)
    command = _without_file_permissions([sys.executable, "-c", code, str(tmp_path)])
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("InputError") and "secret.txt" in done.stdout, done.stdout + done.stderr


def test_a_binary_drconfig_is_exit_2(bundle: Path, no_config: Path) -> None:
    no_config.write_bytes(bytes(range(256)) * 4)
    for args in (("push", bundle), ("push", bundle, "--dry-run", "--environment-id", "e1")):
        result = cli(*args)
        assert result.exit_code == 2
        one_error_line(result, str(no_config))


@pytest.mark.parametrize("text", [ALIAS_BOMB, DEEP_YAML, "a: " + "[" * 30_000, "endpoint: [unclosed\n", "- a list\n"])
def test_a_broken_drconfig_in_a_dry_run_is_exit_2(bundle: Path, no_config: Path, text: str) -> None:
    no_config.write_text(text)
    result = cli("push", bundle, "--dry-run", "--environment-id", "e1")
    assert result.exit_code == 2
    one_error_line(result, str(no_config))


def test_a_missing_drconfig_still_allows_a_dry_run(bundle: Path, no_config: Path) -> None:
    assert cli("push", bundle, "--dry-run", "--environment-id", "e1").exit_code == 0


@pytest.mark.parametrize("value", ["abc", "nan", "-1"])
def test_drconfig_numbers_are_checked(no_config: Path, value: str) -> None:
    no_config.write_text(f"endpoint: http://127.0.0.1:1\ntoken: t0k3n\nconnect_timeout: {value}\n")
    with pytest.raises(InputError, match="connect_timeout"):
        load_api_config()


@pytest.mark.parametrize("endpoint", ["http://[::1", "http://[::1]:port/api/v2", "http://host:99999999/api/v2"])
def test_a_malformed_endpoint_is_exit_2(bundle: Path, no_config: Path, endpoint: str) -> None:
    result = cli("push", bundle, "--endpoint", endpoint, "--token", "t0k3n", "--environment-id", "e1")
    assert result.exit_code == 2
    one_error_line(result, "endpoint", "not a valid URL")


def test_an_unwritable_junit_path_is_found_before_the_run(bundle: Path, tmp_path: Path) -> None:
    # The server would never start (no python -m server): an exit 2 proves the check came first.
    result = cli("test-local", bundle, "--runtime", "process", "--junit", tmp_path / "missing-dir" / "report.xml")
    assert result.exit_code == 2
    one_error_line(result, "report.xml", "cannot write")
    assert not (tmp_path / "missing-dir").exists()


def test_a_writable_junit_path_is_left_alone_by_the_check(tmp_path: Path) -> None:
    from cmkit.textfiles import check_writable

    fresh, existing = tmp_path / "new.xml", tmp_path / "old.xml"
    existing.write_text("keep")
    check_writable(fresh)
    check_writable(existing)
    assert not fresh.exists() and existing.read_text() == "keep"


# --- item 13: wrong input that was accepted ------------------------------------------------------


def test_csv_rows_with_fewer_fields_than_the_header(bundle: Path, tmp_path: Path) -> None:
    csv = tmp_path / "short.csv"
    csv.write_text("a,b,price\n1,2,3\n4,5\n7,8,9\n")
    with pytest.raises(InputError) as caught:
        load_dataset(csv, "price")
    assert caught.value.line == 3
    result = cli("test-local", bundle, "--runtime", "process", "--host-python", "--dataset", csv)
    assert result.exit_code == 2
    one_error_line(result, "short.csv:3:", "2 field(s)", "header has 3")


def test_csv_with_blank_lines_and_quoted_newlines_still_loads(tmp_path: Path) -> None:
    csv = tmp_path / "ok.csv"
    csv.write_text('a,b,price\n1,"two\nlines",3\n\n4,,6\n')
    assert load_dataset(csv, "price").rows == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--class-labels", "a,b"],
        ["--positive-class-label", "yes", "--negative-class-label", "no"],
        [
            "--target-type",
            "binary",
            "--positive-class-label",
            "y",
            "--negative-class-label",
            "n",
            "--class-labels",
            "a,b",
        ],
        ["--startup-timeout", "nan"],
        ["--startup-timeout", "inf"],
        ["--startup-timeout", "0"],
        ["--rtol", "nan"],
    ],
)
def test_usage_errors_of_test_local(bundle: Path, args: list[str]) -> None:
    result = cli("test-local", bundle, "--runtime", "process", *args)
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("args", [["--dataset", "/missing.csv"], ["--timeout", "nan"]])
def test_usage_errors_of_a_dry_run(bundle: Path, no_config: Path, args: list[str]) -> None:
    result = cli("push", bundle, "--dry-run", "--environment-id", "e1", *args)
    assert result.exit_code == 2, result.output


def test_a_password_in_the_endpoint_is_masked(bundle: Path, no_config: Path) -> None:
    # The connection error is what shows the endpoint; one quick retry, not seconds of backoff.
    no_config.write_text("max_retries: 1\n")
    endpoint = f"http://alice:s3cr3t-pw@127.0.0.1:{free_port()}/api/v2"
    for args in (
        ["push", bundle, "--endpoint", endpoint, "--token", "t0k3n", "--environment-id", "e1"],
        ["push", bundle, "--endpoint", endpoint.replace("http", "ftp"), "--token", "t0k3n"],
        ["push", bundle, "--endpoint", endpoint.split("@")[0] + "@[::1", "--token", "t0k3n"],
    ):
        result = cli(*args)
        assert result.exit_code in (1, 2)
        assert "s3cr3t-pw" not in result.output and "alice:***@" in result.output, result.output


def test_redact_url() -> None:
    from cmkit.api.config import redact_url

    assert redact_url("https://u:p@host/x") == "https://u:***@host/x"
    assert redact_url("https://u:p@ss@host:8/x?a=b@c") == "https://u:***@host:8/x?a=b@c"
    assert redact_url("https://u@host/x") == "https://u@host/x"
    assert redact_url("https://host/x?next=a:b@c") == "https://host/x?next=a:b@c"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["loop", "fifo"])
def test_a_hostile_cmkitignore_is_exit_2(bundle: Path, kind: str) -> None:
    ignore = bundle / ".cmkitignore"
    if kind == "loop":
        ignore.symlink_to(".cmkitignore")
    else:
        os.mkfifo(ignore)
    result = cli("lint", bundle)
    assert result.exit_code == 2
    one_error_line(result, ".cmkitignore")


# --- issue 27 item 13 ---------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["!", "keep.csv\n!"])
def test_an_invalid_cmkitignore_pattern_is_exit_2_naming_its_line(bundle: Path, no_config: Path, line: str) -> None:
    """A lone `!` once made lint say ok and push --dry-run fail with an internal error."""
    (bundle / ".cmkitignore").write_text(line + "\n")
    number = line.count("\n") + 1
    for arguments in (["lint"], ["push", "--dry-run", "--endpoint", "http://127.0.0.1:9/api/v2", "--token", "t"]):
        result = cli(*arguments, bundle)
        assert result.exit_code == 2, result.output
        one_error_line(result, f".cmkitignore:{number}: not a valid ignore pattern: '!'")


def test_too_many_cmkitignore_patterns_are_exit_2_before_any_matching(bundle: Path) -> None:
    """40,000 patterns took 13 s: every path is matched against every pattern."""
    (bundle / ".cmkitignore").write_text("".join(f"data/file{i}.csv\n" for i in range(40_000)))
    one_error_line(cli("lint", bundle), "40000 patterns; cmkit reads at most 5000")


def test_a_file_name_that_is_not_utf8_is_exit_2_unless_ignored(bundle: Path, no_config: Path) -> None:
    os.close(os.open(os.path.join(os.fsencode(bundle), b"model\xff\xfe.bin"), os.O_CREAT | os.O_WRONLY))
    for arguments in (["lint"], ["push", "--dry-run", "--endpoint", "http://127.0.0.1:9/api/v2", "--token", "t"]):
        result = cli(*arguments, bundle)
        assert result.exit_code == 2, result.output
        one_error_line(result, "this file name is not UTF-8: 'model\\xff\\xfe.bin'")
    (bundle / ".cmkitignore").write_text("*.bin\n")
    assert cli("lint", bundle).exit_code != 2


def test_init_refuses_a_name_the_api_refuses(tmp_path: Path) -> None:
    """A 70,000-character --name once wrote a bundle that failed its own lint."""
    result = cli("init", tmp_path / "b", "--target-type", "regression", "--name", "a" * 70_000)
    assert result.exit_code == 2 and not (tmp_path / "b").exists()
    one_error_line(result, "the model name has 70000 characters; the API takes at most 255")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "model-metadata.yaml").write_text(METADATA.replace("house-prices", "n" * 256))
    messages = [f.message for f in lint_bundle(tmp_path / "meta").findings]
    assert any("longer than the API's 255 characters" in m for m in messages), messages


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    """SIGTERM's handler restored after the test; SIGINT raising KeyboardInterrupt during it, as in
    a terminal. A shell starts a background job with SIGINT ignored (CI may run the suite so), and
    Python then installs no KeyboardInterrupt handler: a Ctrl-C would never reach the command."""
    previous = signal.getsignal(signal.SIGTERM), signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGTERM, previous[0])
    signal.signal(signal.SIGINT, previous[1])


def test_sigterm_exits_143_and_ctrl_c_130(sigterm_restored: None) -> None:
    """SIGTERM runs Ctrl-C's cleanup but exits as a shell reports a terminated process (128 + 15)."""
    group = click.Group()

    @command(group, "sleeper")
    @click.option("--signal-name")
    def sleeper(as_json: bool, signal_name: str) -> None:
        _interrupt_on_sigterm()
        os.kill(os.getpid(), getattr(signal, signal_name))
        time.sleep(10)

    for name, code, word in (("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")):
        result = CliRunner().invoke(group, ["sleeper", "--signal-name", name])
        assert result.exit_code == code and f"error: {word}" in result.stderr


# --- issue 27 item 15: every input checked before anything is built ------------------------------


@pytest.fixture
def unbuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundle run on a Docker engine that does not answer: the first thing a build does is reach
    it (exit 3), so an input error (exit 2) proves the input was checked before any build."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    files = {"data/sample.csv": "a,price\n1,2\n3,4\n"}
    return write_static_bundle(tmp_path / "unbuilt", metadata=METADATA, files=files)


def run_unbuilt(bundle: Path, *extra: str | Path) -> Result:
    return cli("test-local", bundle, "--runtime", "docker", *extra)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["over 1 MiB", "fifo", "not utf-8"])
def test_an_unusable_requirements_file_is_exit_2_before_any_build(unbuilt: Path, kind: str) -> None:
    """README: requirements.txt is a regular UTF-8 file of at most 1 MiB. A 2 MiB file once built
    for 65 s and exited 1; a FIFO was taken for "no requirements" (exit 0, nothing installed)."""
    requirements = unbuilt / "requirements.txt"
    if kind == "fifo":
        os.mkfifo(requirements)
    elif kind == "not utf-8":
        requirements.write_bytes(b"six==1.16.0\n\xff\n")
    else:
        requirements.write_text("six==1.16.0\n" * 200_000)
    result = run_unbuilt(unbuilt)
    assert result.exit_code == 2, result.output
    one_error_line(result, "requirements.txt")


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("a,price\n1,2\n3\n", "this row has 1 field(s), the header has 2"),
        ("a,price\n", "the dataset has no rows"),
        ("a,b\n1,2\n", "target column 'price' is not in the dataset"),
        ("\x00\xff\xfe", "not a UTF-8 CSV file"),
        (",".join(f"c{i}" for i in range(20_001)) + "\n", "the header has 20001 columns; cmkit tests at most 20000"),
    ],
    ids=["short row", "no rows", "no target", "not a csv", "too many columns"],
)
def test_dataset_errors_are_exit_2_before_any_build(unbuilt: Path, tmp_path: Path, csv_text: str, message: str) -> None:
    dataset = tmp_path / "data.csv"
    dataset.write_bytes(csv_text.encode("latin-1"))
    result = run_unbuilt(unbuilt, "--dataset", dataset)
    assert result.exit_code == 2, result.output
    one_error_line(result, message)


@pytest.mark.timeout(30)
def test_a_million_column_header_is_refused_before_parsing(tmp_path: Path) -> None:
    """Issue 27 item 9: a header of 1e6 columns took 94 s and 3.2 GB before "no rows"."""
    from cmkit.checks.datasetfile import MAX_HEADER_BYTES

    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"column{i}" for i in range(1_000_000)) + "\n1\n")
    with pytest.raises(InputError, match="the header line is longer than 8 MiB"):
        load_dataset(wide)
    assert wide.stat().st_size > MAX_HEADER_BYTES
    narrower = tmp_path / "narrower.csv"
    narrower.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n")
    with pytest.raises(InputError, match="the header has 100000 columns"):
        load_dataset(narrower)
