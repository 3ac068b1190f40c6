"""A run's request and the run it resolves to: what test-local, serve, --watch and the emulator start.

`TestLocalConfig` is what a user (the flags) or the emulator (a stored model and test) asks
for: every field may be unset. `resolve_config` reads it against the bundle's
model-metadata.yaml once, validates the combination, parses the check parameters, decides the
runtime and draws the URL prefix, and returns a frozen `ResolvedRun` whose fields are all
decided: what runs after it reads them and parses nothing again. `serve` needs no target:
`resolve_server` returns the `ServerSettings` part alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

from cmkit.checks.parameters import CheckParameters, ParameterError, parse_parameters
from cmkit.checks.protocols import PROTOCOL_NAMES
from cmkit.checks.results import DEFAULT_CONFIGURATION, PREDICTION_VERIFICATION
from cmkit.checks.settings import definition_levels, definition_parameters, implied_levels, validate_levels
from cmkit.engine.base import NETWORK_EGRESS, normalise_url_prefix, random_url_prefix, target_files, target_variables
from cmkit.engine.choice import PROCESS, RuntimeChoice, choose_runtime, is_runtime
from cmkit.engine.installers import INSTALLERS, UV
from cmkit.engine.venvs import isolation_wanted
from cmkit.errors import InputError
from cmkit.metadata import METADATA_FILE, ModelMetadata, load_metadata
from cmkit.modeldefs import ModelDefinition, disagreements
from cmkit.target import TargetSpec, require_target_type
from cmkit.textfiles import read_utf8
from cmkit_runtime.formats import is_r_bundle
from cmkit_runtime.runtime_params import RuntimeParameterError, parse_definitions, variables
from cmkit_runtime.target import Target

if TYPE_CHECKING:
    from cmkit.api.config import ApiConfig

FLAG = "flag"
METADATA = "model-metadata.yaml"
FALLBACK_WARNING = "no Docker engine answers: running start_server.sh as a local process instead"


@dataclass
class TestLocalConfig:
    """What a run asks for. Unset fields fall back to model-metadata.yaml, then to defaults."""

    __test__ = False  # not a pytest test class despite the name

    bundle: Path
    dataset: Path | None = None
    target_type: str | None = None  # DRUM's name, in any case (the API's spellings pass through TargetType)
    target_name: str | None = None
    positive_class_label: str | None = None
    negative_class_label: str | None = None
    class_labels: list[str] | None = None
    environment: Path | None = None
    image: str | None = None
    runtime: str | None = None  # None: Docker when an engine answers, else the process runtime
    checks: dict[str, str] = field(default_factory=dict)
    # The API's `parameters` object: {check: {name: value}} (see cmkit/checks/parameters.py),
    # as the user or the API gave it; parsed once, by resolve_config.
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    verification_dataset: Path | None = None  # predictionVerificationCheck's expected predictions
    sparse_column_file: Path | None = None  # DRUM's --sparse-column-file: a .mtx dataset's column names
    maximum_memory: int | None = None
    network_egress: str | None = None  # None: the model definition's, else PUBLIC
    url_prefix: str | None = None
    startup_timeout: float = 120.0
    side_effects_rows: int = 1000
    null_rows: str | int = "auto"  # rows per null-column request (cmkit/checks/sampling.py)
    rtol: float = 1e-5
    atol: float = 1e-8
    keep: bool = False
    rebuild: bool = False
    ca_bundle: Path | None = None
    installer: str = UV  # who installs requirements.txt (INSTALLERS)
    # The process runtime: True runs the bundle in a venv of its own requirements, False on
    # cmkit's Python; None decides by the bundle (cmkit/engine/venvs.py, `isolation_wanted`).
    isolate: bool | None = None
    server_environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    protocol: str | None = None  # predict_no_state or drum; None: detected (cmkit/checks/protocols.py)
    runtime_params_file: Path | None = None  # DRUM's --runtime-params-file: values of runtimeParameterDefinitions
    headers: dict[str, str] = field(default_factory=dict)  # --header, sent with every check's request
    # An execution environment on DataRobot (cmkit/remoteenv.py), with push's configuration.
    environment_id: str | None = None
    environment_version_id: str | None = None
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    feature_impact: bool = False  # also compute permutation feature impact on the same server
    feature_impact_rows: int | None = None
    # The GitHub Action's definition of this model (model.yaml / models.yaml, cmkit/modeldefs.py):
    # its target, test checks and resources stand under the flags and over model-metadata.yaml.
    definition: ModelDefinition | None = None


@dataclass(frozen=True)
class RemoteSource:
    """An execution environment version on DataRobot whose docker context the run builds."""

    environment_id: str
    version_id: str | None  # None: the latest built version
    source: str  # FLAG or METADATA: who named it
    api: ApiConfig = field(repr=False)


@dataclass(frozen=True)
class ServerSettings:
    """How to start a bundle's server: everything `start_bundle` reads, decided."""

    bundle: Path
    runtime: RuntimeChoice
    url_prefix: str
    # DataRobot's variables: the target's (none when no target type is known, `serve`) and the
    # runtime parameters' MLOPS_RUNTIME_PARAM_* (values may be credentials: never rendered).
    contract: Mapping[str, str]
    contract_files: Mapping[str, str]  # the files its variables name: CLASS_LABELS_FILE (target_files)
    server_environment: Mapping[str, str]  # the user's --env
    # At most one of the three; none: cmkit's default environment (Docker).
    environment: Path | None
    image: str | None
    remote: RemoteSource | None
    maximum_memory: int | None  # None: no limit
    network_egress: str
    labels: Mapping[str, str]
    ca_bundle: Path | None
    rebuild: bool
    installer: str
    isolate: bool  # the process runtime serves from a venv of the bundle's requirements (cmkit/engine/venvs.py)
    startup_timeout: float
    protocol: str | None  # None: detected
    # What the run's report warns about, in order; `announced` are also shown as the server starts.
    warnings: tuple[str, ...] = ()
    announced: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedRun:
    """A test-local run, decided: the server's settings, the target, the checks and their data."""

    server: ServerSettings
    target: Target
    checks: Mapping[str, str]  # every check's level, validated
    parameters: CheckParameters
    dataset: Path | None  # None: no dataset (the checks that need one are skipped)
    verification_dataset: Path | None  # predictionVerificationCheck's expected predictions, when given
    sparse_column_file: Path | None  # a .mtx dataset's column names, one a line (DRUM's flag)
    side_effects_rows: int
    null_rows: str | int
    rtol: float
    atol: float
    keep: bool
    feature_impact: bool
    feature_impact_rows: int | None  # None: FeatureImpactOptions' default
    headers: Mapping[str, str] = field(default_factory=dict)  # --header: credentials, never rendered


def resolve_config(config: TestLocalConfig, runtime: RuntimeChoice | None = None) -> ResolvedRun:
    """The run `config` asks for: model-metadata.yaml read, everything validated and decided.

    `runtime`: a choice made before (a watch keeps its first), else made here.
    """
    definition = config.definition
    parameters = _parse_parameters(config.parameters, definition)  # first, as when the flags were read
    meta, bundle = _metadata(config)
    spec = _target_spec(bundle, config, meta, required=True)
    assert spec is not None
    checks = {
        **DEFAULT_CONFIGURATION,
        **_definition_levels(config),
        **implied_levels(config.parameters, config.verification_dataset is not None),
        **config.checks,
    }
    validate_levels(checks)
    target = spec.target(_target_name(config, meta))
    dataset = config.dataset
    if dataset is None and meta and meta.validation_input:
        dataset = bundle / meta.validation_input
    return ResolvedRun(
        server=_server_settings(config, meta, bundle, spec, runtime),
        target=target,
        checks=MappingProxyType(checks),
        parameters=parameters,
        dataset=dataset,
        verification_dataset=config.verification_dataset,
        sparse_column_file=config.sparse_column_file,
        side_effects_rows=config.side_effects_rows,
        null_rows=config.null_rows,
        rtol=config.rtol,
        atol=config.atol,
        keep=config.keep,
        feature_impact=config.feature_impact,
        feature_impact_rows=config.feature_impact_rows,
        headers=MappingProxyType(dict(config.headers)),
    )


def resolve_server(config: TestLocalConfig, runtime: RuntimeChoice | None = None) -> ServerSettings:
    """What `serve` starts: `config` resolved as for a run, without needing a target type."""
    _parse_parameters(config.parameters)
    meta, bundle = _metadata(config)
    spec = _target_spec(bundle, config, meta, required=False)
    return _server_settings(config, meta, bundle, spec, runtime)


def _parse_parameters(
    raw: Mapping[str, Mapping[str, Any]], definition: ModelDefinition | None = None
) -> CheckParameters:
    """The flags' parameters over the definition's test checks' (checked when the definition was read)."""
    base = None
    if definition is not None and definition.test is not None:
        base = parse_parameters(definition_parameters(definition.test))
    try:
        return parse_parameters(raw, base)
    except ParameterError as exc:
        raise InputError(f"bad check parameters: {exc}") from exc


def _definition_levels(config: TestLocalConfig) -> dict[str, str]:
    """The check levels of the definition's test, as the Action configures DataRobot's test.

    No `test` section: the Action runs no test, and test-local its own defaults. Its
    prediction_verification names a DataRobot dataset, which a local run cannot read: without
    --verification-dataset that check is skipped (and the run says so).
    """
    definition = config.definition
    if definition is None or definition.test is None:
        return {}
    levels = definition_levels(definition.test)
    if config.verification_dataset is None:
        levels[PREDICTION_VERIFICATION] = "skip"
    return levels


def _metadata(config: TestLocalConfig) -> tuple[ModelMetadata | None, Path]:
    bundle = Path(config.bundle)
    if not bundle.is_dir():
        raise InputError("not a bundle folder", file=bundle, hint="pass the folder holding start_server.sh")
    return load_metadata(bundle), bundle


def _target_spec(
    bundle: Path, config: TestLocalConfig, meta: ModelMetadata | None, required: bool
) -> TargetSpec | None:
    """The target type and labels (flags over metadata), validated; None when neither names a type."""
    definition = config.definition
    if definition is not None and not config.target_type:
        spec = definition.spec()  # model.yaml wins over the metadata (modeldefs.disagreements says why)
        return TargetSpec(
            spec.type,
            config.positive_class_label or spec.positive,
            config.negative_class_label or spec.negative,
            config.class_labels or spec.class_labels,
        )
    target_type = (config.target_type or (meta.target_type if meta else None) or "").lower() or None
    if target_type is None:
        if required:
            raise InputError(
                "no target type", file=bundle, hint="pass --target-type or set targetType in model-metadata.yaml"
            )
        return None
    kind = require_target_type(target_type)
    # The metadata's labels belong to its own target type: a --target-type that differs drops them.
    labels_from = meta if meta and meta.target_type == target_type else None
    return TargetSpec(
        kind,
        config.positive_class_label or (labels_from.positive_class_label if labels_from else None),
        config.negative_class_label or (labels_from.negative_class_label if labels_from else None),
        config.class_labels or (labels_from.class_labels if labels_from else None),
    )


def _requirements(bundle: Path) -> str:
    path = bundle / "requirements.txt"
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


MAX_VALUES_BYTES = 1024 * 1024  # a runtime parameter values file: names and short values


def _runtime_parameters(config: TestLocalConfig, meta: ModelMetadata | None, bundle: Path) -> dict[str, str]:
    """MLOPS_RUNTIME_PARAM_* as DataRobot sets them: the values file's, else the defaults; refused before start."""
    file = config.runtime_params_file
    try:
        definitions = parse_definitions(meta.runtime_parameter_definitions if meta else None)
    except RuntimeParameterError as exc:
        raise InputError(str(exc), file=bundle / METADATA_FILE) from None
    values: Any = {}
    if file is not None:
        try:
            values = yaml.safe_load(read_utf8(Path(file), MAX_VALUES_BYTES)) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"not YAML: {exc}", file=file) from None
        if not isinstance(values, dict):
            raise InputError("must map each parameter's fieldName to its value", file=file)
        if not definitions:
            raise InputError(
                "model-metadata.yaml defines no runtimeParameterDefinitions for these values",
                file=file,
                hint="add the definitions to the metadata, as DataRobot needs them too",
            )
    try:
        return variables(definitions, {str(k): v for k, v in values.items()})
    except RuntimeParameterError as exc:
        raise InputError(str(exc), file=file or bundle / METADATA_FILE) from None


def _target_name(config: TestLocalConfig, meta: ModelMetadata | None) -> str | None:
    """--target-name, else the definition's, else the metadata's: DataRobot sets it on every model as TARGET_NAME."""
    definition = config.definition.target_name if config.definition else None
    return config.target_name or definition or (meta.target_name if meta else None)


def _definition_warnings(config: TestLocalConfig, meta: ModelMetadata | None) -> tuple[str, ...]:
    """Where model.yaml and model-metadata.yaml disagree: the run follows model.yaml, as the Action does."""
    if config.definition is None:
        return ()
    return tuple(f"{d.file}:{d.line}: {d.message}" for d in disagreements(config.definition, meta))


def _resources(config: TestLocalConfig) -> tuple[int | None, str]:
    """Memory and egress: the flags, else the definition's test memory or version's, else unlimited and PUBLIC."""
    definition = config.definition
    memory, egress = config.maximum_memory, config.network_egress
    if definition is not None:
        test_memory = definition.test.memory if definition.test else None
        memory = memory or test_memory or definition.version.memory
        egress = egress or definition.version.egress
    return memory, egress or "PUBLIC"


def _server_settings(
    config: TestLocalConfig,
    meta: ModelMetadata | None,
    bundle: Path,
    spec: TargetSpec | None,
    runtime: RuntimeChoice | None,
) -> ServerSettings:
    environment_id, source = config.environment_id, FLAG
    if environment_id is None and config.environment is None and config.image is None and config.runtime != PROCESS:
        environment_id, source = (meta.environment_id if meta else None), METADATA  # DRUM's key, honoured like the flag
    maximum_memory, network_egress = _resources(config)
    _validate_server(config, environment_id, network_egress)
    if spec is not None:
        spec.validate(hint="pass the flags, or set the labels in model-metadata.yaml")
        if config.feature_impact and spec.type.unstructured:
            raise InputError(
                f"feature impact permutes the columns of rows: {spec.type} models take one request body",
                hint="drop --feature-impact",
            )
        if config.feature_impact and not spec.type.has_target:
            raise InputError(
                f"feature impact scores predictions against a target: {spec.type} models have none",
                hint="drop --feature-impact (DataRobot uses SHAP-based impact for them)",
            )
    remote, warnings = _remote_source(config, environment_id, source)
    warnings = (*_definition_warnings(config, meta), *_target_type_contradiction(config, meta), *warnings)
    if runtime is None:
        runtime = choose_runtime(config.runtime, needs_docker=bool(config.image or config.environment or remote))
    announced = (*warnings, *((FALLBACK_WARNING,) if runtime.fallback else ()))
    if runtime.name == PROCESS and (maximum_memory or network_egress == "NONE"):
        warnings = (
            *announced,
            "the process runtime cannot enforce --maximum-memory or --network-egress NONE; use Docker for those",
        )
    else:
        warnings = announced
    url_prefix = normalise_url_prefix(config.url_prefix) if config.url_prefix is not None else random_url_prefix()
    target = spec.target(_target_name(config, meta)) if spec else None
    return ServerSettings(
        bundle=bundle,
        runtime=runtime,
        url_prefix=url_prefix,
        contract=MappingProxyType(
            {
                **(target_variables(target) if target else {}),
                **_runtime_parameters(config, meta, bundle),
            }
        ),
        contract_files=MappingProxyType(target_files(target) if target else {}),
        server_environment=MappingProxyType(dict(config.server_environment)),
        environment=config.environment,
        image=config.image,
        remote=remote,
        maximum_memory=maximum_memory,
        network_egress=network_egress,
        labels=MappingProxyType(dict(config.labels)),
        ca_bundle=config.ca_bundle,
        rebuild=config.rebuild,
        installer=config.installer,
        isolate=runtime.name == PROCESS and _isolated(bundle, config.isolate),
        startup_timeout=config.startup_timeout,
        protocol=config.protocol,
        warnings=warnings,
        announced=announced,
    )


def _isolated(bundle: Path, isolate: bool | None) -> bool:
    """An R bundle's requirements are R packages, which need no venv: it is isolated on --isolate only
    (cmkit.engine.rhost); a Python bundle by default when its requirements.txt names packages."""
    if is_r_bundle(bundle):
        return isolate is True
    return isolation_wanted(_requirements(bundle), isolate)


def _target_type_contradiction(config: TestLocalConfig, meta: ModelMetadata | None) -> tuple[str, ...]:
    """A --target-type the metadata contradicts: DataRobot reads the metadata, so the run tests another model."""
    flag, declared = config.target_type, meta.target_type if meta else None
    if not flag or not declared or flag.lower() == declared.lower():
        return ()
    return (
        f"--target-type {flag.lower()} contradicts model-metadata.yaml's targetType {declared}: this run tests a "
        f"{flag.lower()} model, DataRobot will create a {declared} one; drop the flag or fix the metadata",
    )


def _validate_server(config: TestLocalConfig, environment_id: str | None, network_egress: str) -> None:
    if network_egress not in NETWORK_EGRESS:
        raise InputError(f"bad network egress '{network_egress}'", hint="use NONE or PUBLIC")
    given = [
        flag
        for flag, value in (
            ("--environment", config.environment),
            ("--image", config.image),
            ("--environment-id", environment_id),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise InputError(f"give {' or '.join(given)}, not {'both' if len(given) == 2 else 'several'}")
    if config.environment_version_id is not None and environment_id is None:
        raise InputError("--environment-version-id needs --environment-id")
    if environment_id is not None and config.runtime == PROCESS:
        raise InputError("--environment-id builds a docker context: it needs the Docker runtime, not --runtime process")
    if config.protocol is not None and config.protocol not in PROTOCOL_NAMES:
        raise InputError(f"unknown protocol '{config.protocol}'", hint=f"use {' or '.join(PROTOCOL_NAMES)}")
    if config.installer not in INSTALLERS:
        raise InputError(f"unknown installer '{config.installer}'", hint="use " + " or ".join(INSTALLERS))
    if config.runtime is not None and not is_runtime(config.runtime):
        raise InputError(f"unknown runtime '{config.runtime}'", hint="use docker or process")


def _remote_source(
    config: TestLocalConfig, environment_id: str | None, source: str
) -> tuple[RemoteSource | None, tuple[str, ...]]:
    """`--environment-id` (or the metadata's `environmentID`) with push's credentials.

    The flag without credentials is an error; the metadata's key without them is a warning, and
    the default environment is used.
    """
    if environment_id is None:
        return None, ()
    from cmkit.api.config import load_api_config

    try:
        api = load_api_config(config.endpoint, config.token)
    except InputError as exc:
        if source == FLAG:
            raise
        warning = (
            f"model-metadata.yaml names environmentID {environment_id}, but {exc.message}: "
            "using the default environment"
        )
        return None, (warning,)
    return RemoteSource(environment_id, config.environment_version_id, source, api), ()
