"""R models: DRUM's `custom.R` hooks and bare `.rds` artifacts, run in an embedded R through rpy2.

Imported only for an R bundle (`formats.is_r_bundle`): a Python model's server never loads R or
rpy2. What DRUM's R predictor does, and this module does alike:

- Before custom.R, the packages DRUM's R glue attaches (caret, recipes, stringi, Matrix) are
  attached when installed, so a custom.R or an .rds that relies on them finds them as under DRUM.
- custom.R (or custom.r) defines any of `init(code_dir)`, `load_model(code_dir)`,
  `read_input_data(raw)`, `transform(data, model)`, `score(data, model, kwargs)`,
  `post_process(predictions, model)` and, for unstructured models, `score_unstructured(model,
  data, query, ...)`. Without `load_model` (or when it returns NULL) the one `.rds` file of the
  bundle is read with `readRDS`.
- A request's rows reach R as DRUM hands them: written as CSV and read with
  `read.csv(check.names = FALSE)`, so R's own type conversions apply (integers, doubles,
  characters, NA); `read_input_data` gets the CSV's bytes (a raw vector) instead.
- Without `score`: regression and anomaly models are `stats::predict(model, data)`, classifiers
  `stats::predict(model, data, type = "prob")`, as DRUM's default predictor. Classifier columns are
  matched to the labels as given, or after R's `make.names` (caret names class columns so).
- `score` returns a data.frame: one column (or a `Predictions` column) for regression, one per
  label for classifiers. `score` gets the labels in a list (`positive_class_label`,
  `negative_class_label`, `class_labels`).
- `score_unstructured` gets a character vector for textual mimetypes, a raw vector otherwise,
  `query` and `headers` as named lists and `mimetype`/`charset`; it returns a character, raw or
  NULL value, or `list(data, list(mimetype = ..., charset = ...))`.

R errors become Python errors with R's message and call ("Error in score(...) : ..."); a missing
R package becomes one line naming it. R is not thread-safe: every call into R holds one lock.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cmkit_runtime.artifacts import LoadError
from cmkit_runtime.formats import R_ARTIFACT, R_HOOK_NAMES, SCORE_UNSTRUCTURED, r_artifacts_in, r_hook_file
from cmkit_runtime.outputs import PREDICTIONS_COLUMN, BadPredictions, same_label, single_column
from cmkit_runtime.target import Target
from cmkit_runtime.target_types import LabelKind
from cmkit_runtime.unstructured import BadUnstructured, UnstructuredAnswer, answer_of, request_arguments

R_FORMAT = "r"
# What DRUM's R glue attaches before it loads custom.R (attached here only when installed).
DRUM_ATTACHES = ("caret", "recipes", "stringi", "Matrix")
# R quotes the name with typographic quotes in a UTF-8 locale, with plain ones otherwise.
MISSING_PACKAGE = re.compile("there is no package called [\u2018'\"]([^\u2019'\"]+)[\u2019'\"]")
INSTALL_HINT = (
    "add it to requirements.txt (R packages, one per line: cmkit's R environment installs them), "
    "or install it where this server runs"
)
NO_RPY2 = (
    "an R model ({what}) needs R and the Python package rpy2 where it is served: use cmkit's R "
    "environment (templates/environments/r), or install R (apt-get install r-base-core) and "
    "`pip install 'rpy2>=3.5,<3.6'` for the process runtime ({error})"
)

# The R side, in an environment of its own: the loaded hooks and the glue that calls them.
GLUE = r"""
local({
  glue <- new.env()
  glue$hooks <- new.env()
  glue$load <- function(code_dir, hook_file) {
    for (package in c(%(attaches)s)) {
      if (requireNamespace(package, quietly = TRUE)) {
        suppressPackageStartupMessages(library(package, character.only = TRUE))
      }
    }
    if (nzchar(hook_file)) {
      code <- new.env(parent = globalenv())
      sys.source(file.path(code_dir, hook_file), envir = code)
      for (name in ls(code, all.names = TRUE)) {
        value <- get(name, envir = code)
        if (is.function(value)) assign(name, value, envir = glue$hooks)
      }
    }
    hook <- glue$hook("init")
    if (!is.null(hook)) hook(code_dir = code_dir)
    invisible(NULL)
  }
  glue$hook <- function(name) get0(name, envir = glue$hooks, mode = "function", inherits = FALSE)
  glue$defined <- function() sort(ls(glue$hooks))
  glue$model <- function(code_dir, artifact) {
    model <- NULL
    hook <- glue$hook("load_model")
    if (!is.null(hook)) model <- hook(code_dir)
    if (is.null(model) && nzchar(artifact)) model <- readRDS(file.path(code_dir, artifact))
    model
  }
  glue$read <- function(csv) {
    hook <- glue$hook("read_input_data")
    if (!is.null(hook)) return(hook(charToRaw(csv)))
    data <- utils::read.csv(text = csv, check.names = FALSE)
    if (ncol(data) == 1) data <- utils::read.csv(text = csv, check.names = FALSE, blank.lines.skip = FALSE)
    data
  }
  glue$predict <- function(model, csv, target_type, classification, labels) {
    data <- glue$read(csv)
    hook <- glue$hook("transform")
    if (!is.null(hook)) data <- hook(data, model)
    score <- glue$hook("score")
    if (!is.null(score)) {
      predictions <- score(data, model, labels)
    } else if (classification) {
      predictions <- data.frame(stats::predict(model, data, type = "prob"), check.names = FALSE)
    } else {
      predictions <- data.frame(Predictions = stats::predict(model, data))
    }
    hook <- glue$hook("post_process")
    if (!is.null(hook)) predictions <- hook(predictions, model)
    if (!is.data.frame(predictions)) {
      stop(sprintf("predictions must be a data.frame, not %%s", paste(class(predictions), collapse = "/")))
    }
    list(names = names(predictions), columns = lapply(predictions, function(column) {
      if (is.factor(column)) as.character(column) else column
    }))
  }
  glue$respond <- function(model, data, kwargs) {
    do.call(glue$hook("score_unstructured"), c(list(model, data), kwargs))
  }
  glue
})
"""


class RModelError(Exception):
    """R raised an error; the message is R's own (with the call it names)."""


class RSession:
    """The embedded R, its glue and the loaded model; every call into R holds `lock`."""

    lock = threading.Lock()

    def __init__(self, code_dir: Path) -> None:
        try:
            import rpy2.rinterface_lib.callbacks as callbacks
            import rpy2.robjects as robjects
            from rpy2.rinterface_lib.embedded import RRuntimeError
            from rpy2.robjects.conversion import localconverter
        except Exception as exc:  # ImportError, or rpy2 present without a loadable R (ValueError, OSError...)
            raise LoadError(NO_RPY2.format(what=_what(code_dir), error=f"{type(exc).__name__}: {exc}")) from None
        self.ro = robjects
        # rpy2 keeps its conversion rules in a ContextVar: a request thread has none until it is set
        self.converting: Callable[[], Any] = lambda: localconverter(robjects.default_converter)
        self.error_type: type[Exception] = RRuntimeError
        callbacks.consolewrite_warnerror = self._stderr
        attaches = ", ".join(f'"{name}"' for name in DRUM_ATTACHES)
        self._functions: dict[str, Any] = {}
        self.glue = self.call(lambda: robjects.r(GLUE % {"attaches": attaches}))

    @staticmethod
    def _stderr(text: str) -> None:
        """R's messages and warnings: into the log (stderr), as R prints them."""
        sys.stderr.write(text)

    def call(self, run: Callable[[], Any]) -> Any:
        with self.lock, self.converting():
            try:
                return run()
            except self.error_type as exc:
                raise RModelError(self._message(exc)) from None

    def _message(self, exc: Exception) -> str:
        """R's 'Error in call : message' (rpy2's exception holds the message only; R keeps the whole)."""
        try:
            whole = " ".join(str(self.ro.r("geterrmessage()")[0]).split())
        except Exception:  # R itself is in trouble: rpy2's word is all there is
            whole = ""
        told = " ".join(str(exc).split())
        # R's last error message is this error's when it holds rpy2's text (not an earlier one's)
        return whole if whole.startswith("Error") and told in whole else f"Error: {told}"

    def fn(self, name: str) -> Any:
        """A glue function, looked up once (a lookup builds rpy2's wrapper: ~0.35 ms a request)."""
        found = self._functions.get(name)
        if found is None:
            found = self._functions[name] = self.glue[name]
        return found


def _what(code_dir: Path) -> str:
    hook_file = r_hook_file(code_dir)
    if hook_file:
        return hook_file
    artifacts = r_artifacts_in(code_dir)
    return artifacts[0].name if artifacts else R_ARTIFACT


def missing_package(message: str) -> str | None:
    found = MISSING_PACKAGE.search(message)
    return found.group(1) if found else None


def _load_error(code_dir: Path, step: str, message: str) -> LoadError:
    package = missing_package(message)
    if package:
        return LoadError(f"{_what(code_dir)} needs the R package '{package}', which is not installed: {INSTALL_HINT}")
    return LoadError(f"{step} failed in R: {message}")


def _artifact(code_dir: Path, defines_load_model: bool) -> str:
    """The one .rds DRUM reads without a load_model hook ('' when load_model is there to decide)."""
    found = r_artifacts_in(code_dir)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise LoadError(
            f"more than one R model artifact in {code_dir}: {names}; keep one, or read yours in load_model()"
        )
    if found:
        return found[0].name
    if defines_load_model:
        return ""
    raise LoadError(f"no {R_ARTIFACT} model in {code_dir}: add one, or define load_model() in custom.R")


def start(code_dir: Path) -> tuple[RSession, Any, tuple[str, ...], str | None]:
    """Embed R, source custom.R, run init() and load the model: (session, model, hooks, artifact)."""
    session = RSession(code_dir)
    hook_file = r_hook_file(code_dir) or ""
    try:
        session.call(lambda: session.fn("load")(str(code_dir), hook_file))
    except RModelError as exc:
        raise _load_error(code_dir, hook_file or "loading R", str(exc)) from None
    defined = tuple(str(name) for name in session.call(lambda: session.fn("defined")()))
    hooks = tuple(name for name in R_HOOK_NAMES if name in defined)
    artifact = _artifact(code_dir, "load_model" in hooks)
    try:
        model = session.call(lambda: session.fn("model")(str(code_dir), artifact))
    except RModelError as exc:
        raise _load_error(
            code_dir, "load_model()" if "load_model" in hooks else f"readRDS({artifact})", str(exc)
        ) from None
    return session, model, hooks, artifact or None


def _labels(session: RSession, target: Target) -> Any:
    """The list DRUM passes score() as its third argument (NULL where a label does not apply)."""
    ro = session.ro
    null = ro.NULL
    pair = target.type.label_kind is LabelKind.PAIR
    listed = target.type.label_kind is LabelKind.LIST
    return ro.vectors.ListVector(
        {
            "positive_class_label": ro.StrVector([target.labels[0]]) if pair else null,
            "negative_class_label": ro.StrVector([target.labels[1]]) if pair else null,
            "class_labels": ro.StrVector(list(target.labels)) if listed else null,
        }
    )


def _column(values: Any) -> np.ndarray:
    """An R column as NumPy: NA_real_ is NaN already; integer and logical NA become NaN too."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        na = np.asarray(values) == -2147483648  # R's NA_integer_ (and NA logical)
        if na.any():
            array = array.astype(float)
            array[na] = np.nan
    return array


def to_frame(result: Any) -> pd.DataFrame:
    names = [str(name) for name in result.rx2("names")]
    columns = [_column(column) for column in result.rx2("columns")]
    frame: pd.DataFrame = pd.DataFrame(dict(zip(range(len(names)), columns, strict=True)))
    frame.columns = pd.Index(names)
    return frame


def _make_names(session: RSession, labels: tuple[str, ...]) -> list[str]:
    return [str(name) for name in session.call(lambda: session.ro.r["make.names"](session.ro.StrVector(list(labels))))]


def label_columns(frame: pd.DataFrame, labels: tuple[str, ...], sanitised: list[str]) -> pd.DataFrame:
    """Classifier columns named by label, as given or as R's make.names wrote them (caret's class
    columns: "1" -> "X1", "a b" -> "a.b"); extra columns are set aside, as DRUM does."""
    columns = [str(c) for c in frame.columns]
    found: list[int] = []
    for label, clean in zip(labels, sanitised, strict=True):
        exact = [i for i, c in enumerate(columns) if same_label(c, label)]
        index = exact[0] if len(exact) == 1 else columns.index(clean) if columns.count(clean) == 1 else None
        if index is None:
            raise BadPredictions(
                f"the R model's columns {columns} are not the class labels {list(labels)} (nor R's names for them "
                f"{sanitised}): score() returns one column per label"
            )
        found.append(index)
    ordered: pd.DataFrame = frame.iloc[:, found].set_axis(list(labels), axis=1)
    return ordered


SMALL_FRAME = 64  # rows: below it the csv module writes a request in a fraction of pandas' fixed cost


def to_csv(frame: pd.DataFrame) -> str:
    """The rows as the CSV DRUM hands R (pandas' format: NaN and None empty, floats in repr)."""
    if len(frame) >= SMALL_FRAME:
        return frame.to_csv(index=False)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([str(name) for name in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        writer.writerow(
            ["" if value is None or (isinstance(value, float) and value != value) else value for value in row]
        )
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A missing value is an empty field, as pandas writes it (NaN, None, pandas' NA)."""
    missing = value is None or value is pd.NA or (isinstance(value, float) and value != value)
    return "" if missing else value


class RModel:
    """A loaded R model, predicting frames for the structured target types."""

    def __init__(self, session: RSession, model: Any, target: Target, hooks: tuple[str, ...]) -> None:
        self.session, self.model, self.target = session, model, target
        self.labels = _labels(session, target)
        self.sanitised = _make_names(session, target.labels) if target.is_classification else []
        self.source = "score()" if "score" in hooks else "predict()"
        if "post_process" in hooks:
            self.source = "post_process()"

    def predict(self, frame: pd.DataFrame) -> Any:
        csv = to_csv(frame)
        session, target = self.session, self.target
        try:
            predictions = session.call(
                lambda: to_frame(
                    session.fn("predict")(self.model, csv, target.type.drum_name, target.is_classification, self.labels)
                )
            )
        except RModelError as exc:
            raise BadPredictions(f"R: {exc}") from None
        if target.is_classification:
            return label_columns(predictions, target.labels, self.sanitised)
        if PREDICTIONS_COLUMN in predictions.columns:
            return predictions[PREDICTIONS_COLUMN]
        return single_column(predictions, target)


def _r_value(session: RSession, value: Any) -> Any:
    """A Python value of the unstructured call -> R: str -> character, bytes -> raw, mapping -> list."""
    ro = session.ro
    if isinstance(value, bytes):
        return ro.vectors.ByteVector(value)
    if isinstance(value, str):
        return ro.StrVector([value])
    if isinstance(value, Mapping):
        return ro.vectors.ListVector({str(k): _r_value(session, v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return ro.StrVector([str(item) for item in value])
    return ro.StrVector([str(value)])


def _py_value(session: RSession, value: Any) -> Any:
    """What score_unstructured returned -> str, bytes or None (DRUM's casts), else BadUnstructured."""
    ro = session.ro
    if value is ro.NULL or (hasattr(value, "typeof") and str(value.typeof) == "RTypes.NILSXP"):
        return None
    if isinstance(value, ro.vectors.ByteVector):
        return bytes(value)
    if isinstance(value, ro.vectors.StrVector) and len(value) >= 1:
        return str(value[0])
    raise BadUnstructured(
        f"score_unstructured() returned an R {type(value).__name__}; it returns a character or raw value, NULL, "
        "or list(data, list(mimetype = ..., charset = ...))"
    )


def unstructured_answer(session: RSession, returned: Any) -> UnstructuredAnswer:
    """score_unstructured()'s value -> the HTTP answer: a single value, or list(data, kwargs)."""
    ro = session.ro
    if not isinstance(returned, ro.vectors.ListVector):
        return answer_of(_py_value(session, returned))
    if len(returned) != 2:
        raise BadUnstructured(
            f"score_unstructured() returned a list of {len(returned)} values; it returns list(data, kwargs)"
        )
    options = returned[1]
    if isinstance(options, ro.vectors.ListVector):
        kwargs = {str(key): _py_value(session, value) for key, value in options.items()}
    elif _py_value(session, options) is None:
        kwargs = {}
    else:
        raise BadUnstructured("score_unstructured()'s list(data, kwargs) has kwargs that are not a list")
    return answer_of((_py_value(session, returned[0]), kwargs))


def unstructured_scorer(session: RSession, model: Any) -> Callable[..., UnstructuredAnswer]:
    def serve(
        body: bytes, content_type: str | None, query: Mapping[str, Any], headers: Mapping[str, str]
    ) -> UnstructuredAnswer:
        data, kwargs = request_arguments(body, content_type)
        arguments = {**kwargs, "query": dict(query), "headers": dict(headers)}

        def run() -> Any:
            r_kwargs = session.ro.vectors.ListVector({k: _r_value(session, v) for k, v in arguments.items()})
            returned = session.fn("respond")(model, _r_value(session, data), r_kwargs)
            return returned

        try:
            returned = session.call(run)
        except RModelError as exc:
            raise BadUnstructured(f"{SCORE_UNSTRUCTURED}() failed in R: {exc}") from None
        answer: UnstructuredAnswer = session.call(lambda: unstructured_answer(session, returned))
        return answer

    return serve
