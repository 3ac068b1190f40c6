"""The documents the emulator stores and answers: one type per kind of resource.

Written by hand after the API reference (the seed's custom-models chapter, from which
`api_reference.json` is extracted): a stored document holds the fields its response schema lists
(`CustomModelResponse`, `CustomModelVersionResponse`...), in the API's camelCase, so rendering a
resource is its document, shaped (`common.shape`). What only the emulator needs (blob hashes, job
tokens, the status to move on) is the resource's `Internal` record, never shown.

Every document type is `total=False`: `Store.update` merges some of a kind's fields into its
stored document, and `shape` leaves optional null fields out of a response, so a value of a
document type may hold any subset of its fields. The types say which fields a kind has and what
each holds; the code that creates a resource writes them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypedDict, TypeVar, cast

from cmkit.requirements import ApiConstraint as Constraint
from cmkit.requirements import ApiDependency as Dependency

__all__ = ["Constraint", "Dependency"]  # with the types below: a version's dependencies are requirements'

DocT = TypeVar("DocT", bound=Mapping[str, object])  # a document type of this module

# -- parts ---------------------------------------------------------------------------------------


class GitModelVersion(TypedDict, total=False):
    refName: str
    commitUrl: str
    mainBranchCommitSha: str
    pullRequestCommitSha: str | None


class MetadataValue(TypedDict):
    """One of a version's `requiredMetadataValues`."""

    fieldName: str
    value: str


class Item(TypedDict, total=False):
    """One file of a version (`items`): local uploads, or from a repository (`fileSource: remote`)."""

    id: str
    fileName: str
    filePath: str
    fileSource: str
    created: str
    workspaceId: str
    storagePath: str
    commitSha: str | None
    ref: str | None
    repositoryFilePath: str | None
    repositoryLocation: str | None
    repositoryName: str | None


class TrainingData(TypedDict, total=False):
    """A version's `trainingData`."""

    datasetId: str | None
    datasetVersionId: str | None
    datasetName: str | None
    assignmentInProgress: bool


class HoldoutData(TypedDict, total=False):
    """A version's `holdoutData`."""

    datasetId: str | None
    datasetVersionId: str | None
    datasetName: str | None
    partitionColumn: str | None


class ModelTemplate(TypedDict):
    """The `template` of a model made from a template."""

    templateId: str
    modelType: str


class IdName(TypedDict):
    id: str
    name: str


class IdLabel(TypedDict):
    id: str
    label: str


class CheckStatus(TypedDict):
    """One check of a test's `testingStatus`."""

    status: str
    message: str


class AccessEntry(TypedDict):
    """One entry of an access list (the reference's SharingListResponse `data` items)."""

    userId: str
    username: str
    role: str
    canShare: bool


class BlobRef(TypedDict):
    """Where a version's file is in the blob store."""

    sha256: str
    size: int


# -- custom models -------------------------------------------------------------------------------


class ResourceSettings(TypedDict, total=False):
    """The resource settings a model, its versions and its tests carry (and inherit in that order)."""

    networkEgressPolicy: str | None
    maximumMemory: int | None
    replicas: int | None
    desiredMemory: int | None
    requiresHa: bool | None
    resourceBundleId: str | None


def settings(given: Mapping[str, object], inherited: Mapping[str, object], names: Iterable[str]) -> ResourceSettings:
    """The resource settings `names` (in that order): as given, else as inherited, else None.

    `given` is a request body and `inherited` a document: the reference types each setting alike
    in both, so what they hold is what `ResourceSettings` says.
    """
    return cast(ResourceSettings, {name: given[name] if name in given else inherited.get(name) for name in names})


class CustomModel(ResourceSettings, total=False):
    """A custom model (CustomModelResponse)."""

    id: str
    name: str
    description: str
    language: str
    customModelType: str
    targetType: str
    targetName: str | None
    positiveClassLabel: str | None
    negativeClassLabel: str | None
    predictionThreshold: float | None
    classLabels: list[str] | None
    userProvidedId: str | None
    created: str
    updated: str
    createdBy: str
    deploymentsCount: int
    supportsBinaryClassification: bool
    supportsRegression: bool
    supportsAnomalyDetection: bool
    trainingDataAssignmentInProgress: bool
    isTrainingDataForVersionsPermanentlyEnabled: bool
    calibratePredictions: bool | None
    gitModelVersion: GitModelVersion | None
    playgroundId: str | None
    template: ModelTemplate | None
    trainingDatasetId: str | None
    trainingDatasetVersionId: str | None
    trainingDataFileName: str | None
    trainingDataPartitionColumn: str | None


class VersionTrainingData(TypedDict, total=False):
    """The training and holdout data of a version (when its model assigns data to versions)."""

    trainingData: TrainingData
    holdoutData: HoldoutData


class CustomModelVersion(ResourceSettings, VersionTrainingData, total=False):
    """A version of a custom model (CustomModelVersionResponse)."""

    id: str
    customModelId: str
    versionMajor: int
    versionMinor: int
    label: str
    description: str | None
    created: str
    # The reference allows null; the emulator always sets both (a version needs a built environment).
    baseEnvironmentId: str
    baseEnvironmentVersionId: str
    items: list[Item]
    dependencies: list[Dependency]
    gitModelVersion: GitModelVersion | None
    requiredMetadataValues: list[MetadataValue] | None


class VersionResponse(CustomModelVersion, total=False):
    isFrozen: bool  # every version but the latest


class CustomModelResponse(CustomModel, total=False):
    latestVersion: VersionResponse | None


class DependencyBuild(TypedDict, total=False):
    """The dependency build of a version (its id is the version's)."""

    buildStatus: str
    buildStart: str
    buildEnd: str | None
    buildLogLocation: str | None


# -- execution environments ----------------------------------------------------------------------


class Environment(TypedDict, total=False):
    """An execution environment (ExecutionEnvironmentResponse)."""

    id: str
    name: str
    description: str
    programmingLanguage: str
    isPublic: bool
    useCases: list[str]
    created: str
    username: str
    deploymentsCount: int
    requiredMetadataKeys: list[dict[str, str]]


class EnvironmentVersion(TypedDict, total=False):
    """A version of an execution environment (ExecutionEnvironmentVersionResponse)."""

    id: str
    environmentId: str
    label: str
    description: str
    buildStatus: str
    buildId: str | None
    created: str
    dockerContext: str | None
    dockerContextSize: int | None
    dockerImage: str | None
    dockerImageSize: int | None
    imageId: str
    sourceDockerImageUri: str | None


class LatestVersions(TypedDict, total=False):
    """An environment's latest versions, each left out while the environment has none."""

    latestVersion: EnvironmentVersion
    latestSuccessfulVersion: EnvironmentVersion


class EnvironmentResponse(Environment, LatestVersions, total=False):
    pass


# -- tests, datasets, statuses -------------------------------------------------------------------


class TestingOutcome(TypedDict, total=False):
    """What a test run reports (test-local's report document, the part a test records)."""

    overallStatus: str
    testingStatus: dict[str, CheckStatus]
    details: dict[str, object]
    diagnosis: dict[str, object] | None  # cmkit/diagnosis.py's, when the run failed


class ModelTest(ResourceSettings, total=False):
    """A custom model test (CustomModelTestsResponse)."""

    id: str
    created: str
    completedAt: str
    createdBy: str
    customModel: IdName
    customModelVersion: IdLabel
    executionEnvironment: IdName
    executionEnvironmentVersion: IdLabel
    customModelImageId: str
    imageType: str
    datasetId: str | None
    datasetVersionId: str | None
    overallStatus: str
    testingStatus: dict[str, CheckStatus]


class Dataset(TypedDict, total=False):
    """A dataset's catalog entry, as DataRobot's client reads `datasets/{id}/`."""

    datasetId: str
    versionId: str
    name: str
    categories: list[str]
    creationDate: str
    createdBy: str
    dataPersisted: bool
    isDataEngineEligible: bool
    isLatestVersion: bool
    isSnapshot: bool
    datasetSize: int
    rowCount: int | None
    processingState: str
    error: str


class Status(TypedDict, total=False):
    """An async job's status (`status/{id}/`)."""

    statusId: str
    status: str
    message: str
    code: int
    created: str
    description: str
    statusType: str | None


# -- model registry and deployments (outside the custom-models chapter) --------------------------


class PackageTarget(TypedDict, total=False):
    """A model package's (and registered model's) target, as the Action and client read it."""

    name: str | None
    type: str
    classNames: list[str] | None
    positiveClassLabel: str | None
    negativeClassLabel: str | None
    predictionThreshold: float | None


class ModelPackage(TypedDict, total=False):
    """A model package, which DataRobot also calls a registered model version."""

    id: str
    name: str
    modelId: str  # the custom model version it packages
    registeredModelId: str
    registeredModelVersion: int
    modelExecutionType: str
    isArchived: bool
    isDeprecated: bool
    importMeta: dict[str, object]
    sourceMeta: dict[str, object]
    modelKind: dict[str, object]
    target: PackageTarget
    modelDescription: dict[str, object]
    datasets: dict[str, object]
    timeseries: dict[str, object]
    permissions: list[str]
    activeDeploymentCount: int
    buildStatus: str
    userProvidedId: str | None
    createdAt: str
    customModelId: str  # not DataRobot's field: the version's model, for listing by model


class RegisteredModel(TypedDict, total=False):
    id: str
    name: str
    description: str | None
    createdAt: str
    modifiedAt: str
    createdBy: dict[str, str]
    target: PackageTarget
    lastVersionNum: int
    isArchived: bool
    isGlobal: bool


class CustomModelImage(TypedDict):
    customModelId: str
    customModelVersionId: str
    executionEnvironmentId: str
    executionEnvironmentVersionId: str


class DeployedModel(TypedDict, total=False):
    """A deployment's `model` (and a challenger's): the package's custom model version."""

    id: str  # the custom model version, as DataRobot reports a custom model's deployment
    type: str
    targetName: str | None
    targetType: str
    customModelImage: CustomModelImage
    deployedAt: str


class Deployment(TypedDict, total=False):
    id: str
    label: str
    description: str | None
    importance: str
    status: str
    userProvidedId: str | None
    model: DeployedModel
    modelPackage: dict[str, str]
    predictionEnvironment: dict[str, object]
    defaultPredictionServer: dict[str, str]
    serviceHealth: dict[str, str | None]
    modelHealth: dict[str, str | None]
    accuracyHealth: dict[str, str | None]
    permissions: list[str]
    createdAt: str
    creator: dict[str, str]


class Challenger(TypedDict, total=False):
    id: str
    name: str
    model: DeployedModel
    modelPackage: dict[str, str]
    predictionEnvironment: dict[str, str]


class PredictionEnvironment(TypedDict, total=False):
    id: str
    name: str
    description: str
    platform: str
    supportedModelFormats: list[str]
    isManagedByManagementAgent: bool
    isDeleted: bool
    importance: str


# -- conversions, explanations, feature impact, repositories -------------------------------------


class Conversion(TypedDict, total=False):
    """A version's SAS conversion (ConversionResponse)."""

    id: str
    customModelVersionId: str
    created: str
    mainProgramItemId: str
    conversionInProgress: bool
    conversionSucceeded: bool | None
    logMessage: str | None
    shouldStop: bool


class ExplanationsInitialization(TypedDict, total=False):
    """A recorded prediction explanations initialisation (never shown: see conversions.py)."""

    customModelId: str
    customModelVersionId: str
    environmentId: str
    environmentVersionId: str
    datasetId: str
    created: str


class FeatureImpactEntry(TypedDict):
    featureName: str
    impactNormalized: float
    impactUnnormalized: float
    redundantWith: str | None


class FeatureImpactResult(TypedDict, total=False):
    """FeatureImpactResponse, as `cmkit.featureimpact` computes it."""

    count: int
    featureImpacts: list[FeatureImpactEntry]
    next: str | None
    previous: str | None
    ranRedundancyDetection: bool
    rowCount: int | None
    shapBased: bool


class FeatureImpact(TypedDict, total=False):
    """A version's feature impact computation (its id is the version's) and its result."""

    status: str
    message: str
    started: str
    completed: str
    result: FeatureImpactResult | None


class Repository(TypedDict, total=False):
    """A local git repository registered with the emulator (`/__emulator__/repositories`)."""

    id: str
    name: str
    path: str
    created: str


# -- what only the emulator sees -----------------------------------------------------------------


class Internal(TypedDict, total=False):
    """A resource's record outside the API; each kind uses the fields its module names."""

    blobs: dict[str, BlobRef]  # version: item id -> its content
    access: list[AccessEntry]  # model, environment: the access list (the creator alone when absent)
    token: str | None  # dependency build: the run that may record progress
    sha256: str  # environment version, dataset: the uploaded file
    tableSha256: str  # dataset: the comma CSV made of an upload in another form (emulator/datasetfiles.py)
    fileName: str  # environment version: the uploaded context's name
    error: str  # environment version: why its build failed
    image: str | None  # environment version: the built image (None: nothing was built)
    statusId: str  # test, dataset, conversion, initialisation, feature impact: the job's status
    location: str  # status: where a COMPLETED job redirects, relative to /api/v2/
    configuration: dict[str, str]  # test: each check's level
    parameters: dict[str, dict[str, object]]  # test: each check's parameters, as the request gave them
    details: dict[str, object] | None  # test: the report's details
    model: str  # conversion: the model of the converted version
    rowCount: int | None  # feature impact: the rows asked for
    datasetId: str  # feature impact: the training data it runs on
    secretConfigId: str  # model from a template
    packaged: bool  # version: made into a model package (frozen: the next version is a major one)
    settings: dict[str, object]  # deployment: its settings document (GET/PATCH settings/)
    challengers: list[dict[str, object]]  # deployment: its challengers, oldest first
    launch: str  # deployment: how its model's launch ended (`ready`, or the failure's text)


def changes(doc_type: type[DocT], body: Mapping[str, object]) -> DocT:
    """Some fields of a `doc_type` document, from a request body whose type (in `bodies`) lists a
    subset of them: the reference's update schemas list writable fields of its response schemas.

    A TypedDict of fewer fields is not one of more for mypy, even with every field optional:
    this is the one place that says they match.
    """
    return cast(DocT, dict(body))
