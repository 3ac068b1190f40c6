"""Load the model in a bundle, whatever its format, into one `predict(frame)` callable.

The format is decided once, when the model loads, from what `custom.py` defines:

1. `predict` (and no `score`): cmkit hooks, `load_model(code_dir)` then `predict(model, X)`.
2. `score`: DRUM hooks, with DRUM's order and meaning: `init(code_dir=...)`, `load_model(code_dir)`
   (else the artifact), then per request `transform(data, model)`, `score(data, model, **kwargs)`
   returning a DataFrame, `post_process(predictions, model)`. Every hook is optional.
3. Neither: DRUM's built-in path for an artifact: the one artifact file at the top of the bundle
   (`.pkl`, `.joblib`, `.onnx`, `.h5`, `.pth`), or what `load_model` returns, with `transform` and
   `post_process` hooks if defined, scored by its framework's predictor (cmkit_runtime/artifacts.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cmkit_runtime.artifacts import LoadError as LoadError  # raised by load(), caught by the server
from cmkit_runtime.artifacts import load_artifact, scorer
from cmkit_runtime.chat import CHAT_ROUTES, NO_CHAT, ChatHooks
from cmkit_runtime.formats import (
    ARTIFACT,
    CMKIT_HOOKS,
    DRUM_HOOK_NAMES,
    HOOK_FILE,
    HOOK_MODULE,
    OTHER_ARTIFACTS,
    SCORE_UNSTRUCTURED,
    SUPPORTED_ARTIFACTS,
    TRANSFORM_HOOK,
    artifacts_in,
    format_of,
    is_r_bundle,
)
from cmkit_runtime.outputs import PREDICTIONS_COLUMN, BadPredictions, order_by_labels, same_label, single_column
from cmkit_runtime.target import Target
from cmkit_runtime.target_types import LabelKind
from cmkit_runtime.transform import ROUTES as TRANSFORM_ROUTES
from cmkit_runtime.transform import BadTransform, Transformer, artifact_transformer, hook_transformer
from cmkit_runtime.unstructured import ROUTES, BadUnstructured, Scorer, load_unstructured

UNSTRUCTURED_FORMAT = "drum-unstructured"
TRANSFORM_FORMAT = "drum-transform"


@dataclass(frozen=True)
class LoadedModel:
    format: str
    hooks: tuple[str, ...]
    artifact: str | None
    predict: Callable[[pd.DataFrame], Any]  # a request's frame -> raw output for format_predictions
    source: str  # what produces the output, for messages: "predict()", "score()"...
    # An unstructured model's scorer (unstructured.py): the request's body, Content-Type, query
    # and headers -> the answer. None for the other types, which predict frames.
    unstructured: Scorer | None = None
    # What chat.py serves: the loaded model (load_model's result or the artifact) and its chat hooks.
    instance: Any = None
    chat: ChatHooks = NO_CHAT
    predicts: bool = True  # False: chat() only, every prediction request is refused
    # A transform model's transformer (transform.py): features and target frames -> the frame.
    transformer: Transformer | None = None


# Models load in a background thread (server.ModelHolder); a process holding several apps (a test
# run) must not interleave one bundle's path and module changes with another's import.
_IMPORTING = threading.Lock()


def detect(code_dir: Path) -> tuple[Any, str]:
    """Import custom.py (if any) and name the format its hooks make."""
    with _IMPORTING:
        # First on the path, as DRUM puts it: custom.py, and the classes a pickled artifact names
        # (python3_pytorch's PyTorch.py), are imported from the bundle.
        if sys.path[:1] != [str(code_dir)]:
            if str(code_dir) in sys.path:
                sys.path.remove(str(code_dir))
            sys.path.insert(0, str(code_dir))
        if not (code_dir / HOOK_FILE).is_file():
            return None, ARTIFACT
        offer_drum_shim()
        _forget_other_bundle(code_dir)
        module = importlib.import_module(HOOK_MODULE)
    return module, format_of(name for name in dir(module) if callable(getattr(module, name)))


def _forget_other_bundle(code_dir: Path) -> None:
    """Drop a `custom` module imported from another folder, so this bundle's own is imported.

    A served process loads one bundle, but a process that loads several in turn (a test run, an
    embedding) would otherwise get the first bundle's hooks from Python's module cache, silently.
    """
    cached = sys.modules.get(HOOK_MODULE)
    origin = getattr(cached, "__file__", None)
    if cached is not None and (origin is None or Path(origin).resolve().parent != code_dir.resolve()):
        del sys.modules[HOOK_MODULE]


DRUM_SHIM = Path(__file__).resolve().parent / "drum_shim"


def offer_drum_shim() -> None:
    """`from datarobot_drum import RuntimeParameters` works without DRUM: the shim, last on the path.

    Where DRUM is installed (cmkit's DRUM-based environment), DRUM's own module is found first.
    """
    if importlib.util.find_spec("datarobot_drum") is None and str(DRUM_SHIM) not in sys.path:
        sys.path.append(str(DRUM_SHIM))


def load(code_dir: Path, target: Target) -> LoadedModel:
    if is_r_bundle(code_dir):
        return _r(code_dir, target)
    module, model_format = detect(code_dir)
    if target.type.unstructured:
        return _unstructured(module, code_dir)
    if target.type.transforms:
        return _transform(module, code_dir)
    if model_format == CMKIT_HOOKS:
        return _cmkit(module, code_dir)
    return _drum(module, code_dir, target, model_format)


def _r(code_dir: Path, target: Target) -> LoadedModel:
    """An R bundle (custom.R, .rds): rpy2 and R are imported here, and only here."""
    from cmkit_runtime import rmodels

    if not (target.type.unstructured or target.type.numeric_predictions or target.is_classification):
        raise LoadError(
            f"an R model serves a regression, binary, multiclass, anomaly or unstructured target, not {target.type}"
        )
    session, model, hooks, artifact = rmodels.start(code_dir)
    if target.type.unstructured:
        if SCORE_UNSTRUCTURED not in hooks:
            raise LoadError("an unstructured R model needs score_unstructured(model, data, query, ...) in custom.R")
        serve = rmodels.unstructured_scorer(session, model)
        return LoadedModel(rmodels.R_FORMAT, hooks, artifact, _refuse_frames, f"{SCORE_UNSTRUCTURED}()", serve, model)
    r_model = rmodels.RModel(session, model, target, hooks)
    return LoadedModel(rmodels.R_FORMAT, hooks, artifact, r_model.predict, r_model.source, None, model)


def _refuse_frames(_frame: pd.DataFrame) -> Any:
    raise BadPredictions(f"an unstructured model answers on {ROUTES[0]}, not with predictions")


def _chat_only(hooks: ChatHooks) -> Callable[[pd.DataFrame], Any]:
    """A model that defines chat() and no score(): DataRobot asks it on /chat/completions only."""

    def refuse(_data: pd.DataFrame) -> Any:
        raise BadPredictions(f"this model defines {', '.join(hooks.names)} and no score(): ask it on {CHAT_ROUTES[0]}")

    return refuse


def _cmkit(module: Any, code_dir: Path) -> LoadedModel:
    load_model = getattr(module, "load_model", None)
    model = load_model(str(code_dir)) if callable(load_model) else None
    chat = ChatHooks.of(module)
    hooks = tuple(name for name in ("load_model", "predict") if callable(getattr(module, name, None))) + chat.names
    predict = module.predict
    return LoadedModel(CMKIT_HOOKS, hooks, None, lambda frame: predict(model, frame), "predict()", None, model, chat)


def _unstructured(module: Any, code_dir: Path) -> LoadedModel:
    def default(folder: Path) -> tuple[Any, str | None]:
        artifact = find_artifact(folder)
        return load_artifact(artifact), artifact.name

    try:
        serve, hooks, artifact = load_unstructured(module, code_dir, default)
    except BadUnstructured as exc:
        raise LoadError(str(exc)) from None

    return LoadedModel(UNSTRUCTURED_FORMAT, hooks, artifact, _refuse_frames, f"{SCORE_UNSTRUCTURED}()", serve)


def _transform(module: Any, code_dir: Path) -> LoadedModel:
    """DRUM's transform model: init, load_model (else the artifact), then transform() per request."""
    hook = _hook(module, TRANSFORM_HOOK)
    model, artifact = _initialised_model(module, code_dir)
    try:
        run = hook_transformer(hook, model) if hook else artifact_transformer(model)
    except BadTransform as exc:
        raise LoadError(str(exc)) from None
    if run is None:  # DRUM's words: only a scikit-learn transformer serves without the hook
        raise LoadError("A transform task requires a user-defined transform hook for non-sklearn transformers")

    def refuse(_frame: pd.DataFrame) -> Any:
        raise BadPredictions(f"a transform model answers on {TRANSFORM_ROUTES[0]}, not with predictions")

    hooks = tuple(name for name in ("init", "load_model", TRANSFORM_HOOK) if _hook(module, name))
    source = "transform()" if hook else f"the {type(model).__name__} artifact"
    name = artifact.name if artifact else None
    return LoadedModel(TRANSFORM_FORMAT, hooks, name, refuse, source, None, model, transformer=run)


def _initialised_model(module: Any, code_dir: Path) -> tuple[Any, Path | None]:
    """DRUM's start: init(code_dir=...), then load_model()'s object, else the artifact's (and its path)."""
    init, load_model = _hook(module, "init"), _hook(module, "load_model")
    if init:
        init(code_dir=str(code_dir))
    if load_model:
        return load_model(str(code_dir)), None
    artifact = find_artifact(code_dir)
    return load_artifact(artifact), artifact


def _hook(module: Any, name: str) -> Callable[..., Any] | None:
    hook = getattr(module, name, None) if module is not None else None
    return hook if callable(hook) else None


def _drum(module: Any, code_dir: Path, target: Target, model_format: str) -> LoadedModel:
    chat = ChatHooks.of(module)
    hooks = tuple(name for name in DRUM_HOOK_NAMES if _hook(module, name)) + chat.names
    model, artifact = _initialised_model(module, code_dir)
    score = _hook(module, "score")
    # score() first; a chat()-only model refuses predictions; else the artifact's own scorer.
    run = _score_hook(score, model, target) if score else _chat_only(chat) if chat.chat else scorer(model, target)
    transform, post_process = _hook(module, "transform"), _hook(module, "post_process")

    def predict(frame: pd.DataFrame) -> Any:
        data = frame
        if transform:
            data = _frame_from_hook(transform(frame, model), "transform")
            if len(data) != len(frame):
                raise BadPredictions(f"transform() returned {len(data)} rows for {len(frame)}")
        raw = run(data)
        if score and post_process is None and not target.is_classification and isinstance(raw, pd.DataFrame):
            # What marshal then unmarshal would hand back, without the Predictions frame built
            # only to be unwrapped (~80 us of a single-row request)
            return single_column(raw, target)
        predictions = marshal(raw, target)
        if post_process:
            predictions = _frame_from_hook(post_process(predictions, model), "post_process")
        return unmarshal(predictions, target)

    source = "post_process()" if post_process else "score()" if score else f"the {type(model).__name__} artifact"
    chat_only = not score and chat.chat is not None
    artifact_name = artifact.name if artifact else None
    return LoadedModel(model_format, hooks, artifact_name, predict, source, None, model, chat, not chat_only)


def _frame_from_hook(value: Any, hook: str) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, np.ndarray):
        frame: pd.DataFrame = pd.DataFrame(value)
        return frame
    raise BadPredictions(f"{hook}() must return a DataFrame, not {type(value).__name__}")


def score_kwargs(target: Target) -> dict[str, Any]:
    """The keyword arguments DRUM passes to `score`."""
    kwargs: dict[str, Any] = {"target_type": target.type.drum_name}
    if target.type.label_kind is LabelKind.PAIR:
        kwargs["positive_class_label"], kwargs["negative_class_label"] = target.labels
    elif target.type.label_kind is LabelKind.LIST:
        kwargs["class_labels"] = list(target.labels)
    return kwargs


def _score_hook(score: Callable[..., Any], model: Any, target: Target) -> Callable[[pd.DataFrame], Any]:
    kwargs = score_kwargs(target)

    def run(data: pd.DataFrame) -> Any:
        result = score(data, model, **kwargs)
        if not isinstance(result, pd.DataFrame):
            raise BadPredictions(f"score() must return a DataFrame, not {type(result).__name__}")
        return result

    return run


def marshal(raw: Any, target: Target) -> pd.DataFrame:
    """Output as DRUM hands it to post_process: a Predictions column, or one column per label."""
    if target.is_classification:
        frame = raw if isinstance(raw, pd.DataFrame) else pd.DataFrame(np.asarray(raw))
        if frame.shape[1] > len(target.labels):  # DRUM sets extra output columns aside
            frame = frame[[c for c in frame.columns if any(same_label(c, label) for label in target.labels)]]
        positions = order_by_labels(list(frame.columns), target.labels)
        if positions is None:
            raise BadPredictions(
                f"the model's columns {[str(c) for c in frame.columns]} are not the class labels {list(target.labels)}"
            )
        ordered: pd.DataFrame = frame.iloc[:, positions].set_axis(list(target.labels), axis=1)
        return ordered
    if isinstance(raw, pd.DataFrame):
        column = single_column(raw, target)
    else:
        column = np.asarray(raw)
        if column.ndim == 2 and column.shape[1] == 1:
            column = column[:, 0]
    predictions: pd.DataFrame = pd.DataFrame({PREDICTIONS_COLUMN: column})
    return predictions


def unmarshal(frame: pd.DataFrame, target: Target) -> Any:
    return frame if target.is_classification else single_column(frame, target)


def find_artifact(code_dir: Path) -> Path:
    """The one loadable artifact at the top of the bundle, as DRUM finds it."""
    found, other = artifacts_in(code_dir)
    if len(found) > 1:
        raise LoadError(
            f"more than one model artifact in {code_dir}: {', '.join(p.name for p in found)}; keep one, "
            "or load them yourself in custom.py's load_model()"
        )
    if found:
        return found[0]
    if other:
        reason = OTHER_ARTIFACTS[other[0].suffix.lower()]
        raise LoadError(f"{other[0].name}: {reason} (built-in artifacts: {', '.join(SUPPORTED_ARTIFACTS)})")
    raise LoadError(
        f"no model in {code_dir}: add custom.py with load_model() and predict() (cmkit) or score() (DRUM), "
        f"or one artifact ({', '.join(SUPPORTED_ARTIFACTS)})"
    )
