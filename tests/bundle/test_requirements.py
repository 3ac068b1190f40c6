"""`cmkit deps`: requirements.txt -> DataRobot's dependency structure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmkit.cli import main
from cmkit.errors import InputError
from cmkit.requirements import parse_requirements_file, parse_requirements_text
from tests.support.property_tiers import tiers


def deps(text: str) -> list[dict[str, object]]:
    report = parse_requirements_text(text)
    assert report.errors == [], report.errors
    return [d.to_api() for d in report.dependencies]


def only_error(text: str) -> dict[str, object]:
    report = parse_requirements_text(text)
    assert len(report.errors) == 1, report.errors
    return report.errors[0].to_api()


def c(op: str, version: str) -> dict[str, str]:
    return {"constraintType": op, "version": version}


@pytest.mark.parametrize(
    ("line", "name", "constraints"),
    [
        ("pandas==1.5.3", "pandas", [c("==", "1.5.3")]),
        ("numpy", "numpy", []),
        ("Scikit_Learn>=1.2", "Scikit_Learn", [c(">=", "1.2")]),
        ("pandas>=1.0,<2.0", "pandas", [c(">=", "1.0"), c("<", "2.0")]),
        ("pandas<2.0,>=1.0", "pandas", [c("<", "2.0"), c(">=", "1.0")]),
        ("pandas >= 1.0 , < 2.0", "pandas", [c(">=", "1.0"), c("<", "2.0")]),
        ("x<=3", "x", [c("<=", "3")]),
        ("x>3.0.0rc1", "x", [c(">", "3.0.0rc1")]),
        ("x==1.0.post2", "x", [c("==", "1.0.post2")]),
        ("x==1.0+cpu", "x", [c("==", "1.0+cpu")]),
        ("x~=1.4.2", "x", [c(">=", "1.4.2"), c("<", "1.5")]),
        ("x~=23.1", "x", [c(">=", "23.1"), c("<", "24")]),
        ("x~=2.2.post3", "x", [c(">=", "2.2.post3"), c("<", "3")]),
        ("x==4.2.*", "x", [c(">=", "4.2"), c("<", "4.3")]),
        ("x==4.*", "x", [c(">=", "4"), c("<", "5")]),
        ("x==1!2.*", "x", [c(">=", "1!2"), c("<", "1!3")]),
        ("x~=1.4.2,<1.4.9", "x", [c(">=", "1.4.2"), c("<", "1.5"), c("<", "1.4.9")]),
        ("x>=1;", "x", [c(">=", "1")]),
        ("x==1.0  # pinned for the GPU", "x", [c("==", "1.0")]),
    ],
)
def test_maps_exactly(line: str, name: str, constraints: list[dict[str, str]]) -> None:
    (dep,) = deps(line)
    assert dep["packageName"] == name
    assert dep["constraints"] == constraints
    assert dep["lineNumber"] == 1
    assert "extras" not in dep


def test_extras_are_sorted_and_comma_joined() -> None:
    (dep,) = deps("Flask[dotenv , async]==2.0.1\n")
    assert dep == {
        "packageName": "Flask",
        "constraints": [c("==", "2.0.1")],
        "extras": "async,dotenv",
        "line": "Flask[dotenv , async]==2.0.1",
        "lineNumber": 1,
    }


def test_line_numbers_skip_comments_and_blanks() -> None:
    text = "# models\n\nnumpy==2.0\n   \n# data\npandas>=2\n"
    assert [(d["packageName"], d["lineNumber"], d["line"]) for d in deps(text)] == [
        ("numpy", 3, "numpy==2.0"),
        ("pandas", 6, "pandas>=2"),
    ]


def test_continuation_lines_count_from_their_first_line() -> None:
    assert [(d["packageName"], d["lineNumber"]) for d in deps("a==1 \\\n  \nb==2\n")] == [("a", 1), ("b", 3)]


def test_empty_file_is_valid() -> None:
    report = parse_requirements_text("")
    assert report.ok and report.dependencies == []
    assert parse_requirements_text("# only a comment\n\n").dependencies == []


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("foo!=1.0", "'!=1.0'"),
        ("foo>=1,!=1.5", "exclusion"),
        ("foo===1.0", "'==='"),
        ("foo~=1", "'~=' needs at least two release segments"),
        ("foo; python_version < '3.8'", "environment marker"),
        ("foo @ https://example.invalid/foo-1.0.tar.gz", "URL requirement"),
        ("https://example.invalid/foo-1.0-py3-none-any.whl", "URL requirement"),
        ("git+https://example.invalid/foo.git#egg=foo", "URL requirement"),
        ("./libs/foo", "local path"),
        ("/abs/path/foo-1.0.tar.gz", "local path"),
        ("foo @ file:///tmp/foo", "local path"),
        ("-e .", "editable"),
        ("-e git+https://example.invalid/a/b#egg=b", "editable"),
        ("-r other.txt", "nested requirement files"),
        ("-c constraints.txt", "constraint files"),
        ("--index-url https://example.invalid/simple", "'--index-url'"),
        ("--extra-index-url https://example.invalid/simple", "'--extra-index-url'"),
        ("-f /wheels", "'-f'"),
        ("--pre", "'--pre'"),
        ("requests==2.0 --hash=sha256:abcd", "'--hash'"),
        ("this is not a requirement", "invalid requirement"),
        ("foo==", "invalid requirement"),
        ("foo<=1.0.*", "invalid requirement"),
    ],
)
def test_rejects_what_cannot_map(line: str, fragment: str) -> None:
    error = only_error(f"numpy==2.0\n{line}\n")
    assert error["lineNumber"] == 2
    assert error["line"] == line.strip()
    assert fragment in error["message"]


def test_duplicate_projects_compare_normalised_names() -> None:
    report = parse_requirements_text("scikit_learn==1.0\npandas\nScikit.Learn>=1.1\n")
    assert [d.package_name for d in report.dependencies] == ["scikit_learn", "pandas"]
    (error,) = report.errors
    assert (error.line_number, error.line) == (3, "Scikit.Learn>=1.1")
    assert "already required on line 1" in error.message


def test_valid_lines_survive_next_to_errors() -> None:
    report = parse_requirements_text("a==1\nb!=2\nc>=3\n")
    assert [d.package_name for d in report.dependencies] == ["a", "c"]
    assert [e.line_number for e in report.errors] == [2]


def test_file_and_folder_inputs(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy==2.0\n")
    assert parse_requirements_file(tmp_path).dependencies[0].package_name == "numpy"
    assert parse_requirements_file(tmp_path / "requirements.txt").ok


@pytest.mark.parametrize("setup", ["missing", "folder", "binary"])
def test_unreadable_inputs_are_input_errors(tmp_path: Path, setup: str) -> None:
    target = tmp_path / "requirements.txt"
    if setup == "missing":
        target = tmp_path / "nope.txt"
    elif setup == "folder":
        target = tmp_path
    else:
        target.write_bytes(b"numpy==2.0\n\xff\xfe\x00bad\n")
    with pytest.raises(InputError) as caught:
        parse_requirements_file(target)
    assert caught.value.exit_code == 2
    if setup == "binary":
        assert caught.value.line == 2


# --- the command ------------------------------------------------------------------------------


def test_cli_json_document_and_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.txt"
    good.write_text("numpy==2.0\n")
    result = runner.invoke(main, ["deps", str(good), "--json"])
    assert result.exit_code == 0
    good_entry = {
        "file": str(good.resolve()),
        "ok": True,
        "dependencies": [
            {"packageName": "numpy", "constraints": [c("==", "2.0")], "line": "numpy==2.0", "lineNumber": 1}
        ],
        "errors": [],
    }
    assert json.loads(result.stdout) == {"ok": True, "files": [good_entry]}
    bad = tmp_path / "bad.txt"
    bad.write_text("numpy==2.0\nfoo!=1\n")
    result = runner.invoke(main, ["deps", str(bad), "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [d["packageName"] for d in document["files"][0]["dependencies"]] == ["numpy"]
    assert document["files"][0]["errors"][0]["lineNumber"] == 2
    # A second path changes the number of entries, never the shape (CI scripts read .files[]).
    both = json.loads(runner.invoke(main, ["deps", str(good), str(bad), "--json"]).stdout)
    assert set(both) == {"ok", "files"} and both["ok"] is False
    assert both["files"][0] == good_entry and both["files"][1] == document["files"][0]


def test_cli_input_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["deps", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.strip().count("\n") == 0
    assert "missing.txt" in result.stderr


def test_cli_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["deps", str(tmp_path / "missing.txt"), "--debug"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)


def test_cli_human_table(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("pandas>=1.0,<2.0\nfoo!=1\n")
    result = CliRunner().invoke(main, ["deps", str(tmp_path)])
    assert result.exit_code == 1
    assert "pandas" in result.stderr and ">=1.0, <2.0" in result.stderr
    assert f"{path}:2" in result.stderr
    assert result.stdout == ""


# --- properties -------------------------------------------------------------------------------

# Text shaped like requirements, to reach the mapping code and not only the parser's rejections.
REQUIREMENT_SHAPE = (
    r"[A-Za-z][A-Za-z0-9._-]{0,10}(\[[a-z, ]{0,8}\])?"
    r"( ?(==|>=|<=|<|>|~=|!=|===) ?[0-9.*a-z+!]{0,8},?){0,3}(;.{0,10})?"
)
requirement_like = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(REQUIREMENT_SHAPE, fullmatch=True),
        st.sampled_from(["-e .", "-r x", "--hash=sha256:0", "# c", "\\", "@", "x @ y", "\x00", "\r", "\ufeff"]),
    ),
    max_size=6,
).map("\n".join)


# The requirements-file format (pip's reference): a line ending in a backslash continues on the
# next and the logical line takes the first one's number (pip strips every backslash at either end
# of a continued line); `#` at the start or after whitespace starts a comment; blank lines are
# nothing. A BOM at the start is not content.
COMMENT = re.compile(r"(^|\s+)#.*$")


def logical_lines(text: str) -> dict[int, str]:
    """Each logical line that has content: its first physical line's number -> the content."""
    found: dict[int, str] = {}
    start: int | None = None
    parts: list[str] = []

    def close() -> None:
        content = COMMENT.sub("", "".join(parts)).strip()
        if content and start is not None:
            found[start] = content

    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        start = number if start is None else start
        if line.endswith("\\") and not COMMENT.match(line):
            parts.append(line.strip("\\"))
            continue
        # A comment line ends a continuation as its own word, as pip joins lines: "0\\" then
        # "#" is the requirement "0", not "0#".
        parts.append(" " + line if COMMENT.match(line) else line)
        close()
        start, parts = None, []
    close()
    return found


def outcomes(text: str) -> dict[int, list[str]]:
    """Line number -> the lines the report gives there, as a dependency or as an error."""
    report = parse_requirements_text(text)
    found: dict[int, list[str]] = {}
    for number, line in [(d.line_number, d.line) for d in report.dependencies] + [
        (e.line_number, e.line) for e in report.errors
    ]:
        found.setdefault(number, []).append(line)
    return found


def assert_every_line_accounted_for(text: str) -> None:
    expected = logical_lines(text)
    found = outcomes(text)
    assert sorted(found) == sorted(expected), f"outcomes on lines {sorted(found)}, content on {sorted(expected)}"
    assert {number: lines for number, lines in found.items() if len(lines) != 1} == {}, "one outcome per line"
    assert {number: lines[0] for number, lines in found.items()} == expected


def test_every_logical_line_has_exactly_one_outcome() -> None:
    text = (
        "\ufeff# header comment\n"
        "numpy==2.0  # pinned\n"
        "\n"
        "pandas>=1.0,\\\n"
        "   <3\n"
        "-e git+https://example.com/x.git\n"
        "   \t\n"
        "# \\\n"
        "numpy>=1\n"
        "not a requirement!\n"
        "--index-url https://example.com/simple\n"
        "six\\"
    )
    assert_every_line_accounted_for(text)
    assert sorted(outcomes(text)) == [2, 4, 6, 9, 10, 11, 12]


def test_a_comment_line_ends_a_continuation_as_pip_joins_it() -> None:
    # Found by the property test below: pip joins "0\\" and "#" as "0 #", the requirement "0".
    assert_every_line_accounted_for("0\\\n#")
    assert outcomes("0\\\n#") == {1: ["0"]}


@tiers(300)
def test_never_crashes_and_accounts_for_every_line(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(requirement_like)
    def check(text: str) -> None:
        report = parse_requirements_text(text)
        json.dumps(report.to_dict())
        for dep in report.dependencies:
            assert dep.package_name
            assert all(con.constraint_type in ("<", "<=", "==", ">=", ">") for con in dep.constraints)
        assert_every_line_accounted_for(text)

    check()


@tiers(100)
def test_cli_never_tracebacks_on_random_bytes(examples: int) -> None:
    import tempfile

    @settings(max_examples=examples, deadline=None)
    @given(st.binary(max_size=200))
    def check(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "requirements.txt"
            path.write_bytes(data)
            result = CliRunner().invoke(main, ["deps", str(path), "--json"])
        assert result.exit_code in (0, 1, 2), result.output
        assert "Traceback" not in result.output
        json.loads(result.stdout)

    check()


def test_plain_lines_share_one_option_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27 item 5: the parser library built ~22 optparse options for every line, 1.4 ms a
    line (60,000 lines: over 10 s). Lines without options now share one; a line with options
    still gets its own, and what each line means is unchanged."""
    import pip_requirements_parser

    built: list[object] = []
    build = pip_requirements_parser.build_parser

    def counted() -> object:
        built.append(None)
        return build()

    monkeypatch.setattr(pip_requirements_parser, "build_parser", counted)
    text = "".join(f"pkg{i}[extra]>=1.{i},<3  # pinned\n" for i in range(2000))
    report = parse_requirements_text(
        text + "--index-url https://example.invalid/simple\nsix==1.16.0 --hash=sha256:abc\n"
    )
    assert len(built) == 2  # the two lines with options
    assert len(report.dependencies) == 2000 and report.dependencies[7].package_name == "pkg7"
    assert [e.line_number for e in report.errors] == [2001, 2002]
