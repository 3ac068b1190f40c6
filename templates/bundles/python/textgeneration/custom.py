"""Your model: the one file of this bundle you edit. The environment's model runtime does the rest.

It calls two functions:

- `load_model(code_dir)` once per worker process, at start, in the background (the server
  answers 503 until it returns). Load artifacts here, never in predict(). If it raises, the
  server logs the traceback and exits.
- `predict(model, X)` for each request, possibly from several threads at once: X is a pandas
  DataFrame with the request's columns (here the prompt column, `promptText`); a missing value
  is NaN or None. Return one string per row of X, in row order.

The model shipped here answers customer-support questions from a small table of topics (their
keywords and a reply) in model.json: a working text-generation start that needs no model
download. Replace it with yours (an LLM client, a local model...).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

WORD = re.compile(r"[a-z']+")


def load_model(code_dir: str) -> dict[str, Any]:
    """Read the topics from the bundle folder (`code_dir`); predict() receives them."""
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        model: dict[str, Any] = json.load(handle)
    for topic in model["topics"]:
        topic["keywords"] = frozenset(topic["keywords"])
    return model


def reply(model: dict[str, Any], prompt: Any) -> str:
    """The reply of the topic sharing the most words with the prompt, or the fallback."""
    if not isinstance(prompt, str) or not prompt.strip():
        return str(model["empty"])
    words = set(WORD.findall(prompt.lower()))
    best = max(model["topics"], key=lambda topic: len(words & topic["keywords"]))
    return str(best["reply"]) if words & best["keywords"] else str(model["fallback"])


def predict(model: dict[str, Any], X: pd.DataFrame) -> list[str]:
    """One reply per row of X."""
    column = model["promptColumn"]
    if column not in X.columns:
        raise ValueError(f"missing the prompt column {column!r}")
    return [reply(model, prompt) for prompt in X[column]]
