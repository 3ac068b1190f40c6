"""DataRobot's custom-models GitHub Action (datarobot-oss/custom-models-action) against the emulator.

CI cannot fetch the Action (no network to GitHub, and it is not on PyPI), so this test sends
exactly the Action's requests instead, read from its source (`src/dr_client.py` and
`src/model_controller.py` at commit 4c5bd07): the same routes in the same order, the same
payloads (JSON or multipart, `Authorization: Token`, GET bodies included), and the same status
expectations (the Action raises on anything else, e.g. a PATCH of a model that is not 200).
`ActionClient` mirrors `DrClient`; each test function mirrors one workflow run of the Action's
`ModelController` (push to main, pull request, merge, deletion). When the Action changes, this
file has to be compared with it again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from tests.support.bundles import write_expected, write_flask_bundle
from tests.support.emulator_support import TOKEN, Emulator

pytestmark = pytest.mark.slow

NAMESPACE = "12345/"  # the Action's default namespace: "<GitHub repository id>/"
TIMEOUT = 30.0  # the Action's HttpRequester.MAX_QUERY_TIMEOUT


class ActionError(AssertionError):
    """Where the Action would raise DataRobotClientError / HttpRequesterException."""


class ActionClient:
    """The Action's `DrClient`: its requests, payloads and accepted statuses."""

    def __init__(self, endpoint: str) -> None:
        self.base = endpoint  # ends with /api/v2/
        self.headers = {"Authorization": f"Token {TOKEN}"}

    # -- HttpRequester ----------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.base}{path}" if "?" in path or path.endswith("/") else f"{self.base}{path}/"

    def get(self, path: str, raw: bool = False, **kwargs: Any) -> requests.Response:
        url = path if raw else self._url(path)
        return requests.get(url, headers=dict(self.headers), timeout=TIMEOUT, **kwargs)

    def post(self, path: str, data: Any = None, json_body: Any = None, headers: Any = None) -> requests.Response:
        return requests.post(
            self._url(path), data=data, json=json_body, headers={**self.headers, **(headers or {})}, timeout=TIMEOUT
        )

    def patch(self, path: str, data: Any = None, json_body: Any = None, headers: Any = None) -> requests.Response:
        return requests.patch(
            self._url(path), data=data, json=json_body, headers={**self.headers, **(headers or {})}, timeout=TIMEOUT
        )

    def delete(self, path: str) -> requests.Response:
        return requests.delete(self._url(path), headers=dict(self.headers), timeout=TIMEOUT)

    # -- DrClient ---------------------------------------------------------------------------------
    def is_accessible(self) -> bool:
        response = self.get(f"{self.base}/ping", raw=True)  # sic: the Action doubles the slash
        return response.status_code == 200 and response.json()["response"] == "pong"

    def wait_for_async_resolution(self, location: str, max_wait: float = 600.0) -> Any:
        deadline = time.time() + max_wait
        while time.time() < deadline:
            response = self.get(location, raw=True, allow_redirects=False)
            if response.status_code == 303:
                return response.headers["Location"]
            data = response.json()
            if response.status_code == 200 and data["status"].lower() == "completed":
                return data
            if response.status_code != 200:
                raise ActionError(f"Failed waiting for async resolution: {response.status_code} {data}")
            if data["status"].lower()[:5] in ("abort", "error"):
                raise ActionError(f"Async task failed: {data}.")
            time.sleep(0.2)  # the Action sleeps 1 s; only the pace differs
        raise ActionError(f"timed out waiting for {location}")

    def paginated_fetch(self, route: str, **kwargs: Any) -> list[dict[str, Any]]:
        def page(url: str, raw: bool) -> tuple[list[dict[str, Any]], str | None]:
            if raw:
                kwargs.pop("params", None)
            response = self.get(url, raw, **kwargs)
            if response.status_code != 200:
                raise ActionError(f"Failed to fetch a page: {response.status_code} {response.text}")
            body = response.json()
            assert isinstance(body["totalCount"], int) and isinstance(body["count"], int)
            return body["data"], body["next"]

        entities, next_page = page(route, raw=False)
        while next_page:
            more, next_page = page(next_page, raw=True)
            entities.extend(more)
        return entities

    def fetch_custom_models(self) -> list[dict[str, Any]]:
        models = self.paginated_fetch("customModels/")
        return [m for m in models if (m.get("userProvidedId") or "").startswith(NAMESPACE)]

    def fetch_custom_model_by_git_id(self, git_id: str) -> dict[str, Any] | None:
        return next((m for m in self.fetch_custom_models() if m.get("userProvidedId") == NAMESPACE + git_id), None)

    def fetch_latest_version(self, model_id: str) -> dict[str, Any] | None:
        versions = self.paginated_fetch(f"customModels/{model_id}/versions/", json={"limit": 1})
        return versions[0] if versions else None

    def create_custom_model(self, git_id: str, git: dict[str, Any], name: str) -> dict[str, Any]:
        payload = {
            "customModelType": "inference",
            "targetType": "Regression",
            "targetName": "y",
            "isUnstructuredModelKind": False,
            "userProvidedId": NAMESPACE + git_id,
            "gitModelVersion": git,
            "name": name,
            "language": "Python",
        }
        response = self.post("customModels/", json_body=payload)
        if response.status_code == 201:
            return dict(response.json())
        if response.status_code == 422:
            message = json.loads(response.text).get("message", "")
            if "Cannot create a custom model with a user provided ID" in message:
                existing = self.fetch_custom_model_by_git_id(git_id)
                if existing:
                    return existing
        raise ActionError(f"Failed to create custom model: {response.status_code} {response.text}")

    def create_custom_model_version(
        self,
        model_id: str,
        is_major: bool,
        git: dict[str, Any],
        files: dict[str, Path],
        env_id: str,
        delete_ids: tuple[str, ...] = (),
        from_latest: bool = False,
    ) -> dict[str, Any]:
        payload: list[tuple[str, Any]] = [("isMajorUpdate", str(is_major)), ("gitModelVersion", json.dumps(git))]
        handles = []
        for path_under_model, path in files.items():
            handle = path.open("rb")
            handles.append(handle)
            payload.append(("file", (path_under_model, handle)))
            payload.append(("filePath", path_under_model))
        payload.extend(("filesToDelete", item) for item in delete_ids)
        payload.append(("baseEnvironmentId", env_id))
        payload.append(("maximumMemory", str(512 * 1024 * 1024)))
        try:
            encoder = MultipartEncoder(fields=payload)
            headers = {"Content-Type": encoder.content_type}
            url = f"customModels/{model_id}/versions/"
            send = self.patch if from_latest else self.post
            response = send(url, data=encoder, headers=headers)
        finally:
            for handle in handles:
                handle.close()
        if response.status_code != 201:
            raise ActionError(f"Failed to create custom model version: {response.status_code} {response.text}")
        return dict(response.json())

    def build_dependency_environment_if_required(self, version: dict[str, Any]) -> None:
        if not version.get("dependencies"):
            return
        url = f"customModels/{version['customModelId']}/versions/{version['id']}/dependencyBuild/"
        if self.get(url).status_code == 200:  # already built or in progress
            return
        response = self.post(url)
        if response.status_code != 202:
            raise ActionError(f"Failed to initiate dependency build: {response.status_code} {response.text}")
        while True:
            info = self.get(url)
            if info.status_code != 200:
                raise ActionError(f"dependency build info: {info.status_code} {info.text}")
            status = info.json()["buildStatus"]
            if status == "success":
                return
            if status == "failed":
                raise ActionError("Failed to build dependency environment")
            time.sleep(0.2)

    def update_model(self, model_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = self.patch(f"customModels/{model_id}/", json_body=payload)
        if response.status_code != 200:
            raise ActionError(f"Failed to update custom model: {response.status_code} {response.text}")
        return dict(response.json())

    def update_version_main_branch_commit_sha(self, version: dict[str, Any], git: dict[str, Any]) -> dict[str, Any]:
        url = f"customModels/{version['customModelId']}/versions/{version['id']}/"
        response = self.patch(url, json_body={"gitModelVersion": git})
        if response.status_code != 200:
            raise ActionError(f"Failed to update the version's commit: {response.status_code} {response.text}")
        return dict(response.json())

    def fetch_custom_model_tests(self, model_id: str, **kwargs: Any) -> list[dict[str, Any]]:
        return self.paginated_fetch("customModelTests/", params={"customModelId": model_id, **kwargs})

    def run_custom_model_version_testing(
        self, model_id: str, version_id: str, checks: dict[str, Any], dataset_id: str
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"customModelId": model_id, "customModelVersionId": version_id}
        payload["configuration"] = build_tests_configuration(checks)
        parameters = build_tests_parameters(checks)
        if parameters:
            payload["parameters"] = parameters
        payload["datasetId"] = dataset_id
        response = self.post("customModelTests/", json_body=payload)
        if response.status_code != 202:
            raise ActionError(f"Custom model version test failed: {response.status_code} {response.text}")
        location = self.wait_for_async_resolution(response.headers["Location"])
        test = dict(self.get(location, raw=True).json())
        if test["overallStatus"] != "succeeded":
            for check, result in test["testingStatus"].items():
                if result["status"] == "failed":
                    raise ActionError(f"Custom model version check failed: {check}: {result['message']}")
        return test

    def upload_dataset(self, path: Path) -> str:
        with path.open("rb") as handle:
            encoder = MultipartEncoder(fields={"file": (str(path), handle)})
            response = self.post("datasets/fromFile/", data=encoder, headers={"Content-Type": encoder.content_type})
            if response.status_code != 202:
                raise ActionError(f"Failed uploading dataset: {response.text}")
        resource = self.wait_for_async_resolution(response.headers["Location"])
        return str(resource.split("/")[-2])

    def fetch_custom_model_deployments(self, model_ids: list[str]) -> list[dict[str, Any]]:
        return self.paginated_fetch("customModelDeployments/", json={"customModelIds": model_ids})

    def delete_custom_model_by_model_id(self, model_id: str) -> None:
        response = self.delete(f"customModels/{model_id}/")
        if response.status_code != 204:
            raise ActionError(f"Failed to delete custom model: {response.text}")

    def delete_dataset(self, dataset_id: str) -> None:
        if self.delete(f"datasets/{dataset_id}/").status_code != 204:
            raise ActionError(f"Failed deleting dataset id '{dataset_id}'")

    def update_model_version_with_training_data(self, model_id: str, dataset_id: str, git: dict[str, Any]) -> Any:
        payload = {"trainingData": {"datasetId": dataset_id}, "holdoutData": {}, "gitModelVersion": git}
        response = self.patch(f"customModels/{model_id}/versions/withTrainingData", json_body=payload)
        if response.status_code != 202:
            raise ActionError(f"Failed to assign training data: {response.status_code} {response.text}")
        location = self.wait_for_async_resolution(response.headers["Location"])
        return self.get(location, raw=True).json()

    # -- the model registry (DrClient's registered model methods) ---------------------------------
    def get_registered_model_by_name(self, name: str) -> dict[str, Any] | None:
        items = self.paginated_fetch("registeredModels/", params={"search": name})
        return next((item for item in items if item["name"] == name), None)

    def create_or_update_registered_model(self, version_id: str, name: str) -> str:
        registered = self.get_registered_model_by_name(name)
        registered_id = registered["id"] if registered else None
        if registered_id:
            versions = self.paginated_fetch(f"registeredModels/{registered_id}/versions/")
            existing = next((v["id"] for v in versions if v["modelId"] == version_id), None)
            if existing:
                return str(existing)
        package = self.create_model_package(version_id, None if registered_id else name, registered_id)
        return str(package["id"])

    def update_registered_model(self, name: str, description: str | None, is_global: bool | None) -> None:
        registered = self.get_registered_model_by_name(name)
        if registered is None:
            raise ActionError(f"Failed to find registered model by name: {name}")
        payload: dict[str, Any] = {}
        if description is not None and description != registered["description"]:
            payload["description"] = description
        if is_global is not None and is_global != registered.get("isGlobal"):
            payload["isGlobal"] = is_global
        if payload and self.patch(f"registeredModels/{registered['id']}/", json_body=payload).status_code != 200:
            raise ActionError("Failed to update registered model properties")

    def create_model_package(
        self, version_id: str, registered_name: str | None = None, registered_id: str | None = None
    ) -> dict[str, Any]:
        payload = {"customModelVersionId": version_id}
        if registered_name:
            payload["registeredModelName"] = registered_name
        if registered_id:
            payload["registeredModelId"] = registered_id
        response = self.post("modelPackages/fromCustomModelVersion/", json_body=payload)
        if response.status_code != 201:
            raise ActionError(f"Failed creating model's package: {response.status_code} {response.text}")
        self.wait_for_async_resolution(response.headers["Location"])
        return dict(response.json())

    # -- deployments (DrClient's deployment methods) -----------------------------------------------
    def fetch_deployments(self) -> list[dict[str, Any]]:
        deployments = self.paginated_fetch("deployments/")
        return [d for d in deployments if (d.get("userProvidedId") or "").startswith(NAMESPACE)]

    def fetch_deployment_by_git_id(self, git_id: str) -> dict[str, Any] | None:
        return next((d for d in self.fetch_deployments() if d["userProvidedId"] == NAMESPACE + git_id), None)

    def prediction_environment_id(self, name: str | None = None) -> str:
        url = "predictionEnvironments/?supportedModelFormats=customModel" + (f"&search={name}" if name else "")
        environments = self.paginated_fetch(url)
        if not environments:
            raise ActionError("Prediction environment is missing")
        return str(environments[0]["id"])

    def create_deployment(self, version: dict[str, Any], git_id: str, settings: dict[str, Any]) -> dict[str, Any]:
        package = self.create_model_package(version["id"])
        payload = {
            "userProvidedId": NAMESPACE + git_id,
            "modelPackageId": package["id"],
            "label": settings.get("label") or f"{package['target']['name']} Predictions [GitHub CI/CD]",
            "predictionEnvironmentId": self.prediction_environment_id(),
        }
        response = self.post("deployments/fromModelPackage/", json_body=payload)
        if response.status_code != 202:
            raise ActionError(f"Failed creating a deployment: {response.status_code} {response.text}")
        deployment_id = response.json()["id"]
        try:
            location = self.wait_for_async_resolution(response.headers["Location"])
        except ActionError as exc:
            persistent = self.get(f"customModelDeployments/{deployment_id}/logs/")
            raise ActionError(f"A background job failed: {exc}\n{persistent.text}") from exc
        runtime = self.post(f"customModelDeployments/{deployment_id}/logs/")
        if runtime.status_code == 202:
            text = self.get(self.wait_for_async_resolution(runtime.headers["Location"]), raw=True).text
            if "WARNING" in text or "ERROR" in text:
                raise ActionError(f"A deployment reported a warning or an error: {text}")
        deployment = dict(self.get(location, raw=True).json())
        deployment, _ = self.update_deployment_settings(deployment, settings)
        return deployment

    def update_deployment_settings(
        self, deployment: dict[str, Any], settings: dict[str, Any], actual: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], bool]:
        updated = False
        entity = {k: settings[k] for k in ("label", "description") if k in settings and settings[k] != deployment[k]}
        if entity:
            response = self.patch(f"deployments/{deployment['id']}/", json_body=entity)
            if response.status_code != 204:
                raise ActionError(f"Failed to update deployment: {response.text}")
            deployment, updated = {**deployment, **entity}, True
        payload: dict[str, Any] = {}
        for section in ("targetDrift", "featureDrift", "challengerModels", "predictionsDataCollection"):
            if section in settings and settings[section] != bool(actual and actual[section]["enabled"]):
                payload[section] = {"enabled": settings[section]}
        if "associationId" in settings and (
            actual is None or actual["associationId"]["columnNames"] != [settings["associationId"]]
        ):
            payload["associationId"] = {"columnNames": [settings["associationId"]]}
        if payload:
            response = self.patch(f"deployments/{deployment['id']}/settings/", json_body=payload)
            if response.status_code != 202:
                raise ActionError(f"Failed to update deployment settings: {response.status_code} {response.text}")
            location = self.wait_for_async_resolution(response.headers["Location"])
            deployment, updated = dict(self.get(location, raw=True).json()), True
        return deployment, updated

    def fetch_deployment_settings(self, deployment_id: str) -> dict[str, Any]:
        response = self.get(f"deployments/{deployment_id}/settings/")
        if response.status_code != 200:
            raise ActionError(f"Failed to fetch deployment settings: {response.text}")
        return dict(response.json())

    def submit_deployment_actuals(self, deployment: dict[str, Any], dataset_id: str) -> Any:
        payload = {"datasetId": dataset_id, "actualValueColumn": "y", "associationIdColumn": "a"}
        response = self.post(f"deployments/{deployment['id']}/actuals/fromDataset/", json_body=payload)
        if response.status_code != 202:
            raise ActionError(f"Failed to update association dataset: {response.text}")
        return self.get(self.wait_for_async_resolution(response.headers["Location"]), raw=True).json()

    def validate_model_compatibility(self, package_id: str, deployment_id: str) -> None:
        response = self.post(f"deployments/{deployment_id}/model/validation/", json_body={"modelPackageId": package_id})
        if response.status_code != 200 or response.json()["status"] == "failing":
            raise ActionError(f"A deployment's model validation failed: {response.text}")

    def replace_model_deployment(self, version: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
        package = self.create_model_package(version["id"])
        self.validate_model_compatibility(package["id"], deployment["id"])
        payload = {"modelPackageId": package["id"], "reason": "ERRORS"}
        response = self.patch(f"deployments/{deployment['id']}/model/", json_body=payload)
        if response.status_code != 202:
            raise ActionError(f"Failed to replace a model in a deployment: {response.text}")
        return dict(self.get(self.wait_for_async_resolution(response.headers["Location"]), raw=True).json())

    def create_challenger(self, version: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
        package = self.create_model_package(version["id"])
        self.validate_model_compatibility(package["id"], deployment["id"])
        payload = {
            "modelPackageId": package["id"],
            "name": package["name"],
            "predictionEnvironmentId": self.prediction_environment_id(),
        }
        response = self.post(f"deployments/{deployment['id']}/challengers/", json_body=payload)
        if response.status_code != 202:
            raise ActionError(f"Failed to submit a challenger: {response.text}")
        return dict(self.get(self.wait_for_async_resolution(response.headers["Location"]), raw=True).json())

    def fetch_challengers(self, deployment_id: str) -> list[dict[str, Any]]:
        response = self.get(f"deployments/{deployment_id}/challengers/")
        if response.status_code != 200:
            raise ActionError(f"Failed to fetch deployment challengers: {response.text}")
        return list(response.json()["data"])

    def delete_deployment_by_id(self, deployment_id: str) -> None:
        response = self.delete(f"deployments/{deployment_id}/")
        if response.status_code != 204:
            raise ActionError(f"Failed to delete deployment: {response.text}")


# The Action's model.yaml `test.checks` section, and how it turns it into the request
# (DrClient._build_tests_configuration / _build_tests_parameters, percentages / 100).
CHECK_KEYS = {
    "null_value_imputation": "nullValueImputation",
    "side_effects": "sideEffects",
    "prediction_verification": "predictionVerificationCheck",
    "performance": "performanceCheck",
    "stability": "stabilityCheck",
}


def build_tests_configuration(checks: dict[str, Any]) -> dict[str, str]:
    configuration = {"longRunningService": "fail", "errorCheck": "fail"}
    for local, remote in CHECK_KEYS.items():
        info = checks.get(local)
        level = "skip"
        if info and info["enabled"]:
            level = "fail" if info["block_deployment_if_fails"] else "warn"
        configuration[remote] = level
    return configuration


def build_tests_parameters(checks: dict[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for check, info in checks.items():
        if not info["enabled"]:
            continue
        params: dict[str, Any] = {}
        if check == "prediction_verification":
            params = {"datasetId": info["output_dataset_id"], "predictionsColumn": info["predictions_column"]}
            if "match_threshold" in info:  # sic: the Action pairs the keys this way round
                params["matchingRate"] = info["passing_match_rate"] / 100
            if "passing_match_rate" in info:
                params["comparisonPrecision"] = info["match_threshold"]
        elif check == "performance":
            keys = {"maximum_response_time": "maxResponseTime", "max_execution_time": "maxExecutionTime"}
            keys["number_of_parallel_users"] = "numParallelUsers"
            params = {remote: info[local] for local, remote in keys.items() if local in info}
        elif check == "stability":
            params = {
                remote: info[local] / 100 if local == "passing_rate" else info[local]
                for local, remote in {
                    "total_prediction_requests": "numPredictions",
                    "passing_rate": "passingRate",
                    "number_of_parallel_users": "numParallelUsers",
                    "minimum_payload_size": "minPayloadSize",
                    "maximum_payload_size": "maxPayloadSize",
                }.items()
                if local in info
            }
        if params:
            parameters[CHECK_KEYS[check]] = params
    return parameters


def sha(label: str) -> str:
    """A 40-hex-digit commit SHA, as GitHub gives the Action."""
    return hashlib.sha1(label.encode()).hexdigest()


def git_version(main: str | None, pull_request: str | None = None, ref: str = "main") -> dict[str, Any]:
    main_sha, pr_sha = (sha(main) if main else None), (sha(pull_request) if pull_request else None)
    commit = pr_sha or main_sha
    return {
        "refName": ref,
        "commitUrl": f"https://github.com/org/models/commit/{commit}",
        "mainBranchCommitSha": main_sha,
        "pullRequestCommitSha": pr_sha,
    }


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = Emulator(tmp_path_factory.mktemp("action") / "data").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def action(emulator: Emulator) -> ActionClient:
    client = ActionClient(emulator.endpoint)
    assert client.is_accessible()
    return client


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_flask_bundle(tmp_path_factory.mktemp("action-model") / "model", rows=40)
    write_expected(root)
    return root


def model_files(bundle: Path) -> dict[str, Path]:
    return {str(p.relative_to(bundle)): p for p in sorted(bundle.rglob("*")) if p.is_file()}


def checks_section(output_dataset_id: str) -> dict[str, Any]:
    """The Action's README example, scaled down to a small model and a CI machine."""
    return {
        "null_value_imputation": {"enabled": True, "block_deployment_if_fails": True},
        "side_effects": {"enabled": True, "block_deployment_if_fails": True},
        "prediction_verification": {
            "enabled": True,
            "block_deployment_if_fails": True,
            "output_dataset_id": output_dataset_id,
            "predictions_column": "expected",
            "match_threshold": 0.001,
            "passing_match_rate": 100,
        },
        "performance": {
            "enabled": True,
            "block_deployment_if_fails": True,
            "maximum_response_time": 10,
            "max_execution_time": 100,
            "number_of_parallel_users": 2,
        },
        "stability": {
            "enabled": True,
            "block_deployment_if_fails": True,
            "total_prediction_requests": 30,
            "passing_rate": 95,
            "number_of_parallel_users": 2,
            "minimum_payload_size": 1,
            "maximum_payload_size": 200,
        },
    }


# -- the Action's workflow runs ------------------------------------------------------------------


def sync(
    action: ActionClient,
    env_id: str,
    bundle: Path,
    git_id: str,
    git: dict[str, Any],
    settings: dict[str, Any],
    test: tuple[dict[str, Any], str] | None = None,
    changed: bool = True,
    new_files: bool = False,
) -> dict[str, Any]:
    """One `ModelController.handle_model_changes` run for one model; what it did."""
    did: dict[str, Any] = {"created": False, "version": None, "settings": None, "test": None}
    known = {m["userProvidedId"]: m for m in action.fetch_custom_models()}
    model = known.get(NAMESPACE + git_id)
    latest = previous = action.fetch_latest_version(model["id"]) if model else None
    if changed:
        if model is None:
            model = action.create_custom_model(git_id, git, settings["name"])
            did["created"] = True
        else:
            payload = {k: v for k, v in settings.items() if v and v != model.get(k)}
            if payload:
                payload["gitModelVersion"] = git
                did["settings"] = model = action.update_model(model["id"], payload)
        if latest is None or new_files:
            latest = action.create_custom_model_version(
                model["id"], bool(latest and latest["isFrozen"]), git, model_files(bundle), env_id
            )
            did["version"] = latest
            action.build_dependency_environment_if_required(latest)
    assert model is not None and latest is not None
    if test is not None:
        checks, dataset_id = test
        new_version = previous is None or latest["id"] != previous["id"]
        tests = [] if new_version else action.fetch_custom_model_tests(model["id"], limit=1)
        if new_version or not tests or tests[0]["customModelVersion"]["id"] != latest["id"]:
            did["test"] = action.run_custom_model_version_testing(model["id"], latest["id"], checks, dataset_id)
    did["model"], did["latest"] = model, latest
    return did


def test_sync_settings_test_and_no_change(action: ActionClient, emulator: Emulator, bundle: Path) -> None:
    env_id = str(emulator.info["environmentId"])
    dataset_id = action.upload_dataset(bundle / "data" / "sample.csv")
    expected_id = action.upload_dataset(bundle / "data" / "expected.csv")
    checks = checks_section(expected_id)
    settings = {"name": "action-model", "description": ""}

    first = sync(action, env_id, bundle, "model-a", git_version("c1"), settings, (checks, dataset_id))
    assert first["created"] and first["version"] is not None
    test = first["test"]
    assert test["overallStatus"] == "succeeded", test["testingStatus"]
    assert set(test["testingStatus"]) >= set(build_tests_configuration(checks))
    assert {c["status"] for c in test["testingStatus"].values()} == {"succeeded"}

    # Nothing changed: no model, no version, no test (the latest test is of the latest version).
    again = sync(action, env_id, bundle, "model-a", git_version("c2"), settings, (checks, dataset_id), changed=False)
    assert not again["created"] and again["version"] is None and again["test"] is None

    # A settings change: PATCH customModels/{id}/ must answer 200 for the Action.
    changed = sync(action, env_id, bundle, "model-a", git_version("c3"), {**settings, "description": "v2 settings"})
    assert changed["settings"]["description"] == "v2 settings" and changed["version"] is None
    assert changed["settings"]["gitModelVersion"]["mainBranchCommitSha"] == sha("c3")


def test_checks_with_problems_fail_the_actions_test(action: ActionClient, emulator: Emulator, bundle: Path) -> None:
    env_id = str(emulator.info["environmentId"])
    dataset_id = action.upload_dataset(bundle / "data" / "sample.csv")
    expected_id = action.upload_dataset(bundle / "data" / "expected.csv")
    wrong = write_flask_bundle(bundle.parent / "wrong", behaviour="wrong_predictions", rows=40)
    with pytest.raises(ActionError, match="predictionVerificationCheck"):
        sync(
            action,
            env_id,
            wrong,
            "model-wrong",
            git_version("w1"),
            {"name": "wrong"},
            (checks_section(expected_id), dataset_id),
        )


def test_idempotent_creation_falls_back_to_the_existing_model(action: ActionClient) -> None:
    first = action.create_custom_model("model-twice", git_version("d1"), "twice")
    response = action.post(
        "customModels/",
        json_body={
            "customModelType": "inference",
            "targetType": "Regression",
            "targetName": "y",
            "name": "twice",
            "userProvidedId": NAMESPACE + "model-twice",
        },
    )
    assert response.status_code == 422
    assert "Cannot create a custom model with a user provided ID" in response.json()["message"]
    second = action.create_custom_model("model-twice", git_version("d2"), "twice")
    assert second["id"] == first["id"]
    assert [m["id"] for m in action.fetch_custom_models() if m["userProvidedId"] == NAMESPACE + "model-twice"] == [
        first["id"]
    ]


def test_pull_request_then_merge(action: ActionClient, emulator: Emulator, bundle: Path) -> None:
    env_id = str(emulator.info["environmentId"])
    # The pull request's run creates the model and its version with the PR's commit (and, as
    # the main branch's, the merge base: GitModelVersion in the Action).
    pr = sync(action, env_id, bundle, "model-pr", git_version("merge-base", "p1", ref="feature"), {"name": "from-pr"})
    assert pr["model"]["gitModelVersion"]["pullRequestCommitSha"] == sha("p1")
    assert pr["latest"]["gitModelVersion"]["pullRequestCommitSha"] == sha("p1")
    # The merge's push run: nothing changed, so the Action moves the git info to the main branch
    # (ModelController._update_git_model_version_following_merging).
    model = action.fetch_custom_model_by_git_id("model-pr")
    assert model is not None
    latest = action.fetch_latest_version(model["id"])
    assert latest is not None
    merged = git_version("m1")
    if model["gitModelVersion"]["pullRequestCommitSha"]:
        model = action.update_model(model["id"], {"gitModelVersion": merged})
    if latest["gitModelVersion"]["pullRequestCommitSha"]:
        latest = action.update_version_main_branch_commit_sha(latest, {**merged, "pullRequestCommitSha": None})
    assert model["gitModelVersion"]["mainBranchCommitSha"] == sha("m1")
    assert latest["gitModelVersion"] == {**merged, "pullRequestCommitSha": None}
    listed = action.fetch_latest_version(model["id"])
    assert listed is not None and listed["gitModelVersion"]["mainBranchCommitSha"] == sha("m1")


def test_deleted_model_is_deleted(action: ActionClient, emulator: Emulator, bundle: Path) -> None:
    env_id = str(emulator.info["environmentId"])
    made = sync(action, env_id, bundle, "model-gone", git_version("g1"), {"name": "gone"})
    model_id = made["model"]["id"]
    # ModelController.handle_deleted_models: list the models' deployments (none), then delete.
    deployments = action.fetch_custom_model_deployments([model_id])
    assert deployments == []
    action.delete_custom_model_by_model_id(model_id)
    assert action.fetch_custom_model_by_git_id("model-gone") is None


# -- what the emulator refuses in a test request -------------------------------------------------


def test_bad_later_check_settings_are_refused(action: ActionClient, emulator: Emulator, bundle: Path) -> None:
    env_id = str(emulator.info["environmentId"])
    made = sync(action, env_id, bundle, "model-bad-settings", git_version("b1"), {"name": "bad settings"})
    dataset_id = action.upload_dataset(bundle / "data" / "sample.csv")
    base = {"customModelId": made["model"]["id"], "customModelVersionId": made["latest"]["id"], "datasetId": dataset_id}
    cases = [
        ({"configuration": {"performanceCheck": "sometimes"}}, 422, "configuration.performanceCheck"),
        ({"configuration": {"speedCheck": "fail"}}, 422, "configuration.speedCheck"),
        (
            {"parameters": {"performanceCheck": {"numParallelUsers": 5}}},
            422,
            "parameters.performanceCheck.numParallelUsers",
        ),
        ({"parameters": {"stabilityCheck": {"passingRate": 95}}}, 422, "parameters.stabilityCheck.passingRate"),
        ({"configuration": {"predictionVerificationCheck": "fail"}}, 422, "parameters.predictionVerificationCheck"),
        (
            {
                "configuration": {"predictionVerificationCheck": "fail"},
                "parameters": {"predictionVerificationCheck": {"datasetId": dataset_id, "predictionsColumn": "nope"}},
            },
            422,
            "parameters.predictionVerificationCheck.predictionsColumn",
        ),
        (
            {
                "configuration": {"predictionVerificationCheck": "warn"},
                "parameters": {"predictionVerificationCheck": {"datasetId": "0" * 24, "predictionsColumn": "x"}},
            },
            404,
            None,
        ),
    ]
    for extra, status, field in cases:
        response = action.post("customModelTests/", json_body={**base, **extra})
        assert response.status_code == status, (extra, response.text)
        if field:
            assert field in response.json()["errors"], response.json()
    assert action.fetch_custom_model_tests(made["model"]["id"]) == []  # nothing was started


def test_custom_model_deployments_of_a_model_without_any_is_an_empty_page(emulator: Emulator) -> None:
    absent = {"limit": 5, "customModelIds": "0" * 24}
    response = emulator.session().get(emulator.url("customModelDeployments/"), params=absent)
    assert response.status_code == 200
    assert response.json() == {"count": 0, "totalCount": 0, "next": None, "previous": None, "data": []}
    assert emulator.session().get(emulator.url("customModelDeployments/"), params={"limit": "x"}).status_code == 422


# -- the Action's deployment runs (DeploymentController), as its functional suite drives them -----


def test_deployment_created_configured_challenged_replaced_and_deleted(
    action: ActionClient, emulator: Emulator, bundle: Path
) -> None:
    env_id = str(emulator.info["environmentId"])
    made = sync(action, env_id, bundle, "model-deployed", git_version("e1"), {"name": "deployed"})
    actuals_id = action.upload_dataset(bundle / "data" / "sample.csv")
    settings: dict[str, Any] = {"description": "a deployment", "associationId": "a", "challengerModels": True}
    settings["predictionsDataCollection"] = True
    # DeploymentController.create_deployment: the deployment, its actuals, its settings.
    deployment = action.create_deployment(made["latest"], "deployment-1", settings)
    action.submit_deployment_actuals(deployment, actuals_id)
    deployment, _ = action.update_deployment_settings(
        deployment, settings, action.fetch_deployment_settings(deployment["id"])
    )
    found = action.fetch_deployment_by_git_id("deployment-1")
    assert found is not None and found["id"] == deployment["id"] and found["description"] == "a deployment"
    image = found["model"]["customModelImage"]
    assert (image["customModelId"], image["customModelVersionId"]) == (made["model"]["id"], made["latest"]["id"])
    actual = action.fetch_deployment_settings(deployment["id"])
    assert actual["associationId"]["columnNames"] == ["a"] and actual["challengerModels"]["enabled"] is True
    # Nothing changed: the Action's next run sends nothing.
    assert action.update_deployment_settings(found, settings, actual) == (found, False)
    # A changed label and drift: the entity (204) and the settings (202) are both updated.
    changed = {**settings, "label": "new label", "targetDrift": True}
    updated, did = action.update_deployment_settings(found, changed, actual)
    assert did and updated["label"] == "new label"
    assert action.fetch_deployment_settings(deployment["id"])["targetDrift"]["enabled"] is True

    # A new version of a packaged (frozen) version is a major one; with challengers enabled the
    # Action submits it as a challenger, once: the champion is listed first.
    newer = sync(action, env_id, bundle, "model-deployed", git_version("e2"), {"name": "deployed"}, new_files=True)
    assert (newer["latest"]["versionMajor"], newer["latest"]["versionMinor"]) == (2, 0)
    assert action.fetch_challengers(deployment["id"])[-1]["model"]["id"] == made["latest"]["id"]
    action.create_challenger(newer["latest"], found)
    challengers = action.fetch_challengers(deployment["id"])
    assert len(challengers) == 2 and challengers[-1]["model"]["id"] == newer["latest"]["id"]

    # Challengers disabled: the model is replaced by the latest version.
    replaced = action.replace_model_deployment(newer["latest"], found)
    assert replaced["model"]["customModelImage"]["customModelVersionId"] == newer["latest"]["id"]

    # ModelController.handle_deleted_models: a deployed model is not deleted.
    in_use = action.fetch_custom_model_deployments([made["model"]["id"]])
    assert [d["customModel"]["id"] for d in in_use] == [made["model"]["id"]]
    # DeploymentController.handle_deleted_deployments, then the model can go.
    action.delete_deployment_by_id(deployment["id"])
    assert action.fetch_deployment_by_git_id("deployment-1") is None
    assert action.fetch_custom_model_deployments([made["model"]["id"]]) == []
    action.delete_custom_model_by_model_id(made["model"]["id"])
    action.delete_dataset(actuals_id)


def test_deployment_of_a_model_that_fails_reports_the_error(
    action: ActionClient, emulator: Emulator, bundle: Path
) -> None:
    env_id = str(emulator.info["environmentId"])
    broken = write_flask_bundle(
        bundle.parent / "broken-start", start_script="#!/bin/sh\necho ERROR: no model >&2\nexit 3\n"
    )
    made = sync(action, env_id, broken, "model-broken", git_version("f1"), {"name": "broken"})
    with pytest.raises(ActionError, match="ERROR"):
        action.create_deployment(made["latest"], "deployment-broken", {})


def test_registered_model_training_data_and_dataset_deletion(
    action: ActionClient, emulator: Emulator, bundle: Path
) -> None:
    env_id = str(emulator.info["environmentId"])
    made = sync(action, env_id, bundle, "model-registered", git_version("r1"), {"name": "registered"})
    first = action.create_or_update_registered_model(made["latest"]["id"], "registered_model")
    assert action.create_or_update_registered_model(made["latest"]["id"], "registered_model") == first
    action.update_registered_model("registered_model", "described", True)
    registered = action.get_registered_model_by_name("registered_model")
    assert registered is not None and registered["description"] == "described" and registered["isGlobal"] is True

    # Training data at the version level: withTrainingData's Location is a status to poll.
    model = action.update_model(made["model"]["id"], {"isTrainingDataForVersionsPermanentlyEnabled": True})
    dataset_id = action.upload_dataset(bundle / "data" / "sample.csv")
    version = action.update_model_version_with_training_data(model["id"], dataset_id, git_version("r2"))
    assert version["trainingData"]["datasetId"] == dataset_id
    assert (version["versionMajor"], version["versionMinor"]) == (2, 0)  # the packaged 1.0 is frozen
    action.delete_dataset(dataset_id)
    with pytest.raises(ActionError):
        action.delete_dataset(dataset_id)
