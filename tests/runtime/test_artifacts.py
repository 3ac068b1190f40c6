"""cmkit_runtime/artifacts.py: DRUM's artifact rules, cheaply (the templates' real models are in
test_frameworks.py and test_heavy_frameworks.py, slow)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cmkit_runtime.artifacts import LoadError, load_artifact, request_labels, scorer
from cmkit_runtime.target import Target

BINARY = Target("binary", ("yes", "no"))
MULTICLASS = Target("multiclass", ("a", "b", "c"))
REGRESSION = Target("regression")
FRAME = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})


@pytest.mark.parametrize(
    ("name", "module", "package"),
    [
        ("m.onnx", "onnxruntime", "onnxruntime"),
        ("m.h5", "tensorflow.keras.models", "tensorflow"),
        ("m.pth", "torch", "torch"),
        ("m.joblib", "joblib", "joblib"),
    ],
)
def test_a_missing_framework_is_one_line_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, module: str, package: str
) -> None:
    (tmp_path / name).write_bytes(b"x")
    monkeypatch.setitem(sys.modules, module, None)  # `import` fails, as in an image without it
    with pytest.raises(LoadError) as raised:
        load_artifact(tmp_path / name)
    message = str(raised.value)
    assert message.startswith(f"{name} needs {package}: add {package} to the bundle's requirements.txt")
    assert "\n" not in message


class Estimator:
    def __init__(self, output: Any) -> None:
        self.output = output

    def predict_proba(self, data: pd.DataFrame) -> Any:
        return self.output

    def predict(self, data: pd.DataFrame) -> Any:
        return self.output


@pytest.mark.parametrize(
    ("target", "output", "expected"),
    [
        # DRUM's order for unlabelled columns, measured on drum server: [positive, negative] ...
        (BINARY, [[0.8, 0.2], [0.1, 0.9]], [[0.8, 0.2], [0.1, 0.9]]),
        # ... and a single column is the negative label's probability.
        (BINARY, [0.25, 0.5], [[0.75, 0.25], [0.5, 0.5]]),
        (BINARY, [[0.25], [0.5]], [[0.75, 0.25], [0.5, 0.5]]),
        (MULTICLASS, [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]),
    ],
)
def test_probabilities_without_class_names_follow_drums_label_order(
    target: Target, output: Any, expected: list[list[float]]
) -> None:
    frame = scorer(Estimator(np.asarray(output)), target)(FRAME)
    assert list(frame.columns) == request_labels(target) == list(target.labels)
    assert frame.to_numpy().tolist() == expected


def test_a_regressor_is_predicted_as_is_and_a_classifier_without_predict_proba_is_refused() -> None:
    assert scorer(Estimator([1.5, 2.5]), REGRESSION)(FRAME) == [1.5, 2.5]
    with pytest.raises(LoadError, match="a binary model needs predict_proba"):
        scorer(object(), BINARY)
    with pytest.raises(LoadError, match="has no predict"):
        scorer(object(), REGRESSION)


def fake_framework(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> types.ModuleType:
    """A stand-in module in sys.modules: what makes an object a framework's is that its module is loaded."""
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def test_a_booster_is_scored_on_a_dmatrix_of_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    class DMatrix:
        def __init__(self, data: pd.DataFrame) -> None:
            self.data = data

    class Booster:
        def predict(self, matrix: DMatrix) -> np.ndarray:
            assert isinstance(matrix, DMatrix)  # DRUM wraps the frame: a Booster refuses a DataFrame
            return np.asarray(matrix.data["x"] / 10.0)

    fake_framework(monkeypatch, "xgboost", Booster=Booster, DMatrix=DMatrix)
    assert scorer(Booster(), BINARY)(FRAME).to_numpy().tolist() == [[0.9, 0.1], [0.8, 0.2]]


def test_a_torch_module_gets_a_float32_tensor_without_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    class Module:
        def __call__(self, tensor: np.ndarray) -> Any:
            assert tensor.dtype == np.float32
            return types.SimpleNamespace(cpu=lambda: types.SimpleNamespace(numpy=lambda: tensor.sum(axis=1)))

    class NoGrad:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *args: object) -> None:
            return None

    fake_framework(monkeypatch, "torch.nn", Module=Module)
    fake_framework(monkeypatch, "torch", from_numpy=lambda array: array, no_grad=NoGrad)
    assert scorer(Module(), REGRESSION)(FRAME).tolist() == [4.0, 6.0]


def test_a_keras_model_predicts_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    class Model:
        def predict(self, data: pd.DataFrame) -> np.ndarray:
            return np.asarray(data["y"])

    fake_framework(monkeypatch, "keras", Model=Model)
    assert scorer(Model(), REGRESSION)(FRAME).tolist() == [3.0, 4.0]


def test_an_unloaded_framework_claims_no_object() -> None:
    # A plain estimator while no framework module is a stand-in: the scikit-learn path.
    assert scorer(Estimator([7.0]), REGRESSION)(FRAME) == [7.0]


def test_an_onnx_session_reads_the_probability_output_of_a_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    class InferenceSession:
        def get_inputs(self) -> list[Any]:
            return [types.SimpleNamespace(name="float_input")]

        def get_outputs(self) -> list[Any]:
            return [types.SimpleNamespace(name="output_label"), types.SimpleNamespace(name="output_probability")]

        def run(self, names: None, feeds: dict[str, np.ndarray]) -> list[Any]:
            (array,) = feeds.values()
            assert list(feeds) == ["float_input"] and array.dtype == np.float32
            return [np.array([1, 0]), [{"0": 0.3, "1": 0.7}, {"0": 0.6, "1": 0.4}]]  # ZipMap rows

    fake_framework(monkeypatch, "onnxruntime", InferenceSession=InferenceSession)
    assert scorer(InferenceSession(), BINARY)(FRAME).to_numpy().tolist() == [[0.3, 0.7], [0.6, 0.4]]
    assert scorer(InferenceSession(), REGRESSION)(FRAME).tolist() == [1, 0]  # else the first output
