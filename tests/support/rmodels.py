"""R model bundles, trained in the test by R itself (Debian's r-base-core, caret, glmnet: .ci/run installs them).

`build_r_models(root)` runs one Rscript that fits every model on data it draws, saves each bundle
(an .rds, and custom.R where the bundle has hooks), writes the test rows (`data/test.csv`) and what
R's own `predict()` gives on them (`data/expected.csv`: a Predictions column, or one column per
label), so a test compares the server's answers with R's, not with a number copied into the test.

The bundles:
- lm_rds (regression): a bare `lm` saved as .rds: DRUM's default predictor, `predict(model, data)`.
- glm_hooks (binary): a logistic `glm` and custom.R's `score(data, model, labels)` naming the
  columns from the labels DRUM passes; `transform` fills NAs (the null check).
- caret_multiclass (multiclass): caret's `train(method = "glmnet")` as .rds, `predict(type = "prob")`.
- caret_binary_xlabels (binary): caret with classes X0/X1 (R's make.names of "0"/"1"): DataRobot's
  labels "1"/"0" are matched to them as DRUM does.
- word_count (unstructured): custom.R's `score_unstructured`, in the shape of DataRobot's
  r_unstructured template, with `?ret_mode=binary` answering 4 big-endian bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.bundles import metadata_yaml, write_files

RSCRIPT = shutil.which("Rscript")
TIMEOUT = 300

LABELS = {
    "lm_rds": (),
    "glm_hooks": ("yes", "no"),
    "caret_multiclass": ("a", "b", "c"),
    "caret_binary_xlabels": ("1", "0"),
}
TARGETS = {
    "lm_rds": "regression",
    "glm_hooks": "binary",
    "caret_multiclass": "multiclass",
    "caret_binary_xlabels": "binary",
}

TRAIN = r"""
args <- commandArgs(trailingOnly = TRUE)
root <- args[[1]]
suppressPackageStartupMessages(library(caret))
set.seed(7)
draw <- function(n) {
  d <- data.frame(x1 = round(rnorm(n), 4), x2 = round(rnorm(n), 4), x3 = sample(1:5, n, TRUE))
  d
}
train_rows <- draw(200)
test_rows <- draw(25)
save <- function(name, model, expected, y = NULL) {
  dir.create(file.path(root, name, "data"), recursive = TRUE, showWarnings = FALSE)
  if (!is.null(model)) saveRDS(model, file.path(root, name, "model.rds"))
  write.csv(test_rows, file.path(root, name, "data", "test.csv"), row.names = FALSE)
  write.csv(expected, file.path(root, name, "data", "expected.csv"), row.names = FALSE)
  # test-local's dataset: the rows with their target column (taken off before predicting)
  if (!is.null(y)) write.csv(cbind(test_rows, y = y), file.path(root, name, "data", "labelled.csv"), row.names = FALSE)
}
none <- trainControl(method = "none")

# regression: lm
d <- train_rows
d$y <- 2 * d$x1 - d$x2 + 0.5 * d$x3 + rnorm(nrow(d), sd = 0.3)
m <- lm(y ~ x1 + x2 + x3, data = d)
save("lm_rds", m, data.frame(Predictions = predict(m, test_rows)), y = predict(m, test_rows))

# binary: glm, scored by custom.R
d <- train_rows
d$y <- factor(ifelse(d$x1 + 0.5 * d$x2 + rnorm(nrow(d)) > 0, "yes", "no"), levels = c("no", "yes"))
m <- glm(y ~ x1 + x2 + x3, data = d, family = binomial)
p <- predict(m, test_rows, type = "response")
save("glm_hooks", m, data.frame(yes = p, no = 1 - p), y = ifelse(p > 0.5, "yes", "no"))

# multiclass: caret + glmnet
d <- train_rows
d$y <- factor(c("a", "b", "c")[1 + (d$x1 > 0.4) + (d$x1 > -0.4)])
m <- train(y ~ x1 + x2 + x3, data = d, method = "glmnet", trControl = none,
           tuneGrid = data.frame(alpha = 1, lambda = 0.001))
save("caret_multiclass", m, predict(m, test_rows, type = "prob"), y = as.character(predict(m, test_rows)))

# binary with make.names'd classes: caret + glm
d <- train_rows
d$y <- factor(ifelse(d$x2 - d$x1 + rnorm(nrow(d)) > 0, "X1", "X0"))
m <- train(y ~ x1 + x2 + x3, data = d, method = "glm", trControl = none)
p <- predict(m, test_rows, type = "prob")
save("caret_binary_xlabels", m, data.frame(`1` = p$X1, `0` = p$X0, check.names = FALSE),
     y = ifelse(p$X1 > 0.5, "1", "0"))

# unstructured: no model file
save("word_count", NULL, data.frame(words = 7))
"""

GLM_HOOKS = """\
transform <- function(data, model) {
  data[is.na(data)] <- 0
  data
}

score <- function(data, model, labels) {
  p <- stats::predict(model, data, type = "response")
  predictions <- data.frame(p, 1 - p)
  names(predictions) <- c(labels$positive_class_label, labels$negative_class_label)
  predictions
}
"""

CARET_HOOKS = """\
transform <- function(data, model) {
  data[is.na(data)] <- 0
  data
}
"""

# The shape of DataRobot's r_unstructured template (its packages, its hooks and its answers),
# written for these tests.
WORD_COUNT = """\
init <- function(...) {
  library(stringr)
  library(pack)
}

load_model <- function(input_dir) {
  "word counter"
}

score_unstructured <- function(model, data, query, ...) {
  text <- if (is.raw(data)) rawToChar(data) else data
  count <- str_count(text, "\\\\S+")
  if (!is.null(query$ret_mode) && query$ret_mode == "binary") {
    bytes <- numToRaw(count, 4)
    if (.Platform$endian == "little") bytes <- rev(bytes)
    return(list(bytes, list(mimetype = "application/octet-stream")))
  }
  toString(count)
}
"""

# A stand-in for CRAN's `pack` (not packaged by Debian): numToRaw(n, nBytes) in the platform's order.
PACK_DESCRIPTION = """\
Package: pack
Version: 0.0.1
Title: Stand-in for the tests
Description: numToRaw, as the tests' unstructured model calls it.
License: MIT
"""
PACK_NAMESPACE = "export(numToRaw)\n"
PACK_CODE = """\
numToRaw <- function(num, nBytes = 4) {
  bytes <- as.raw(bitwAnd(bitwShiftR(as.integer(num), 8L * (seq_len(nBytes) - 1L)), 255L))
  if (.Platform$endian == "big") rev(bytes) else bytes
}
"""


def require_r() -> str:
    """Rscript's path; without R the test skips, except in CI (.ci/run installs R): there it fails.

    CI is told by `CI` (what CI services set) or by CMKIT_REQUIRE_DOCKER=1, which .ci/run exports
    after installing R: a run of .ci/run by hand must not skip them either.
    """
    if RSCRIPT is None:
        if os.environ.get("CI") or os.environ.get("CMKIT_REQUIRE_DOCKER") == "1":
            pytest.fail("R is not installed: .ci/run installs r-base-core and the r-cran-* packages the R tests use")
        pytest.skip("R is not installed (apt-get install r-base-core r-cran-caret r-cran-glmnet r-cran-stringr)")
    return RSCRIPT


def build_r_models(root: Path) -> Path:
    """Every bundle of this module under `root` (see the module doc)."""
    rscript = require_r()
    root.mkdir(parents=True, exist_ok=True)
    script = root / "train.R"
    script.write_text(TRAIN)
    done = subprocess.run(
        [rscript, "--vanilla", str(script), str(root)], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    script.unlink()
    for name, target in TARGETS.items():
        labels = LABELS[name]
        if target == "binary":
            lines = f"  positiveClassLabel: '{labels[0]}'\n  negativeClassLabel: '{labels[1]}'\n"
        elif target == "multiclass":
            lines = "  classLabels:\n" + "".join(f"    - '{label}'\n" for label in labels)
        else:
            lines = ""
        write_files(root / name, {"model-metadata.yaml": metadata_yaml(name, target, "y", lines)})
    write_files(root / "glm_hooks", {"custom.R": GLM_HOOKS})
    write_files(root / "caret_multiclass", {"custom.R": CARET_HOOKS})
    write_files(
        root / "word_count",
        {
            "custom.R": WORD_COUNT,
            "requirements.txt": "stringr\npack\n",
            "model-metadata.yaml": metadata_yaml("word_count", "unstructured", None),
            "data/words.txt": "rough road leads to the stars\n",
        },
    )
    return root


def install_pack(library: Path) -> Path:
    """Install the stand-in `pack` into the R library folder `library` (for R_LIBS)."""
    rscript = require_r()
    source = write_files(
        library.parent / "pack-source",
        {"DESCRIPTION": PACK_DESCRIPTION, "NAMESPACE": PACK_NAMESPACE, "R/pack.R": PACK_CODE},
    )
    library.mkdir(parents=True, exist_ok=True)
    r_cmd = str(Path(rscript).with_name("R"))
    done = subprocess.run(
        [r_cmd, "CMD", "INSTALL", "--no-docs", "--no-html", f"--library={library}", str(source)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return library
