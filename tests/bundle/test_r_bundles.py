"""R bundles without R: init's r template, lint's reading of custom.R and .rds, and what the process
runtime says is missing. The fast tier needs no R: where R would answer, a stand-in `Rscript` on
the PATH prints what R's program prints (the real R runs them in tests/runtime/test_r_models.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cmkit.engine.rhost import (
    ENVIRONMENT_R_PACKAGES,
    RLibraryFailed,
    host_problem,
    isolated_r_environment,
    missing_r_packages,
    r_packages,
)
from cmkit.errors import InputError
from cmkit.lint import lint_bundle
from cmkit.paths import default_environment_dir, default_environment_for, r_environment_dir
from cmkit.rlint import from_parser_output, read_r_source
from cmkit.scaffold import init_bundle, make_spec, render_bundle
from cmkit.testlocal import TestLocalConfig, run_test_local
from cmkit_runtime.formats import is_r_bundle, is_r_file_set
from cmkit_runtime.loader import LoadError, load
from cmkit_runtime.target import Target
from tests.support.bundles import metadata_yaml, write_files

HOOKS = "init <- function(...) library(stats)\nscore = function(data, model, labels) data\nhelper <- 3\n"


def fake_rscript(folder: Path, output: str) -> Path:
    """A stand-in Rscript that prints `output` whatever it is asked (the fast tier's R)."""
    # shell builtins only: the tests give it a PATH of its own folder
    program = '#!/bin/sh\nwhile IFS= read -r line; do printf "%s\\n" "$line"; done < "${0%/*}/output"\n'
    return write_files(folder, {"Rscript": program, "output": output}, executable=("Rscript",))


def rules(bundle: Path) -> dict[str, str]:
    return {finding.rule: finding.severity for finding in lint_bundle(bundle).findings}


@pytest.fixture
def no_r(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.parametrize("target", ["regression", "binary", "multiclass", "unstructured"])
def test_init_language_r_writes_custom_r_and_no_start_script(target: str, tmp_path: Path) -> None:
    labels = ("low", "mid", "high") if target == "multiclass" else ()
    spec = make_spec(target, "m", class_labels=labels)
    result = init_bundle(tmp_path / target, spec, template="r")
    assert "custom.R" in result.files and "start_server.sh" not in result.files and "model.json" not in result.files
    assert is_r_bundle(tmp_path / target)
    assert default_environment_for(tmp_path / target) == r_environment_dir()
    if target != "unstructured":
        assert (tmp_path / target / "data" / "sample.csv").is_file()  # the python template's sample, shared


def test_the_r_template_names_what_it_writes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="the r template has no anomaly model") as raised:
        render_bundle(make_spec("anomaly", "m"), "r")
    assert "binary, multiclass, regression, unstructured" in (raised.value.hint or "")


def test_the_target_name_is_an_r_string_literal() -> None:
    files = render_bundle(make_spec("regression", "m", target_name='a "b" \\ c'), "r")
    custom = next(f for f in files if f.path == "custom.R").content.decode()
    assert 'TARGET <- "a \\"b\\" \\\\ c"' in custom


def test_python_bundles_keep_the_python_environment(tmp_path: Path) -> None:
    write_files(tmp_path / "py", {"custom.py": "def score(data, model, **kw): ...\n", "model.rds": b"x"})
    assert not is_r_bundle(tmp_path / "py")
    assert default_environment_for(tmp_path / "py") == default_environment_dir()


def test_lint_an_rds_alone_is_a_model(tmp_path: Path) -> None:
    bundle = write_files(tmp_path / "m", {"model.rds": b"\x1f\x8b", "requirements.txt": "glmnet\nnot a pip line!\n"})
    assert rules(bundle) == {"start-script-provided": "note"}  # requirements.txt names R packages: not pip's


def test_lint_two_rds_without_load_model(tmp_path: Path) -> None:
    bundle = write_files(tmp_path / "m", {"a.rds": b"1", "b.rds": b"2"})
    assert rules(bundle)["r-artifacts"] == "error"


def test_lint_custom_r_without_r_scans_its_hooks(tmp_path: Path, no_r: None) -> None:
    bundle = write_files(tmp_path / "m", {"custom.R": HOOKS})
    assert read_r_source(bundle / "custom.R").defined == frozenset({"init", "score"})
    found = rules(bundle)
    assert found["r-not-parsed"] == "note" and found["r-no-model"] == "error"
    with_model = write_files(tmp_path / "m", {"custom.R": HOOKS + "load_model <- function(d) readRDS('x')\n"})
    assert "r-no-model" not in rules(with_model)


def test_lint_unstructured_r_needs_score_unstructured(tmp_path: Path, no_r: None) -> None:
    metadata = metadata_yaml("u", "unstructured", None)
    bundle = write_files(tmp_path / "u", {"custom.R": HOOKS, "model-metadata.yaml": metadata})
    assert rules(bundle)["hooks-target-type"] == "error"


def test_lint_reports_rs_parse_error_with_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_rscript(tmp_path / "bin", "error\n3\nunexpected '}'\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    bundle = write_files(tmp_path / "m", {"custom.R": "score <- function(data, model) {\n  x <-\n}\n)\n"})
    [finding] = lint_bundle(bundle).findings
    assert (finding.rule, finding.line, finding.message) == ("r-syntax", 3, "custom.R does not parse: unexpected '}'")


def test_lint_takes_rs_list_of_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_rscript(tmp_path / "bin", "ok\nload_model\nscore\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    source = read_r_source(write_files(tmp_path / "m", {"custom.R": "whatever"}) / "custom.R")
    assert (source.defined, source.parsed_by_r, source.error) == (frozenset({"load_model", "score"}), True, None)


def test_parser_output() -> None:
    assert from_parser_output("") is None  # R did not run the program: the caller scans
    assert from_parser_output("error\n\nboom\n") == from_parser_output("error\nx\nboom")
    assert from_parser_output("error\n7\n") is not None


def test_requirements_name_r_packages() -> None:
    text = "# R packages\nstringr\npack >= 0.1  # words\n\nglmnet==4.1\nstringr\n"
    assert r_packages(text) == ["stringr", "pack", "glmnet"]


def test_process_runtime_without_r(tmp_path: Path, no_r: None) -> None:
    bundle = write_files(tmp_path / "m", {"model.rds": b"x"})
    assert "R is not installed here" in (host_problem(bundle) or "")
    assert host_problem(write_files(tmp_path / "py", {"custom.py": ""})) is None


def test_process_runtime_names_missing_r_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rpy2")  # the r extra (.ci/run installs it); the check asks for it before R packages
    fake_rscript(tmp_path / "bin", "pack\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    bundle = write_files(tmp_path / "m", {"custom.R": HOOKS, "requirements.txt": "stringr\npack\n"})
    problem = host_problem(bundle, {"R_LIBS": "/nowhere"})
    assert problem is not None and problem.startswith("requirements.txt names the R package pack, which")
    assert missing_r_packages([], "Rscript") == []


def test_r_models_serve_the_types_drums_r_predictor_serves(tmp_path: Path) -> None:
    bundle = write_files(tmp_path / "m", {"model.rds": b"x"})
    with pytest.raises(LoadError, match=r"an R model serves a regression, .* target, not textgeneration"):
        load(bundle, Target("textgeneration"))  # refused before R is started


def test_the_r_environments_packages_are_what_its_dockerfile_installs() -> None:
    """rhost's list and the Dockerfile's apt-get line: an isolated process sees what the image holds."""
    dockerfile = (r_environment_dir() / "Dockerfile").read_text()
    installed = set(re.findall(r"\br-cran-([a-z0-9.]+)", dockerfile))
    assert installed == {name.lower() for name in ENVIRONMENT_R_PACKAGES}


def test_an_uploads_names_tell_an_r_model_as_the_folder_does() -> None:
    assert is_r_file_set(["custom.R", "data"]) and is_r_file_set(["model.RDS"]) and is_r_file_set(["custom.r"])
    assert not is_r_file_set(["custom.py", "model.rds"]) and not is_r_file_set(["model.pkl", ".rds-notes"])


def test_the_isolated_r_library_links_what_r_lists_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What R answers (package, folder) becomes one folder of links in the cache, reused while R's answer
    is the same (the real R's answer: tests/engine/test_r_isolation.py)."""
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "site"
    installed = [write_files(site / name, {"DESCRIPTION": f"Package: {name}\n"}) for name in ("caret", "praise")]
    r_bin = fake_rscript(tmp_path / "bin", "".join(f"{p.name}\t{p}\n" for p in installed) + "a note without a tab\n")
    monkeypatch.setenv("PATH", str(r_bin))
    bundle = write_files(tmp_path / "m", {"custom.R": "", "requirements.txt": "praise\n"})
    variables = isolated_r_environment(bundle, {"PATH": str(r_bin)})
    library = Path(variables["R_LIBS_SITE"])
    assert variables == {"R_LIBS_SITE": str(library), "R_LIBS_USER": str(library)}
    assert sorted(p.name for p in library.iterdir()) == ["caret", "praise"]
    assert (library / "praise" / "DESCRIPTION").read_text() == "Package: praise\n"
    assert isolated_r_environment(bundle, {"PATH": str(r_bin)}) == variables


def test_the_isolated_r_library_without_r_is_one_error(tmp_path: Path, no_r: None) -> None:
    with pytest.raises(RLibraryFailed, match="R is not installed here"):
        isolated_r_environment(write_files(tmp_path / "m", {"custom.R": ""}), {})


def test_an_isolated_r_model_that_r_cannot_serve_fails_its_start_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through test-local's start: no R is the host's one line; an R that cannot list the packages'
    dependencies is the isolated library's, before any venv is built (a real R: test_r_isolation.py)."""
    bundle = write_files(
        tmp_path / "m",
        {"custom.R": "", "model.rds": b"", "model-metadata.yaml": metadata_yaml("m", "regression", "y")},
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    config = TestLocalConfig(bundle, runtime="process", isolate=True)
    message = run_test_local(config).results["longRunningService"].message
    assert "this is an R model (custom.R or .rds) and R is not installed here" in message
    broken = write_files(tmp_path / "bin", {"Rscript": "#!/bin/sh\necho 'Error: no tools' >&2\nexit 1\n"})
    (broken / "Rscript").chmod(0o755)
    monkeypatch.setenv("PATH", str(broken))
    stand_in = write_files(tmp_path / "py", {"rpy2/__init__.py": ""})  # found, never imported: the host check
    monkeypatch.syspath_prepend(str(stand_in))
    message = run_test_local(config).results["longRunningService"].message
    assert message.startswith("R could not list the packages' dependencies: Error: no tools"), message
