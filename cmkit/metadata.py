"""`model-metadata.yaml`: DRUM's description of a custom model, read the way DRUM reads it.

DRUM parses the file with strictyaml, where every scalar is a string (a label `1` stays "1").
We get the same by composing with PyYAML's BaseLoader, and keep each key's line number so that
findings can point at it. The file's shape is declared once, as a JSON schema (`SCHEMA`, read by
jsonschema); each schema error becomes a finding at the line of the key it is about. The target
and label rules are `cmkit.target.TargetSpec`'s, called after the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from cmkit.errors import InputError
from cmkit.safeyaml import compose_yaml
from cmkit.target import METADATA_FIELDS, TARGET_TYPES, TargetSpec, TargetType
from cmkit.textfiles import stat_or_none
from cmkit_runtime.runtime_params import RuntimeParameterError, parse_definitions

METADATA_FILE = "model-metadata.yaml"
UNKNOWN_KEY = "unknown key '{path}' (ignored by DataRobot)"


# The API's CustomModelCreate/CustomModelUpdate cap a model's name at 255 characters.
MAX_MODEL_NAME = 255


def _keys(*names: str, section: str = "") -> dict[str, Any]:
    """`propertyNames` allowing `names`: one warning per other key, at its own line."""
    path = f"{section}.{{value}}" if section else "{value}"
    return {"enum": list(names), "x-messages": {"enum": UNKNOWN_KEY.replace("{path}", path)}, "x-severity": "warning"}


def _mapping(section: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "x-messages": {"type": f"'{section}' must be a mapping"},
        "propertyNames": _keys(*properties, section=section),
        "properties": properties,
    }


_TARGET_TYPES = ", ".join(TARGET_TYPES)
# The file's rules as DRUM and the API apply them. Every scalar is a string (strictyaml's view,
# see `load_metadata`); "x-messages" holds each keyword's message ({value}: the value found),
# "x-severity" a rule that only warns. Target types are matched without case, as the API does.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "allOf": [
        {"required": ["name"], "x-messages": {"required": "missing 'name'"}},
        {"required": ["targetType"], "x-messages": {"required": f"missing 'targetType' (one of {_TARGET_TYPES})"}},
    ],
    "propertyNames": _keys(
        "name",
        "type",
        "targetType",
        "environmentID",
        "modelID",
        "inferenceModel",
        "validation",
        "description",
        "language",
        "majorVersion",
        "runtimeParameterDefinitions",
        "userCredentialSpecifications",
    ),
    "properties": {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_MODEL_NAME,
            "x-messages": {
                "type": "missing 'name'",
                "minLength": "missing 'name'",
                "maxLength": f"the name is longer than the API's {MAX_MODEL_NAME} characters",
            },
        },
        "type": {
            "if": {"type": "string", "minLength": 1},
            "then": {
                "const": "inference",
                "x-messages": {"const": "type '{value}' is not supported: cmkit handles 'inference'"},
            },
        },
        "targetType": {
            "type": "string",
            "minLength": 1,
            "pattern": f"(?i)^({'|'.join(TARGET_TYPES)})$",
            "x-messages": {
                "type": f"missing 'targetType' (one of {_TARGET_TYPES})",
                "minLength": f"missing 'targetType' (one of {_TARGET_TYPES})",
                "pattern": f"targetType '{{value}}' is not supported; use one of {_TARGET_TYPES}",
            },
        },
        "inferenceModel": _mapping(
            "inferenceModel",
            {
                "targetName": {},
                "positiveClassLabel": {},
                "negativeClassLabel": {},
                "classLabels": {
                    "type": "array",
                    "x-messages": {"type": "inferenceModel.classLabels must be a list of labels"},
                },
                "predictionThreshold": {
                    "format": "probability",
                    "x-messages": {"format": "predictionThreshold must be a number between 0 and 1"},
                },
            },
        ),
        "validation": _mapping("validation", {"input": {}, "targetName": {}}),
    },
}
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("probability")
def _is_probability(value: object) -> bool:
    try:
        number = float(value)  # type: ignore[arg-type]  # anything else fails below
    except (TypeError, ValueError):
        return False
    return 0.0 <= number <= 1.0


_VALIDATOR = Draft202012Validator(SCHEMA, format_checker=_FORMATS)


@dataclass(frozen=True)
class MetadataProblem:
    message: str
    line: int | None = None
    severity: str = "error"


@dataclass
class ModelMetadata:
    """The parsed file: plain strings as DRUM sees them, plus each key's line."""

    path: Path
    data: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)

    def _get(self, *keys: str) -> Any:
        node: Any = self.data
        for key in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    @property
    def name(self) -> str | None:
        return _as_str(self._get("name"))

    @property
    def target_type(self) -> str | None:
        value = _as_str(self._get("targetType"))
        return value.lower() if value else None

    @property
    def target_name(self) -> str | None:
        return _as_str(self._get("inferenceModel", "targetName")) or _as_str(self._get("validation", "targetName"))

    @property
    def positive_class_label(self) -> str | None:
        return _as_str(self._get("inferenceModel", "positiveClassLabel"))

    @property
    def negative_class_label(self) -> str | None:
        return _as_str(self._get("inferenceModel", "negativeClassLabel"))

    @property
    def class_labels(self) -> list[str] | None:
        value = self._get("inferenceModel", "classLabels")
        return [str(v) for v in value] if isinstance(value, list) else None

    @property
    def prediction_threshold(self) -> float | None:
        value = self._get("inferenceModel", "predictionThreshold")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def environment_id(self) -> str | None:
        return _as_str(self._get("environmentID"))

    @property
    def model_id(self) -> str | None:
        return _as_str(self._get("modelID"))

    @property
    def runtime_parameter_definitions(self) -> Any:
        """`runtimeParameterDefinitions` as written (cmkit_runtime/runtime_params.py reads it)."""
        return self._get("runtimeParameterDefinitions")

    @property
    def validation_input(self) -> str | None:
        return _as_str(self._get("validation", "input"))

    @property
    def description(self) -> str | None:
        return _as_str(self._get("description"))

    @property
    def language(self) -> str | None:
        return _as_str(self._get("language"))

    def line_of(self, *keys: str) -> int | None:
        return self.lines.get(".".join(keys))


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _to_python(node: yaml.Node, path: str, lines: dict[str, int]) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            lines[child] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, child, lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, path, lines) for item in node.value]
    return node.value


def load_metadata(bundle: str | Path) -> ModelMetadata | None:
    """Read `model-metadata.yaml` from a bundle; None when absent, InputError when unreadable."""
    path = Path(bundle) / METADATA_FILE
    if stat_or_none(path) is None:
        return None
    node = compose_yaml(path)  # size, depth and alias expansion are bounded before composing
    lines: dict[str, int] = {}
    data = _to_python(node, "", lines) if node is not None else {}
    if not isinstance(data, dict):
        raise InputError("expected a mapping of keys (name, targetType, ...)", file=path, line=1)
    return ModelMetadata(path=path, data=data, lines=lines)


def schema_problems(meta: ModelMetadata) -> list[MetadataProblem]:
    """`SCHEMA`'s findings, each with its message and the line of the key it is about."""
    problems = [_problem(meta, error) for error in _VALIDATOR.iter_errors(meta.data)]
    return sorted(problems, key=lambda problem: problem.line or 0)  # in the file's order


def _problem(meta: ModelMetadata, error: ValidationError) -> MetadataProblem:
    schema = error.schema if isinstance(error.schema, dict) else {}
    template = schema.get("x-messages", {}).get(error.validator)
    message = template.format(value=error.instance) if template else error.message  # a rule without one
    keys = [part for part in error.absolute_path if isinstance(part, str)]  # a list item: its key's line
    severity = str(schema.get("x-severity", "error"))
    if severity == "warning" and isinstance(error.instance, str):
        keys.append(error.instance)  # an unknown key (propertyNames): its own line
    line = meta.line_of(*keys) if keys and error.validator != "required" else 1
    return MetadataProblem(message, line, severity)


def _check_labels(meta: ModelMetadata) -> list[MetadataProblem]:
    target_type = TargetType.served_named(meta.target_type)
    if target_type is None:  # reported on its own; the label rules depend on it
        return []
    line = meta.line_of("inferenceModel") or meta.line_of("targetType")
    labels = meta._get("inferenceModel", "classLabels")
    if labels is not None and not isinstance(labels, list):
        return []  # SCHEMA reports it; the label rules need a list
    spec = TargetSpec(target_type, meta.positive_class_label, meta.negative_class_label, labels)
    return [MetadataProblem(problem.text(METADATA_FIELDS), line) for problem in spec.problems()]


def validate_metadata(meta: ModelMetadata, bundle: Path | None = None) -> list[MetadataProblem]:
    """Check the file against DRUM's keys and what the API accepts for inference models.

    The shape is `SCHEMA`'s; the target and label rules are `TargetSpec`'s; whether
    validation.input exists needs the bundle, so it is checked here.
    """
    problems = schema_problems(meta)
    problems += _check_labels(meta)
    problems += _check_runtime_parameters(meta)
    dataset = meta.validation_input
    if dataset and bundle is not None:
        problems += _check_validation_input(dataset, bundle, meta.line_of("validation", "input"))
    return problems


def _check_runtime_parameters(meta: ModelMetadata) -> list[MetadataProblem]:
    """runtimeParameterDefinitions as DRUM and DataRobot read them (cmkit_runtime/runtime_params.py)."""
    try:
        parse_definitions(meta.runtime_parameter_definitions)
    except RuntimeParameterError as exc:
        return [MetadataProblem(str(exc), meta.line_of("runtimeParameterDefinitions"))]
    return []


def _check_validation_input(dataset: str, bundle: Path, line: int | None) -> list[MetadataProblem]:
    """Inside the bundle the file must exist; outside it (DataRobot's own templates point to
    ../../tests/testdata/...) DataRobot ignores the key at upload, so it is only a warning."""
    path = (bundle / dataset).resolve()
    if not path.is_relative_to(bundle.resolve()):
        return [
            MetadataProblem(
                f"validation.input '{dataset}' is outside the bundle: DataRobot ignores it at upload, "
                "and test-local needs --dataset",
                line,
                "warning",
            )
        ]
    if not path.is_file():
        return [MetadataProblem(f"validation.input '{dataset}' does not exist in the bundle", line)]
    return []
