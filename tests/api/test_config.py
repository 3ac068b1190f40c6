"""cmkit/api/config.py: flags, then environment, then drconfig.yaml, as DataRobot's client reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.api.config import ApiConfig, MissingCredentials, load_api_config, normalise_endpoint, redact_url
from cmkit.errors import InputError

TOKEN = "file-token-0123456789"


def config_file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "drconfig.yaml"
    path.write_text(text)
    return {"DATAROBOT_CONFIG_FILE": str(path)}


def test_flags_win_over_environment_and_environment_over_the_file(tmp_path: Path) -> None:
    env = config_file(tmp_path, f"endpoint: https://file.example.com\ntoken: {TOKEN}\n")
    from_file = load_api_config(environ=env)
    assert (from_file.endpoint, from_file.token) == ("https://file.example.com/api/v2", TOKEN)
    env |= {"DATAROBOT_ENDPOINT": "https://env.example.com/api/v2/", "DATAROBOT_API_TOKEN": "env-token"}
    from_env = load_api_config(environ=env)
    assert (from_env.endpoint, from_env.token) == ("https://env.example.com/api/v2", "env-token")
    from_flags = load_api_config("http://127.0.0.1:8080", "flag-token", environ=env)
    assert (from_flags.endpoint, from_flags.token) == ("http://127.0.0.1:8080/api/v2", "flag-token")


def test_the_file_sets_timeouts_retries_and_verification(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not checked here\n")
    text = f"endpoint: https://x.example.com\ntoken: t\nconnect_timeout: 2.5\nmax_retries: 2\nssl_verify: {bundle}\n"
    config = load_api_config(environ=config_file(tmp_path, text))
    assert (config.connect_timeout, config.max_retries, config.ssl_verify) == (2.5, 2, str(bundle))


@pytest.mark.parametrize(
    ("value", "verify"), [("false", False), ("0", False), ("no", False), ("true", True), ("", True), ("YES", True)]
)
def test_ssl_verify_from_the_environment(tmp_path: Path, value: str, verify: bool) -> None:
    env = {"DATAROBOT_CONFIG_FILE": str(tmp_path / "none.yaml"), "DATAROBOT_SSL_VERIFY": value}
    assert load_api_config("https://x.example.com", "t", environ=env).ssl_verify is verify


def test_an_ssl_verify_that_is_no_file_names_its_source(tmp_path: Path) -> None:
    env = {"DATAROBOT_CONFIG_FILE": str(tmp_path / "none.yaml"), "DATAROBOT_SSL_VERIFY": str(tmp_path / "nope.pem")}
    with pytest.raises(InputError, match="neither true/false nor a CA bundle file") as caught:
        load_api_config("https://x.example.com", "t", environ=env)
    assert caught.value.file == "DATAROBOT_SSL_VERIFY"


def test_missing_credentials_name_what_is_missing_and_where_to_put_it(tmp_path: Path) -> None:
    env = {"DATAROBOT_CONFIG_FILE": str(tmp_path / "none.yaml")}
    with pytest.raises(MissingCredentials, match="no DataRobot endpoint and token configured") as caught:
        load_api_config(environ=env)
    assert str(tmp_path / "none.yaml") in str(caught.value.hint)
    with pytest.raises(MissingCredentials, match="no DataRobot token configured"):
        load_api_config("https://x.example.com", environ=env)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a list\n", "expected keys endpoint, token"),
        ("endpoint: https://x\ntoken: t\nconnect_timeout: soon\n", "connect_timeout must be a positive number"),
        ("endpoint: https://x\ntoken: t\nconnect_timeout: .nan\n", "connect_timeout must be a positive number"),
        ("endpoint: https://x\ntoken: t\nmax_retries: -1\n", "max_retries must be a positive number"),
    ],
)
def test_a_broken_file_is_one_input_error_naming_it(tmp_path: Path, text: str, fragment: str) -> None:
    env = config_file(tmp_path, text)
    with pytest.raises(InputError, match=fragment) as caught:
        load_api_config(environ=env)
    assert Path(str(caught.value.file)) == Path(env["DATAROBOT_CONFIG_FILE"])


@pytest.mark.parametrize(
    ("endpoint", "normal"),
    [
        ("https://app.datarobot.com", "https://app.datarobot.com/api/v2"),
        (" https://app.datarobot.com/api/v2/ ", "https://app.datarobot.com/api/v2"),
        ("http://localhost:8080/dr/api/v2", "http://localhost:8080/dr/api/v2"),
    ],
)
def test_endpoints_are_normalised_to_the_api_root(endpoint: str, normal: str) -> None:
    assert normalise_endpoint(endpoint) == normal


@pytest.mark.parametrize(
    ("endpoint", "fragment"),
    [
        ("ftp://x.example.com", r"is not an http\(s\) URL"),
        ("app.datarobot.com", r"is not an http\(s\) URL"),
        ("https://x.example.com:port", "is not a valid URL"),
        ("https://user:hunter2@x.example.com:port", "is not a valid URL"),
    ],
)
def test_bad_endpoints_are_refused_without_their_password(endpoint: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment) as caught:
        normalise_endpoint(endpoint)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@host/api/v2", "https://user:***@host/api/v2"),
        ("https://user:p@ss:w@rd@host:8/x", "https://user:***@host:8/x"),
        ("https://host/api/v2", "https://host/api/v2"),
        ("https://user@host/", "https://user@host/"),
    ],
)
def test_redact_url_masks_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_token_is_not_in_the_repr_and_the_app_url_drops_the_api_path() -> None:
    config = ApiConfig("https://app.example.com/api/v2", TOKEN)
    assert TOKEN not in repr(config)
    assert config.app_url == "https://app.example.com"
