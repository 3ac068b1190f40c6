"""Your model: the one file of this bundle you edit. The environment's model runtime does the rest.

An unstructured model answers any request body with any bytes: the runtime serves it on
`POST /predictUnstructured/` (DataRobot's route for unstructured models) and calls two functions,
DRUM's hooks:

- `load_model(code_dir)` once per worker process, at start, in the background (the server
  answers 503 until it returns). Load artifacts here. If it raises, the server exits.
- `score_unstructured(model, data, query, **kwargs)` for each request, possibly from several
  threads at once. `data` is the body: a `str` when the request's Content-Type is textual
  (`text/*` or `application/json`, decoded with its charset, utf-8 by default), else `bytes`.
  `query` holds the query string's parameters; `kwargs` the `mimetype`, `charset` and `headers`.
  Return a `str` (sent as text/plain), `bytes` (application/octet-stream), or
  `(data, {"mimetype": ..., "charset": ...})` to name the answer's Content-Type.

The model shipped here triages a support message: it finds the topic whose keywords the text
shares most (model.json) and answers a JSON document with the topic and a reply. `?format=text`
answers the reply alone as text. Replace it with yours (a document parser, an image model...).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

WORD = re.compile(r"[a-z']+")


def load_model(code_dir: str) -> dict[str, Any]:
    """Read the topics from the bundle folder (`code_dir`); score_unstructured() receives them."""
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        model: dict[str, Any] = json.load(handle)
    for topic in model["topics"]:
        topic["keywords"] = frozenset(topic["keywords"])
    return model


def triage(model: dict[str, Any], text: str) -> dict[str, Any]:
    """The topic sharing the most words with the text (or none) and its reply."""
    words = set(WORD.findall(text.lower()))
    best = max(model["topics"], key=lambda topic: len(words & topic["keywords"]))
    if not words & best["keywords"]:
        return {"topic": None, "reply": model["fallback"], "words": len(words)}
    return {"topic": best["name"], "reply": best["reply"], "words": len(words)}


def score_unstructured(model: dict[str, Any], data: str | bytes, query: Any, **kwargs: Any) -> Any:
    """One answer per request body."""
    text = data.decode(kwargs.get("charset") or "utf-8") if isinstance(data, bytes) else data
    found = triage(model, text)
    if query.get("format") == "text":
        return found["reply"]
    return json.dumps(found), {"mimetype": "application/json", "charset": "utf-8"}
