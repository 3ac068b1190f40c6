"""`cmkit push`: a bundle that passes locally becomes a DataRobot model version, incrementally.

How a push knows what the latest version holds: every version cmkit creates gets a description
line `cmkit-digest: <sha256 of its (path, content hash) list>`, and the per-file hashes of that
list are kept in a local cache keyed by the digest. So:

- a bundle whose digest equals the latest version's is "up to date" (from anywhere);
- when the latest version's digest is in the cache and its file paths match the version's
  items, only changed files are uploaded (PATCH, with `filesToDelete` for removed ones);
- otherwise (someone pushed from elsewhere, or edited the version in the UI) the push uploads
  a clean version with every file: never wrong, only less incremental.

Creates are not blindly retried: after a failed POST/PATCH the push looks for what it was
creating (the model by `userProvidedId`, a version newer than the one it started from with the
expected files) before trying again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cmkit.api.client import (
    ApiError,
    DataRobotClient,
    JobFailed,
    Part,
    call_with_retries,
    create_with_lookup,
)
from cmkit.api.config import MissingCredentials, load_api_config, redact_url
from cmkit.api.resources import (
    DIGEST_MARKER,
    Build,
    CustomModel,
    ModelTest,
    ModelVersion,
    VersionItem,
)
from cmkit.bundle import BundleFile, list_bundle
from cmkit.checks.results import PREDICTION_VERIFICATION
from cmkit.checks.settings import definition_levels, definition_parameters, implied_levels
from cmkit.diagnosis import BUILD_FAILED, Diagnosis, FailureEvidence, diagnose
from cmkit.errors import CmkitError, InputError
from cmkit.events import Events, status_waiter, upload_progress
from cmkit.hashcache import HashCache
from cmkit.lint import Finding, lint_bundle
from cmkit.metadata import ModelMetadata, load_metadata
from cmkit.modeldefs import ModelDefinition, definition_paths
from cmkit.paths import cache_dir
from cmkit.report import TestTable
from cmkit.requirements import REQUIREMENTS_FILE, Dependency, parse_requirements_text, read_text_file
from cmkit.target import require_target_type
from cmkit_runtime.formats import is_r_bundle

if TYPE_CHECKING:
    import requests


class PushRefused(CmkitError):
    """The bundle fails the pre-upload checks; nothing was created."""

    def __init__(self, findings: list[Finding]) -> None:
        first = findings[0]
        where = f"{first.file}:{first.line}" if first.line else first.file
        super().__init__(f"the bundle fails {len(findings)} check(s), first: {where}: [{first.rule}] {first.message}")
        self.findings = findings


# --- the local side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    path: str
    source: Path
    size: int
    sha256: str

    @classmethod
    def of(cls, file: BundleFile, hashes: HashCache) -> LocalFile:
        return cls(file.path, file.source, file.size, file.sha256(hashes))


@dataclass
class LocalBundle:
    root: Path
    files: list[LocalFile]
    metadata: ModelMetadata | None
    dependencies: list[Dependency]

    @property
    def manifest(self) -> dict[str, str]:
        return {f.path: f.sha256 for f in self.files}

    @property
    def digest(self) -> str:
        return manifest_digest(self.manifest)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def manifest_digest(manifest: dict[str, str]) -> str:
    text = "\n".join(f"{path}\0{digest}" for path, digest in sorted(manifest.items()))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def prepare_bundle(
    bundle: Path,
    allow_secrets: tuple[str, ...] = (),
    hashes: HashCache | None = None,
    definition: ModelDefinition | None = None,
) -> LocalBundle:
    """Everything `lint` and `deps` check must pass before anything is sent.

    Every file is hashed here (through `hashes`, the user's hash cache by default), and the
    cache is saved once the last file is. A GitHub Action `definition` keeps the files its
    include and exclude globs keep, as the Action uploads them.
    """
    report = lint_bundle(bundle)
    allowed = set(allow_secrets)
    blocking = [f for f in report.errors if not (f.rule == "secret-file" and f.file in allowed)]
    if blocking:
        raise PushRefused(blocking)
    listing = list_bundle(bundle)
    requirements = Path(bundle) / REQUIREMENTS_FILE
    dependencies = (
        list(parse_requirements_text(read_text_file(requirements)).dependencies) if requirements.is_file() else []
    )
    listed = listing.files
    if definition is not None:
        kept = definition_paths(definition, [f.path for f in listed])
        listed = [f for f in listed if f.path in kept]
    hashes = hashes or HashCache()
    files = [LocalFile.of(f, hashes) for f in listed]
    hashes.save()
    return LocalBundle(
        root=Path(bundle),
        files=files,
        metadata=load_metadata(bundle),
        dependencies=dependencies,
    )


class ManifestCache:
    """Per-file hashes of versions this machine pushed, keyed by their digest."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or cache_dir() / "push-manifests"

    def _path(self, digest: str) -> Path:
        return self.folder / (digest.replace(":", "-") + ".json")

    def get(self, digest: str) -> dict[str, str] | None:
        try:
            return dict(json.loads(self._path(digest).read_text()))
        except (OSError, ValueError):
            return None

    def put(self, manifest: dict[str, str]) -> None:
        self._write(self._path(manifest_digest(manifest)), manifest)

    def _write(self, path: Path, document: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        temporary.write_text(json.dumps(document, sort_keys=True))
        temporary.replace(path)

    # A version upload and the PATCH recording its digest are two requests (the API's create
    # takes no description): between them, a push records what it is uploading, so that a rerun
    # after an interruption (Ctrl-C, a lost answer) finds its own version instead of uploading an
    # identical second one.

    def _pending_path(self, model_id: str) -> Path:
        # Hashed: the id comes from the server, and names a file here.
        return self.folder / f"pending-{hashlib.sha256(model_id.encode()).hexdigest()[:32]}.json"

    def begin(self, model_id: str, digest: str, before: str | None, paths: set[str]) -> None:
        """About to upload a version of `digest` holding `paths`, after version `before`."""
        self._write(self._pending_path(model_id), {"digest": digest, "before": before, "paths": sorted(paths)})

    def done(self, model_id: str) -> None:
        self._pending_path(model_id).unlink(missing_ok=True)

    def interrupted(self, model_id: str, latest: ModelVersion) -> str | None:
        """The digest of `latest` when it is the version an interrupted push of this machine
        uploaded (newer than the one it followed, with exactly its files), else None."""
        try:
            pending = json.loads(self._pending_path(model_id).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(pending, dict) or pending.get("before") == latest.id:
            return None
        if pending.get("paths") != sorted(latest.file_paths):
            return None
        return str(pending.get("digest") or "") or None


# --- options, plan, result ----------------------------------------------------------------------


@dataclass
class PushOptions:
    bundle: Path
    model_id: str | None = None
    environment_id: str | None = None
    environment_version_id: str | None = None
    major: bool = True
    dataset: Path | None = None
    dataset_id: str | None = None
    checks: dict[str, str] = field(default_factory=dict)
    # The test's `parameters` ({check: {name: value}}, cmkit/checks/parameters.py); a
    # verification CSV is uploaded and named as predictionVerificationCheck's datasetId.
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    verification_dataset: Path | None = None
    wait: bool = True
    timeout: float = 1800.0
    # The GitHub Action's definition of the model (cmkit/modeldefs.py) and the Action's namespace:
    # the push creates and updates the model the Action would.
    definition: ModelDefinition | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class NewModel:
    """The model a push creates when none is found: the API's create payload, from the metadata."""

    name: str
    target_type: str  # the API's spelling
    language: str
    description: str
    user_provided_id: str
    target_name: str | None = None
    positive_class_label: str | None = None
    negative_class_label: str | None = None
    class_labels: list[str] | None = None
    prediction_threshold: float | None = None
    unstructured_kind: bool | None = None  # isUnstructuredModelKind, sent as the Action sends it

    def to_api(self) -> dict[str, Any]:
        """`POST customModels/`'s body (and the plan's `createModel`): optional fields only when set."""
        payload: dict[str, Any] = {
            "customModelType": "inference",
            "name": self.name,
            "targetType": self.target_type,
            "language": self.language,
            "description": self.description,
            "userProvidedId": self.user_provided_id,
        }
        optional = {
            "targetName": self.target_name,
            "positiveClassLabel": self.positive_class_label,
            "negativeClassLabel": self.negative_class_label,
            "classLabels": self.class_labels,
            "predictionThreshold": self.prediction_threshold,
            "isUnstructuredModelKind": self.unstructured_kind,
        }
        payload.update({k: v for k, v in optional.items() if v is not None})
        return payload


@dataclass
class PushPlan:
    bundle: LocalBundle
    model: CustomModel | None  # the existing model, if found
    model_create: NewModel | None  # the model that would be created
    latest: ModelVersion | None  # the model's latest version
    action: str  # "up-to-date", "new-version" (every file) or "patch" (changed files only)
    upload: list[LocalFile]
    delete: list[VersionItem]  # latest version items to remove
    environment_id: str | None
    environment_version_id: str | None
    reason: str = ""
    # The latest version is this machine's interrupted push: its digest is recorded first.
    record_digest: bool = False
    # The version's resources (maximumMemory, replicas, networkEgressPolicy), as multipart fields.
    version_settings: dict[str, str] = field(default_factory=dict)

    @property
    def upload_bytes(self) -> int:
        return sum(f.size for f in self.upload)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {"id": self.model.id, "name": self.model.name} if self.model else None,
            "createModel": self.model_create.to_api() if self.model_create else None,
            "latestVersion": {"id": self.latest.id, "label": self.latest.label} if self.latest else None,
            "action": self.action,
            "reason": self.reason,
            "baseEnvironmentId": self.environment_id,
            "baseEnvironmentVersionId": self.environment_version_id,
            "upload": [{"path": f.path, "bytes": f.size} for f in self.upload],
            "uploadBytes": self.upload_bytes,
            "delete": [item.file_path for item in self.delete],
            "digest": self.bundle.digest,
            "dependencies": [d.to_api() for d in self.bundle.dependencies],
            "versionSettings": self.version_settings,
        }


@dataclass
class PushResult:
    plan: PushPlan
    model_id: str | None = None
    model_url: str | None = None
    created_model: bool = False
    version: ModelVersion | None = None
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    build_status: str | None = None
    build_log_tail: str | None = None
    dataset_id: str | None = None
    test: ModelTest | None = None
    dry_run: bool = False

    @property
    def failed(self) -> bool:
        test_failed = self.test is not None and self.test.overall_status == "failed"
        return self.build_status == "failed" or test_failed

    @property
    def version_id(self) -> str | None:
        return self.version.id if self.version else None

    @property
    def version_label(self) -> str | None:
        return self.version.label if self.version else None

    def test_table(self) -> TestTable | None:
        """The remote test as the final table shows it (None when no test was started)."""
        return TestTable.from_api(self.test.document) if self.test else None

    def diagnosis(self) -> Diagnosis | None:
        """What went wrong, as test-local says it: the failed dependency build's, else the remote test's."""
        if self.build_status == "failed":
            found = diagnose(FailureEvidence(build_log=self.build_log_tail or ""))
            if found is not None and found.code == BUILD_FAILED:  # nothing recognised: the log is the evidence
                found = replace(found, action="read the dependency build's last lines below (buildLogTail)")
            return found
        table = self.test_table()
        return table.diagnosis if table is not None and table.overall == "failed" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "action": self.plan.action,
            "modelId": self.model_id,
            "modelUrl": self.model_url,
            "createdModel": self.created_model,
            "versionId": self.version_id,
            "versionLabel": self.version_label,
            "filesUploaded": self.uploaded_files,
            "bytesUploaded": self.uploaded_bytes,
            "buildStatus": self.build_status,
            "buildLogTail": self.build_log_tail,
            "datasetId": self.dataset_id,
            "test": self.test.document if self.test else None,
            "diagnosis": found.to_dict() if (found := self.diagnosis()) else None,
            "plan": self.plan.to_dict(),
        }


# --- planning -----------------------------------------------------------------------------------


def user_provided_id(metadata: ModelMetadata | None, bundle: Path) -> str:
    """A stable id for a bundle's model: the same from any checkout of it."""
    name = (metadata.name if metadata else None) or bundle.resolve().name
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"
    if len(slug) > 80:  # the API caps userProvidedId at 100 characters
        slug = f"{slug[:60]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return f"cmkit-{slug}"


def new_model(metadata: ModelMetadata | None, bundle: Path) -> NewModel:
    if metadata is None or metadata.target_type is None:
        raise InputError(
            "cannot create a model without model-metadata.yaml (name, targetType)",
            file=bundle,
            hint="add model-metadata.yaml or pass --model-id",
        )
    return NewModel(
        name=metadata.name or bundle.resolve().name,
        target_type=require_target_type(metadata.target_type).api_name,
        # DataRobot shows the language; DRUM picks R for a bundle of custom.R or an .rds (no custom.py)
        language=metadata.language or ("r" if is_r_bundle(bundle) else "python"),
        description=metadata.description or "",
        user_provided_id=user_provided_id(metadata, bundle),
        target_name=metadata.target_name,
        positive_class_label=metadata.positive_class_label,
        negative_class_label=metadata.negative_class_label,
        class_labels=metadata.class_labels,
        prediction_threshold=metadata.prediction_threshold,
    )


def model_from_definition(definition: ModelDefinition, namespace: str | None) -> NewModel:
    """The model the GitHub Action creates from `definition`: its settings, its namespaced userProvidedId."""
    threshold = definition.prediction_threshold if definition.api_target_type.numeric_predictions else None
    return NewModel(
        name=definition.name,
        target_type=definition.api_target_type.api_name,
        language=definition.language or "python",
        description=definition.description or "",
        user_provided_id=definition.namespaced_id(namespace),
        target_name=definition.target_name,
        positive_class_label=definition.positive_class_label,
        negative_class_label=definition.negative_class_label,
        class_labels=list(definition.class_labels) if definition.class_labels is not None else None,
        prediction_threshold=threshold,
        unstructured_kind=definition.unstructured_kind,
    )


def version_settings(definition: ModelDefinition | None) -> dict[str, str]:
    """The version's resources a definition sets, as the Action sends them."""
    if definition is None:
        return {}
    version = definition.version
    given = {
        "maximumMemory": version.memory,
        "replicas": version.replicas,
        "networkEgressPolicy": version.egress,
    }
    return {name: str(value) for name, value in given.items() if value}


def find_model(api: DataRobotClient, wanted: NewModel) -> CustomModel | None:
    """The model created for this bundle earlier (by anyone), found by its userProvidedId."""
    for document in api.pages("customModels/", {"searchFor": wanted.name, "customModelType": "inference"}):
        model = CustomModel.from_api(document)
        if model.user_provided_id == wanted.user_provided_id:
            return model
    return None


def _diff(
    local: LocalBundle, latest: ModelVersion, cache: ManifestCache
) -> tuple[str, list[LocalFile], list[VersionItem], str]:
    digest = latest.digest
    if digest == local.digest:
        return "up-to-date", [], [], "the bundle equals the latest version"
    remote = cache.get(digest) if digest else None
    items = {item.file_path: item for item in latest.items}
    if remote is None or set(remote) != set(items):
        reason = "the latest version was not pushed from here: uploading every file"
        return "new-version", list(local.files), [], reason
    upload = [f for f in local.files if remote.get(f.path) != f.sha256]
    delete = [items[p] for p in sorted(set(remote) - set(local.manifest))]
    return "patch", upload, delete, f"{len(upload)} changed or new file(s), {len(delete)} removed"


def _checked_dataset(path: Path) -> Path:
    """The --dataset file, refused before anything is sent (a dry run included) if it cannot be uploaded."""
    if not path.is_file():
        raise InputError("dataset not found or not a regular file", file=path, hint="check the --dataset path")
    return path


def plan_push(api: DataRobotClient | None, local: LocalBundle, options: PushOptions, cache: ManifestCache) -> PushPlan:
    for dataset in (options.dataset, options.verification_dataset):
        if dataset is not None:
            _checked_dataset(dataset)
    metadata = local.metadata
    model_id = options.model_id or (metadata.model_id if metadata else None)
    model: CustomModel | None = None
    create: NewModel | None = None
    if model_id:
        if api is None:
            model = CustomModel(model_id)
        else:
            try:
                model = CustomModel.from_api(api.get(f"customModels/{model_id}/"))
            except ApiError as exc:
                if exc.status == 404:
                    raise InputError(f"model {model_id} does not exist", hint="check --model-id or modelID") from exc
                raise
    else:
        if options.definition is not None:
            create = model_from_definition(options.definition, options.namespace)
        else:
            create = new_model(metadata, local.root)
        model = find_model(api, create) if api else None
        if model:
            create = None
    latest = model.latest_version if model else None
    record_digest = False
    if model is not None and latest is not None and latest.digest is None:
        digest = cache.interrupted(model.id, latest)
        if digest is not None:
            latest, record_digest = replace(latest, description=f"{DIGEST_MARKER} {digest}"), True
    version = options.definition.version if options.definition else None
    environment_id = (
        options.environment_id
        or (version.environment_id if version else None)
        or (metadata.environment_id if metadata else None)
    )
    environment_version_id = options.environment_version_id or (version.environment_version_id if version else None)
    if latest and not environment_id and not environment_version_id:
        environment_id = latest.base_environment_id
    if not environment_id and not environment_version_id:
        raise InputError(
            "no execution environment for the new version",
            hint="pass --environment-id, set environmentID in model-metadata.yaml, or upload one with `cmkit env push`",
        )
    if latest:
        action, upload, delete, reason = _diff(local, latest, cache)
        same_environment = environment_id in (None, latest.base_environment_id) and (
            environment_version_id in (None, latest.base_environment_version_id)
        )
        if action == "up-to-date" and not same_environment:
            action, reason = "patch", "the execution environment changes"
    else:
        action, upload, delete, reason = "new-version", list(local.files), [], "first version of the model"
    return PushPlan(
        local,
        model,
        create,
        latest,
        action,
        upload,
        delete,
        environment_id,
        environment_version_id,
        reason,
        record_digest,
        version_settings(options.definition),
    )


# --- executing ----------------------------------------------------------------------------------


def _ensure_model(api: DataRobotClient, plan: PushPlan, events: Events) -> tuple[CustomModel, bool]:
    if plan.model is not None:
        return plan.model, False
    wanted = plan.model_create
    assert wanted is not None
    events.stage(f"creating model '{wanted.name}' ({wanted.target_type})")
    created = True

    def create() -> CustomModel:
        nonlocal created
        try:
            return CustomModel.from_api(api.post_json("customModels/", wanted.to_api(), expected=(201,)).json())
        except ApiError as exc:
            # Someone (or our own lost attempt) created it meanwhile: userProvidedId is unique.
            if exc.status == 422 and "userProvidedId" in exc.message:
                found = find_model(api, wanted)
                if found:
                    created = False  # this push found the model; it did not create it
                    return found
            raise

    model = create_with_lookup(create, lambda: find_model(api, wanted), "creating the model", events)
    return model, created


@contextlib.contextmanager
def _opened(files: list[LocalFile]) -> Iterator[list[IO[bytes]]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(f.source.open("rb")) for f in files]


def _version_parts(plan: PushPlan, options: PushOptions, handles: list[IO[bytes]]) -> list[Part]:
    parts: list[Part] = [("isMajorUpdate", "true" if options.major else "false")]
    if plan.environment_id:
        parts.append(("baseEnvironmentId", plan.environment_id))
    if plan.environment_version_id:
        parts.append(("baseEnvironmentVersionId", plan.environment_version_id))
    parts += list(plan.version_settings.items())
    for file, handle in zip(plan.upload, handles, strict=True):
        parts.append(("file", (file.path.rsplit("/", 1)[-1], handle, "application/octet-stream")))
        parts.append(("filePath", file.path))
    parts += [("filesToDelete", item.id) for item in plan.delete]
    return parts


def _expected_paths(plan: PushPlan) -> set[str]:
    if plan.action == "new-version":
        return {f.path for f in plan.bundle.files}
    items = plan.latest.file_paths if plan.latest else set()
    return (items | {f.path for f in plan.upload}) - {item.file_path for item in plan.delete}


def _versions(api: DataRobotClient, path: str) -> list[ModelVersion]:
    """The model's newest versions (a page of them)."""
    return [ModelVersion.from_api(document) for document in api.pages(path, limit=20)]


def _upload_version(
    api: DataRobotClient, model_id: str, plan: PushPlan, options: PushOptions, events: Events
) -> ModelVersion:
    path = f"customModels/{model_id}/versions/"
    method = "PATCH" if plan.action == "patch" else "POST"
    known = {v.id for v in _versions(api, path)} if plan.latest else set()
    expected = _expected_paths(plan)
    total = plan.upload_bytes

    def create() -> ModelVersion:
        progress = upload_progress(events, "uploading", total)
        with _opened(plan.upload) as handles:
            response = api.upload(method, path, _version_parts(plan, options, handles), progress, expected=(201,))
        return ModelVersion.from_api(response.json())

    def lookup() -> ModelVersion | None:
        # A version we did not know before, holding exactly the files this push produces.
        for version in _versions(api, path):
            if version.id not in known and version.file_paths == expected:
                return version
        return None

    events.stage(f"uploading {len(plan.upload)} file(s), {total} bytes ({plan.reason})")
    return create_with_lookup(create, lookup, "uploading the version", events)


def _describe_version(
    api: DataRobotClient, model_id: str, version: ModelVersion, digest: str, events: Events
) -> ModelVersion:
    """The version with the bundle's digest in its description, or as it was when that cannot be recorded."""
    description = f"{DIGEST_MARKER} {digest}"
    url = f"customModels/{model_id}/versions/{version.id}/"
    try:  # the same PATCH again is harmless: nothing to look up between attempts
        call_with_retries(
            lambda: api.request("PATCH", url, json={"description": description}, expected=(200,)),
            "recording the bundle digest",
            events,
        )
    except ApiError as exc:
        if not exc.retryable:
            raise
        events.stage("warning: could not record the bundle digest on the version; the next push uploads every file")
        return version
    return replace(version, description=description)


def _build_dependencies(
    api: DataRobotClient,
    model_id: str,
    version: ModelVersion,
    result: PushResult,
    options: PushOptions,
    events: Events,
) -> None:
    url = f"customModels/{model_id}/versions/{version.id}/dependencyBuild/"
    try:
        found = api.get(url)
    except ApiError as exc:
        if exc.status != 422:  # 422: no build started yet
            raise
        found = None
    build = Build.from_api(found) if found is not None else None
    if build is None:  # an earlier push may have started it already (then we only wait)
        events.stage("starting the dependency build")

        def start() -> Build:
            return Build.from_api(api.request("POST", url, expected=(202,)).json())

        def started() -> Build | None:
            try:
                return Build.from_api(api.get(url))
            except ApiError:
                return None

        build = create_with_lookup(start, started, "starting the dependency build", events)
    result.build_status = build.status
    if not options.wait:
        return
    state = api.poll(
        url,
        lambda build: Build.from_api(build).finished,
        options.timeout,
        "the dependency build",
        status_waiter(events, "dependency build"),
    )
    result.build_status = Build.from_api(state).status
    if result.build_status == "failed":
        answer = api.request("GET", url.replace("dependencyBuild/", "dependencyBuildLog/"), expected=(200,))
        result.build_log_tail = "\n".join(build_log_text(answer).strip().splitlines()[-30:])


def build_log_text(answer: requests.Response) -> str:
    """The dependency build's log: DataRobot answers it as text; the API reference describes a
    JSON object with the log under `data` (the emulator's answer). Either way the lines, never JSON."""
    if "json" in answer.headers.get("Content-Type", ""):
        with contextlib.suppress(ValueError):
            document = answer.json()
            log = document.get("data") if isinstance(document, dict) else None
            if isinstance(log, str):
                return log
    return answer.text


def _dataset_id(api: DataRobotClient, options: PushOptions, events: Events) -> str:
    if options.dataset_id:
        return options.dataset_id
    assert options.dataset is not None
    return _upload_dataset(api, options.dataset, options, events)


def _test_parameters(api: DataRobotClient, options: PushOptions, events: Events) -> dict[str, dict[str, Any]]:
    parameters = {check: dict(values) for check, values in options.parameters.items()}
    if options.verification_dataset is not None:
        verification = parameters.setdefault(PREDICTION_VERIFICATION, {})
        verification["datasetId"] = _upload_dataset(api, options.verification_dataset, options, events)
    return parameters


def _upload_dataset(api: DataRobotClient, path: Path, options: PushOptions, events: Events) -> str:
    path = _checked_dataset(path)
    events.stage(f"uploading the dataset {path.name}")

    def upload() -> str:
        with path.open("rb") as handle:
            parts = [("file", (path.name, handle, "text/csv"))]
            sent = upload_progress(events, f"uploading {path.name}", path.stat().st_size)
            response = api.upload("POST", "datasets/fromFile/", parts, sent, expected=(202,))
        resource = api.wait_status(response.headers["Location"], options.timeout)
        dataset = api.get(resource)
        return str(dataset.get("datasetId") or dataset["id"])

    # A duplicated dataset upload is harmless: nothing to look up.
    return create_with_lookup(upload, lambda: None, "uploading the dataset", events)


def _remote_test(
    api: DataRobotClient,
    model_id: str,
    version: ModelVersion,
    result: PushResult,
    options: PushOptions,
    events: Events,
) -> None:
    result.dataset_id = _dataset_id(api, options, events)
    body: dict[str, Any] = {
        "customModelId": model_id,
        "customModelVersionId": version.id,
        "datasetId": result.dataset_id,
    }
    if options.checks:
        body["configuration"] = dict(options.checks)
    parameters = _test_parameters(api, options, events)
    if parameters:
        body["parameters"] = parameters
    events.stage("starting the model test")

    def tests() -> list[ModelTest]:
        listed = api.pages("customModelTests/", {"customModelId": model_id}, limit=10)
        return [t for t in map(ModelTest.from_api, listed) if t.version_id == version.id]

    before = {t.id for t in tests()}

    def start() -> str:
        return str(api.post_json("customModelTests/", body, expected=(202,)).headers["Location"])

    def started() -> str | None:
        fresh = [t for t in tests() if t.id not in before]
        return f"customModelTests/{fresh[0].id}/" if fresh else None

    location = create_with_lookup(start, started, "starting the model test", events)
    if not options.wait:
        result.test = ModelTest.started(location)
        return
    events.stage("waiting for the model test")
    resource = location
    if "customModelTests/" not in location:
        try:
            resource = api.wait_status(location, options.timeout)
        except JobFailed:
            # A test whose checks fail ends its job in ERROR: the test resource says why.
            resource = started() or ""
            if not resource:
                raise
    result.test = ModelTest.from_api(
        api.poll(resource, lambda test: ModelTest.from_api(test).finished, options.timeout, "the model test")
    )


def push(
    api: DataRobotClient,
    plan: PushPlan,
    options: PushOptions,
    events: Events | None = None,
    cache: ManifestCache | None = None,
) -> PushResult:
    """Carry out a plan: model, version, dependency build, remote test."""
    events = events or Events()
    cache = cache or ManifestCache()
    result = PushResult(plan)
    model, result.created_model = _ensure_model(api, plan, events)
    result.model_id = model.id
    result.model_url = f"{redact_url(api.config.app_url)}/registry/custom-model-workshop/{model.id}"
    if plan.record_digest and plan.latest is not None and plan.latest.digest is not None:
        events.stage(f"{plan.latest.label}: the version an interrupted push uploaded")
        if _describe_version(api, model.id, plan.latest, plan.latest.digest, events).digest:
            cache.done(model.id)
    if plan.action == "up-to-date" and not result.created_model:
        events.stage(f"up to date: {plan.latest.label if plan.latest else ''}")
        result.version = plan.latest
    else:
        cache.put(plan.bundle.manifest)
        cache.begin(model.id, plan.bundle.digest, plan.latest.id if plan.latest else None, _expected_paths(plan))
        version = _upload_version(api, model.id, plan, options, events)
        result.uploaded_files, result.uploaded_bytes = len(plan.upload), plan.upload_bytes
        result.version = _describe_version(api, model.id, version, plan.bundle.digest, events)
        if result.version.digest:  # recorded on the version: nothing left to find after an interruption
            cache.done(model.id)
    assert result.version is not None
    if result.version.has_dependencies:
        _build_dependencies(api, model.id, result.version, result, options, events)
    if (options.dataset or options.dataset_id) and result.build_status != "failed":
        _remote_test(api, model.id, result.version, result, options, events)
    return result


# --- the command --------------------------------------------------------------------------------


def push_bundle(
    options: PushOptions,
    allow_secrets: tuple[str, ...] = (),
    endpoint: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
    events: Events | None = None,
) -> PushResult:
    """All of `cmkit push`: refuse a bad bundle, plan against the live model, carry the plan out.

    A dry run only reads: it plans against the live model when credentials exist, and as if the
    model did not exist yet when they do not. The API client lives for this call only.
    """
    if options.dataset and options.dataset_id:
        raise InputError("give --dataset or --dataset-id, not both")
    if not Path(options.bundle).is_dir():
        raise InputError("not a bundle folder", file=options.bundle)
    options = _with_implied_levels(_with_definition_test(options))
    local = prepare_bundle(options.bundle, allow_secrets, definition=options.definition)
    try:
        api: DataRobotClient | None = DataRobotClient(load_api_config(endpoint, token))
    except MissingCredentials:
        if not dry_run:
            raise
        api = None
    cache = ManifestCache()
    with contextlib.closing(api) if api is not None else contextlib.nullcontext():
        plan = plan_push(api, local, options, cache)
        if dry_run or api is None:
            return PushResult(plan, dry_run=True)
        api.deadline = time.monotonic() + options.timeout  # no retry of a read waits past --timeout
        return push(api, plan, options, events, cache)


def _with_definition_test(options: PushOptions) -> PushOptions:
    """The test the Action runs after its upload (model.yaml's `test`), unless the flags name one."""
    definition = options.definition
    test = definition.test if definition else None
    if test is None or test.skip or options.dataset or options.dataset_id or not test.test_data_id:
        return options
    return replace(
        options,
        dataset_id=test.test_data_id,
        checks={**definition_levels(test), **options.checks},
        parameters={**definition_parameters(test), **options.parameters},
    )


def _with_implied_levels(options: PushOptions) -> PushOptions:
    """The checks a configured check turns on (test-local's rule), unless the user set their level."""
    implied = implied_levels(options.parameters, options.verification_dataset is not None)
    added = {name: level for name, level in implied.items() if name not in options.checks}
    return replace(options, checks={**options.checks, **added}) if added else options
