"""Model artifacts as DRUM's built-in predictors load and score them, one framework at a time.

Loading goes by the file's extension (`formats.ARTIFACT_PACKAGES`): `.pkl` (pickle), `.joblib`,
`.onnx` (an onnxruntime InferenceSession), `.h5` (tensorflow.keras, compile=False), `.pth` (a whole
pickled torch module, put in eval mode). Scoring goes by the loaded object, whatever loaded it (an
artifact or custom.py's `load_model`), tried in DRUM's order: Keras, XGBoost's native Booster,
PyTorch, then anything with `predict` / `predict_proba` (scikit-learn, XGBoost's and LightGBM's
wrappers, pipelines), then ONNX.

A framework is imported only when its artifact is in the bundle: an object can only belong to a
framework whose module is already imported (`sys.modules`), so recognising one imports nothing.
A framework that is not installed is one line naming the package to add to requirements.txt.

The scorer returns what `loader.marshal` reads: for classifiers a DataFrame with one column per
class label, for other targets the raw predictions.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from cmkit_runtime.formats import ARTIFACT_PACKAGES
from cmkit_runtime.target import Target

Scorer = Callable[[pd.DataFrame], Any]


class LoadError(Exception):
    """The bundle holds no model this runtime can load; the message says what to fix."""


def framework(module: str, package: str, what: str) -> ModuleType:
    """Import a model's framework, or say which package requirements.txt lacks."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LoadError(f"{what} needs {package}: add {package} to the bundle's requirements.txt ({exc})") from None


def load_artifact(path: Path) -> Any:
    """The object in an artifact file, loaded as DRUM's predictor for its extension loads it."""
    suffix = path.suffix.lower()
    package = ARTIFACT_PACKAGES[suffix]
    if suffix == ".joblib":
        return framework("joblib", package, path.name).load(path)
    if suffix == ".onnx":
        return framework("onnxruntime", package, path.name).InferenceSession(str(path))
    if suffix == ".h5":
        models = framework("tensorflow.keras.models", package, path.name)
        return models.load_model(str(path), compile=False)
    if suffix == ".pth":
        model = framework("torch", package, path.name).load(path, weights_only=False)  # a whole module, as DRUM
        model.eval()
        return model
    with path.open("rb") as handle:
        return pickle.load(handle)  # the bundle's own artifact, loaded as DRUM loads it


def _loaded(module: str) -> ModuleType | None:
    """The framework's module if the model process imported it already (else no object can be one of its)."""
    return sys.modules.get(module)


def _final_step(model: Any) -> Any:
    """A scikit-learn pipeline's last estimator (DRUM recognises a pipeline by it), else the model."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if isinstance(steps, list) and steps else model


def is_keras(model: Any) -> bool:
    keras = _loaded("keras") or _loaded("tensorflow.keras")
    return keras is not None and isinstance(_final_step(model), keras.Model)


def is_booster(model: Any) -> bool:
    xgboost = _loaded("xgboost")
    return xgboost is not None and isinstance(model, xgboost.Booster)


def is_torch(model: Any) -> bool:
    nn = _loaded("torch.nn")
    return nn is not None and isinstance(model, nn.Module)


def is_onnx(model: Any) -> bool:
    onnxruntime = _loaded("onnxruntime")
    return onnxruntime is not None and isinstance(model, onnxruntime.InferenceSession)


def scorer(model: Any, target: Target) -> Scorer:
    """DRUM's predictor for this object: a request's frame -> raw predictions (see the module doc)."""
    if is_keras(model):
        return _probabilities_or_values(lambda data: model.predict(data), target)
    if is_booster(model):
        dmatrix = sys.modules["xgboost"].DMatrix
        return _probabilities_or_values(lambda data: model.predict(dmatrix(data)), target)
    if is_torch(model):
        return _probabilities_or_values(_torch_forward(model), target)
    if not is_onnx(model):
        return _estimator(model, target)
    return _probabilities_or_values(_onnx_run(model, target), target)


def _estimator(model: Any, target: Target) -> Scorer:
    """scikit-learn-style objects: predict_proba with classes_ for classifiers, predict otherwise."""
    if target.is_classification:
        if not callable(getattr(model, "predict_proba", None)):
            raise LoadError(f"a {target.type} model needs predict_proba(); {type(model).__name__} has none")
        classes = getattr(model, "classes_", None)
        if classes is not None:
            columns = [str(c) for c in classes]
            return lambda data: pd.DataFrame(np.asarray(model.predict_proba(data)), columns=columns)
        return _probabilities_or_values(lambda data: model.predict_proba(data), target)
    if not callable(getattr(model, "predict", None)):
        raise LoadError(f"the artifact's {type(model).__name__} has no predict(); add a score() hook in custom.py")
    return lambda data: model.predict(data)


def request_labels(target: Target) -> list[str]:
    """The column order DRUM reads unlabelled probabilities in: the declared labels, [positive, negative] for binary.

    Measured on DRUM 1.18.1 (`drum server` and `drum score` with --positive-class-label and
    --negative-class-label, as DataRobot starts it): a two-column output without class names is
    read as [positive, negative], and a one-column output as the probability of the second,
    the negative label (the positive one gets 1 - p).
    """
    return list(target.labels)


def _probabilities_or_values(run: Scorer, target: Target) -> Scorer:
    """Outputs without class names: probabilities in DRUM's label order (see request_labels)."""
    if not target.is_classification:
        return run
    labels = request_labels(target)

    def probabilities(data: pd.DataFrame) -> pd.DataFrame:
        values = np.asarray(run(data), dtype=float)
        if values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1):
            positive = values.reshape(-1)
            values = np.column_stack([1.0 - positive, positive]) if len(labels) == 2 else values.reshape(-1, 1)
        frame: pd.DataFrame = pd.DataFrame(values, columns=labels if values.shape[1] == len(labels) else None)
        return frame

    return probabilities


def _torch_forward(model: Any) -> Scorer:
    torch = sys.modules["torch"]

    def forward(data: pd.DataFrame) -> np.ndarray:
        tensor = torch.from_numpy(np.asarray(data.to_numpy(), dtype=np.float32))
        with torch.no_grad():
            output: np.ndarray = model(tensor).cpu().numpy()
        return output

    return forward


def _onnx_run(session: Any, target: Target) -> Scorer:
    """The session's first input gets the frame as float32; which output is read follows DRUM's rule."""
    input_name = session.get_inputs()[0].name
    output_names = [output.name for output in session.get_outputs()]
    # Several outputs (a classifier's label and probabilities): the first whose name has "prob", else the first.
    read = 0
    if len(output_names) > 1 and target.is_classification:
        read = next((i for i, name in enumerate(output_names) if "prob" in name), 0)

    infer = session.run  # onnxruntime's inference (named apart: the runtime never starts Flask's server)

    def run(data: pd.DataFrame) -> Any:
        outputs = infer(None, {input_name: data.to_numpy(np.float32)})
        result = outputs[read]
        if isinstance(result, list):  # ZipMap: one {label: probability} per row, read in its key order
            return pd.DataFrame(result).to_numpy()
        return result

    return run
