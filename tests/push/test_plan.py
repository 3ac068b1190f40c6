"""Planning: `plan_push`, the diff against the latest version, `userProvidedId`, the model payload,
as library calls against the emulator's app served on a real loopback socket (fast tier); `push`
here only makes the versions a plan is diffed against.

Carrying a plan out is tests/push/test_uploads.py's; the CLI's end-to-end pushes against a
`cmkit emulator` subprocess, with faults, are tests/push/test_cli_over_http.py's (slow tier).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cmkit.api.client import DataRobotClient
from cmkit.api.resources import CustomModel
from cmkit.errors import InputError
from cmkit.events import RecordingEvents
from cmkit.push import ManifestCache, PushOptions, PushRefused, new_model, plan_push, prepare_bundle, push
from cmkit.push import user_provided_id as stable_id
from tests.support.bundles import write_flask_bundle
from tests.support.emulator_support import FlaskEmulator
from tests.support.http_server import api_client

ABSENT = "0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskEmulator]:
    emu = FlaskEmulator(tmp_path_factory.mktemp("push-plan") / "data")
    yield emu
    emu.close()


@pytest.fixture(scope="module")
def api(emulator: FlaskEmulator) -> Iterator[DataRobotClient]:
    with api_client(emulator) as client:
        yield client


def named_bundle(root: Path, name: str) -> Path:
    bundle = write_flask_bundle(root)
    metadata = bundle / "model-metadata.yaml"
    metadata.write_text(metadata.read_text().replace("name: fixture-good", f'name: "{name}"'))
    (bundle / "notes.txt").write_text("kept\n")
    return bundle


def options(bundle: Path, emulator: FlaskEmulator, **fields: object) -> PushOptions:
    return replace(PushOptions(bundle=bundle, environment_id=emulator.environment_id()), **fields)  # type: ignore[arg-type]


def test_a_new_bundle_plans_its_model_and_every_file(
    emulator: FlaskEmulator, api: DataRobotClient, tmp_path: Path
) -> None:
    bundle = named_bundle(tmp_path / "bundle", "Plan: New Bundle!")
    local = prepare_bundle(bundle)
    plan = plan_push(api, local, options(bundle, emulator), ManifestCache(tmp_path / "manifests"))
    assert (plan.action, plan.model, plan.latest) == ("new-version", None, None)
    assert plan.model_create is not None
    assert plan.model_create.user_provided_id == "cmkit-plan-new-bundle"
    assert (plan.model_create.target_type, plan.model_create.target_name) == ("Regression", "y")
    assert sorted(f.path for f in plan.upload) == sorted(local.manifest)
    document = plan.to_dict()
    assert document["uploadBytes"] == sum(f.size for f in local.files) and document["digest"] == local.digest
    offline = plan_push(None, local, options(bundle, emulator), ManifestCache(tmp_path / "manifests"))
    assert (offline.action, offline.model_create) == (plan.action, plan.model_create)


def test_after_a_push_the_plan_is_up_to_date_then_a_patch_then_a_deletion(
    emulator: FlaskEmulator, api: DataRobotClient, tmp_path: Path
) -> None:
    bundle = named_bundle(tmp_path / "bundle", "plan lifecycle")
    cache = ManifestCache(tmp_path / "manifests")
    opts = options(bundle, emulator)
    first = push(api, plan_push(api, prepare_bundle(bundle), opts, cache), opts, RecordingEvents(), cache)
    assert first.created_model and first.version and first.uploaded_files == 7

    same = plan_push(api, prepare_bundle(bundle), opts, cache)
    assert same.action == "up-to-date" and same.upload == [] and same.model_create is None
    assert same.model is not None and same.model.id == first.model_id  # found by its userProvidedId
    result = push(api, same, opts, RecordingEvents(), cache)
    assert not result.created_model and result.uploaded_files == 0 and result.version == same.latest

    (bundle / "app.py").write_text((bundle / "app.py").read_text() + "\n# edited\n")
    edited = plan_push(api, prepare_bundle(bundle), opts, cache)
    assert edited.action == "patch" and [f.path for f in edited.upload] == ["app.py"] and edited.delete == []
    patched = push(api, edited, opts, RecordingEvents(), cache)
    assert patched.version and patched.version.label == "v2.0" and patched.uploaded_files == 1

    (bundle / "notes.txt").unlink()
    removed = plan_push(api, prepare_bundle(bundle), opts, cache)
    assert removed.action == "patch" and removed.upload == []
    assert [item.file_path for item in removed.delete] == ["notes.txt"]
    latest = push(api, removed, opts, RecordingEvents(), cache).version
    assert latest and "notes.txt" not in latest.file_paths

    moved = plan_push(api, prepare_bundle(bundle), replace(opts, environment_id=ABSENT), cache)
    assert (moved.action, moved.reason) == ("patch", "the execution environment changes")
    inherited = plan_push(api, prepare_bundle(bundle), replace(opts, environment_id=None), cache)
    assert inherited.action == "up-to-date" and inherited.environment_id == emulator.environment_id()


def test_a_version_pushed_from_elsewhere_uploads_every_file(
    emulator: FlaskEmulator, api: DataRobotClient, tmp_path: Path
) -> None:
    bundle = named_bundle(tmp_path / "bundle", "plan elsewhere")
    opts = options(bundle, emulator)
    here = ManifestCache(tmp_path / "here")
    push(api, plan_push(api, prepare_bundle(bundle), opts, here), opts, RecordingEvents(), here)
    (bundle / "app.py").write_text((bundle / "app.py").read_text() + "\n# edited\n")
    plan = plan_push(api, prepare_bundle(bundle), opts, ManifestCache(tmp_path / "another-machine"))
    assert plan.action == "new-version" and plan.model_create is None
    assert "not pushed from here" in plan.reason and len(plan.upload) == 7


def test_an_unknown_model_id_no_environment_or_a_missing_dataset_are_input_errors(
    emulator: FlaskEmulator, api: DataRobotClient, tmp_path: Path
) -> None:
    bundle = named_bundle(tmp_path / "bundle", "plan errors")
    local, cache = prepare_bundle(bundle), ManifestCache(tmp_path / "manifests")
    with pytest.raises(InputError, match=f"model {ABSENT} does not exist"):
        plan_push(api, local, options(bundle, emulator, model_id=ABSENT), cache)
    with pytest.raises(InputError, match="no execution environment"):
        plan_push(api, local, options(bundle, emulator, environment_id=None), cache)
    with pytest.raises(InputError, match="dataset not found"):
        plan_push(None, local, options(bundle, emulator, dataset=tmp_path / "absent.csv"), cache)
    offline = plan_push(None, local, options(bundle, emulator, model_id=ABSENT), cache)
    assert offline.model == CustomModel(ABSENT) and offline.model_create is None


def test_a_bundle_with_a_secret_is_refused_before_planning(tmp_path: Path) -> None:
    bundle = named_bundle(tmp_path / "bundle", "plan secret")
    (bundle / ".env").write_text("DATAROBOT_API_TOKEN=abc\n")
    with pytest.raises(PushRefused):
        prepare_bundle(bundle)
    assert prepare_bundle(bundle, allow_secrets=(".env",)).manifest.get(".env")


def test_user_provided_id_is_the_same_from_any_checkout(tmp_path: Path) -> None:
    one = prepare_bundle(named_bundle(tmp_path / "one" / "checkout", "Fraud Model (v2)"))
    two = prepare_bundle(named_bundle(tmp_path / "two" / "elsewhere", "Fraud Model (v2)"))
    assert stable_id(one.metadata, one.root) == stable_id(two.metadata, two.root) == "cmkit-fraud-model-v2"
    assert stable_id(None, tmp_path / "My Folder") == "cmkit-my-folder"
    assert stable_id(None, tmp_path / "***") == "cmkit-model"


def test_long_names_give_capped_distinct_ids(tmp_path: Path) -> None:
    first = named_bundle(tmp_path / "a", "n" * 150 + " one")
    second = named_bundle(tmp_path / "b", "n" * 150 + " two")
    ids = [stable_id(prepare_bundle(b).metadata, b) for b in (first, second)]
    assert all(len(i) <= 100 for i in ids) and ids[0] != ids[1]


def test_a_model_needs_metadata_to_be_created(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot create a model without model-metadata\.yaml"):
        new_model(None, tmp_path)
    local = prepare_bundle(named_bundle(tmp_path / "bundle", "payload"))
    payload = new_model(local.metadata, local.root).to_api()
    assert payload["customModelType"] == "inference" and payload["language"] == "python"
    r_bundle = tmp_path / "r"
    r_bundle.mkdir()
    (r_bundle / "custom.R").write_text("score <- function(data, model, labels) data\n")
    assert new_model(local.metadata, r_bundle).to_api()["language"] == "r"  # DRUM serves it in R
