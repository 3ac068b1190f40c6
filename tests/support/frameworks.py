"""Bundles shaped like DataRobot's framework templates (datarobot-user-models, model_templates/).

Each is what the template holds: one artifact saved with the framework's own call, a custom.py
with at most a `transform` hook (or a `load_model`), metadata and a validation file. The models
are trained here, small, on the sample models' data, because the templates keep theirs as
large files. Frameworks are imported inside the builders: only the tests that use one pay for it.
"""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pandas as pd

from tests.support.bundles import CANCER, DIABETES, IRIS, metadata_yaml, write_drum_bundle

# The templates' transform: drop the target if the request carries it, fill missing values with 0.
TRANSFORM = """\
    def transform(data, model):
        for column in {targets!r}:
            if column in data:
                data.pop(column)
        return data.fillna(0)
"""

SAMPLES = {"regression": DIABETES, "binary": CANCER, "multiclass": IRIS, "anomaly": DIABETES}
TARGETS = {"regression": "progression", "binary": "diagnosis", "multiclass": "species", "anomaly": "progression"}
LABELS = {
    "binary": "  positiveClassLabel: malignant\n  negativeClassLabel: benign\n",
    "multiclass": "  classLabels:\n    - setosa\n    - versicolor\n    - virginica\n",
}


def training(target_type: str) -> tuple[pd.DataFrame, pd.Series]:
    """The sample's rows as features and the target (labels as 0/1/2 in the declared order)."""
    data = pd.read_csv(SAMPLES[target_type] / "data" / "test.csv")
    y = data.pop(TARGETS[target_type])
    if target_type == "binary":
        y = (y == "malignant").astype(int)
    elif target_type == "multiclass":
        y = y.map({"setosa": 0, "versicolor": 1, "virginica": 2})
    return data.fillna(0), y


def _bundle(folder: Path, target_type: str, custom: str, requirements: str) -> Path:
    bundle = write_drum_bundle(folder, SAMPLES[target_type], custom, labels=LABELS.get(target_type, ""))
    if target_type == "anomaly":  # no target: the validation rows keep the column, transform drops it
        (bundle / "model-metadata.yaml").write_text(metadata_yaml(folder.name, "anomaly", None, "", "data/test.csv"))
    (bundle / "requirements.txt").write_text(requirements)
    return bundle


def transform_for(target_type: str) -> str:
    return TRANSFORM.format(targets=[TARGETS[target_type]])


def xgboost_booster(folder: Path, target_type: str = "regression") -> Path:
    """python3_xgboost: a native Booster pickled to a .pkl, a transform hook; DRUM scores it on a DMatrix."""
    import xgboost

    X, y = training(target_type)
    objective = {
        "regression": {"objective": "reg:squarederror"},
        "binary": {"objective": "binary:logistic"},
        "multiclass": {"objective": "multi:softprob", "num_class": 3},
    }[target_type]
    booster = xgboost.train({**objective, "max_depth": 3, "nthread": 1}, xgboost.DMatrix(X, label=y), 10)
    import sklearn

    # The pickled pipeline needs scikit-learn as much as xgboost: a hermetic process runtime
    # (cmkit/engine/venvs.py) installs only what requirements.txt names.
    requirements = f"xgboost=={xgboost.__version__}\nscikit-learn=={sklearn.__version__}\n"
    bundle = _bundle(folder, target_type, transform_for(target_type), requirements)
    with (bundle / "xgb_model.pkl").open("wb") as handle:
        pickle.dump(booster, handle)
    return bundle


def xgboost_pipeline(folder: Path, target_type: str = "regression") -> Path:
    """The sklearn wrapper at the end of a pipeline, pickled (DRUM's XGBoost predictor takes it): predict()."""
    import xgboost
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = training(target_type)
    model = make_pipeline(StandardScaler(), xgboost.XGBRegressor(n_estimators=10, max_depth=3, n_jobs=1)).fit(X, y)
    import sklearn

    # The pickled pipeline needs scikit-learn as much as xgboost: a hermetic process runtime
    # (cmkit/engine/venvs.py) installs only what requirements.txt names.
    requirements = f"xgboost=={xgboost.__version__}\nscikit-learn=={sklearn.__version__}\n"
    bundle = _bundle(folder, target_type, transform_for(target_type), requirements)
    with (bundle / "xgb_model.pkl").open("wb") as handle:
        pickle.dump(model, handle)
    return bundle


def _onnx_model(target_type: str) -> bytes:
    """A scikit-learn model converted by skl2onnx, as the python3_onnx_* templates' files were made."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import IsolationForest
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = training(target_type)
    estimator = {
        "regression": lambda: Ridge(alpha=0.1),
        "binary": lambda: LogisticRegression(max_iter=2000),
        "multiclass": lambda: LogisticRegression(max_iter=2000),
        "anomaly": lambda: IsolationForest(n_estimators=20, random_state=0),
    }[target_type]()
    pipeline = make_pipeline(StandardScaler(), estimator)
    pipeline.fit(X.to_numpy("float32"), None if target_type == "anomaly" else y)
    return to_onnx(pipeline, X.to_numpy("float32")[:1], target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString()  # type: ignore[no-any-return]


def onnx_artifact(folder: Path, target_type: str = "regression") -> Path:
    """python3_onnx_{regression,binary,anomaly}: one .onnx file and a transform hook."""
    import onnxruntime

    bundle = _bundle(folder, target_type, transform_for(target_type), f"onnxruntime=={onnxruntime.__version__}\n")
    (bundle / f"{target_type}_model.onnx").write_bytes(_onnx_model(target_type))
    return bundle


LOAD_SESSION = """\
    import os

    import onnxruntime


    def load_model(code_dir):
        return onnxruntime.InferenceSession(os.path.join(code_dir, "model", "session.onnx"))
"""


def onnx_session_hook(folder: Path, target_type: str = "multiclass") -> Path:
    """load_model() returning an InferenceSession (the .onnx in a subfolder): scored as the artifact is."""
    import onnxruntime

    custom = textwrap.dedent(LOAD_SESSION) + "\n\n" + textwrap.dedent(transform_for(target_type))
    bundle = _bundle(folder, target_type, custom, f"onnxruntime=={onnxruntime.__version__}\n")
    (bundle / "model").mkdir()
    (bundle / "model" / "session.onnx").write_bytes(_onnx_model(target_type))
    return bundle


RUNTIME_PARAMS_METADATA = """\
name: runtime-params-example
type: inference
targetType: regression
inferenceModel:
  targetName: progression
validation:
  input: data/test.csv
runtimeParameterDefinitions:
  - fieldName: option1
    type: string
    defaultValue: ABCD 123
    description: shown in the UI
  - fieldName: option2
    type: string
  - fieldName: encryption_key
    type: credential
    description: a secret from DataRobot's credential manager
  - fieldName: bool_var
    type: boolean
    defaultValue: true
  - fieldName: number1
    type: numeric
    defaultValue: 0
    allowEmpty: False
    minValue: -100
    maxValue: 100
"""

# python3_sklearn_runtime_params' custom.py reads the parameters in transform; this one also
# lets them move the predictions, so that a wrong or missing value shows in the numbers.
RUNTIME_PARAMS_CUSTOM = """\
    from datarobot_drum import RuntimeParameters


    def transform(data, model):
        credential = RuntimeParameters.get("encryption_key")
        if credential is not None:
            assert credential["credentialType"] == "api_token", "credential type"
        return data.drop(columns=["progression"], errors="ignore")


    def post_process(predictions, model):
        shift = RuntimeParameters.get("number1") + len(RuntimeParameters.get("option1"))
        if RuntimeParameters.get("bool_var"):
            shift += 1000
        if RuntimeParameters.get("encryption_key") is not None:
            shift += 0.5
        return predictions + shift
"""


def runtime_params_bundle(folder: Path, artifact: bool = True) -> Path:
    """python3_sklearn_runtime_params: a pickled scikit-learn regressor and DRUM's RuntimeParameters.

    `artifact=False` leaves the model out (and scikit-learn's 1 s import) for tests that only resolve.
    """
    bundle = write_drum_bundle(folder, DIABETES, RUNTIME_PARAMS_CUSTOM)
    (bundle / "model-metadata.yaml").write_text(RUNTIME_PARAMS_METADATA)
    if not artifact:
        return bundle
    import joblib

    with (bundle / "sklearn_reg.pkl").open("wb") as handle:
        pickle.dump(joblib.load(DIABETES / "model.joblib"), handle)
    return bundle


TOKEN = "DUMMY_TOKEN_123"
# flask_extension_httpauth's custom_flask.py, in substance: token auth on every route but ping.
CUSTOM_FLASK = f"""\
    from flask import request
    from flask_httpauth import HTTPTokenAuth

    token_auth = HTTPTokenAuth()


    @token_auth.verify_token
    def verify(token):
        if token == "{TOKEN}":
            return "dummy_user"


    def init_app(app):
        no_auth_endpoints = {{NO_AUTH_ENDPOINTS}}

        @app.before_request
        def check_auth():
            if request.method != "OPTIONS" and request.endpoint not in no_auth_endpoints:
                user = token_auth.authenticate(token_auth.get_auth(), None)
                if user in (False, None):
                    return token_auth.auth_error_callback(401)
"""


def httpauth_bundle(folder: Path, guard_ping: bool = False) -> Path:
    """flask_extension_httpauth: a working model behind a custom_flask.py that wants a bearer token.

    `guard_ping`: the readiness route wants it too (the template leaves ping open)."""
    from importlib.metadata import version

    from tests.support.bundles import hooks_only

    bundle = hooks_only(folder)
    open_endpoints = "set()" if guard_ping else '{"model_api.ping", "model_api.health"}'
    custom_flask = textwrap.dedent(CUSTOM_FLASK).replace("{NO_AUTH_ENDPOINTS}", open_endpoints)
    (bundle / "custom_flask.py").write_text(custom_flask)
    (bundle / "requirements.txt").write_text(f"flask-httpauth=={version('flask-httpauth')}\n")
    return bundle
