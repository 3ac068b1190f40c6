"""push_bundle, the whole of `cmkit push` in the core: refusals, the dry run without credentials,
implied checks (fast tier; nothing here reaches an API)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cmkit.api.config import MissingCredentials
from cmkit.errors import InputError
from cmkit.push import PushOptions, push_bundle
from tests.support.bundles import training_csv, write_flask_bundle, write_stdlib_bundle

pytestmark = pytest.mark.usefixtures("no_datarobot_configuration")


def test_a_dry_run_without_credentials_plans_a_new_model(tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path / "bundle")
    result = push_bundle(PushOptions(bundle=bundle, environment_id="env-1"), dry_run=True)
    assert result.dry_run and not result.failed and result.model_id is None
    plan = result.plan.to_dict()
    assert plan["action"] == "new-version" and plan["model"] is None and plan["createModel"]["name"]
    assert plan["baseEnvironmentId"] == "env-1"
    assert {item["path"] for item in plan["upload"]} >= {"start_server.sh"}


def test_without_credentials_a_real_push_is_the_users_error(tmp_path: Path) -> None:
    with pytest.raises(MissingCredentials):
        push_bundle(PushOptions(bundle=write_flask_bundle(tmp_path / "bundle"), environment_id="env-1"))


def test_bad_input_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not both"):
        push_bundle(PushOptions(bundle=tmp_path, dataset=tmp_path / "a.csv", dataset_id="d"), dry_run=True)
    with pytest.raises(InputError, match="not a bundle folder"):
        push_bundle(PushOptions(bundle=tmp_path / "missing"), dry_run=True)


def test_push_bundle_refuses_bad_input_before_anything_is_sent(tmp_path: Path) -> None:
    """On a real bundle and dataset (moved from the uploads: it sends nothing)."""
    root = write_stdlib_bundle(tmp_path / "bundle", name="push-input")
    data = tmp_path / "d.csv"
    data.write_bytes(training_csv())
    with pytest.raises(InputError, match="give --dataset or --dataset-id, not both"):
        push_bundle(PushOptions(bundle=root, dataset=data, dataset_id="abc"), dry_run=True)
    with pytest.raises(InputError, match="not a bundle folder") as info:
        push_bundle(PushOptions(bundle=tmp_path / "absent"), dry_run=True)
    assert info.value.file == tmp_path / "absent"
    offline = push_bundle(replace(PushOptions(bundle=root), environment_id="e"), dry_run=True)
    assert offline.dry_run and offline.plan.action == "new-version" and offline.plan.model_create is not None


def test_a_configured_check_is_turned_on_unless_its_level_is_set(tmp_path: Path) -> None:
    """test-local's rule (checks.settings.implied_levels): parameters turn a later check on at `fail`."""
    from cmkit.checks.settings import implied_levels

    parameters = {"performanceCheck": {"maxResponseTime": 5}, "stabilityCheck": {"totalPredictionRequests": 10}}
    assert implied_levels(parameters, verification_dataset=True) == {
        "performanceCheck": "fail",
        "stabilityCheck": "fail",
        "predictionVerificationCheck": "fail",
    }
    from cmkit.push import _with_implied_levels

    options = PushOptions(bundle=tmp_path, parameters=parameters, checks={"stabilityCheck": "warn"})
    assert _with_implied_levels(options).checks == {"stabilityCheck": "warn", "performanceCheck": "fail"}
