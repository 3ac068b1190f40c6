"""The pure parts of cmkit/engine/images.py: the BASE_IMAGE argument and the build settings taken
from the host (CA bundle, pip index, proxies) that decide an image's content hash. The builds
themselves are Docker tests (tests/testlocal/test_docker.py)."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import IO

import docker
import pytest
from docker.errors import BuildError
from docker.models.images import Image

from cmkit.bundle import list_bundle
from cmkit.engine.builder import ImageBuilder, _chunk_lines, _last_error
from cmkit.engine.images import (
    BUILD_DIR,
    CA_PATH_IN_IMAGE,
    CA_SETTINGS,
    CODE_DIR,
    CODE_IMAGES_KEPT,
    CODE_REPOSITORY,
    BuildFailed,
    BuildSettings,
    BuiltImage,
    ModelImage,
    base_image_arg,
    code_context,
    code_dockerfile,
    code_key,
    code_owner,
    dependency_files,
    environment_key,
    evictable_code_images,
    label_step,
    labelled,
    layer_id,
    missing_labels,
    tar_of,
    trust_dockerfile,
)
from cmkit.envcontext import context_files, tar_context
from cmkit.errors import InputError
from cmkit.hashcache import HashCache


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


# -- what each layer is made of: keys, contexts, Dockerfiles, eviction, build output ------------


def write_files(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_the_environment_key_follows_its_context_and_index_but_not_the_folder_or_proxy(tmp_path: Path) -> None:
    context = {"Dockerfile": "FROM python:3.11-slim\n", "requirements.txt": "pandas\n"}
    one = write_files(tmp_path / "one", context)
    other = write_files(tmp_path / "other", context)
    index = {"PIP_INDEX_URL": "https://a/simple"}
    key = environment_key(context_files(one), index)
    assert key == environment_key(context_files(other), index)
    assert key == environment_key(context_files(one), {**index, "HTTPS_PROXY": "http://p:3128", "no_proxy": "x"})
    assert key != environment_key(context_files(one), {"PIP_INDEX_URL": "https://b/simple"})
    (other / "requirements.txt").write_text("pandas==2.2\n")
    assert key != environment_key(context_files(other), index)
    (one / "requirements.txt").chmod(0o755)
    assert key != environment_key(context_files(one), index)


def tar_members(data: IO[bytes]) -> dict[str, tuple[int, bytes]]:
    with tarfile.open(fileobj=data) as archive:
        return {
            m.name: (m.mode, archive.extractfile(m).read())  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        }


def test_the_dependency_layer_installs_as_root_with_the_hosts_ca_and_index_then_hands_back_the_user(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    settings = BuildSettings.from_environment(ca, environ={"PIP_INDEX_URL": "https://a/simple", "HTTPS_PROXY": "p"})
    base = BuiltImage("cmkit-env:1", "sha256:env", cached=True, user="model")
    members = tar_members(tar_of(dependency_files(base, "pandas\n", settings)))
    assert set(members) == {"requirements.txt", "ca-bundle.crt", "Dockerfile"}
    assert members["requirements.txt"][1] == b"pandas\n" and members["ca-bundle.crt"][1] == ca.read_bytes()
    dockerfile = members["Dockerfile"][1].decode().splitlines()
    assert dockerfile[:3] == ["FROM sha256:env", "USER root", f"COPY . {BUILD_DIR}/"]
    assert {"ARG PIP_INDEX_URL", "ARG HTTPS_PROXY"} <= set(dockerfile)
    (run,) = (line for line in dockerfile if line.startswith("RUN "))
    assert run.startswith(f"RUN PIP_CERT={BUILD_DIR}/ca-bundle.crt pip install ")
    assert run.endswith(f"-r {BUILD_DIR}/requirements.txt && rm -rf {BUILD_DIR}")  # no layer keeps the CA
    assert dockerfile[-1] == "USER model"
    bare = dependency_files(BuiltImage("e", "sha256:e", cached=True), "x\n", BuildSettings())
    assert set(bare) == {"requirements.txt", "Dockerfile"}
    text = bare["Dockerfile"].decode()
    assert "PIP_CERT" not in text and "ARG" not in text and text.endswith("USER root\n")


def test_the_code_key_is_the_content_wherever_the_bundle_sits(tmp_path: Path) -> None:
    files = {"custom.py": "def predict(model, X):\n    return X\n", "data/test.csv": "a\n1\n"}
    one = write_files(tmp_path / "one", files)
    copy = write_files(tmp_path / "ci-checkout" / "copy", files)
    hashes = HashCache(tmp_path / "hashes.json")
    base = BuiltImage("cmkit-deps:1", "sha256:deps", cached=True, user="model")
    labels = {"cmkit": "1"}

    def key(folder: Path, on: BuiltImage = base, with_labels: dict[str, str] = labels) -> str:
        return code_key(on, with_labels, list_bundle(folder).files, hashes)

    assert key(one) == key(copy)
    assert key(one) != key(one, BuiltImage("cmkit-deps:2", "sha256:other", cached=True, user="model"))
    assert key(one) != key(one, BuiltImage("cmkit-deps:1", "sha256:deps", cached=True, user="root"))
    assert key(one) != key(one, with_labels={"cmkit": "1", "ci-job": "7"})
    before = key(copy)
    (copy / "custom.py").chmod(0o755)  # an executable bit reaches the image: it is content
    assert key(copy) != before
    before = key(one)
    (one / "data" / "test.csv").write_text("a\n2\n")
    assert key(one) != before


def test_code_images_belong_to_the_builders_labels() -> None:
    owner = code_owner({"cmkit": "1"})
    assert len(owner) == 12 and owner == code_owner({"cmkit": "1"})
    assert owner != code_owner({"cmkit": "1", "cmkit.test-run": "abc"})


def test_the_code_layer_copies_as_the_bases_user_and_adds_only_missing_labels() -> None:
    base = BuiltImage("cmkit-deps:1", "sha256:deps", cached=True, user="model")
    wanted = {"cmkit": "1", "ci job": 'build "7"'}
    extra = missing_labels(wanted, {"cmkit": "1", "maintainer": "someone"})
    assert extra == {"ci job": 'build "7"'}
    assert code_dockerfile(base, extra) == (
        f'FROM sha256:deps\nCOPY --chown=model code/ {CODE_DIR}/\nLABEL ci job="build \\"7\\""\n'
    )
    assert missing_labels(wanted, {"cmkit": "0", "ci job": 'build "7"'}) == {"cmkit": "1"}
    root = BuiltImage("python:3.11-slim", "sha256:py", cached=True)
    assert code_dockerfile(root, {}) == f"FROM sha256:py\nCOPY --chown=root code/ {CODE_DIR}/\n"


def test_the_code_context_holds_the_files_with_their_modes_and_a_linked_files_content(tmp_path: Path) -> None:
    bundle = write_files(tmp_path / "m", {"custom.py": "x = 1\n", "start_server.sh": "#!/bin/sh\n"})
    (bundle / "start_server.sh").chmod(0o755)
    (bundle / "same.py").symlink_to("custom.py")
    with code_context("FROM x\n", list_bundle(bundle).files) as spool:
        members = tar_members(spool)
    assert members["Dockerfile"][1] == b"FROM x\n"
    assert members["code/custom.py"] == ((bundle / "custom.py").stat().st_mode & 0o777, b"x = 1\n")
    assert members["code/start_server.sh"] == (0o755, b"#!/bin/sh\n")
    assert members["code/same.py"][1] == b"x = 1\n"  # the image gets the content, not a link


def test_the_trust_layer_points_pip_requests_and_openssl_at_the_host_ca() -> None:
    dockerfile = trust_dockerfile("python:3.11-slim").splitlines()
    assert dockerfile[0] == "FROM python:3.11-slim"
    assert dockerfile[1] == f"COPY ca-bundle.crt {CA_PATH_IN_IMAGE}"
    assert dockerfile[2].split()[1:] == [f"{name}={CA_PATH_IN_IMAGE}" for name in CA_SETTINGS]


def image(tags: list[str], created: str) -> Image:
    """An image as the engine lists it (the SDK's own model, built from its attributes)."""
    return Image(attrs={"Id": f"sha256:{tags[0]}", "RepoTags": tags, "Created": created})


def test_eviction_keeps_the_owners_newest_code_images_and_the_one_just_built() -> None:
    mine, theirs = code_owner({"cmkit": "1"}), code_owner({"cmkit": "1", "ci": "other"})
    images = [image([f"{CODE_REPOSITORY}:{mine}-{n}"], f"2026-12-01T10:00:0{n}.5Z") for n in range(7)]
    images.append(image([f"{CODE_REPOSITORY}:{mine}-x", f"{CODE_REPOSITORY}:{mine}-y"], "2026-11-01T00:00:00Z"))
    images.append(image([f"{CODE_REPOSITORY}:{theirs}-old"], "2020-01-01T00:00:00Z"))
    images.append(image(["cmkit-deps:old"], "2020-01-01T00:00:00Z"))
    evicted = evictable_code_images(images, mine, keep=f"{CODE_REPOSITORY}:{mine}-1")
    # Newest first: 6, 5, 4, 3 are kept; 1 is the image just built; 2, 0 and the two-tag image go.
    assert evicted == [f"{CODE_REPOSITORY}:{mine}-{n}" for n in ("2", "0", "x", "y")]
    assert CODE_IMAGES_KEPT == 4
    assert evictable_code_images(images[:4], mine, keep="") == []


def test_build_output_gives_lines_layers_and_the_error_to_report() -> None:
    chunks = [
        {"stream": "Step 1/2 : FROM x\n ---> 1a2b3c4d5e6f\n"},
        {"stream": "Step 2/2 : RUN pip install nope\n ---> Running in 0f9e8d\n"},
        {"status": "Downloading"},
        {"stream": "\n"},
        {"error": "The command returned a non-zero code: 1"},
    ]
    lines = [line for chunk in chunks for line in _chunk_lines(chunk)]
    assert lines == [
        "Step 1/2 : FROM x",
        " ---> 1a2b3c4d5e6f",
        "Step 2/2 : RUN pip install nope",
        " ---> Running in 0f9e8d",
        "Downloading",
        "The command returned a non-zero code: 1",
    ]
    assert [layer_id(line) for line in lines if layer_id(line)] == ["1a2b3c4d5e6f"]
    assert _last_error(lines, BuildError("first\nlast line\n", iter(()))) == "last line"
    assert _last_error(lines, Exception("")) == "The command returned a non-zero code: 1"
    assert _last_error([], Exception("")) == "unknown error"
    failed = BuildFailed("code image build failed: last line", lines, "code")
    assert (failed.message, failed.log, failed.stage) == ("code image build failed: last line", lines, "code")


def test_what_needs_no_image_is_decided_before_the_engine_is_asked(tmp_path: Path) -> None:
    # A client of an engine that does not exist: any call to it would fail the test.
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41")
    builder = ImageBuilder(client, hashes=HashCache(tmp_path / "hashes.json"))
    environment = BuiltImage("cmkit-env:1", "sha256:env", cached=True, user="model")
    for requirements in (None, "", "# pinned in the environment\n\n   \n"):
        assert builder.dependencies(environment, requirements) is environment
    with pytest.raises(InputError, match="exactly one of an environment folder or an image"):
        builder.model(tmp_path, environment=tmp_path, image="python:3.11-slim")
    with pytest.raises(InputError, match="exactly one of an environment folder or an image"):
        builder.model(tmp_path)
    with pytest.raises(InputError, match="no Dockerfile in the environment folder"):
        builder.environment(tmp_path)
    builder.finish()  # nothing in the background
    assert builder.labels == {"cmkit": "1"}


def test_generated_dockerfiles_end_with_one_label_step_and_an_environments_gets_it_in_the_tar(tmp_path: Path) -> None:
    labels = {"cmkit": "1", "ci job": 'build "7"'}
    assert label_step(labels) == 'LABEL cmkit="1" ci job="build \\"7\\""\n'
    assert label_step({}) == ""
    files = labelled({"Dockerfile": b"FROM x\n", "a.txt": b"a"}, {"cmkit": "1"})
    assert files == {"Dockerfile": b'FROM x\nLABEL cmkit="1"\n', "a.txt": b"a"}
    (tmp_path / "Dockerfile").write_text("FROM x")
    (tmp_path / "a.txt").write_text("a")
    with (
        tar_context(context_files(tmp_path), "\n" + label_step({"cmkit": "1"})) as spool,
        tarfile.open(fileobj=spool) as archive,
    ):
        read = {name: archive.extractfile(name).read() for name in archive.getnames()}  # type: ignore[union-attr]
    assert read == {"Dockerfile": b'FROM x\nLABEL cmkit="1"\n', "a.txt": b"a"}
