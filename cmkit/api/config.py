"""Where the DataRobot endpoint and token come from, in the same order as DataRobot's own client.

Flags, then `DATAROBOT_ENDPOINT` / `DATAROBOT_API_TOKEN` / `DATAROBOT_SSL_VERIFY`, then the YAML
file in `$DATAROBOT_CONFIG_FILE` or `~/.config/datarobot/drconfig.yaml` (keys `endpoint`,
`token`, `ssl_verify`, `connect_timeout`, `max_retries`). The token is never shown: not in
reprs, messages or tracebacks.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cmkit.errors import InputError
from cmkit.safeyaml import load_yaml
from cmkit.secretenv import secret
from cmkit.textfiles import stat_or_none

DEFAULT_CONFIG_FILE = Path("~/.config/datarobot/drconfig.yaml")
API_PATH = "/api/v2"
# The user-info part of an authority: everything up to the last "@" before the path.
_PASSWORD_IN_URL = re.compile(r"//([^/:@]*):[^/]*@")


class MissingCredentials(InputError):
    """No endpoint or token anywhere: a dry run can still plan; a broken configuration cannot."""


@dataclass(frozen=True)
class ApiConfig:
    endpoint: str
    token: str = field(repr=False)
    ssl_verify: bool | str = True
    connect_timeout: float = 6.05
    read_timeout: float = 120.0
    max_retries: int = 6

    @property
    def app_url(self) -> str:
        """The web application's base URL (the endpoint without /api/v2)."""
        return self.endpoint.removesuffix(API_PATH)


def _config_file(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("DATAROBOT_CONFIG_FILE") or DEFAULT_CONFIG_FILE).expanduser()


def _read_file(path: Path) -> dict[str, Any]:
    if stat_or_none(path) is None:
        return {}
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise InputError("expected keys endpoint, token, ssl_verify", file=path)
    return data


def _number(data: Mapping[str, Any], key: str, default: float, path: Path) -> float:
    value = data.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise InputError(f"{key} must be a positive number, not {value!r}", file=path)
    return number


def redact_url(url: str) -> str:
    """The URL with any password in it replaced by '***' (`user:password@host` is valid in URLs).

    A regular expression rather than urlsplit: it must also mask URLs that do not parse.
    """
    return _PASSWORD_IN_URL.sub(r"//\1:***@", url, count=1)


def _ssl_verify(value: Any, source: str) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes", ""):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    if not Path(text).expanduser().is_file():
        raise InputError(f"ssl_verify '{text}' is neither true/false nor a CA bundle file", file=source)
    return str(Path(text).expanduser())


def normalise_endpoint(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    shown = redact_url(endpoint)
    hint = "e.g. https://app.datarobot.com/api/v2"
    try:
        parsed = urlsplit(endpoint)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InputError(f"endpoint '{shown}' is not a valid URL: {exc}", hint=hint) from exc
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(f"endpoint '{shown}' is not an http(s) URL", hint=hint)
    return endpoint if parsed.path.endswith(API_PATH) else endpoint + API_PATH


def load_api_config(
    endpoint: str | None = None, token: str | None = None, environ: Mapping[str, str] | None = None
) -> ApiConfig:
    env = os.environ if environ is None else environ
    path = _config_file(env)
    data = _read_file(path)
    endpoint = endpoint or env.get("DATAROBOT_ENDPOINT") or data.get("endpoint")
    taken = secret("DATAROBOT_API_TOKEN") if environ is None else None  # moved out of os.environ at start
    token = token or env.get("DATAROBOT_API_TOKEN") or taken or data.get("token")
    if not endpoint or not token:
        missing = " and ".join(n for n, v in (("endpoint", endpoint), ("token", token)) if not v)
        raise MissingCredentials(
            f"no DataRobot {missing} configured",
            hint=f"pass --endpoint/--token, set DATAROBOT_ENDPOINT/DATAROBOT_API_TOKEN, or write them to {path}",
        )
    verify_source = "DATAROBOT_SSL_VERIFY" if "DATAROBOT_SSL_VERIFY" in env else str(path)
    verify = env.get("DATAROBOT_SSL_VERIFY", data.get("ssl_verify", True))
    return ApiConfig(
        endpoint=normalise_endpoint(str(endpoint)),
        token=str(token),
        ssl_verify=_ssl_verify(verify, verify_source),
        connect_timeout=_number(data, "connect_timeout", 6.05, path),
        max_retries=int(_number(data, "max_retries", 6, path)),
    )
