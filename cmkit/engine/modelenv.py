"""The environment a model server starts with: what DataRobot gives it, and nothing else by accident.

DataRobot starts `start_server.sh` with its contract's variables (`PORT`, `URL_PREFIX`...) and
never with the user's credentials. Locally the same holds: the model gets the contract, the few
host variables a process needs to run at all (the allowlist below: search path, home, locale,
time zone, proxies, CA bundles), and what the user passes on purpose with `--env KEY=VALUE`.
`DATAROBOT_API_TOKEN`, cloud keys and everything else of the host stay out. The Docker runtime
passes no host variable at all (the image has its own PATH and HOME), like `docker run`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from cmkit.errors import InputError

# Host variables a local model process inherits (the process runtime only).
HOST_ALLOWLIST = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "TERM",
        "LANG",
        "LANGUAGE",
        "TZ",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "PIP_CERT",
        "NODE_EXTRA_CA_CERTS",
    }
)
HOST_ALLOWLIST_PREFIXES = ("LC_",)  # LC_ALL, LC_CTYPE...
# Set by cmkit for every server; `--env` cannot change them (use --url-prefix).
RESERVED_NAMES = frozenset({"PORT", "URL_PREFIX"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def allowed_host_variable(name: str) -> bool:
    return name in HOST_ALLOWLIST or name.startswith(HOST_ALLOWLIST_PREFIXES)


def model_environment(contract: Mapping[str, str], extra: Mapping[str, str], host: Mapping[str, str]) -> dict[str, str]:
    """Allowlisted `host` variables, then the user's `extra` (--env), then the `contract`, which wins."""
    environment = {name: value for name, value in host.items() if allowed_host_variable(name)}
    environment.update(extra)
    environment.update(contract)
    return environment


def parse_env_flags(values: Iterable[str], host: Mapping[str, str]) -> dict[str, str]:
    """`--env KEY=VALUE` flags -> a dict; `--env KEY` takes the value from `host`, as `docker run -e` does."""
    environment: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not _NAME.match(name):
            raise InputError(f"--env {value!r} is not KEY=VALUE", hint="KEY is letters, digits and '_'")
        if name in RESERVED_NAMES:
            raise InputError(f"--env {name} is set by cmkit for every server", hint="use --url-prefix to choose it")
        if "\0" in text:
            raise InputError(f"--env {name}: a value cannot hold a NUL byte")
        if sep:
            environment[name] = text
        elif name in host:  # like `docker run -e NAME`: passed when set, skipped otherwise
            environment[name] = host[name]
    return environment
