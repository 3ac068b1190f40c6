"""`cmkit init`: write a new bundle from a template in `templates/bundles/<template>/`.

A template folder holds `common/` (the files every bundle gets: start script, server, ignore and
pre-commit files, README) and one folder per target type (`regression/`, ...: the author's
`custom.py`, the example model and its sample data). Files ending in `.tmpl` are rendered with
`@@{name}` placeholders (a `string.Template` whose delimiter neither shell `$VARS` nor Python
braces use) and lose the suffix; everything else is copied byte for byte.

Written from the options rather than copied:

- `model-metadata.yaml`, dumped with PyYAML so that any name or label is quoted correctly;
- `data/sample.csv`: the target column takes `--target-name`, and binary rows the class labels;
- for multiclass, `model.json` and `data/sample.csv` are made for the labels given, since a
  model shipped for a fixed set of classes cannot serve another. Each label gets a cluster of
  seeded random points, and the model is the exact optimum for those clusters (written from
  their centres in closed form, nothing is trained).

Rendering is pure (`render_bundle`); `write_bundle` checks every path before writing any, so a
refused init changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import shlex
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cmkit.bundle import START_SCRIPT
from cmkit.errors import InputError
from cmkit.metadata import MAX_MODEL_NAME, METADATA_FILE
from cmkit.paths import templates_dir as shipped_templates
from cmkit.target import LabelKind, TargetSpec, TargetType, require_target_type

DEFAULT_TEMPLATE = "python"
SAMPLE_DATA = "data/sample.csv"
SAMPLE_BODY = "data/sample.txt"  # an unstructured model's sample: one request body, not rows
TEMPLATE_SUFFIX = ".tmpl"
# The target column of each template's sample data, before --target-name renames it.
DEFAULT_TARGET_NAMES = {
    TargetType.REGRESSION: "price",
    TargetType.BINARY: "churned",
    TargetType.MULTICLASS: "class",
    TargetType.TEXT_GENERATION: "resultText",
    TargetType.GEO_POINT: "depot",
    TargetType.VECTOR_DATABASE: "relevant",
    # DRUM refuses to start a text generation, vector database or agentic workflow model without
    # a target name (TARGET_NAME): the agent's metadata names one, though it has no dataset.
    TargetType.AGENTIC_WORKFLOW: "resultText",
}
# What predict() returns, for the README (binary: filled in with the positive label).
PREDICT_NOTES = {
    TargetType.REGRESSION: "return one number per row.",
    TargetType.BINARY: "return the probability of the positive class ({positive!r}) per row.",
    TargetType.MULTICLASS: "return a probability matrix, one column per class label in the declared order.",
    TargetType.ANOMALY: "return one anomaly score per row, higher meaning more anomalous.",
    TargetType.TEXT_GENERATION: "return one string per row.",
    TargetType.GEO_POINT: "return one point per row, as well-known text: `POINT (longitude latitude)`.",
    TargetType.VECTOR_DATABASE: "return one string per row: the documents nearest to the row's query.",
    TargetType.TRANSFORM: "return a DataFrame with one row per row of X, in row order.",
    TargetType.UNSTRUCTURED: "return a str, bytes, or (data, {\"mimetype\": ..., \"charset\": ...}).",
    TargetType.AGENTIC_WORKFLOW: "return a ChatCompletion, or ChatCompletionChunks when asked to stream.",
}
# Binary sample data is written with these labels, replaced by the chosen ones.
TEMPLATE_POSITIVE, TEMPLATE_NEGATIVE = "1", "0"
DEFAULT_POSITIVE, DEFAULT_NEGATIVE = "1", "0"
# A folder holding only these still counts as empty: a fresh `git init` is a fine place to start.
IGNORED_EXISTING = {".git"}


class _Template(string.Template):
    delimiter = "@@"


@dataclass(frozen=True)
class BundleSpec:
    """What to write: validated options of `cmkit init`."""

    target_type: TargetType
    name: str
    target_name: str | None = None
    positive_class_label: str | None = None
    negative_class_label: str | None = None
    class_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenderedFile:
    path: str  # posix, relative to the bundle
    content: bytes
    executable: bool = False


@dataclass
class InitResult:
    bundle: Path
    target_type: str
    files: list[str] = field(default_factory=list)

    @property
    def next_commands(self) -> list[str]:
        folder = shlex.quote(str(self.bundle))  # ready to paste, whatever the folder is called
        return [f"cmkit lint {folder}", f"cmkit test-local {folder}", f"cmkit push {folder}"]

    def to_dict(self) -> dict[str, object]:
        return {"bundle": str(self.bundle), "files": self.files, "targetType": self.target_type}


def _check_text(value: str, what: str, flag: str) -> str:
    if value != value.strip() or not value:
        raise InputError(f"{what} {value!r} is empty or has surrounding spaces", hint=f"pass {flag} a trimmed value")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InputError(f"{what} {value!r} holds a control character", hint=f"pass {flag} plain text")
    return value


def make_spec(
    target_type: str,
    name: str,
    *,
    target_name: str | None = None,
    positive_class_label: str | None = None,
    negative_class_label: str | None = None,
    class_labels: Sequence[str] = (),
) -> BundleSpec:
    """Validate a combination of options; each bad one is an InputError naming the fix."""
    kind = require_target_type(target_type)
    _check_text(name, "the model name", "--name")
    if len(name) > MAX_MODEL_NAME:  # else init writes a bundle its own lint refuses
        raise InputError(f"the model name has {len(name)} characters; the API takes at most {MAX_MODEL_NAME}")
    if not kind.has_target and target_name is not None:
        raise InputError(f"{kind} models have no target", hint="drop --target-name")
    positive, negative = positive_class_label, negative_class_label
    if kind.label_kind is LabelKind.PAIR and not class_labels:
        # The API's defaults for a binary model's labels.
        positive = DEFAULT_POSITIVE if positive is None else positive
        negative = DEFAULT_NEGATIVE if negative is None else negative
    spec = TargetSpec(kind, positive, negative, tuple(class_labels) or None)
    spec.validate(hint="run cmkit init --help for the options of each target type")
    labels = tuple(class_labels) if kind.label_kind is LabelKind.LIST else ()
    for label, what, flag in (
        (positive, "the positive class label", "--positive-class-label"),
        (negative, "the negative class label", "--negative-class-label"),
        *((label, "the class label", "--class-labels") for label in labels),
    ):
        if label is not None:
            _check_text(label, what, flag)
    if kind.has_target and kind in DEFAULT_TARGET_NAMES:
        target_name = _check_text(target_name or DEFAULT_TARGET_NAMES[kind], "the target name", "--target-name")
    elif target_name is not None:
        target_name = _check_text(target_name, "the target name", "--target-name")
    return BundleSpec(kind, name, target_name, positive, negative, labels)


def template_dir(template: str, templates_dir: Path | None = None) -> Path:
    """A bundle template's folder, in `templates_dir` or the templates cmkit ships."""
    templates_dir = templates_dir or shipped_templates() / "bundles"
    found = templates_dir.iterdir() if templates_dir.is_dir() else ()
    available = sorted(p.name for p in found if (p / "common").is_dir())
    if template not in available:
        raise InputError(f"unknown template {template!r}", hint=f"use one of: {', '.join(available) or 'none found'}")
    return templates_dir / template


def render_metadata(spec: BundleSpec, validation_input: str | None = SAMPLE_DATA) -> str:
    """model-metadata.yaml for a spec, in DRUM's keys. PyYAML quotes what needs quoting ('1', 'yes')."""
    data: dict[str, object] = {"name": spec.name, "type": "inference", "targetType": spec.target_type.drum_name}
    inference: dict[str, object] = {}
    if spec.target_name:
        inference["targetName"] = spec.target_name
    if spec.target_type.label_kind is LabelKind.PAIR:
        inference["positiveClassLabel"] = spec.positive_class_label
        inference["negativeClassLabel"] = spec.negative_class_label
    if spec.target_type.label_kind is LabelKind.LIST:
        inference["classLabels"] = list(spec.class_labels)
    if inference:
        data["inferenceModel"] = inference
    if validation_input is not None:
        data["validation"] = {"input": validation_input}
    header = (
        "# How DataRobot (and cmkit) read this model, in DRUM's model-metadata.yaml format.\n"
        "# Every value is read as a string. `cmkit lint` checks this file.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)


def _write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def relabel_sample(content: bytes, spec: BundleSpec) -> bytes:
    """The template's sample data with the chosen target column name and (binary) class labels."""
    reader = csv.reader(io.StringIO(content.decode("utf-8")))
    header, *rows = list(reader)
    if not spec.target_type.has_target or spec.target_name is None:  # no target column (transform)
        return content
    default = DEFAULT_TARGET_NAMES[spec.target_type]
    column = header.index(default)
    if spec.target_name != default and spec.target_name in header:
        raise InputError(
            f"--target-name {spec.target_name!r} is also a feature of the sample data ({', '.join(header)})",
            hint="choose another target name",
        )
    header[column] = str(spec.target_name)
    if spec.target_type.label_kind is LabelKind.PAIR:
        mapping = {TEMPLATE_POSITIVE: spec.positive_class_label, TEMPLATE_NEGATIVE: spec.negative_class_label}
        for row in rows:
            row[column] = str(mapping[row[column]])
    return _write_csv(header, rows)


# The multiclass example: four features; class j's points scatter (sd 1) around a centre on a
# closed curve, so every number of classes gets distinct, equally spread clusters.
MULTICLASS_FEATURES = ("feature_1", "feature_2", "feature_3", "feature_4")
MULTICLASS_RADIUS = 3.0
MULTICLASS_SEED = 20240611


def _centre(index: int, count: int) -> tuple[float, ...]:
    angle = 2 * math.pi * index / count
    r = MULTICLASS_RADIUS
    return (r * math.cos(angle), r * math.sin(angle), r * math.cos(2 * angle), r * math.sin(2 * angle))


def _rounded(value: float) -> float:
    return float(f"{value:.6g}")


def multiclass_example(spec: BundleSpec) -> tuple[bytes, bytes]:
    """(data/sample.csv, model.json) for the spec's class labels."""
    labels, count = spec.class_labels, len(spec.class_labels)
    if spec.target_name in MULTICLASS_FEATURES:
        raise InputError(
            f"--target-name {spec.target_name!r} is also a feature of the sample data",
            hint="choose another target name",
        )
    centres = [_centre(j, count) for j in range(count)]
    rng = random.Random(MULTICLASS_SEED)
    per_class = max(5, 60 // count)
    rows = [
        [*(round(c + rng.gauss(0.0, 1.0), 3) for c in centres[j]), labels[j]]
        for _ in range(per_class)
        for j in range(count)
    ]
    csv_bytes = _write_csv([*MULTICLASS_FEATURES, str(spec.target_name)], rows)
    # With equal priors and unit-variance clusters, the Bayes-optimal classifier is a softmax with
    # coefficients mu_j and intercepts -|mu_j|^2 / 2 (linear discriminant analysis, in closed form).
    model = {
        "about": "softmax classifier over clusters of data/sample.csv, written by cmkit init for these labels",
        "features": list(MULTICLASS_FEATURES),
        "means": [_rounded(sum(c[i] for c in centres) / count) for i in range(len(MULTICLASS_FEATURES))],
        "classes": list(labels),
        "coef": [[_rounded(v) for v in c] for c in centres],
        "intercept": [_rounded(-sum(v * v for v in c) / 2) for c in centres],
    }
    return csv_bytes, (json.dumps(model, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _example_request(sample: bytes, spec: BundleSpec) -> str:
    """`{"X": ...}` for the first row of the sample data, without the target: the README's curl example."""
    header, first = list(csv.reader(io.StringIO(sample.decode("utf-8"))))[:2]
    columns = {name: [_value(value)] for name, value in zip(header, first, strict=True) if name != spec.target_name}
    return json.dumps({"X": columns}, ensure_ascii=False)


def _value(text: str) -> float | str:
    """A CSV cell as JSON carries it: a number when it reads as one, else the text."""
    try:
        return float(text)
    except ValueError:
        return text


def sample_file(target_type: TargetType) -> str | None:
    """The bundle's sample input, which validation.input names: rows, one request body, or none
    (a chat model is asked chat completions, not a dataset)."""
    if target_type.unstructured:
        return SAMPLE_BODY
    return SAMPLE_DATA if target_type.structured else None


def _placeholders(spec: BundleSpec, sample: bytes) -> dict[str, str]:
    if not spec.target_type.structured:
        return {
            "name": spec.name,
            "target_type": spec.target_type.drum_name,
            "predict_note": PREDICT_NOTES[spec.target_type],
            "sample_file": sample_file(spec.target_type) or "",
        }
    if not spec.target_type.has_target:
        data_note, sample_note = f"no target column: {spec.target_type} models learn without one", ""
    elif spec.target_name is None:
        data_note, sample_note = f"no target column: a {spec.target_type} model predicts none", ""
    else:
        data_note = f"with the target column `{spec.target_name}`"
        sample_note = f", with the target column `{spec.target_name}`"
    labels_note = ", class labels" if spec.target_type.is_classification else ""
    return {
        "name": spec.name,
        "target_type": spec.target_type.drum_name,
        "target_name": json.dumps(spec.target_name or ""),  # a string literal in R (and Python)
        "predict_note": PREDICT_NOTES[spec.target_type].format(positive=spec.positive_class_label),
        "data_note": data_note,
        "sample_note": sample_note,
        "labels_note": labels_note,
        "example_request": _example_request(sample, spec),
    }


def _shared_data(root: Path, own: Path) -> list[tuple[str, Path]]:
    """The python template's sample data for a template whose type folder has none (the r
    template's models are fitted on the same samples): one copy of each sample in the repository."""
    shared = root.parent / DEFAULT_TEMPLATE / own.name / "data"
    if (own / "data").is_dir() or root.name == DEFAULT_TEMPLATE or not shared.is_dir():
        return []
    return [(f"data/{rel}", source) for rel, source in _template_files(shared)]


def _template_files(folder: Path) -> Iterable[tuple[str, Path]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path.relative_to(folder).as_posix(), path


def render_bundle(
    spec: BundleSpec, template: str = DEFAULT_TEMPLATE, templates_dir: Path | None = None
) -> list[RenderedFile]:
    """Every file of the bundle, in memory, sorted by path."""
    root = template_dir(template, templates_dir)
    own = root / spec.target_type.drum_name
    if not own.is_dir():
        written = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "common")
        raise InputError(
            f"the {template} template has no {spec.target_type} model",
            hint=f"it writes {', '.join(written)} models: pass one of them to --target-type",
        )
    files: dict[str, RenderedFile] = {}
    templated: list[tuple[str, bytes]] = []
    sources = [*_shared_data(root, own), *_template_files(root / "common"), *_template_files(own)]
    for rel, source in sources:
        content = source.read_bytes()
        if rel.endswith(TEMPLATE_SUFFIX):
            templated.append((rel[: -len(TEMPLATE_SUFFIX)], content))  # rendered once the data is known
            continue
        if rel == SAMPLE_DATA:
            content = relabel_sample(content, spec)
        files[rel] = RenderedFile(rel, content, executable=rel == START_SCRIPT or os.access(source, os.X_OK))
    if spec.target_type.label_kind is LabelKind.LIST:
        sample, model = multiclass_example(spec)
        files[SAMPLE_DATA] = RenderedFile(SAMPLE_DATA, sample)
        if template == DEFAULT_TEMPLATE:  # the python model's parameters; the r one fits the sample itself
            files["model.json"] = RenderedFile("model.json", model)
    sample_path = sample_file(spec.target_type)
    values = _placeholders(spec, files[sample_path].content if sample_path else b"")
    for rel, content in dict(templated).items():  # a type's own template replaces common's
        files[rel] = RenderedFile(rel, _Template(content.decode("utf-8")).substitute(values).encode("utf-8"))
    files[METADATA_FILE] = RenderedFile(METADATA_FILE, render_metadata(spec, sample_path).encode("utf-8"))
    return [files[path] for path in sorted(files)]


def _existing_entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in IGNORED_EXISTING)


def check_destination(directory: Path, files: Sequence[RenderedFile], force: bool) -> None:
    """Refuse before anything is written: a non-empty folder without --force, or paths in the way."""
    if directory.exists() and not directory.is_dir():
        raise InputError("exists and is not a folder", file=directory, hint="choose a new folder name")
    if not directory.exists():
        return
    existing = _existing_entries(directory)
    if existing and not force:
        shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise InputError(
            f"folder is not empty ({shown})",
            file=directory,
            hint="choose an empty folder, or pass --force to overwrite the template's files in it",
        )
    for file in files:
        parts = Path(file.path).parts
        for depth in range(1, len(parts)):
            parent = directory.joinpath(*parts[:depth])
            if parent.exists() and not parent.is_dir():
                raise InputError("is in the way of a folder the template needs", file=parent, hint="move it away")
        target = directory / file.path
        if target.is_dir() or (target.is_symlink() and not target.is_file()):
            raise InputError("is in the way of a file the template writes", file=target, hint="move it away")


def write_bundle(directory: Path, files: Sequence[RenderedFile], force: bool = False) -> None:
    check_destination(directory, files, force)
    for file in files:
        target = directory / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():  # overwrite the link itself, never the file it points to
            target.unlink()
        target.write_bytes(file.content)
        mode = 0o755 if file.executable else 0o644
        target.chmod(mode)


def init_bundle(
    directory: str | Path,
    spec: BundleSpec,
    *,
    template: str = DEFAULT_TEMPLATE,
    force: bool = False,
    templates_dir: Path | None = None,
) -> InitResult:
    """Render the template for `spec` and write it into `directory` (created if missing)."""
    folder = Path(directory)
    files = render_bundle(spec, template, templates_dir)
    write_bundle(folder, files, force)
    return InitResult(bundle=folder, target_type=spec.target_type.drum_name, files=[f.path for f in files])
