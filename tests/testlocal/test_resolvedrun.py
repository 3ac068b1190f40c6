"""cmkit/resolvedrun.py and cmkit/engine/choice.py: a run is decided once, then only read (fast tier)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit import resolvedrun as resolvedrun_module
from cmkit.checks import parameters as parameters_module
from cmkit.checks import settings as settings_module
from cmkit.checks.parameters import CheckParameters
from cmkit.cli import main
from cmkit.engine.choice import DOCKER, PROCESS, RuntimeChoice, choose_runtime
from cmkit.errors import DockerUnavailable, InputError
from cmkit.resolvedrun import ResolvedRun, ServerSettings, TestLocalConfig, resolve_config, resolve_server
from cmkit_runtime.target import Target
from tests.support.bundles import write_files, write_quick_bundle

NO_ENGINE = "unix:///nonexistent/docker.sock"
BAD_PARAMETER = {"performanceCheck": {"maxResponseTime": "soon"}}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_quick_bundle(tmp_path / "bundle")


def _unset(value: object) -> bool:
    return value is None


def test_a_resolved_run_is_frozen_and_every_field_it_must_decide_is_decided(bundle: Path) -> None:
    run = resolve_config(
        TestLocalConfig(bundle, runtime="process", parameters={"performanceCheck": {"numParallelUsers": 2}})
    )
    assert isinstance(run, ResolvedRun) and isinstance(run.server, ServerSettings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.dataset = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.server.url_prefix = "/"  # type: ignore[misc]
    with pytest.raises(TypeError):
        run.checks["errorCheck"] = "skip"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.parameters.performance.numParallelUsers = 3  # type: ignore[misc]
    # What the request left unset, resolution decided: nothing downstream falls back again.
    assert isinstance(run.target, Target) and run.target.type == "regression"
    assert run.server.runtime == RuntimeChoice(PROCESS)
    assert run.server.url_prefix.startswith("/") and run.server.contract == {
        "TARGET_TYPE": "regression",
        "TARGET_NAME": "y",
    }
    assert isinstance(run.parameters, CheckParameters) and run.parameters.performance.numParallelUsers == 2
    assert run.checks["performanceCheck"] == "fail"  # configured, so turned on
    assert set(run.checks) >= {"errorCheck", "longRunningService", "stabilityCheck"}
    # The fields that may stay unset mean "not given" (no limit, detect, no remote environment).
    optional = {"dataset", "verification_dataset", "sparse_column_file", "feature_impact_rows"}
    optional_server = {"environment", "image", "remote", "maximum_memory", "ca_bundle", "protocol"}
    assert {f.name for f in dataclasses.fields(run) if _unset(getattr(run, f.name))} <= optional
    assert {f.name for f in dataclasses.fields(run.server) if _unset(getattr(run.server, f.name))} <= optional_server


def test_the_request_keeps_its_unset_fields(bundle: Path) -> None:
    request = TestLocalConfig(bundle, runtime="process")
    resolve_config(request)
    assert request.target_type is None and request.url_prefix is None and request.checks == {}


def test_serving_needs_no_target_type(bundle: Path) -> None:
    (bundle / "model-metadata.yaml").write_text("name: quick\ntype: inference\n")
    settings = resolve_server(TestLocalConfig(bundle, runtime="process", url_prefix="/m"))
    assert settings.contract == {} and settings.url_prefix == "/m"
    with pytest.raises(InputError, match="no target type"):
        resolve_config(TestLocalConfig(bundle, runtime="process"))


def test_check_parameters_are_parsed_once_per_run(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    parse = parameters_module.parse_parameters

    def counting(raw: object, base: CheckParameters | None = None) -> CheckParameters:
        calls.append(raw)
        return parse(raw, base)  # type: ignore[arg-type]

    for module in (resolvedrun_module, parameters_module, settings_module):
        monkeypatch.setattr(module, "parse_parameters", counting)
    flags = ["--runtime", "process", "--check-parameter", "performanceCheck.maxResponseTime=5", "--json"]
    result = CliRunner().invoke(main, ["test-local", str(bundle), *flags])
    document = json.loads(result.stdout)
    assert result.exit_code == 0, document["testingStatus"]
    assert calls == [{"performanceCheck": {"maxResponseTime": 5}}]
    assert document["details"]["parameters"]["performanceCheck"]["maxResponseTime"] == 5


def test_a_bad_parameter_is_refused_at_resolution(bundle: Path) -> None:
    request = TestLocalConfig(bundle, runtime="process", parameters=BAD_PARAMETER)
    with pytest.raises(InputError, match=r"bad check parameters: performanceCheck\.maxResponseTime must be a number"):
        resolve_config(request)
    with pytest.raises(InputError, match="bad check parameters"):
        resolve_server(request)


def test_the_cli_leaves_a_bad_parameter_to_resolution(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(config: TestLocalConfig, runtime: RuntimeChoice | None = None) -> ResolvedRun:
        raise InputError(f"refused at resolution: {dict(config.parameters)}")

    monkeypatch.setattr("cmkit.testlocal.resolve_config", refuse)
    flags = ["--runtime", "process", "--check-parameter", "performanceCheck.maxResponseTime=soon"]
    result = CliRunner().invoke(main, ["test-local", str(bundle), *flags])
    assert result.exit_code == 2
    assert "refused at resolution: {'performanceCheck': {'maxResponseTime': 'soon'}}" in result.output


def test_without_an_engine_the_choice_falls_back_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    fallback = choose_runtime(None)
    assert fallback.name == PROCESS and not fallback.docker
    assert fallback.fallback is not None and "no Docker engine answers" in fallback.fallback.message
    with pytest.raises(DockerUnavailable):
        choose_runtime(None, needs_docker=True)
    # Asked for by name: no probe (the engine is reached when a server starts).
    assert choose_runtime(DOCKER) == RuntimeChoice(DOCKER)
    assert choose_runtime(PROCESS) == RuntimeChoice(PROCESS)
    with pytest.raises(InputError, match="unknown runtime 'podman'"):
        choose_runtime("podman")


def test_an_r_bundle_is_isolated_on_isolate_only(tmp_path: Path) -> None:
    """Its requirements.txt names R packages, which no venv installs: the host's R and Python serve it
    unless --isolate asks for the R environment's venv and an R library of the declared packages."""
    bundle = write_files(tmp_path / "r", {"custom.R": "", "requirements.txt": "praise\n"})
    assert not resolve_server(TestLocalConfig(bundle, runtime="process")).isolate
    assert resolve_server(TestLocalConfig(bundle, runtime="process", isolate=True)).isolate
    assert not resolve_server(TestLocalConfig(bundle, runtime="process", isolate=False)).isolate


def test_a_chosen_runtime_is_kept_by_a_later_resolution(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    first = resolve_config(TestLocalConfig(bundle, maximum_memory=2**30))
    assert first.server.runtime.name == PROCESS and first.server.runtime.fallback is not None
    assert first.server.announced == ("no Docker engine answers: running start_server.sh as a local process instead",)
    assert "cannot enforce --maximum-memory" in first.server.warnings[-1]
    again = resolve_config(TestLocalConfig(bundle, maximum_memory=2**30), first.server.runtime)
    assert again.server.runtime is first.server.runtime and again.server.warnings == first.server.warnings


def test_the_process_runtimes_isolation_and_the_installer_are_decided(bundle: Path) -> None:
    assert not resolve_server(TestLocalConfig(bundle, runtime="process")).isolate  # nothing to declare
    assert resolve_server(TestLocalConfig(bundle, runtime="process", isolate=True)).isolate
    (bundle / "requirements.txt").write_text("joblib==1.6.0\n")
    settings = resolve_server(TestLocalConfig(bundle, runtime="process"))
    assert settings.isolate and settings.installer == "uv"
    assert not resolve_server(TestLocalConfig(bundle, runtime="process", isolate=False)).isolate
    assert resolve_server(TestLocalConfig(bundle, runtime="process", installer="pip")).installer == "pip"
    with pytest.raises(InputError) as caught:
        resolve_server(TestLocalConfig(bundle, runtime="process", installer="npm"))
    assert "unknown installer 'npm'" in caught.value.message and caught.value.exit_code == 2


def test_class_labels_file_gives_labels_with_spaces_one_per_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cmkit.cli import _config, main
    from cmkit.target import read_labels_file

    labels = tmp_path / "labels.txt"
    labels.write_text("Iris setosa\n\nIris versicolor, the other\nvirginica\n")
    assert read_labels_file(labels) == ["Iris setosa", "Iris versicolor, the other", "virginica"]
    config = _config(tmp_path, env={}, class_labels=None, class_labels_file=labels)
    assert config.class_labels == ["Iris setosa", "Iris versicolor, the other", "virginica"]
    both = ["test-local", str(tmp_path), "--class-labels", "a,b", "--class-labels-file", str(labels)]
    result = CliRunner().invoke(main, both)
    assert result.exit_code == 2 and "not both" in result.output
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputError, match="no labels"):
        read_labels_file(tmp_path / "empty.txt")
