"""The model formats the runtime loads, and the rule that tells them apart.

Light on purpose (standard library only): `cmkit lint` applies the same rule statically, to the
names custom.py defines, without importing the model or pandas.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePath

CMKIT_HOOKS = "cmkit-hooks"
DRUM_HOOKS = "drum-hooks"
ARTIFACT = "artifact"
HOOK_MODULE = "custom"
HOOK_FILE = f"{HOOK_MODULE}.py"
CMKIT_HOOK_NAMES = ("load_model", "predict")
TRANSFORM_HOOK = "transform"  # DRUM's hook (and scikit-learn's method) of the same name as the target type
DRUM_HOOK_NAMES = ("init", "load_model", TRANSFORM_HOOK, "score", "post_process")
# Artifacts DRUM's built-in predictors load (cmkit_runtime/artifacts.py), with the package each needs.
ARTIFACT_PACKAGES = {
    ".pkl": "scikit-learn",  # or whichever library pickled it (xgboost, lightgbm...)
    ".joblib": "joblib",
    ".onnx": "onnxruntime",
    ".h5": "tensorflow",
    ".pth": "torch",
}
SUPPORTED_ARTIFACTS = tuple(ARTIFACT_PACKAGES)
# Model files no built-in Python predictor loads, and why (lint and the runtime's errors say it).
OTHER_ARTIFACTS = {
    ".keras": "DRUM loads Keras models from .h5 only: save with model.save('model.h5') or load it in load_model()",
    ".xgb": "DRUM loads XGBoost models from .pkl only: pickle the Booster, or load it in load_model()",
    ".ubj": "DRUM loads XGBoost models from .pkl only: pickle the Booster, or load it in load_model()",
    ".pt": "DRUM loads PyTorch modules from .pth only: rename it, or load it in load_model()",
    ".pmml": "no built-in predictor reads PMML: load it in load_model() (e.g. pypmml) and score with score()",
    ".jar": "a Java model: DataRobot runs it in its Java drop-in environment, cmkit's runtime serves Python only",
    ".mojo": "an H2O/DataRobot MOJO: DataRobot runs it in its Java drop-in environment, not a Python runtime",
    ".rds": "an R model, which is served in R only when the bundle has no custom.py (custom.R, or the .rds alone)",
}
# R models (cmkit_runtime/rmodels.py): DRUM's custom.R hooks and .rds artifacts.
R_HOOK_FILES = ("custom.R", "custom.r")  # DRUM looks for custom.R, then custom.r
R_ARTIFACT = ".rds"
SCORE_UNSTRUCTURED = "score_unstructured"  # DRUM's hook of unstructured models (unstructured.py)
R_HOOK_NAMES = (*DRUM_HOOK_NAMES, "read_input_data", SCORE_UNSTRUCTURED)  # DRUM's R hooks
CHAT_HOOK = "chat"  # DRUM's chat completions hook (chat.py)
UNSTRUCTURED_ROUTES = ("/predictUnstructured/", "/predictionsUnstructured/")  # DRUM serves both names
TRANSFORM_ROUTES = ("/transform/",)  # DRUM's route of transform models (transform.py)


def format_of(defined: Iterable[str]) -> str:
    """`score` makes DRUM hooks; else `predict` makes cmkit hooks; else DRUM's other entry points
    (chat, score_unstructured) make DRUM hooks; else the artifact path."""
    names = set(defined)
    if "score" in names:
        return DRUM_HOOKS
    if "predict" in names:
        return CMKIT_HOOKS
    if names & {CHAT_HOOK, SCORE_UNSTRUCTURED}:
        return DRUM_HOOKS
    return ARTIFACT


def artifacts_in(code_dir: Path) -> tuple[list[Path], list[Path]]:
    """Top-level files of the bundle: (loadable artifacts, artifacts of other frameworks), as DRUM looks."""
    files = sorted(p for p in code_dir.iterdir() if p.is_file())
    loadable = [p for p in files if p.suffix.lower() in SUPPORTED_ARTIFACTS]
    others = [p for p in files if p.suffix.lower() in OTHER_ARTIFACTS]
    return loadable, others


def r_hook_file(code_dir: Path) -> str | None:
    """custom.R (or custom.r) at the top of the bundle, as DRUM looks for it."""
    return next((name for name in R_HOOK_FILES if (code_dir / name).is_file()), None)


def r_artifacts_in(code_dir: Path) -> list[Path]:
    return sorted(p for p in code_dir.iterdir() if p.is_file() and p.suffix.lower() == R_ARTIFACT)


def is_r_bundle(code_dir: Path) -> bool:
    """An R model: no custom.py, and custom.R or an .rds artifact (DRUM picks its R predictor so)."""
    return is_r_file_set(p.name for p in code_dir.iterdir() if p.is_file())


def is_r_file_set(top_level: Iterable[str]) -> bool:
    """`is_r_bundle`'s rule on the names of a bundle's top-level files (an upload's, before it is a folder)."""
    names = set(top_level)
    if HOOK_FILE in names:
        return False
    return bool(names & set(R_HOOK_FILES)) or any(PurePath(name).suffix.lower() == R_ARTIFACT for name in names)
