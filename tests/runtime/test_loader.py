"""cmkit_runtime/loader.py in-process: the three model formats, DRUM's hook order and meaning, and
the artifact path, on real bundles written to tmp_path (custom.py, pickled and joblib artifacts).

The runtime's servers run the same code in their workers (tests/runtime/test_drum_formats.py, slow);
here each promise is checked on the `LoadedModel` itself and on what `format_predictions` makes
of its output, as the server sends it. The artifacts are small scikit-learn-style objects of
this module rather than fitted scikit-learn estimators: importing scikit-learn alone costs the
fast tier seconds, and the loader asks no more of an artifact than `predict`, `predict_proba`
and `classes_`.
"""

from __future__ import annotations

import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cmkit_runtime.loader import LoadedModel, LoadError, load, score_kwargs
from cmkit_runtime.outputs import BadPredictions, format_predictions
from cmkit_runtime.target import Target

REGRESSION = Target("regression")
BINARY = Target("binary", ("yes", "no"))
MULTICLASS = Target("multiclass", ("a", "b", "c"))
FRAME = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


class Doubler:
    """A regressor: predict(X) = 2 * x."""

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return np.asarray(data["x"], dtype=float) * 2.0


class Classifier:
    """A classifier whose classes_ are in its own order, not the declared one."""

    def __init__(self, classes: list[Any] | None) -> None:
        if classes is not None:
            self.classes_ = np.array(classes)

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray:
        width = len(getattr(self, "classes_", [])) or 2
        first = np.full(len(data), 0.7)
        rest = np.full((len(data), width - 1), 0.3 / (width - 1))
        return np.column_stack((first, rest))


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[Path]:
    """An empty bundle folder; its custom.py is imported afresh, and the import leaves no trace."""
    saved_path = list(sys.path)
    sys.modules.pop("custom", None)
    yield tmp_path
    sys.modules.pop("custom", None)
    sys.path[:] = saved_path


def write_custom(bundle: Path, source: str) -> None:
    (bundle / "custom.py").write_text(textwrap.dedent(source))


def pickle_to(path: Path, model: object) -> None:
    with path.open("wb") as handle:
        pickle.dump(model, handle)


def sent(model: LoadedModel, target: Target, frame: pd.DataFrame = FRAME) -> Any:
    """What the server answers for `frame`: the model's output through format_predictions."""
    predictions = format_predictions(model.predict(frame), target, len(frame), model.source)
    return predictions.tolist() if isinstance(predictions, np.ndarray) else predictions


def test_cmkit_hooks_load_once_and_predict_with_the_model(bundle: Path) -> None:
    write_custom(
        bundle,
        """
        from pathlib import Path

        def load_model(code_dir):
            return float((Path(code_dir) / "offset.txt").read_text())

        def predict(model, X):
            return X["x"] + model
        """,
    )
    (bundle / "offset.txt").write_text("0.5")
    model = load(bundle, REGRESSION)
    assert (model.format, model.hooks, model.artifact, model.source) == (
        "cmkit-hooks",
        ("load_model", "predict"),
        None,
        "predict()",
    )
    assert sent(model, REGRESSION) == [1.5, 2.5, 3.5]


def test_a_second_bundle_in_the_same_process_gets_its_own_hooks(bundle: Path) -> None:
    # Both custom.py files are imported as `custom`: the first one must not answer for the second
    # (a test run loads many bundles in one process; it once exited the run with code 4).
    first, second = bundle / "first", bundle / "second"
    for folder, value in ((first, 1), (second, 2)):
        folder.mkdir()
        write_custom(folder, f"def predict(model, X):\n    return X['x'] * 0 + {value}\n")
    assert sent(load(first, REGRESSION), REGRESSION) == [1, 1, 1]
    assert sent(load(second, REGRESSION), REGRESSION) == [2, 2, 2]
    assert sent(load(first, REGRESSION), REGRESSION) == [1, 1, 1]  # and back


def test_bundles_loading_at_once_in_one_process_each_get_their_own_hooks(bundle: Path) -> None:
    # Models load in background threads: several apps in one process (a test run) once raced on
    # sys.path and the module cache, and a failed load ends the process (the server's rule).
    import concurrent.futures

    folders = []
    for value in range(4):
        folder = bundle / f"b{value}"
        folder.mkdir()
        slow_import = "import time\ntime.sleep(0.01)\n"  # widens the window the race needed
        write_custom(folder, f"{slow_import}def predict(model, X):\n    return X['x'] * 0 + {value}\n")
        folders.append((folder, value))

    def loaded(job: tuple[Path, int]) -> bool:
        folder, value = job
        return bool(sent(load(folder, REGRESSION), REGRESSION) == [value] * 3)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(loaded, folders * 10))


def test_cmkit_predict_without_load_model_gets_none(bundle: Path) -> None:
    write_custom(bundle, "def predict(model, X):\n    return [0.0 if model is None else 1.0] * len(X)\n")
    model = load(bundle, REGRESSION)
    assert model.hooks == ("predict",) and sent(model, REGRESSION) == [0.0, 0.0, 0.0]


DRUM_HOOKS = """
import pandas as pd

CALLS = []

def init(code_dir, **kwargs):
    CALLS.append(("init", code_dir))

def load_model(code_dir):
    CALLS.append(("load_model", code_dir))
    return {"scale": 10.0}

def transform(data, model):
    CALLS.append(("transform", len(data)))
    return data * model["scale"]

def score(data, model, **kwargs):
    CALLS.append(("score", kwargs))
    return pd.DataFrame({"Predictions": data["x"], "debug": 0})

def post_process(predictions, model):
    CALLS.append(("post_process", list(predictions.columns)))
    return predictions + 1
"""


def test_drum_hooks_run_in_drums_order_with_drums_arguments(bundle: Path) -> None:
    write_custom(bundle, DRUM_HOOKS)
    model = load(bundle, REGRESSION)
    assert model.format == "drum-hooks" and model.source == "post_process()" and model.artifact is None
    assert model.hooks == ("init", "load_model", "transform", "score", "post_process")
    assert sent(model, REGRESSION) == [11.0, 21.0, 31.0]
    calls = sys.modules["custom"].CALLS
    assert calls == [
        ("init", str(bundle)),
        ("load_model", str(bundle)),
        ("transform", 3),
        ("score", {"target_type": "regression"}),
        # DRUM hands post_process the Predictions column alone, the score's extra columns set aside.
        ("post_process", ["Predictions"]),
    ]


def test_score_gets_the_labels_as_drum_passes_them() -> None:
    assert score_kwargs(BINARY) == {
        "target_type": "binary",
        "positive_class_label": "yes",
        "negative_class_label": "no",
    }
    assert score_kwargs(MULTICLASS) == {"target_type": "multiclass", "class_labels": ["a", "b", "c"]}
    assert score_kwargs(Target("anomaly")) == {"target_type": "anomaly"}


# Without load_model (or an artifact), DRUM has no model to hand score(): the bundles below load one.
LOAD = "def load_model(code_dir):\n    return None\n\n"


def test_a_classifiers_score_columns_are_taken_by_label_whatever_their_order(bundle: Path) -> None:
    write_custom(
        bundle,
        """
        import pandas as pd

        def load_model(code_dir):
            return "no artifact"

        def score(data, model, **kwargs):
            n = len(data)
            # Columns in another order than declared, numeric where the labels are strings, and one more.
            return pd.DataFrame({3: [0.5] * n, 1: [0.2] * n, 2: [0.3] * n, "row_id": range(n)})
        """,
    )
    target = Target("multiclass", ("1", "2", "3"))
    model = load(bundle, target)
    assert model.source == "score()" and model.hooks == ("load_model", "score")
    assert sent(model, target, FRAME.head(1)) == [{"1": 0.2, "2": 0.3, "3": 0.5}]


def test_a_score_whose_columns_are_not_the_labels_is_refused_naming_both(bundle: Path) -> None:
    score = "import pandas as pd\n\ndef score(data, model, **kw):\n    return pd.DataFrame({'p': [1]})\n"
    write_custom(bundle, LOAD + score)
    model = load(bundle, BINARY)
    with pytest.raises(BadPredictions, match=r"columns \['p'\] are not the class labels \['yes', 'no'\]"):
        model.predict(FRAME.head(1))


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("def score(data, model, **kw):\n    return [1.0] * len(data)\n", "score() must return a DataFrame, not list"),
        (
            "import pandas as pd\n\ndef score(data, model, **kw):\n    return pd.DataFrame({'a': [1.0], 'b': [2.0]})\n",
            "score() returned columns ['a', 'b']; a regression model returns one column",
        ),
        (
            "def transform(data, model):\n    return data.head(1)\n\ndef score(data, model, **kw):\n    return data\n",
            "transform() returned 1 rows for 3",
        ),
        (
            "def transform(data, model):\n    return data.to_dict()\n\n"
            "def score(data, model, **kw):\n    return data\n",
            "transform() must return a DataFrame, not dict",
        ),
        (
            "import pandas as pd\n\n"
            "def score(data, model, **kw):\n    return pd.DataFrame({'Predictions': data['x']})\n\n"
            "def post_process(predictions, model):\n    return None\n",
            "post_process() must return a DataFrame, not NoneType",
        ),
    ],
)
def test_hooks_returning_the_wrong_thing_are_bad_predictions(bundle: Path, source: str, says: str) -> None:
    write_custom(bundle, LOAD + source)
    model = load(bundle, REGRESSION)
    with pytest.raises(BadPredictions) as raised:
        model.predict(FRAME)
    assert str(raised.value).startswith(says)


def test_a_transform_may_return_an_array(bundle: Path) -> None:
    write_custom(bundle, "def transform(data, model):\n    return data.to_numpy() + 1\n")
    pickle_to(bundle / "model.pkl", Classifier(None))
    model = load(bundle, BINARY)
    assert model.format == "artifact" and model.hooks == ("transform",)
    assert sent(model, BINARY, FRAME.head(1)) == [{"yes": 0.7, "no": 0.3}]  # DRUM order: [positive, negative]


def test_a_pickled_regressor_alone_is_drums_artifact_path(bundle: Path) -> None:
    pickle_to(bundle / "model.pkl", Doubler())
    (bundle / "notes.txt").write_text("not a model")
    model = load(bundle, REGRESSION)
    assert (model.format, model.hooks, model.artifact, model.source) == (
        "artifact",
        (),
        "model.pkl",
        "the Doubler artifact",
    )
    assert sent(model, REGRESSION) == [2.0, 4.0, 6.0]


def test_a_joblib_artifact_loads_too(bundle: Path) -> None:
    import joblib

    joblib.dump(Doubler(), bundle / "model.joblib")
    model = load(bundle, REGRESSION)
    assert model.artifact == "model.joblib" and sent(model, REGRESSION) == [2.0, 4.0, 6.0]


def test_without_joblib_a_joblib_artifact_says_what_to_install(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bundle / "model.joblib").write_bytes(b"unused")
    monkeypatch.setitem(sys.modules, "joblib", None)  # makes `import joblib` fail, as in an image without it
    with pytest.raises(LoadError, match=r"model\.joblib needs joblib: add joblib"):
        load(bundle, REGRESSION)


@pytest.mark.parametrize(
    ("classes", "target", "expected"),
    [
        # classes_ name the columns: numbers match string labels as DRUM matches them.
        ([1, 0], Target("binary", ("1", "0")), {"1": 0.7, "0": 0.3}),
        (["no", "yes"], BINARY, {"no": 0.7, "yes": 0.3}),
        # Without classes_, DRUM's order (measured on `drum server`): the declared labels, [positive, negative].
        (None, BINARY, {"yes": 0.7, "no": 0.3}),
        (["c", "a", "b"], MULTICLASS, {"c": 0.7, "a": 0.15, "b": 0.15}),
    ],
)
def test_a_pickled_classifiers_probabilities_map_to_labels_through_classes(
    bundle: Path, classes: list[Any] | None, target: Target, expected: dict[str, float]
) -> None:
    pickle_to(bundle / "model.pkl", Classifier(classes))
    (row,) = sent(load(bundle, target), target, FRAME.head(1))
    assert row == pytest.approx(expected) and list(row) == list(target.labels)


def test_load_model_replaces_the_artifact_search(bundle: Path) -> None:
    write_custom(
        bundle,
        """
        import pickle
        from pathlib import Path

        def load_model(code_dir):
            return pickle.loads((Path(code_dir) / "weights" / "model.bin").read_bytes())
        """,
    )
    (bundle / "weights").mkdir()
    (bundle / "weights" / "model.bin").write_bytes(pickle.dumps(Doubler()))
    model = load(bundle, REGRESSION)
    assert model.hooks == ("load_model",) and model.artifact is None
    assert sent(model, REGRESSION) == [2.0, 4.0, 6.0]


def test_an_artifact_without_the_method_its_target_needs_fails_to_load(bundle: Path) -> None:
    pickle_to(bundle / "model.pkl", Doubler())
    with pytest.raises(LoadError, match="a binary model needs predict_proba\\(\\); Doubler has none"):
        load(bundle, BINARY)
    (bundle / "model.pkl").unlink()
    pickle_to(bundle / "model.pkl", Classifier(None))
    with pytest.raises(LoadError, match="the artifact's Classifier has no predict\\(\\); add a score\\(\\) hook"):
        load(bundle, REGRESSION)


def test_an_artifacts_two_dimensional_single_column_output_is_one_prediction_per_row(bundle: Path) -> None:
    write_custom(
        bundle,
        """
        import numpy as np

        class Column:
            def predict(self, data):
                return np.asarray(data[["x"]], dtype=float)

        def load_model(code_dir):
            return Column()
        """,
    )
    model = load(bundle, REGRESSION)
    assert model.source == "the Column artifact" and sent(model, REGRESSION) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (["a.pkl", "b.joblib"], "more than one model artifact in {bundle}: a.pkl, b.joblib; keep one"),
        (["model.rds", "custom.py"], "model.rds: an R model, which is served in R only when the bundle has no custom"),
        (["model.keras"], "model.keras: DRUM loads Keras models from .h5 only"),
        ([], "no model in {bundle}: add custom.py with load_model() and predict() (cmkit) or score() (DRUM)"),
    ],
)
def test_a_bundle_without_one_loadable_artifact_says_what_to_do(bundle: Path, files: list[str], says: str) -> None:
    for name in files:
        (bundle / name).write_bytes(b"")
    (bundle / "data").mkdir()
    (bundle / "data" / "model.pkl").write_bytes(b"")  # only the top of the bundle is searched, as DRUM does
    with pytest.raises(LoadError) as raised:
        load(bundle, REGRESSION)
    assert str(raised.value).startswith(says.format(bundle=bundle))
