"""Request bodies as the resource modules read them, once the reference's schema has checked them.

One type per request schema of the reference (named after it), holding the fields that schema
lists; `http.json_body(schema, Type)` checks a body against the schema and hands it on as the
type. Fields the emulator accepts beyond the reference say so. Before that check a body is plain
JSON (`validation.parse_json_object`), and only there.
"""

from __future__ import annotations

from typing import TypedDict

from cmkit.emulator.documents import GitModelVersion, MetadataValue, ResourceSettings


class CustomModelCreate(ResourceSettings, total=False):
    name: str
    customModelType: str
    description: str
    language: str
    targetType: str
    targetName: str | None
    positiveClassLabel: str | None
    negativeClassLabel: str | None
    predictionThreshold: float
    classLabels: list[str] | None
    userProvidedId: str
    isTrainingDataForVersionsPermanentlyEnabled: bool
    calibratePredictions: bool
    gitModelVersion: GitModelVersion
    playgroundId: str | None
    supportsBinaryClassification: bool
    supportsRegression: bool


class CustomModelUpdate(ResourceSettings, total=False):
    name: str
    description: str
    language: str
    targetName: str | None
    positiveClassLabel: str | None
    negativeClassLabel: str | None
    predictionThreshold: float
    classLabels: list[str]
    isTrainingDataForVersionsPermanentlyEnabled: bool
    gitModelVersion: GitModelVersion


class DataAssignment(TypedDict, total=False):
    """`trainingData` / `holdoutData` of a version request, once parsed."""

    datasetId: str | None
    datasetName: str | None
    partitionColumn: str | None


class VersionFields(ResourceSettings, total=False):
    """CustomModelVersionCreate / CustomModelVersionCreateFromLatest, without the files.

    Multipart forms carry `requiredMetadataValues`, `trainingData` and `holdoutData` as JSON
    text, JSON bodies as values: the version code reads both.
    """

    isMajorUpdate: str
    baseEnvironmentId: str
    baseEnvironmentVersionId: str
    filesToDelete: list[str]
    gitModelVersion: GitModelVersion
    requiredMetadataValues: str | list[MetadataValue] | None
    trainingData: str | DataAssignment | None
    holdoutData: str | DataAssignment | None
    keepTrainingHoldoutData: bool


class CustomModelVersionMetadataUpdate(TypedDict, total=False):
    description: str
    gitModelVersion: GitModelVersion
    requiredMetadataValues: list[MetadataValue]


class DeprecatedCustomModelVersionTrainingDataUpdate(TypedDict, total=False):
    trainingData: DataAssignment
    holdoutData: DataAssignment
    gitModelVersion: GitModelVersion


class DeprecatedTrainingDataForModelsAssignment(TypedDict, total=False):
    datasetId: str | None
    datasetName: str | None
    datasetVersionId: str | None
    partitionColumn: str | None


class CustomModelVersionCreateFromRepository(TypedDict, total=False):
    repositoryId: str
    ref: str
    sourcePath: str | list[str]
    baseEnvironmentId: str
    isMajorUpdate: bool
    keepTrainingHoldoutData: bool
    requiredMetadataValues: list[MetadataValue]


class CustomModelCopy(TypedDict):
    customModelId: str


class CustomModelCreateFromTemplatePayload(TypedDict):
    templateId: str
    resourceBundleId: str
    secretConfigId: str


class ExecutionEnvironmentCreate(TypedDict, total=False):
    name: str
    description: str
    environmentId: str
    programmingLanguage: str
    isPublic: bool
    useCases: list[str]
    requiredMetadataKeys: list[dict[str, str]]  # not in the reference's schema: stored as sent


class ExecutionEnvironmentUpdate(TypedDict, total=False):
    name: str
    description: str
    programmingLanguage: str
    useCases: list[str]


class ExecutionEnvironmentVersionCreate(TypedDict, total=False):
    label: str
    description: str
    environmentVersionId: str
    dockerImageUri: str


class ExecutionEnvironmentPermadelete(TypedDict):
    executionEnvironmentIds: list[str]


class SharingChange(TypedDict, total=False):
    """One item of a SharingUpdateOrRemoveWithGrant body's `data` (`role: null` removes)."""

    username: str
    role: str | None
    canShare: bool


class SharingUpdateOrRemoveWithGrant(TypedDict):
    data: list[SharingChange]


class CustomModelTests(ResourceSettings, total=False):
    """A test request; `configuration` may also name the three checks the service runs beyond
    the seed's, and `parameters` (not in the reference) holds their settings: both are checked
    by `testing._parameters`."""

    customModelId: str
    customModelVersionId: str
    datasetId: str
    datasetVersionId: str
    environmentId: str
    environmentVersionId: str
    configuration: dict[str, object]
    parameters: object


class ConversionCreateQuery(TypedDict):
    mainProgramItemId: str


class CustomModelPredictionExplanations(TypedDict, total=False):
    customModelId: str
    customModelVersionId: str
    environmentId: str
    environmentVersionId: str


class FeatureImpactCreatePayload(TypedDict, total=False):
    rowCount: int
