"""Unstructured models: DRUM's `score_unstructured(model, data, query, **kwargs)` behind `/predictUnstructured/`.

What DRUM does, kept here so that a bundle answers the same under either server:

- In: the request body with its Content-Type's mimetype and charset. A textual mimetype
  (`text/*`, `application/json`, or none, which counts as `text/plain`) hands the hook a `str`
  decoded with the charset (utf-8 when none is given); any other mimetype hands it the `bytes`.
  The keyword arguments are `mimetype`, `charset` (only when known), `query` (the query string,
  a mapping of its parameters) and `headers` (the request's, as a dict).
- Out: `str`, `bytes`, `None`, or `(data, {"mimetype": ..., "charset": ...})`. A `str` is encoded
  with the charset given (utf-8) and answered as `text/plain` unless the hook names a mimetype;
  `bytes` as `application/octet-stream`, with no charset unless named.
- Loading: `init(code_dir=...)` and `load_model(code_dir)` when defined (else the one artifact,
  as for structured models).

Anything else the hook returns is `BadUnstructured`: the server answers 500 naming what was
returned and what is expected, the one line the checks show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.http import parse_options_header

from cmkit_runtime.formats import SCORE_UNSTRUCTURED, UNSTRUCTURED_ROUTES

HOOK_NAMES = ("init", "load_model", SCORE_UNSTRUCTURED)
ROUTES = UNSTRUCTURED_ROUTES
TEXT_DEFAULT = "text/plain"
BINARY_DEFAULT = "application/octet-stream"
CHARSET_DEFAULT = "utf-8"
EXPECTED = 'return str, bytes, None or (data, {"mimetype": ..., "charset": ...})'


class BadUnstructured(Exception):
    """score_unstructured() returned something DRUM would refuse, or the request cannot be decoded."""


@dataclass(frozen=True)
class UnstructuredAnswer:
    body: bytes
    content_type: str | None  # None: no Content-Type header (DRUM's answer to a hook that returns None data)


def is_textual(mimetype: str) -> bool:
    """DRUM's rule: these mimetypes reach the hook decoded as text."""
    return mimetype.startswith("text/") or mimetype == "application/json"


def request_arguments(body: bytes, content_type: str | None) -> tuple[str | bytes, dict[str, Any]]:
    """The hook's `data` and its mimetype/charset keyword arguments, from the request."""
    mimetype, options = parse_options_header(content_type or "")
    mimetype = mimetype or TEXT_DEFAULT
    charset = options.get("charset")
    kwargs: dict[str, Any] = {"mimetype": mimetype}
    if not is_textual(mimetype):
        if charset is not None:
            kwargs["charset"] = charset
        return body, kwargs
    charset = charset or CHARSET_DEFAULT
    kwargs["charset"] = charset
    try:
        return body.decode(charset), kwargs
    except (LookupError, UnicodeDecodeError) as exc:
        raise BadUnstructured(f"the request body is {mimetype} but cannot be read as {charset}: {exc}") from None


def answer_of(returned: Any) -> UnstructuredAnswer:
    """The HTTP answer for what score_unstructured() returned, as DRUM writes it."""
    data, options = _split(returned)
    if data is None or isinstance(data, str):
        mimetype = options.get("mimetype", TEXT_DEFAULT)
        charset = options.get("charset", CHARSET_DEFAULT)
        try:
            body = b"" if data is None else data.encode(charset)
        except (LookupError, UnicodeEncodeError) as exc:
            raise BadUnstructured(f"score_unstructured() returned text that {charset!r} cannot encode: {exc}") from None
    else:
        mimetype = options.get("mimetype", BINARY_DEFAULT)
        charset = options.get("charset")
        body = bytes(data)
    content_type = None if mimetype is None else mimetype if charset is None else f"{mimetype}; charset={charset}"
    return UnstructuredAnswer(body, content_type)


def _split(returned: Any) -> tuple[str | bytes | None, Mapping[str, Any]]:
    if not isinstance(returned, tuple):
        if isinstance(returned, str | bytes) or returned is None:
            return returned, {}
        raise BadUnstructured(f"score_unstructured() returned {type(returned).__name__}; {EXPECTED}")
    if len(returned) != 2:
        raise BadUnstructured(f"score_unstructured() returned a tuple of {len(returned)} values; {EXPECTED}")
    data, options = returned
    if not (isinstance(data, str | bytes) or data is None) or not (isinstance(options, dict) or options is None):
        shown = f"({type(data).__name__}, {type(options).__name__})"
        raise BadUnstructured(f"score_unstructured() returned {shown}; {EXPECTED}")
    return data, options or {}


# The server's call: the request's body, Content-Type, query parameters and headers -> the answer.
Scorer = Callable[[bytes, "str | None", Mapping[str, Any], Mapping[str, str]], UnstructuredAnswer]


def load_unstructured(
    module: Any, code_dir: Path, load_default: Callable[[Path], tuple[Any, str | None]]
) -> tuple[Scorer, tuple[str, ...], str | None]:
    """The bundle's scorer, the hooks it defines and the artifact loaded (if no load_model()).

    `load_default(code_dir)` loads the artifact the way structured models do (loader.py): one
    home for finding and reading artifacts.
    """
    hooks = {name: getattr(module, name, None) for name in HOOK_NAMES}
    score = hooks[SCORE_UNSTRUCTURED]
    if not callable(score):
        raise BadUnstructured(
            "an unstructured model needs score_unstructured(model, data, query, **kwargs) in custom.py"
        )
    init, load_model = hooks["init"], hooks["load_model"]
    if callable(init):
        init(code_dir=str(code_dir))
    artifact = None
    model = load_model(str(code_dir)) if callable(load_model) else None
    if not callable(load_model):
        model, artifact = load_default(code_dir)

    def serve(
        body: bytes, content_type: str | None, query: Mapping[str, Any], headers: Mapping[str, str]
    ) -> UnstructuredAnswer:
        data, kwargs = request_arguments(body, content_type)
        return answer_of(score(model, data, query=query, headers=dict(headers), **kwargs))

    return serve, tuple(name for name, hook in hooks.items() if callable(hook)), artifact
