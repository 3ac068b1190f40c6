"""Build python3_pytorch- and python3_keras-shaped bundles, run by the Python that has the framework.

torch and tensorflow are too heavy for cmkit's dev extra (docs/runtime.md has the numbers), so
the tests run this script with DRUM's virtualenv once the framework is added to it
(bench/common.py, drum_with): standard library, pandas, numpy and the framework only.

    python heavy_models.py {torch,keras} {regression,binary,multiclass} SAMPLE_DIR BUNDLE_DIR

The bundle holds what the template holds: the artifact saved with the template's call
(`torch.save(model, "*.pth")`, a whole module whose class lives in a module of the bundle;
`model.save("*.h5")`), a custom.py with the templates' transform, the metadata and the
sample's rows as validation data.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

TARGETS = {"regression": "progression", "binary": "diagnosis", "multiclass": "species"}
LABELS = {
    "binary": "  positiveClassLabel: malignant\n  negativeClassLabel: benign\n",
    "multiclass": "  classLabels:\n    - setosa\n    - versicolor\n    - virginica\n",
}
TRANSFORM = """\
def transform(data, model):
    for column in {targets!r}:
        if column in data:
            data.pop(column)
    return data.fillna(0)
"""
TORCH_MODELS = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, inputs, outputs, final):
        super().__init__()
        self.hidden = nn.Linear(inputs, 16)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.2)  # off in eval mode, which DRUM sets after torch.load
        self.out = nn.Linear(16, outputs)
        self.final = final

    def forward(self, x):
        y = self.out(self.dropout(self.relu(self.hidden(x))))
        if self.final == "sigmoid":
            return y.sigmoid()
        if self.final == "softmax":
            return y.softmax(dim=1)
        return y
"""


def training(sample: Path, target_type: str) -> tuple[pd.DataFrame, np.ndarray]:
    data = pd.read_csv(sample / "data" / "test.csv")
    y = data.pop(TARGETS[target_type])
    if target_type == "binary":
        y = (y == "malignant").astype(int)
    elif target_type == "multiclass":
        y = y.map({"setosa": 0, "versicolor": 1, "virginica": 2})
    return data.fillna(0), y.to_numpy()  # raw, as the requests come


def write_bundle(sample: Path, bundle: Path, target_type: str, requirement: str) -> None:
    (bundle / "data").mkdir(parents=True)
    shutil.copy(sample / "data" / "test.csv", bundle / "data" / "test.csv")
    (bundle / "custom.py").write_text(TRANSFORM.format(targets=[TARGETS[target_type]]))
    (bundle / "requirements.txt").write_text(requirement + "\n")
    (bundle / "model-metadata.yaml").write_text(
        f"name: {bundle.name}\ntype: inference\ntargetType: {target_type}\n"
        f"inferenceModel:\n  targetName: {TARGETS[target_type]}\n{LABELS.get(target_type, '')}"
        "validation:\n  input: data/test.csv\n"
    )


def torch_bundle(sample: Path, bundle: Path, target_type: str) -> None:
    import torch

    write_bundle(sample, bundle, target_type, f"torch=={torch.__version__.split('+')[0]}")
    (bundle / "torch_models.py").write_text(TORCH_MODELS)
    sys.path.insert(0, str(bundle))
    from torch_models import Net  # the class the pickled module names: imported from the bundle

    torch.manual_seed(0)
    X, y = training(sample, target_type)
    outputs, final = {"regression": (1, None), "binary": (1, "sigmoid"), "multiclass": (3, "softmax")}[target_type]
    model = Net(X.shape[1], outputs, final)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs = torch.from_numpy(X.to_numpy(np.float32))
    for _ in range(50):
        optimiser.zero_grad()
        output = model(inputs)
        if target_type == "multiclass":
            loss = torch.nn.functional.nll_loss(output.log(), torch.from_numpy(y).long())
        else:
            loss = torch.nn.functional.mse_loss(output[:, 0], torch.from_numpy(y.astype(np.float32)))
        loss.backward()
        optimiser.step()
    model.eval()
    torch.save(model, bundle / f"torch_{target_type}.pth")


def keras_bundle(sample: Path, bundle: Path, target_type: str) -> None:
    import tensorflow as tf

    write_bundle(sample, bundle, target_type, f"tensorflow-cpu=={tf.__version__}")
    tf.keras.utils.set_random_seed(0)
    X, y = training(sample, target_type)
    outputs, final, loss = {
        "regression": (1, None, "mse"),
        "binary": (1, "sigmoid", "binary_crossentropy"),
        "multiclass": (3, "softmax", "sparse_categorical_crossentropy"),
    }[target_type]
    model = tf.keras.Sequential(
        [tf.keras.Input((X.shape[1],)), tf.keras.layers.Dense(16, "relu"), tf.keras.layers.Dense(outputs, final)]
    )
    model.compile("adam", loss)
    model.fit(X.to_numpy(np.float32), y, epochs=20, verbose=0)
    model.save(bundle / f"keras_{target_type}.h5")


if __name__ == "__main__":
    framework, target_type, sample_dir, bundle_dir = sys.argv[1:5]
    build = {"torch": torch_bundle, "keras": keras_bundle}[framework]
    build(Path(sample_dir), Path(bundle_dir), target_type)
    print(textwrap.shorten(str(sorted(p.name for p in Path(bundle_dir).iterdir())), 200))
