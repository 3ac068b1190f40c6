"""The pure parts of cmkit/runtime/images.py: the BASE_IMAGE argument and the build settings taken
from the host (CA bundle, pip index, proxies) that decide an image's content hash. The builds
themselves are Docker tests (tests/test_testlocal_docker.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.errors import InputError
from cmkit.runtime.images import BuildSettings, BuiltImage, ModelImage, base_image_arg


@pytest.mark.parametrize(
    ("dockerfile", "base"),
    [
        ("ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n", "python:3.11-slim"),
        ('# comment\n\narg BASE_IMAGE="registry.local/py:3"\nFROM $BASE_IMAGE\n', "registry.local/py:3"),
        ("FROM python:3.11\nARG BASE_IMAGE=late\n", None),  # after FROM: a build stage's argument
        ("ARG OTHER=1\nARG BASE_IMAGE=\nFROM x\n", None),
        ("ARG BASE_IMAGE\nFROM x\n", None),
        ("", None),
    ],
)
def test_base_image_arg_is_the_default_declared_before_from(dockerfile: str, base: str | None) -> None:
    assert base_image_arg(dockerfile) == base


def test_build_settings_come_from_the_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    environ = {
        "REQUESTS_CA_BUNDLE": str(ca),
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "PIP_TRUSTED_HOST": "",
        "HTTPS_PROXY": "http://proxy:3128",
        "UNRELATED": "x",
    }
    settings = BuildSettings.from_environment(environ=environ)
    assert settings.ca_bundle == ca and settings.ca_bytes() == ca.read_bytes()
    assert settings.build_args() == {
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "HTTPS_PROXY": "http://proxy:3128",
    }
    assert BuildSettings.from_environment(environ={"SSL_CERT_FILE": str(tmp_path / "absent")}).ca_bundle is None


def test_the_fingerprint_follows_the_ca_and_the_index_but_not_the_proxy(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"one")
    base = BuildSettings.from_environment(ca, environ={"PIP_INDEX_URL": "https://a/simple"})
    via_proxy = BuildSettings.from_environment(ca, environ={"PIP_INDEX_URL": "https://a/simple", "HTTP_PROXY": "p"})
    assert base.fingerprint() == via_proxy.fingerprint()
    assert base.fingerprint() != BuildSettings.from_environment(ca, environ={}).fingerprint()
    before = base.fingerprint()
    ca.write_bytes(b"two")  # a renewed corporate CA changes what every image trusts
    assert base.fingerprint() != before
    assert BuildSettings().fingerprint() != base.fingerprint()


def test_a_missing_ca_bundle_flag_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="CA bundle not found"):
        BuildSettings.from_environment(tmp_path / "nope.pem", environ={})


def test_model_image_document() -> None:
    layers = [BuiltImage(f"cmkit-{n}:1", f"sha256:{n}", cached=n != "code") for n in ("env", "deps", "code")]
    assert ModelImage(*layers).to_dict() == {
        "environment": {"tag": "cmkit-env:1", "id": "sha256:env", "cached": True},
        "dependencies": {"tag": "cmkit-deps:1", "id": "sha256:deps", "cached": True},
        "code": {"tag": "cmkit-code:1", "id": "sha256:code", "cached": False},
    }
