"""Your model: the one file of this bundle you edit. The model runtime (cmkit-runtime) does everything else.

A vector database answers each query (one row of the request) with the documents nearest to it.
The runtime calls two functions:

- `load_model(code_dir)` once per worker process, at start, in the background (the server
  answers 503 until it returns): build or open the index here, never in predict().
- `predict(model, X)` for each request, possibly from several threads at once: X is a pandas
  DataFrame with the request's columns (here the query column, `query`); a missing value is NaN
  or None. Return one string per row of X, in row order: here a JSON list of the nearest
  documents with their scores, as DataRobot's vector databases answer.

The index shipped here embeds the documents of model.json as bags of hashed words (a vector per
document, cosine similarity): a working start that needs no model download. Replace it with
your embeddings and store (FAISS, Chroma...).
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DIMENSIONS = 256  # the hashed vocabulary: words share a slot rarely enough for a few documents
# Words that say nothing of a topic; the others count, plural or not ("refunds" is "refund").
STOP_WORDS = frozenset(
    {"a", "an", "and", "any", "are", "as", "at", "be", "before", "by", "can", "do", "for", "from", "get", "how"}
    | {"i", "in", "is", "it", "its", "my", "of", "on", "or", "the", "to", "was", "what", "when", "where", "with"}
    | {"you", "your"}
)


def words(text: str) -> list[str]:
    found = re.findall(r"[a-z0-9]+", text.lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in found if w not in STOP_WORDS]


def embed(texts: list[str]) -> np.ndarray:
    """One unit vector per text: word counts hashed into DIMENSIONS slots (crc32, stable across runs)."""
    vectors = np.zeros((len(texts), DIMENSIONS))
    for row, text in enumerate(texts):
        for word in words(text):
            vectors[row, zlib.crc32(word.encode("utf-8")) % DIMENSIONS] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def load_model(code_dir: str) -> dict[str, Any]:
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        spec = json.load(handle)
    documents = spec["documents"]
    return {
        "column": spec["queryColumn"],
        "top": int(spec["top"]),
        "documents": documents,
        "vectors": embed([d["text"] for d in documents]),
    }


def predict(model: dict[str, Any], X: pd.DataFrame) -> list[str]:
    """The `top` nearest documents of each query, as a JSON list of {id, text, score}."""
    queries = ["" if pd.isna(q) else str(q) for q in X[model["column"]]]
    scores = embed(queries) @ model["vectors"].T
    answers = []
    for row in scores:
        best = np.argsort(-row, kind="stable")[: model["top"]]
        found = [{**model["documents"][i], "score": round(float(row[i]), 4)} for i in best]
        answers.append(json.dumps(found, ensure_ascii=False))
    return answers
