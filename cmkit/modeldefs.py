"""Model definitions of DataRobot's custom-models GitHub Action: `model.yaml` and `models.yaml`.

A team that delivers with the Action (`datarobot-oss/custom-models-action`) describes each model
in a YAML file the Action finds anywhere in the repository: one model (a mapping with
`user_provided_model_id`, the model's folder is the file's) or many (`datarobot_models:` a list
of `{model_path, model_metadata}`, each path relative to the file's folder, or to the repository
root when it starts with `/` or `$ROOT/`). This module reads them with the Action's rules (read
from its schema validator at the commit docs/repository.md names) and returns typed
`ModelDefinition`s; a file the Action would refuse is an `InputError` naming the file and the
line of the key at fault. What cmkit does with a definition is elsewhere: resolution
(`resolvedrun`) takes its target, checks and resources, `push` creates the model the Action
would, `repository` finds every model of a repository.

Values are read as the Action reads them (`yaml.safe_load`: a label `1` is a number, which the
Action refuses for a class label), unlike model-metadata.yaml, which DRUM reads as strings.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from cmkit.errors import InputError
from cmkit.metadata import METADATA_FILE, ModelMetadata
from cmkit.safeyaml import SAFE_LOADER, check_yaml, read_yaml_text, yaml_error
from cmkit.target import TargetSpec
from cmkit_runtime.target_types import ACTION_TARGET_TYPES, TargetType

MODEL_ID = "user_provided_model_id"
MULTI = "datarobot_models"
YAML_SUFFIXES = (".yaml", ".yml")
# The Action's default namespace is the repository's numeric GitHub id (GITHUB_REPOSITORY_ID).
NAMESPACE_VARIABLE = "GITHUB_REPOSITORY_ID"
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_MEMORY = re.compile(r"^([0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_MEMORY_UNITS: dict[str, float] = {
    "m": 0.001,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
# The Action's check keys (the API's names for them: cmkit/checks/settings.py, ACTION_CHECKS).
CHECK_KEYS = ("null_value_imputation", "side_effects", "prediction_verification", "performance", "stability")
REPLACEMENT_REASONS = (
    "ACCURACY",
    "DATA_DRIFT",
    "ERRORS",
    "SCHEDULED_REFRESH",
    "SCORING_SPEED",
    "DEPRECATION",
    "OTHER",
)
# How model.yaml names the fields TargetSpec's label rule talks about.
DEFINITION_FIELDS = {
    "targetType": "target_type",
    "positiveClassLabel": "settings.positive_class_label",
    "negativeClassLabel": "settings.negative_class_label",
    "classLabels": "settings.class_labels",
}


@dataclass(frozen=True)
class CheckSetting:
    """One check of the `test.checks` section: on or off, blocking or not, its API parameters."""

    enabled: bool
    blocking: bool  # block_deployment_if_fails: fail rather than warn
    parameters: Mapping[str, Any] = field(default_factory=dict)  # the API's names and units

    @property
    def level(self) -> str:
        return ("fail" if self.blocking else "warn") if self.enabled else "skip"


@dataclass(frozen=True)
class TestSection:
    """The `test` section: what the Action's custom model test runs."""

    __test__ = False  # not a pytest test class

    skip: bool
    test_data_id: str | None
    memory: int | None
    checks: Mapping[str, CheckSetting]  # keyed by the Action's check key (CHECK_KEYS)


@dataclass(frozen=True)
class VersionSection:
    """The `version` section: what each version the Action creates is given."""

    environment_id: str
    environment_version_id: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    memory: int | None = None  # bytes (maximumMemory)
    replicas: int | None = None
    egress: str | None = None  # networkEgressPolicy: NONE or PUBLIC


@dataclass(frozen=True)
class ModelDefinition:
    """One model as the Action reads it from `file`."""

    file: Path
    line: int  # where the model's definition starts
    model_path: Path  # the model's folder
    user_provided_id: str  # as written, before the Action's namespace
    action_target_type: str  # the Action's spelling ("Anomaly Detection", "Unstructured (Binary)"...)
    name: str
    target_name: str
    version: VersionSection
    test: TestSection | None = None
    description: str | None = None
    language: str | None = None
    prediction_threshold: float | None = None
    positive_class_label: str | None = None
    negative_class_label: str | None = None
    class_labels: tuple[str, ...] | None = None
    lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def api_target_type(self) -> TargetType:
        """The type the Action creates the model with (`targetType`)."""
        return ACTION_TARGET_TYPES[self.action_target_type][0]

    @property
    def unstructured_kind(self) -> bool:
        """`isUnstructuredModelKind`: the model is served through score_unstructured()."""
        return ACTION_TARGET_TYPES[self.action_target_type][1]

    @property
    def served_type(self) -> TargetType:
        """What cmkit serves and tests: an unstructured kind of any type is an unstructured model."""
        return TargetType.UNSTRUCTURED if self.unstructured_kind else self.api_target_type

    def spec(self) -> TargetSpec:
        """The served target with its labels (an unstructured kind is served without them)."""
        if self.unstructured_kind:
            return TargetSpec(self.served_type)
        return TargetSpec(self.served_type, self.positive_class_label, self.negative_class_label, self.class_labels)

    def where(self, *keys: str) -> tuple[Path, int]:
        """The file and line of a key (dotted path under the model), else of the model."""
        return self.file, self.lines.get(".".join(keys), self.line)

    @property
    def identity(self) -> str:
        """What names the model across a repository and its history: its user-provided id."""
        return self.user_provided_id

    def namespaced_id(self, namespace: str | None = None) -> str:
        """The `userProvidedId` the Action creates the model with (its namespace rule)."""
        prefix = resolve_namespace(namespace)
        return self.user_provided_id if self.user_provided_id.startswith(prefix) else prefix + self.user_provided_id


def resolve_namespace(namespace: str | None) -> str:
    """The Action's namespace: its `namespace` input ending in '/', else the repository's GitHub id and '/'."""
    if namespace:
        return namespace if namespace.endswith("/") else namespace + "/"
    repository_id = os.environ.get(NAMESPACE_VARIABLE)
    if not repository_id:
        raise InputError(
            "the GitHub Action prefixes user_provided_model_id with a namespace, and none is known here",
            hint=f"pass --namespace (the Action's `namespace` input) or set {NAMESPACE_VARIABLE} "
            "to the repository's GitHub id, as the Action's default does",
        )
    return f"{repository_id}/"


# --- reading YAML as the Action does, keeping lines --------------------------------------------------


@dataclass
class _Doc:
    """A parsed file: Python values as safe_load gives them, and the line of every key path."""

    path: Path
    data: Any
    lines: dict[str, int]

    def fail(self, message: str, key: str = "", hint: str | None = None) -> InputError:
        return InputError(message, file=self.path, line=self.lines.get(key, 1), hint=hint)


def _convert(node: yaml.Node, path: str, lines: dict[str, int], constructor: SafeConstructor) -> Any:
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # merge keys (<<), as safe_load does
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            child = f"{path}.{key}" if path else str(key)
            lines[child] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, child, lines, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = f"{path}.{index}"
            lines[child] = item.start_mark.line + 1
            items.append(_convert(item, child, lines, constructor))
        return items
    return constructor.construct_object(node, deep=True)


def _read(path: Path) -> _Doc:
    text = read_yaml_text(path)
    check_yaml(text, path)  # size, depth and aliases bounded before anything is built
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from exc
    lines: dict[str, int] = {}
    try:
        data = _convert(node, "", lines, SafeConstructor()) if node is not None else None
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from exc
    return _Doc(path, data, lines)


def kind_of(data: Any) -> str | None:
    """'single', 'multi' or None (not a model definition), by the Action's own test."""
    if not isinstance(data, dict):
        return None
    if MULTI in data:
        return "multi"
    if MODEL_ID in data and "user_provided_deployment_id" not in data:
        return "single"
    return None


def load_definitions(path: Path) -> list[ModelDefinition]:
    """Every model a YAML file defines (none when it is not a model definition); InputError where the Action fails."""
    doc = _read(Path(path))
    kind = kind_of(doc.data)
    if kind == "single":
        return [_Model(doc, "", doc.path.parent).definition()]
    if kind == "multi":
        return list(_multi(doc))
    return []


def _multi(doc: _Doc) -> Iterator[ModelDefinition]:
    entries = doc.data[MULTI]
    if not isinstance(entries, list):
        raise doc.fail(f"'{MULTI}' must be a list of {{model_path, model_metadata}}", MULTI)
    root = repository_root(doc.path.parent)
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        key = f"{MULTI}.{index}"
        if not isinstance(entry, dict):
            raise doc.fail("each model is a mapping of model_path and model_metadata", key)
        _only(doc, key, entry, ("model_path", "model_metadata"))
        model_path = entry.get("model_path")
        if not isinstance(model_path, str) or not model_path:
            raise doc.fail(
                "missing 'model_path' (the model's folder)", f"{key}.model_path" if "model_path" in entry else key
            )
        if "model_metadata" not in entry:
            raise doc.fail("missing 'model_metadata' (the model's definition)", key)
        folder = to_absolute(model_path, doc.path.parent, root)
        definition = _Model(doc, f"{key}.model_metadata", folder).definition()
        first = seen.get(definition.user_provided_id)
        if first is not None:
            raise doc.fail(
                f"model {definition.user_provided_id!r} is defined twice (first at line {first})",
                f"{key}.model_metadata.{MODEL_ID}",
                hint="each model needs its own user_provided_model_id",
            )
        seen[definition.user_provided_id] = definition.line
        yield definition


def repository_root(start: Path) -> Path:
    """The git work tree holding `start` (a folder with .git), else the filesystem root's child chain's top."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def to_absolute(path: str, parent: Path, root: Path) -> Path:
    """A path as the Action reads one: `/x` or `$ROOT/x` from the repository root, else from `parent`."""
    match = re.match(r"^(/|\$ROOT/)", path)
    if match:
        return root / path[len(match[0]) :]
    return parent / path


def _only(doc: _Doc, key: str, mapping: dict[Any, Any], allowed: tuple[str, ...]) -> None:
    """The Action's schema refuses keys it does not know: so do we, at the key's own line."""
    for name in mapping:
        if name not in allowed:
            child = f"{key}.{name}" if key else str(name)
            raise doc.fail(
                f"unknown key '{child}': the GitHub Action refuses the file",
                child,
                hint=f"use one of {', '.join(allowed)}",
            )


class _Model:
    """One model's mapping read with the Action's schema; `base`: its key path in the file."""

    TOP = (MODEL_ID, "target_type", "settings", "version", "test", "model_registry")
    SETTINGS = (
        "name",
        "description",
        "language",
        "target_name",
        "prediction_threshold",
        "positive_class_label",
        "negative_class_label",
        "class_labels",
        "partitioning_column",
        "training_dataset_id",
        "holdout_dataset_id",
    )
    VERSION = (
        "model_environment_id",
        "model_environment_version_id",
        "include_glob_pattern",
        "exclude_glob_pattern",
        "memory",
        "replicas",
        "egress_network_policy",
        "partitioning_column",
        "training_dataset_id",
        "holdout_dataset_id",
        "model_replacement_reason",
    )

    def __init__(self, doc: _Doc, base: str, folder: Path) -> None:
        self.doc, self.base, self.folder = doc, base, folder

    def key(self, *parts: str) -> str:
        return ".".join(p for p in (self.base, *parts) if p)

    def fail(self, message: str, *parts: str, hint: str | None = None) -> InputError:
        key = self.key(*parts)
        while key and key not in self.doc.lines:  # a missing key: the line of its section
            key = key.rpartition(".")[0]
        return self.doc.fail(message, key, hint)

    def section(self, data: Any, *parts: str, required: bool = True) -> dict[Any, Any] | None:
        value = _get(data, parts[-1])
        if value is None and not required and (not isinstance(data, dict) or parts[-1] not in data):
            return None
        if not isinstance(value, dict):
            raise self.fail(f"'{'.'.join(parts)}' must be a mapping", *parts)
        return value

    def text(self, data: dict[Any, Any], *parts: str, required: bool = False, hint: str | None = None) -> str | None:
        name = parts[-1]
        if name not in data:
            if required:
                raise self.fail(f"missing '{'.'.join(parts)}'", *parts)
            return None
        value = data[name]
        if not isinstance(value, str) or not value:
            shown = "it is empty" if value in ("", None) else f"got {value!r} ({type(value).__name__})"
            raise self.fail(
                f"'{'.'.join(parts)}' must be a non-empty string; {shown}",
                *parts,
                hint=hint or "quote it: the Action reads YAML types",
            )
        return value

    def object_id(self, data: dict[Any, Any], *parts: str, required: bool = False) -> str | None:
        value = self.text(data, *parts, required=required)
        if value is not None and not _OBJECT_ID.match(value):
            raise self.fail(f"'{'.'.join(parts)}' is not a DataRobot id (24 hex digits): {value!r}", *parts)
        return value

    def integer(self, data: dict[Any, Any], *parts: str, low: int, high: int | None = None) -> int | None:
        if parts[-1] not in data:
            return None
        value = data[parts[-1]]
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            span = f"{low} to {high}" if high is not None else f"{low} or more"
            raise self.fail(f"'{'.'.join(parts)}' must be a whole number, {span}; got {value!r}", *parts)
        return value

    def fraction(self, data: dict[Any, Any], *parts: str) -> float | None:
        if parts[-1] not in data:
            return None
        value = data[parts[-1]]
        if not isinstance(value, float) or not 0 <= value <= 1:
            raise self.fail(
                f"'{'.'.join(parts)}' must be a decimal number from 0 to 1 (e.g. 0.5); got {value!r}", *parts
            )
        return value

    def flag(self, data: dict[Any, Any], *parts: str, default: bool | None = None) -> bool:
        if parts[-1] not in data:
            if default is None:
                raise self.fail(f"missing '{'.'.join(parts)}' (true or false)", *parts)
            return default
        value = data[parts[-1]]
        if not isinstance(value, bool):
            raise self.fail(f"'{'.'.join(parts)}' must be true or false; got {value!r}", *parts)
        return value

    def memory(self, data: dict[Any, Any], *parts: str) -> int | None:
        if parts[-1] not in data:
            return None
        value = data[parts[-1]]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        match = _MEMORY.match(value) if isinstance(value, str) else None
        if not match:
            raise self.fail(
                f"'{'.'.join(parts)}' is not a memory size: {value!r}", *parts, hint="write e.g. 512Mi, 1Gi or 256M"
            )
        number, unit = match.groups()
        return int(int(number) * _MEMORY_UNITS[unit]) if unit else int(number)

    def globs(self, data: dict[Any, Any], *parts: str) -> tuple[str, ...]:
        value = data.get(parts[-1], [])
        if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
            raise self.fail(f"'{'.'.join(parts)}' must be a list of non-empty glob patterns", *parts)
        return tuple(value)

    # -- the model --------------------------------------------------------------------------------

    def definition(self) -> ModelDefinition:
        data = _at(self.doc.data, self.base)
        if not isinstance(data, dict):
            raise self.fail("a model's definition must be a mapping")
        _only(self.doc, self.base, data, self.TOP)
        model_id = self.text(data, MODEL_ID, required=True)
        assert model_id is not None
        target_type = data.get("target_type")
        if target_type not in ACTION_TARGET_TYPES:
            raise self.fail(
                f"target_type {target_type!r} is not one the GitHub Action knows"
                if target_type
                else "missing 'target_type'",
                "target_type",
                hint=f"use one of {', '.join(ACTION_TARGET_TYPES)}",
            )
        settings = self.section(data, "settings")
        version = self.section(data, "version")
        assert settings is not None and version is not None
        _only(self.doc, self.key("settings"), settings, self.SETTINGS)
        _only(self.doc, self.key("version"), version, self.VERSION)
        for name in ("training_dataset_id", "holdout_dataset_id"):
            self.object_id(settings, "settings", name)
            self.object_id(version, "version", name)
        definition = ModelDefinition(
            file=self.doc.path,
            line=self.doc.lines.get(self.base, 1) if self.base else 1,
            model_path=self.folder,
            user_provided_id=model_id,
            action_target_type=str(target_type),
            name=self.text(settings, "settings", "name", required=True) or "",
            target_name=self.text(settings, "settings", "target_name", required=True) or "",
            description=self.text(settings, "settings", "description"),
            language=self.text(settings, "settings", "language"),
            prediction_threshold=self.fraction(settings, "settings", "prediction_threshold"),
            positive_class_label=self.text(settings, "settings", "positive_class_label"),
            negative_class_label=self.text(settings, "settings", "negative_class_label"),
            class_labels=self._class_labels(settings),
            version=self._version(version),
            test=self._test(data),
            lines=self._lines(),
        )
        self._cross_rules(definition, settings)
        if "model_registry" in data:
            registry = self.section(data, "model_registry")
            assert registry is not None
            _only(self.doc, self.key("model_registry"), registry, ("model_name", "model_description", "global"))
        return definition

    def _lines(self) -> dict[str, int]:
        if not self.base:
            return dict(self.doc.lines)
        prefix = self.base + "."
        return {k[len(prefix) :]: v for k, v in self.doc.lines.items() if k.startswith(prefix)}

    def _class_labels(self, settings: dict[Any, Any]) -> tuple[str, ...] | None:
        if "class_labels" not in settings:
            return None
        labels = settings["class_labels"]
        if not isinstance(labels, list):
            raise self.fail("'settings.class_labels' must be a list of labels", "settings", "class_labels")
        return tuple(str(label) for label in labels)

    def _version(self, version: dict[Any, Any]) -> VersionSection:
        egress = version.get("egress_network_policy")
        if egress is not None and egress not in ("NONE", "PUBLIC"):
            raise self.fail(
                f"'version.egress_network_policy' must be NONE or PUBLIC; got {egress!r}",
                "version",
                "egress_network_policy",
            )
        reason = version.get("model_replacement_reason", "OTHER")
        if reason not in REPLACEMENT_REASONS:
            raise self.fail(
                f"'version.model_replacement_reason' {reason!r} is not one the Action knows",
                "version",
                "model_replacement_reason",
                hint=f"use one of {', '.join(REPLACEMENT_REASONS)}",
            )
        environment_id = self.object_id(version, "version", "model_environment_id", required=True)
        assert environment_id is not None
        return VersionSection(
            environment_id=environment_id,
            environment_version_id=self.object_id(version, "version", "model_environment_version_id"),
            include=self.globs(version, "version", "include_glob_pattern"),
            exclude=self.globs(version, "version", "exclude_glob_pattern"),
            memory=self.memory(version, "version", "memory"),
            replicas=self.integer(version, "version", "replicas", low=1),
            egress=egress,
        )

    def _test(self, data: dict[Any, Any]) -> TestSection | None:
        test = self.section(data, "test", required=False)
        if test is None:
            return None
        _only(self.doc, self.key("test"), test, ("skip", "test_data_id", "memory", "checks"))
        checks: dict[str, CheckSetting] = {}
        raw = self.section(test, "test", "checks", required=False) or {}
        _only(self.doc, self.key("test", "checks"), raw, CHECK_KEYS)
        for key in CHECK_KEYS:
            if key in raw:
                checks[key] = self._check(raw, key)
        return TestSection(
            skip=self.flag(test, "test", "skip", default=False),
            test_data_id=self.object_id(test, "test", "test_data_id"),
            memory=self.memory(test, "test", "memory"),
            checks=checks,
        )

    def _check(self, checks: dict[Any, Any], key: str) -> CheckSetting:
        where = ("test", "checks", key)
        check = self.section(checks, *where)
        assert check is not None
        common = ("enabled", "block_deployment_if_fails")
        extra: dict[str, tuple[str, ...]] = {
            "prediction_verification": (
                "output_dataset_id",
                "predictions_column",
                "match_threshold",
                "passing_match_rate",
            ),
            "performance": ("maximum_response_time", "max_execution_time", "number_of_parallel_users"),
            "stability": (
                "total_prediction_requests",
                "passing_rate",
                "number_of_parallel_users",
                "minimum_payload_size",
                "maximum_payload_size",
            ),
        }
        _only(self.doc, self.key(*where), check, common + extra.get(key, ()))
        enabled = self.flag(check, *where, "enabled")
        blocking = self.flag(check, *where, "block_deployment_if_fails")
        return CheckSetting(enabled, blocking, self._parameters(check, key, where))

    def _parameters(self, check: dict[Any, Any], key: str, where: tuple[str, ...]) -> dict[str, Any]:
        """The check's settings in the API's names and units (rates: the Action's percent / 100)."""
        found: dict[str, Any] = {}

        def put(api_name: str, value: Any) -> None:
            if value is not None:
                found[api_name] = value

        if key == "prediction_verification":
            put("datasetId", self.object_id(check, *where, "output_dataset_id", required=True))
            put("predictionsColumn", self.text(check, *where, "predictions_column", required=True))
            put("comparisonPrecision", self.fraction(check, *where, "match_threshold"))
            rate = self.integer(check, *where, "passing_match_rate", low=0, high=100)
            put("matchingRate", rate / 100 if rate is not None else None)
        elif key == "performance":
            put("maxResponseTime", self.integer(check, *where, "maximum_response_time", low=1, high=1800))
            put("maxExecutionTime", self.integer(check, *where, "max_execution_time", low=1, high=1800))
            put("numParallelUsers", self.integer(check, *where, "number_of_parallel_users", low=1, high=4))
        elif key == "stability":
            put("numPredictions", self.integer(check, *where, "total_prediction_requests", low=1))
            rate = self.integer(check, *where, "passing_rate", low=0, high=100)
            put("passingRate", rate / 100 if rate is not None else None)
            put("numParallelUsers", self.integer(check, *where, "number_of_parallel_users", low=1, high=4))
            low = self.integer(check, *where, "minimum_payload_size", low=1)
            high = self.integer(check, *where, "maximum_payload_size", low=1)
            put("minPayloadSize", low)
            put("maxPayloadSize", high)
            if (high if high is not None else 1000) < (low if low is not None else 1):
                raise self.fail(
                    f"stability's minimum_payload_size ({low}) is above its maximum_payload_size ({high})",
                    *where,
                    "minimum_payload_size",
                )
        return found

    def _cross_rules(self, definition: ModelDefinition, settings: dict[Any, Any]) -> None:
        """What the Action checks across keys, then the API's label rule (TargetSpec's)."""
        for label_key in ("positive_class_label", "negative_class_label"):
            exclusive = [k for k in ("prediction_threshold", label_key, "class_labels") if k in settings]
            if len(exclusive) > 1:
                raise self.fail(
                    f"settings.{exclusive[0]} and settings.{exclusive[1]} exclude each other",
                    "settings",
                    exclusive[1],
                )
        spec = TargetSpec(
            definition.api_target_type,
            definition.positive_class_label,
            definition.negative_class_label,
            definition.class_labels,
        )
        for problem in spec.problems():
            field_key = DEFINITION_FIELDS[problem.field].split(".")
            raise self.fail(problem.text(DEFINITION_FIELDS), *field_key)
        test = definition.test
        if test is not None and not test.skip and not definition.unstructured_kind and not test.test_data_id:
            raise self.fail(
                "the test needs 'test.test_data_id' (a dataset in DataRobot's catalog) unless it is skipped",
                "test",
                hint="add test_data_id, or skip: true",
            )


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


def _at(data: Any, path: str) -> Any:
    for part in path.split(".") if path else ():
        data = data[int(part)] if isinstance(data, list) else _get(data, part)
    return data


# --- the definition of one folder -----------------------------------------------------------------


def may_define_models(path: Path) -> bool:
    """Whether a YAML file may be a model definition, without parsing it (most YAML in a repo is not)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(256 * 1024)
    except OSError:
        return False
    return MODEL_ID.encode() in head or MULTI.encode() in head


def yaml_files(folder: Path) -> list[Path]:
    """The YAML files of one folder that may define models (model-metadata.yaml is DRUM's, never one)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [
        p
        for p in entries
        if p.suffix in YAML_SUFFIXES and p.name != METADATA_FILE and p.is_file() and may_define_models(p)
    ]


def definitions_for(bundle: Path) -> list[ModelDefinition]:
    """The definitions that describe `bundle`: a model.yaml in it, or a models.yaml entry from it or a folder above
    it (up to the repository's root) whose model_path is it."""
    folder = Path(bundle).resolve()
    root = repository_root(folder)
    found: list[ModelDefinition] = []
    for parent in (folder, *folder.parents):
        for path in yaml_files(parent):
            found += [d for d in load_definitions(path) if d.model_path.resolve() == folder]
        if parent == root:
            break
    return found


def definition_for(bundle: Path) -> ModelDefinition | None:
    """The one definition of `bundle`, None when none; several are an InputError (test each with --all)."""
    found = definitions_for(bundle)
    if len(found) > 1:
        shown = ", ".join(f"{d.user_provided_id} ({d.file}:{d.line})" for d in found)
        raise InputError(
            f"{len(found)} model definitions describe this folder: {shown}",
            file=bundle,
            hint="run `cmkit test-local --all` (one run per definition)",
        )
    return found[0] if found else None


# --- model.yaml against model-metadata.yaml ---------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    """A field model.yaml and model-metadata.yaml both set, to different values."""

    field: str
    definition_value: str
    metadata_value: str
    file: Path
    line: int

    @property
    def message(self) -> str:
        return (
            f"{self.field}: model.yaml says {self.definition_value!r}, model-metadata.yaml "
            f"{self.metadata_value!r}; model.yaml wins: the GitHub Action creates the model from its settings "
            "and DataRobot keeps the model's target for every version, whatever the version's metadata says"
        )


def disagreements(definition: ModelDefinition, meta: ModelMetadata | None) -> list[Disagreement]:
    """Where the two files describe different models (the one home of that rule: lint and resolution call it)."""
    if meta is None:
        return []
    pairs: list[tuple[str, str, str | None, str | None]] = [
        ("target type", "target_type", definition.served_type.drum_name, meta.target_type),
        ("target name", "settings.target_name", definition.target_name, meta.target_name),
        (
            "positive class label",
            "settings.positive_class_label",
            definition.positive_class_label,
            meta.positive_class_label,
        ),
        (
            "negative class label",
            "settings.negative_class_label",
            definition.negative_class_label,
            meta.negative_class_label,
        ),
        (
            "class labels",
            "settings.class_labels",
            ",".join(definition.class_labels or ()) or None,
            ",".join(meta.class_labels or ()) or None,
        ),
        ("environment", "version.model_environment_id", definition.version.environment_id, meta.environment_id),
    ]
    found = []
    for name, key, ours, theirs in pairs:
        differ = ours.lower() != theirs.lower() if key == "target_type" and ours and theirs else ours != theirs
        if ours is not None and theirs is not None and differ:
            file, line = definition.where(*key.split("."))
            found.append(Disagreement(name, ours, theirs, file, line))
    return found


# --- the files of a version ----------------------------------------------------------------------


def _glob(folder: Path, pattern: str, directories_recursive: bool) -> set[str]:
    """The files a pattern names, relative to `folder`, globbed as the Action globs them."""
    pattern = f"{pattern}**" if pattern.endswith("/") else pattern
    if directories_recursive and (folder / pattern).is_dir():
        pattern += "/**"
    return {Path(p).as_posix() for p in glob.glob(pattern, root_dir=folder, recursive=True)}


def definition_paths(definition: ModelDefinition, paths: list[str]) -> set[str]:
    """Which of a folder's files (relative POSIX paths) the Action uploads: its include globs (default: all)
    less its exclude globs. Globs from the repository root (`/`, `$ROOT/`) name files outside the folder,
    which a folder's upload cannot carry: an InputError naming the key."""
    folder = definition.model_path
    for key, patterns in (
        ("include_glob_pattern", definition.version.include),
        ("exclude_glob_pattern", definition.version.exclude),
    ):
        for pattern in patterns:
            if re.match(r"^(/|\$ROOT/)", pattern):
                file, line = definition.where("version", key)
                raise InputError(
                    f"{pattern!r} names files from the repository's root: cmkit uploads the model's folder only",
                    file=file,
                    line=line,
                    hint="deliver this model with the GitHub Action, or move the shared files into its folder",
                )
    included: set[str] = set()
    for pattern in definition.version.include or ("**",):
        included |= _glob(folder, pattern, directories_recursive=False)
    excluded: set[str] = set()
    for pattern in definition.version.exclude:
        excluded |= _glob(folder, pattern, directories_recursive=True)
    return {p for p in paths if p in included and p not in excluded}
