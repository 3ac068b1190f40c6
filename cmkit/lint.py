"""`cmkit lint`: static checks of a bundle, fast enough for a pre-commit hook (no Docker, no imports)."""

from __future__ import annotations

import ast
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cmkit.bundle import (
    API_MAX_FILE_BYTES,
    API_MAX_FILES,
    START_SCRIPT,
    BundleListing,
    find_secrets,
    list_bundle,
)
from cmkit.codescan import (
    EnvironmentPackages,
    ParsedFile,
    environment_packages,
    find_conflicts,
    local_modules,
    parse_python_files,
    pip_name_for,
    provided_modules,
    scan_imports,
)
from cmkit.errors import InputError
from cmkit.metadata import METADATA_FILE, ModelMetadata, load_metadata, validate_metadata
from cmkit.modeldefs import definitions_for, disagreements
from cmkit.paths import cache_dir, default_environment_dir
from cmkit.requirements import REQUIREMENTS_FILE, DependencyReport, parse_requirements_text, read_text_file
from cmkit.rlint import read_r_source
from cmkit_runtime.formats import (
    ARTIFACT,
    ARTIFACT_PACKAGES,
    CHAT_HOOK,
    CMKIT_HOOKS,
    DRUM_HOOKS,
    HOOK_FILE,
    OTHER_ARTIFACTS,
    R_HOOK_FILES,
    SCORE_UNSTRUCTURED,
    SUPPORTED_ARTIFACTS,
    artifacts_in,
    format_of,
    is_r_bundle,
    r_artifacts_in,
    r_hook_file,
)
from cmkit_runtime.target_types import TargetType


@dataclass(frozen=True)
class Finding:
    file: str
    rule: str
    message: str
    line: int | None = None
    severity: str = "error"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass
class LintReport:
    bundle: str
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    bytes: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, object]:
        return {
            "bundle": self.bundle,
            "ok": self.ok,
            "files": self.files,
            "bytes": self.bytes,
            "findings": [f.to_dict() for f in self.findings],
        }


def lint_document(reports: list[LintReport]) -> dict[str, object]:
    """`cmkit lint --json`: one shape whatever the number of bundles (and with `--from-files`)."""
    return {"ok": all(r.ok for r in reports), "bundles": [r.to_dict() for r in reports]}


def _check_start_script(root: Path) -> list[Finding]:
    script = root / START_SCRIPT
    if not script.exists() and not script.is_symlink():
        return _check_model_without_script(root)
    mode = os.lstat(script).st_mode
    if not stat.S_ISREG(mode):
        return [
            Finding(
                START_SCRIPT,
                "start-script-not-file",
                "start_server.sh must be a regular file, not a folder or symlink",
            )
        ]
    findings = []
    if not mode & stat.S_IXUSR:
        findings.append(
            Finding(
                START_SCRIPT,
                "start-script-not-executable",
                "start_server.sh is not executable; run: chmod +x start_server.sh",
                1,
            )
        )
    with script.open("rb") as handle:
        first = handle.readline()
    if not first.startswith(b"#!"):
        findings.append(
            Finding(
                START_SCRIPT,
                "start-script-no-shebang",
                "start_server.sh needs a shebang such as '#!/bin/sh' on line 1",
                1,
            )
        )
    elif first.rstrip(b"\n").endswith(b"\r"):
        findings.append(
            Finding(
                START_SCRIPT,
                "start-script-crlf",
                "start_server.sh has Windows line endings; the kernel will look for "
                "'/bin/sh\\r'. Convert it with: dos2unix start_server.sh",
                1,
            )
        )
    return findings


def _read_requirements(root: Path) -> tuple[DependencyReport | None, list[Finding]]:
    """The bundle's requirements.txt parsed once (None without one), and what is wrong in it."""
    path = root / REQUIREMENTS_FILE
    if not os.path.lexists(path):
        return None, []
    try:
        report = parse_requirements_text(read_text_file(path), source=str(path))
    except InputError as exc:
        return None, [Finding(REQUIREMENTS_FILE, "requirements-unreadable", exc.message, exc.line)]
    return report, [
        Finding(REQUIREMENTS_FILE, "requirements-invalid", f"{e.line!r}: {e.message}", e.line_number)
        for e in report.errors
    ]


def _check_metadata(root: Path) -> tuple[ModelMetadata | None, list[Finding]]:
    try:
        meta = load_metadata(root)
    except InputError as exc:
        return None, [Finding(METADATA_FILE, "metadata-yaml", exc.message, exc.line)]
    if meta is None:
        return None, []
    return meta, [
        Finding(METADATA_FILE, "metadata-invalid", p.message, p.line, p.severity) for p in validate_metadata(meta, root)
    ]


def _check_definitions(root: Path, meta: ModelMetadata | None) -> tuple[TargetType | None, list[Finding]]:
    """The GitHub Action's definitions of this folder (model.yaml, models.yaml): readable as the Action
    reads them, and where they and model-metadata.yaml disagree, which wins and why. Also the target
    type the model is served as: one definition's (it wins), else the metadata's."""
    try:
        definitions = definitions_for(root)
    except InputError as exc:
        where = os.path.relpath(exc.file, root) if exc.file is not None else "model.yaml"
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return None, [Finding(where, "model-definition", message, exc.line)]
    findings = [
        Finding(os.path.relpath(d.file, root), "definition-disagrees", d.message, d.line, "warning")
        for definition in definitions
        for d in disagreements(definition, meta)
    ]
    if len(definitions) == 1:
        return definitions[0].served_type, findings
    return TargetType.served_named(meta.target_type if meta else None), findings


def _check_files(listing: BundleListing) -> list[Finding]:
    findings = [
        Finding(
            p.path,
            "symlink-outside" if p.reason.endswith("bundle") else "symlink-broken",
            f"{p.reason} ({p.target}); uploads cannot follow it: copy the file in or ignore it in .cmkitignore",
        )
        for p in listing.link_problems
    ]
    findings += [
        Finding(
            f.path,
            "secret-file",
            f"looks like a {reason}; an upload must not carry it: delete it or list it in .cmkitignore",
        )
        for f, reason in find_secrets(listing.files)
    ]
    findings += [
        Finding(
            f.path,
            "file-too-large",
            f"{f.size} bytes is over the API's per-file limit of {API_MAX_FILE_BYTES} bytes",
        )
        for f in listing.files
        if f.size > API_MAX_FILE_BYTES
    ]
    if len(listing.files) > API_MAX_FILES:
        findings.append(
            Finding(
                ".",
                "too-many-files",
                f"{len(listing.files)} files; a version holds at most "
                f"{API_MAX_FILES}: ignore data, caches or venvs in .cmkitignore",
            )
        )
    return findings


def defined_names(source: str, filename: str) -> set[str]:
    """Top-level functions and imported names of a module, read without running it."""
    tree = ast.parse(source, filename)
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _hook_names(root: Path) -> tuple[set[str] | None, list[Finding]]:
    """The names custom.py defines (None without one), or a finding when it does not parse."""
    path = root / HOOK_FILE
    if not path.is_file():
        return None, []
    try:
        return defined_names(path.read_text(encoding="utf-8"), HOOK_FILE), []
    except SyntaxError as exc:
        return set(), [Finding(HOOK_FILE, "hooks-syntax", f"custom.py does not parse: {exc.msg}", exc.lineno)]
    except (UnicodeDecodeError, ValueError):
        return set(), [Finding(HOOK_FILE, "hooks-syntax", "custom.py is not UTF-8 Python source", 1)]


def _check_model_without_script(root: Path) -> list[Finding]:
    """Without start_server.sh the environment's runtime serves the bundle: it needs hooks or an artifact."""
    if is_r_bundle(root):
        return _check_r_model(root)
    names, findings = _hook_names(root)
    if findings:
        return []  # custom.py does not parse: _check_python_files reports it, with or without a script
    model_format = format_of(names or ())
    loadable, others = artifacts_in(root)
    if model_format != ARTIFACT or (names is not None and "load_model" in names) or len(loadable) == 1:
        what = {CMKIT_HOOKS: "cmkit hooks", DRUM_HOOKS: "DRUM hooks"}.get(model_format, "an artifact")
        provided = Finding(
            START_SCRIPT,
            "start-script-provided",
            f"no start_server.sh: the model ({what}) is served by the environment's start script, so the "
            "environment must provide one (cmkit's python3 environment and DataRobot's drop-in ones do)",
            severity="note",
        )
        unhooked = model_format == ARTIFACT and not (names and "load_model" in names)
        return [provided, *(_check_framework_required(root, loadable[0]) if unhooked else [])]
    reason = f"more than one artifact ({', '.join(p.name for p in loadable)})" if loadable else "no model"
    if others and not loadable:
        reason = f"{others[0].name}, which no built-in predictor loads ({OTHER_ARTIFACTS[others[0].suffix.lower()]})"
    return [
        Finding(
            START_SCRIPT,
            "start-script-missing",
            f"no start_server.sh and {reason}: add custom.py with load_model() and predict() (cmkit) or score() "
            f"(DRUM), or one artifact ({', '.join(SUPPORTED_ARTIFACTS)}) (cmkit init writes a working bundle)",
        )
    ]


def _check_r_model(root: Path) -> list[Finding]:
    """An R model (custom.R, .rds; cmkit_runtime/rmodels.py): custom.R parses (R's parser when R is
    installed), and its hooks and artifacts give the runtime a model to serve for its target type."""
    hook_file = r_hook_file(root)
    source = read_r_source(root / hook_file) if hook_file else None
    if hook_file and source and source.error:
        return [Finding(hook_file, "r-syntax", f"{hook_file} does not parse: {source.error}", source.error_line)]
    defined = source.defined if source else frozenset()
    try:
        meta = load_metadata(root)
    except InputError:
        meta = None  # reported by metadata-yaml
    target_type = TargetType.served_named(meta.target_type if meta else None)
    unstructured = bool(target_type and target_type.unstructured)
    findings = [
        Finding(
            START_SCRIPT,
            "start-script-provided",
            "no start_server.sh: an R model (custom.R hooks or an .rds), served in R by the environment's start "
            "script (cmkit's r environment, DataRobot's R drop-in); requirements.txt names R packages",
            severity="note",
        )
    ]
    if hook_file and source and not source.parsed_by_r:
        message = f"R is not installed here: {hook_file}'s syntax is not checked (its hooks were found by a line scan)"
        findings.append(Finding(hook_file, "r-not-parsed", message, severity="note"))
    artifacts = r_artifacts_in(root)
    if "load_model" in defined:
        return findings + _r_type_hooks(hook_file, defined, unstructured)
    if len(artifacts) > 1:
        names = ", ".join(p.name for p in artifacts)
        findings.append(
            Finding(START_SCRIPT, "r-artifacts", f"more than one .rds ({names}): keep one, or read it in load_model()")
        )
    elif not artifacts and not unstructured:
        findings.append(
            Finding(START_SCRIPT, "r-no-model", "custom.R has no load_model() and the bundle no .rds: add one of them")
        )
    return findings + _r_type_hooks(hook_file, defined, unstructured)


def _r_type_hooks(hook_file: str | None, defined: frozenset[str], unstructured: bool) -> list[Finding]:
    if unstructured and SCORE_UNSTRUCTURED not in defined:
        message = f"an unstructured R model is served through {SCORE_UNSTRUCTURED}(model, data, query, ...), which "
        return [Finding(hook_file or R_HOOK_FILES[0], "hooks-target-type", message + "custom.R does not define")]
    return []


# Frameworks an artifact needs that no Python environment of cmkit or DataRobot's python3 drop-in has.
_FRAMEWORK_ARTIFACTS = frozenset({".onnx", ".h5", ".pth"})


def _check_framework_required(root: Path, artifact: Path) -> list[Finding]:
    """An .onnx, .h5 or .pth artifact loads only if the bundle's requirements install its framework."""
    suffix = artifact.suffix.lower()
    if suffix not in _FRAMEWORK_ARTIFACTS:
        return []
    package = ARTIFACT_PACKAGES[suffix]
    path = root / REQUIREMENTS_FILE
    text = read_text_file(path) if path.is_file() else ""
    named = {line.split("#")[0].strip().split("[")[0].lower() for line in text.splitlines()}
    if any(name.startswith(package) for name in named if name):  # tensorflow-cpu counts as tensorflow
        return []
    return [
        Finding(
            REQUIREMENTS_FILE,
            "artifact-framework-missing",
            f"{artifact.name} is loaded with {package}, which requirements.txt does not name: add {package} "
            "(unless the environment installs it; DataRobot's framework drop-in environments do)",
            severity="warning",
        )
    ]


def _check_type_hooks(root: Path, target_type: TargetType | None) -> list[Finding]:
    """custom.py defines the hook its target type is served through (DRUM's rule: an unstructured
    model is called through score_unstructured() only, every other type never through it)."""
    names, findings = _hook_names(root)
    if findings or names is None:
        return []
    if target_type is None:
        return []
    has_hook = SCORE_UNSTRUCTURED in names
    if target_type.chats and not target_type.structured and CHAT_HOOK not in names:
        message = (
            f"{target_type} models are asked on /chat/completions through chat(completion_create_params, model), "
            f"which custom.py does not define (cmkit init --target-type {target_type} writes an example)"
        )
        return [Finding(HOOK_FILE, "hooks-target-type", message)]
    if target_type.unstructured and not has_hook:
        message = (
            f"{target_type} models are served through {SCORE_UNSTRUCTURED}(model, data, query, **kwargs), which "
            "custom.py does not define (cmkit init --target-type unstructured writes an example)"
        )
        return [Finding(HOOK_FILE, "hooks-target-type", message)]
    if has_hook and not target_type.unstructured:
        message = (
            f"custom.py defines {SCORE_UNSTRUCTURED}(), which only unstructured models are served through; "
            f"this {target_type} model never calls it (set targetType: unstructured, or remove it)"
        )
        return [Finding(HOOK_FILE, "hooks-target-type", message, severity="warning")]
    return []


VENDORED_SERVER_MARK = "MODEL_SERVER_HALTS_ON_LOAD_FAILURE"  # in every server.py `cmkit init` wrote before 0.2


def _check_vendored_server(root: Path) -> list[Finding]:
    server = root / "server.py"
    if not (server.is_file() and (root / "gunicorn.conf.py").is_file()):
        return []
    if VENDORED_SERVER_MARK not in server.read_text(encoding="utf-8", errors="replace"):
        return []
    return [
        Finding(
            "server.py",
            "vendored-server",
            "this bundle carries its own copy of cmkit's old model server, which no fix reaches; the environment "
            "now provides the runtime. Fix: rm server.py gunicorn.conf.py && printf '#!/bin/sh\\nexec "
            'cmkit-runtime serve --code-dir "$(dirname "$0")"\\n\' > start_server.sh',
            1,
            severity="warning",
        )
    ]


def lint_bundle(bundle: str | Path, environment: Path | None = None) -> LintReport:
    """Lint a bundle; `environment`: the docker context it runs on (default: cmkit's python3 one)."""
    root = Path(bundle)
    if not root.is_dir():
        raise InputError("not a bundle folder", file=bundle, hint="pass the folder holding start_server.sh")
    listing = list_bundle(root)
    report = LintReport(bundle=str(root), files=len(listing.files), bytes=listing.total_bytes)
    r_model = is_r_bundle(root) and not (root / START_SCRIPT).exists()
    # An R model's requirements.txt names R packages, not pip requirements: pip's rules do not apply.
    requirements, requirement_findings = (None, []) if r_model else _read_requirements(root)
    meta, metadata_findings = _check_metadata(root)
    files = [f.path for f in listing.files]
    parsed = parse_python_files(root, files)
    packages = None if r_model else _environment_packages(environment)
    report.findings += _check_start_script(root)
    report.findings += _check_vendored_server(root)
    report.findings += requirement_findings
    report.findings += metadata_findings
    target_type, definition_findings = _check_definitions(root, meta)
    report.findings += definition_findings
    report.findings += _check_type_hooks(root, target_type)
    report.findings += _check_files(listing)
    report.findings += _check_python_files(parsed)
    report.findings += _check_hooks(parsed, target_type)
    report.findings += _check_imports(parsed, files, requirements, packages, meta)
    report.findings += _check_conflicts(requirements, packages)
    return report


# --- what will break at start: the code, its hooks, its imports and its requirements -------------


def _environment_packages(environment: Path | None) -> EnvironmentPackages | None:
    """The packages the environment installs (its requirements.txt), None when it has none."""
    folder = environment or default_environment_dir()
    try:
        text = (folder / REQUIREMENTS_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return environment_packages(text, cache_dir() / "lint")


def _check_python_files(parsed: list[ParsedFile]) -> list[Finding]:
    """Every .py of the bundle parses, whatever starts the server (a start script imports them too)."""
    return [
        Finding(
            item.path,
            "hooks-syntax" if item.path == HOOK_FILE else "python-syntax",
            f"{item.path} does not parse: {item.error}",
            item.line,
        )
        for item in parsed
        if item.tree is None
    ]


def _hooks_tree(parsed: list[ParsedFile]) -> ast.Module | None:
    return next((item.tree for item in parsed if item.path == HOOK_FILE), None)


def _check_hooks(parsed: list[ParsedFile], kind: TargetType | None) -> list[Finding]:
    """custom.py's hooks take what the runtime passes them, and a classifier's return probabilities."""
    tree = _hooks_tree(parsed)
    if tree is None:
        return []
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    model_format = format_of(functions)
    findings = [
        Finding(HOOK_FILE, "hook-signature", problem, node.lineno)
        for name, node in functions.items()
        if (problem := hook_signature_problem(model_format, name, node.args)) is not None
    ]
    hook = "score" if model_format == DRUM_HOOKS else "predict" if model_format == CMKIT_HOOKS else None
    if kind is not None and kind.is_classification and hook in functions:
        calls = _method_calls(functions[hook])
        if "predict" in calls and not calls & PROBABILITY_METHODS:
            findings.append(
                Finding(
                    HOOK_FILE,
                    "hooks-not-probabilities",
                    f"{hook}() calls .predict() and no .predict_proba(): a {kind} model returns one probability "
                    "per class label; return model.predict_proba(X) (named by model.classes_)",
                    functions[hook].lineno,
                    severity="warning",
                )
            )
    return findings


PROBABILITY_METHODS = frozenset({"predict_proba", "predict_log_proba", "decision_function", "softmax", "sigmoid"})


def _method_calls(function: ast.AST) -> set[str]:
    return {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
    }


# How the runtime (and DRUM) calls each hook: positional arguments, and keywords it passes.
HOOK_CALLS: dict[str, dict[str, tuple[int, bool]]] = {
    CMKIT_HOOKS: {"load_model": (1, False), "predict": (2, False)},
    DRUM_HOOKS: {
        "load_model": (1, False),
        "transform": (2, False),
        "score": (2, True),  # DRUM passes the target type and labels as keyword arguments
        "post_process": (2, False),
    },
}
HOOK_USAGE = {
    "load_model": "load_model(code_dir)",
    "predict": "predict(model, X)",
    "transform": "transform(data, model)",
    "score": "score(data, model, **kwargs)",
    "post_process": "post_process(predictions, model)",
}


def hook_signature_problem(model_format: str, name: str, args: ast.arguments) -> str | None:
    """Why a hook cannot take the call the runtime makes, or None."""
    call = HOOK_CALLS.get(model_format, {}).get(name)
    if call is None:
        return None
    positional, keywords = call
    params = [*args.posonlyargs, *args.args]
    required = len(params) - len(args.defaults)
    if (len(params) < positional and args.vararg is None) or required > positional:
        return f"{name}() takes {len(params)} positional parameter(s); the runtime calls {HOOK_USAGE[name]}"
    if keywords and args.kwarg is None:
        return f"{name}() has no **kwargs; DRUM passes the target type and labels as keywords: {HOOK_USAGE[name]}"
    return None


def _check_imports(
    parsed: list[ParsedFile],
    files: list[str],
    requirements: DependencyReport | None,
    packages: EnvironmentPackages | None,
    meta: ModelMetadata | None,
) -> list[Finding]:
    """Modules the code imports that neither requirements.txt nor the environment installs."""
    if packages is None:
        return []
    listed = provided_modules(d.package_name for d in requirements.dependencies) if requirements else set()
    # A DataRobot environment named by ID is not known here: what it lacks is a warning, not an error.
    remote = bool(meta and meta.environment_id)
    missing = [use for use in scan_imports(parsed, local_modules(files)) if use.module not in listed | packages.modules]
    return [
        Finding(
            use.file,
            "import-not-in-requirements",
            f"{use.file} imports {use.module}, which neither requirements.txt nor "
            f"{'cmkit' + chr(39) + 's default' if remote else 'the'} environment installs: add "
            f"{pip_name_for(use.module)} to requirements.txt",
            use.line,
            "warning" if remote else "error",
        )
        for use in missing
    ]


def _check_conflicts(requirements: DependencyReport | None, packages: EnvironmentPackages | None) -> list[Finding]:
    """Requirements known to break beside what the environment pins (NumPy 2's ABI)."""
    if requirements is None or packages is None:
        return []
    entries = [
        (d.package_name, ",".join(f"{c.constraint_type}{c.version}" for c in d.constraints), d.line_number)
        for d in requirements.dependencies
    ]
    return [
        Finding(
            REQUIREMENTS_FILE,
            "requirement-conflict",
            f"{c.package}{c.specifier} beside the environment's {c.environment_package}=={c.environment_version}: "
            f"{c.why}. Allow {c.package}>={c.first_good}",
            c.line,
        )
        for c in find_conflicts(entries, packages)
    ]


BUNDLE_MARKERS = (START_SCRIPT, METADATA_FILE)


def bundles_of_files(files: Iterable[str | Path]) -> list[Path]:
    """The bundle folders holding these files: the nearest ancestor with a start script or metadata."""
    found: dict[Path, None] = {}
    for name in files:
        for folder in Path(name).absolute().parents:
            if any((folder / marker).exists() for marker in BUNDLE_MARKERS):
                found[folder] = None
                break
    cwd = Path.cwd()
    return [p.relative_to(cwd) if p.is_relative_to(cwd) else p for p in found]
