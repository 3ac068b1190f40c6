"""`model-metadata.yaml`: DRUM's description of a custom model, read the way DRUM reads it.

DRUM parses the file with strictyaml, where every scalar is a string (a label `1` stays "1").
We get the same by composing with PyYAML's BaseLoader, and keep each key's line number so that
findings can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cmkit.errors import InputError
from cmkit.safeyaml import compose_yaml
from cmkit.target import METADATA_FIELDS, TARGET_TYPES, TargetSpec
from cmkit.textfiles import stat_or_none

METADATA_FILE = "model-metadata.yaml"
# The API spells target types capitalised.
TOP_LEVEL_KEYS = {
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
}
INFERENCE_KEYS = {
    "targetName",
    "positiveClassLabel",
    "negativeClassLabel",
    "classLabels",
    "predictionThreshold",
}
VALIDATION_KEYS = {"input", "targetName"}


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


def _check_keys(meta: ModelMetadata, section: str, allowed: set[str]) -> list[MetadataProblem]:
    node = meta.data.get(section) if section else meta.data
    if node is None:
        return []
    if not isinstance(node, dict):
        return [MetadataProblem(f"'{section}' must be a mapping", meta.line_of(section))]
    prefix = f"{section}." if section else ""
    return [
        MetadataProblem(f"unknown key '{prefix}{key}' (ignored by DataRobot)", meta.line_of(prefix + key), "warning")
        for key in node
        if key not in allowed
    ]


def _check_labels(meta: ModelMetadata) -> list[MetadataProblem]:
    if meta.target_type not in TARGET_TYPES:  # reported on its own; the label rules depend on it
        return []
    line = meta.line_of("inferenceModel") or meta.line_of("targetType")
    labels = meta._get("inferenceModel", "classLabels")
    if labels is not None and not isinstance(labels, list):
        return [MetadataProblem("inferenceModel.classLabels must be a list of labels", line)]
    spec = TargetSpec(str(meta.target_type), meta.positive_class_label, meta.negative_class_label, labels)
    return [MetadataProblem(problem.text(METADATA_FIELDS), line) for problem in spec.problems()]


def validate_metadata(meta: ModelMetadata, bundle: Path | None = None) -> list[MetadataProblem]:
    """Check the file against DRUM's keys and what the API accepts for inference models."""
    problems = _check_keys(meta, "", TOP_LEVEL_KEYS)
    problems += _check_keys(meta, "inferenceModel", INFERENCE_KEYS)
    problems += _check_keys(meta, "validation", VALIDATION_KEYS)
    if not meta.name:
        problems.append(MetadataProblem("missing 'name'", 1))
    kind = _as_str(meta.data.get("type"))
    if kind is not None and kind != "inference":
        problems.append(
            MetadataProblem(f"type '{kind}' is not supported: cmkit handles 'inference'", meta.line_of("type"))
        )
    target = meta.target_type
    if target is None:
        problems.append(MetadataProblem(f"missing 'targetType' (one of {', '.join(TARGET_TYPES)})", 1))
    elif target not in TARGET_TYPES:
        problems.append(
            MetadataProblem(
                f"targetType '{meta.data.get('targetType')}' is not supported; use one of {', '.join(TARGET_TYPES)}",
                meta.line_of("targetType"),
            )
        )
    problems += _check_labels(meta)
    raw_threshold = meta._get("inferenceModel", "predictionThreshold")
    if raw_threshold is not None:
        threshold = meta.prediction_threshold
        if threshold is None or not 0.0 <= threshold <= 1.0:
            problems.append(
                MetadataProblem(
                    "predictionThreshold must be a number between 0 and 1",
                    meta.line_of("inferenceModel", "predictionThreshold"),
                )
            )
    dataset = meta.validation_input
    if dataset and bundle is not None and not (bundle / dataset).is_file():
        problems.append(
            MetadataProblem(
                f"validation.input '{dataset}' does not exist in the bundle",
                meta.line_of("validation", "input"),
            )
        )
    return problems
