#!/usr/bin/env python3
"""Regenerate the fitted and template-derived files of the templates and sample models.

    python sample_models/build.py [--root DIR]

Everything is seeded, so a run reproduces the committed files (tests/bundle/test_sample_models.py
checks it). `--root` writes the same tree under another folder instead of this checkout.

Written here:

- `templates/bundles/python/{regression,binary,anomaly}/`: `data/sample.csv`, a small realistic
  data set drawn from a seeded generator, and `model.json`, the example model fitted on it once,
  here (`cmkit init` copies both; multiclass ones are written by `cmkit init` for the labels).
- `sample_models/{regression_diabetes,binary_breast_cancer,multiclass_iris}/`: scikit-learn
  pipelines (imputer, scaler, linear model) trained on data sets that scikit-learn ships, as
  `model.joblib`; a held-out `data/test.csv` with the target column; `model-metadata.yaml`;
  pinned `requirements.txt`; and the template's two-line `start_server.sh` (which hands over to
  the environment's model runtime) and `.cmkitignore`, rendered through `cmkit.scaffold` so that
  they never drift from the template.
- `sample_models/broken/<name>/`: every file of each broken bundle except its hand-written ones
  (listed in BROKEN as `own`): metadata, sample data, and the template files it keeps.

Hand-written and never touched: the sample models' `custom.py` and each broken bundle's `own` files.
No bundle here holds a model server: the environment's runtime (`cmkit_runtime`) serves them all.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from cmkit.scaffold import RenderedFile, make_spec, render_bundle, render_metadata  # noqa: E402

TEMPLATE = REPO / "templates" / "bundles" / "python"
SAMPLES = REPO / "sample_models"
BROKEN_DIR = SAMPLES / "broken"
# The versions the joblib artifacts are built with, pinned in the sample models' requirements.txt
# (and equal to the dev extra's, so that `--runtime process` can serve them from the dev venv).
PINS = {"scikit-learn": "1.9.1", "joblib": "1.6.0", "scipy": "1.17.1", "threadpoolctl": "3.8.0"}
# What the sample models take from the template, byte for byte.
TEMPLATE_FILES = ("start_server.sh", ".cmkitignore")
SEED = 20240611


# --- The template's example models ------------------------------------------------------------


def _number(value: float) -> float:
    return float(f"{value:.6g}")


def _model_json(about: str, **fields: Any) -> bytes:
    def clean(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return _number(value) if isinstance(value, float) else value

    document = {"about": about, **{k: clean(v) for k, v in fields.items()}}
    return (json.dumps(document, indent=2) + "\n").encode()


def _csv(frame: Any) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode()


def house_prices() -> dict[str, bytes]:
    """Regression: prices (in thousands) of houses from their size, rooms, age and distance to town."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(SEED)
    n = 80
    sqft = rng.integers(600, 3600, n)
    bedrooms = np.clip(np.round(sqft / 700 + rng.normal(0, 0.6, n)), 1, 6).astype(int)
    age_years = rng.integers(0, 80, n)
    distance_km = np.round(rng.gamma(2.0, 4.0, n), 1)
    noise = rng.normal(0, 22, n)
    price = np.round(40 + 0.16 * sqft + 9 * bedrooms - 0.8 * age_years - 3.5 * distance_km + noise, 1)
    data = pd.DataFrame(
        {"sqft": sqft, "bedrooms": bedrooms, "age_years": age_years, "distance_km": distance_km, "price": price}
    )
    features = ["sqft", "bedrooms", "age_years", "distance_km"]
    fit = LinearRegression().fit(data[features].to_numpy(float), data["price"].to_numpy())
    model = _model_json(
        "linear regression of price (thousands) fitted on data/sample.csv; missing values take the means",
        features=features,
        means=[float(v) for v in data[features].mean()],
        coef=[float(v) for v in fit.coef_],
        intercept=float(fit.intercept_),
    )
    return {"regression/data/sample.csv": _csv(data), "regression/model.json": model}


def customer_churn() -> dict[str, bytes]:
    """Binary: whether a customer churned (1) or stayed (0), from tenure, charges, calls and contract."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(SEED + 1)
    n = 120
    tenure_months = rng.integers(1, 73, n)
    monthly_charges = np.round(rng.uniform(20, 120, n), 2)
    support_calls = rng.poisson(1.5, n)
    contract_years = rng.choice([0, 1, 2], n, p=[0.5, 0.3, 0.2])
    logit = -0.5 - 0.05 * tenure_months + 0.03 * monthly_charges + 0.5 * support_calls - 0.9 * contract_years
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    data = pd.DataFrame(
        {
            "tenure_months": tenure_months,
            "monthly_charges": monthly_charges,
            "support_calls": support_calls,
            "contract_years": contract_years,
            "churned": churned,
        }
    )
    features = ["tenure_months", "monthly_charges", "support_calls", "contract_years"]
    values = data[features].to_numpy(float)
    mean, std = values.mean(axis=0), values.std(axis=0)
    # Fit on standardised features (lbfgs converges), then fold the scaling into the coefficients
    # so that custom.py applies them to raw values.
    fit = LogisticRegression(C=1.0).fit((values - mean) / std, data["churned"].to_numpy())
    coef = fit.coef_[0] / std
    intercept = float(fit.intercept_[0] - (fit.coef_[0] * mean / std).sum())
    model = _model_json(
        "logistic regression of churn (positive class: churned) fitted on data/sample.csv; "
        "missing values take the means",
        features=features,
        means=[float(v) for v in mean],
        coef=[float(v) for v in coef],
        intercept=intercept,
    )
    return {"binary/data/sample.csv": _csv(data), "binary/model.json": model}


def machine_sensors() -> dict[str, bytes]:
    """Anomaly: sensor readings of machines, a few of them failing; no target column."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED + 2)
    normal, failing = 95, 5
    readings = {
        "temperature_c": rng.normal(68, 2.5, normal + failing),
        "vibration_mm_s": rng.normal(2.2, 0.3, normal + failing),
        "pressure_kpa": rng.normal(310, 6, normal + failing),
        "rpm": rng.normal(1480, 35, normal + failing),
    }
    readings["temperature_c"][normal:] += rng.uniform(8, 15, failing)
    readings["vibration_mm_s"][normal:] *= rng.uniform(2.5, 4, failing)
    data = pd.DataFrame(readings).round({"temperature_c": 1, "vibration_mm_s": 2, "pressure_kpa": 1, "rpm": 0})
    data = data.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    features = list(readings)
    center = data[features].median()
    scale = 1.4826 * (data[features] - center).abs().median()  # the MAD, scaled to a normal's sd
    model = _model_json(
        "robust z-score anomaly detector (median and scaled MAD per sensor) fitted on data/sample.csv",
        features=features,
        center=[float(v) for v in center],
        scale=[float(v) for v in scale],
    )
    return {"anomaly/data/sample.csv": _csv(data), "anomaly/model.json": model}


def template_examples() -> dict[str, RenderedFile]:
    files: dict[str, RenderedFile] = {}
    for build in (house_prices, customer_churn, machine_sensors):
        for rel, content in build().items():
            path = f"templates/bundles/python/{rel}"
            files[path] = RenderedFile(path, content)
    return files


# --- The sample models: real scikit-learn models ----------------------------------------------


@dataclass(frozen=True)
class Sample:
    folder: str
    target_type: str
    dataset: str  # a loader of sklearn.datasets
    target_name: str
    positive: str | None = None  # binary: the positive class's name in the data set


SAMPLE_MODELS = (
    Sample("regression_diabetes", "regression", "load_diabetes", "progression"),
    Sample("binary_breast_cancer", "binary", "load_breast_cancer", "diagnosis", positive="malignant"),
    Sample("multiclass_iris", "multiclass", "load_iris", "species"),
)
TEST_DATA = "data/test.csv"


def _requirements() -> bytes:
    lines = [
        "# Pinned to the versions model.joblib was built with (sample_models/build.py); a pickle",
        "# needs the scikit-learn that wrote it.",
        *(f"{name}=={version}" for name, version in PINS.items()),
    ]
    return ("\n".join(lines) + "\n").encode()


def _check_versions() -> None:
    from importlib.metadata import version

    wrong = {name: version(name) for name, pin in PINS.items() if version(name) != pin}
    if wrong:
        sys.exit(f"build.py: installed {wrong} differ from the pins {PINS}; install the pinned versions first")


def _sample_spec(sample: Sample, labels: list[str]) -> Any:
    if sample.target_type == "binary":
        negative = next(label for label in labels if label != sample.positive)
        return make_spec(
            "binary",
            sample.folder,
            target_name=sample.target_name,
            positive_class_label=sample.positive,
            negative_class_label=negative,
        )
    return make_spec(sample.target_type, sample.folder, target_name=sample.target_name, class_labels=labels)


def _sample_labels(sample: Sample) -> list[str]:
    """The class labels in declared order, without loading scikit-learn (derived files need them)."""
    return {
        "load_diabetes": [],
        "load_breast_cancer": ["malignant", "benign"],
        "load_iris": ["setosa", "versicolor", "virginica"],
    }[sample.dataset]


def sample_derived(sample: Sample) -> dict[str, RenderedFile]:
    """The files of a sample model that need no training: template copies, metadata, requirements."""
    spec = _sample_spec(sample, _sample_labels(sample))
    rendered = {f.path: f for f in render_bundle(spec)}
    files = {name: rendered[name] for name in TEMPLATE_FILES}
    files["model-metadata.yaml"] = RenderedFile("model-metadata.yaml", render_metadata(spec, TEST_DATA).encode())
    files["requirements.txt"] = RenderedFile("requirements.txt", _requirements())
    return files


def sample_fitted(sample: Sample) -> dict[str, RenderedFile]:
    """model.joblib and data/test.csv: a pipeline trained on a scikit-learn data set, and its held-out rows."""
    import joblib
    import numpy as np
    from sklearn import datasets
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bunch = getattr(datasets, sample.dataset)(as_frame=True)
    X, y = bunch.data, bunch.target
    if sample.target_type != "regression":  # class names, not codes, as labels
        y = y.map(dict(enumerate(np.asarray(bunch.target_names).tolist())))
    stratify = None if sample.target_type == "regression" else y
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=stratify)
    last = Ridge(alpha=1.0) if sample.target_type == "regression" else LogisticRegression(max_iter=2000)
    # The imputer lets whole columns of missing values through (cmkit's null-imputation check).
    pipeline = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), last)
    pipeline.fit(X_train, y_train)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    test = X_test.assign(**{sample.target_name: y_test}).reset_index(drop=True)
    if sample.target_type == "regression":
        test = test.round(6)
    return {
        "model.joblib": RenderedFile("model.joblib", buffer.getvalue()),
        TEST_DATA: RenderedFile(TEST_DATA, _csv(test)),
    }


# --- Broken bundles: one misbehaviour each -----------------------------------------------------


@dataclass(frozen=True)
class Broken:
    name: str
    target_type: str
    keeps: tuple[str, ...] = ()  # files of the rendered template kept beside BROKEN_COMMON
    own: tuple[str, ...] = ("custom.py",)  # hand-written files, never written here


# No broken bundle carries a server or (but for the two whose fault is in it) a start script:
# the environment's runtime serves them, as it serves every bundle.
BROKEN = (
    Broken("batch_dependent", "regression"),
    Broken("stateful", "regression"),
    Broken("null_crash", "regression"),
    Broken("nan_output", "regression"),
    Broken("wrong_count", "regression"),
    Broken("bad_probabilities", "binary"),
    Broken("ignores_url_prefix", "regression", keeps=("custom.py", "model.json"), own=("start_server.sh",)),
    Broken("exits_at_start", "regression", own=("start_server.sh",)),
    Broken("memory_hog", "regression"),
    Broken("slow_start", "regression"),
    Broken("not_a_point", "geopoint"),
)
BROKEN_COMMON = ("model-metadata.yaml", "data/sample.csv", "requirements.txt", ".cmkitignore")


def broken_derived(broken: Broken) -> dict[str, RenderedFile]:
    spec = make_spec(broken.target_type, broken.name)
    rendered = {f.path: f for f in render_bundle(spec)}
    files = {name: rendered[name] for name in (*BROKEN_COMMON, *broken.keeps)}
    return {path: file for path, file in files.items() if path not in broken.own}


# --- Putting it together ------------------------------------------------------------------------


def derived_files() -> dict[str, RenderedFile]:
    """Every generated file that needs no training, by path from the repository root."""
    files: dict[str, RenderedFile] = {}
    for sample in SAMPLE_MODELS:
        for rel, file in sample_derived(sample).items():
            files[f"sample_models/{sample.folder}/{rel}"] = file
    for broken in BROKEN:
        for rel, file in broken_derived(broken).items():
            files[f"sample_models/broken/{broken.name}/{rel}"] = file
    return files


def fitted_files() -> dict[str, RenderedFile]:
    """Every generated file that takes training: the template's examples and the sample models' artifacts."""
    _check_versions()
    files = template_examples()
    for sample in SAMPLE_MODELS:
        for rel, file in sample_fitted(sample).items():
            files[f"sample_models/{sample.folder}/{rel}"] = file
    return files


def write(root: Path, files: dict[str, RenderedFile]) -> None:
    for path, file in sorted(files.items()):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.content)
        target.chmod(0o755 if file.executable else 0o644)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="write the tree here (default: this checkout)")
    args = parser.parse_args(argv)
    # The template's examples first: the broken bundles copy the template's sample data.
    fitted = fitted_files()
    write(args.root, fitted)
    derived = derived_files()
    write(args.root, derived)
    print(f"build.py: wrote {len(fitted) + len(derived)} files under {args.root}")


if __name__ == "__main__":
    main()
