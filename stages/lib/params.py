"""The one validating loader for params.yaml.

Every stage calls :func:`load_params` and reads its own section. Unknown keys,
wrong types and out-of-range values raise a ``ValueError`` that names the key
(``split.ratio``) and what is allowed, before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_PARAMS_FILE = "params.yaml"
# The trained models, in pipeline order, by the name their stage, params, reports and files share.
MODEL_NAMES = ("scratch", "top", "finetune")

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, lt=1)]
# false: float32 (reproducible); true: bfloat16 on a CPU, float16 on a GPU; auto: mixed only where it is faster.
MixedPrecision = bool | Literal["auto"]


class Section(BaseModel):
    """Base for every params section: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CommonParams(Section):
    """Shared by every stage that reads images or trains: size, batch, seed."""

    seed: NonNegativeInt = 42
    image_size: Annotated[int, Field(ge=32, le=1024)] = 150
    batch_size: PositiveInt = 32
    # Ask TensorFlow for deterministic kernels (slower; see README "Reproducibility").
    deterministic: bool = False
    # A training stage whose best validation accuracy is within noise of chance warns; true: it fails.
    fail_at_chance: bool = False


class PathsParams(Section):
    """Every path the pipeline reads or writes; dvc.yaml reaches them via ${paths.*}."""

    raw: str = "data/raw"
    raw_train: str = "data/raw/train"
    raw_test: str = "data/raw/test"
    train: str = "data/train"
    validation: str = "data/validation"
    split_report: str = "reports/data/split.json"  # counts only (dvc metrics)
    split_files: str = "reports/data/split_files.json"  # chosen, dropped, normalized file lists
    features: str = "features"
    scratch_model: str = "models/scratch.keras"
    top_model: str = "models/top.keras"
    finetune_model: str = "models/finetune.keras"
    scratch_reports: str = "reports/scratch"
    top_reports: str = "reports/top"
    finetune_reports: str = "reports/finetune"
    evaluate_reports: str = "reports/evaluate"
    figures: str = "reports/figures"
    summary: str = "reports/summary.md"
    submission: str = "reports/submission.csv"

    def model_files(self) -> dict[str, Path]:
        """Each trained model's file, by the model's name (:data:`MODEL_NAMES`)."""
        return {name: Path(getattr(self, f"{name}_model")) for name in MODEL_NAMES}


class KaggleFiles(Section):
    """The competition's archive names (test may be empty: no test set)."""

    train: str = "train.zip"
    test: str = "test.zip"


class SyntheticParams(Section):
    """The generated offline data set: two visually distinct, learnable classes."""

    count: Annotated[int, Field(ge=4)] = 200  # images per class
    size: Annotated[int, Field(ge=16, le=1024)] = 64  # side in pixels
    test_count: NonNegativeInt = 20


class ExtractionLimits(Section):
    """Limits that refuse archive bombs before anything is written."""

    max_members: PositiveInt = 100_000
    max_total_bytes: PositiveInt = 8 * 1024**3
    max_ratio: PositiveFloat = 200.0


class DownloadParams(Section):
    """Where the raw images come from (``source``) and how they are fetched."""

    source: Literal["kaggle", "microsoft", "url", "archive", "dir", "synthetic"] = "kaggle"
    competition: str = "dogs-vs-cats-redux-kernels-edition"
    kaggle_files: KaggleFiles = KaggleFiles()
    microsoft_url: str = (
        "https://download.microsoft.com/download/3/E/1/"
        "3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
    )
    url: str = ""
    archive: str = ""
    dir: str = ""
    synthetic: SyntheticParams = SyntheticParams()
    limits: ExtractionLimits = ExtractionLimits()
    retries: NonNegativeInt = 5
    timeout_s: PositiveFloat = 60.0

    @model_validator(mode="after")
    def _source_needs_its_location(self) -> "DownloadParams":
        needed = {"url": self.url, "archive": self.archive, "dir": self.dir}
        if self.source in needed and not needed[self.source]:
            raise ValueError(
                f"download.source is {self.source!r} but download.{self.source} is empty: "
                f"set download.{self.source} to the {self.source} to read"
            )
        return self


class SplitParams(Section):
    """The seeded, stratified train/validation split."""

    n: PositiveInt | None = None  # images to use (None: all)
    ratio: Annotated[float, Field(gt=0, lt=1)] = 0.2  # validation share
    min_side: PositiveInt = 32  # images smaller than this (either side) are dropped
    max_pixels: PositiveInt = 89_478_485  # Pillow's decompression-bomb limit


class AugmentationParams(Section):
    """The training augmentation (defaults: the tutorial's shear, zoom and flip); 0 leaves a transform out."""

    shear: Probability = 0.2
    zoom: Probability = 0.2
    horizontal_flip: bool = True
    rotation: Annotated[float, Field(ge=0, le=0.5)] = 0.0  # a fraction of a full turn, either way
    translation: Annotated[float, Field(ge=0, le=0.5)] = 0.0  # a fraction of the side, either way
    contrast: Probability = 0.0


class ModernParams(Section):
    """The modern from-scratch recipe (train_scratch.recipe: modern)."""

    epochs: PositiveInt = 40  # a fixed cosine schedule; the best epoch (validation loss) is kept
    filters: Annotated[list[PositiveInt], Field(min_length=1)] = [32, 64, 128, 256]
    dropout: Probability = 0.3
    learning_rate: PositiveFloat = 0.002  # AdamW's peak, after the warm-up
    weight_decay: Annotated[float, Field(ge=0)] = 0.0001
    warmup_epochs: NonNegativeInt = 2
    label_smoothing: Annotated[float, Field(ge=0, lt=0.5)] = 0.0
    augmentation: AugmentationParams = AugmentationParams(
        shear=0.0, zoom=0.2, horizontal_flip=True, rotation=0.05, translation=0.1, contrast=0.2
    )


class TrainScratchParams(Section):
    """The CNN trained from scratch: the tutorial's recipe (these keys) or the modern one (``modern``)."""

    recipe: Literal["tutorial", "modern"] = "tutorial"
    epochs: PositiveInt = 50
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    decay: Annotated[float, Field(ge=0)] | None = None  # None: learning_rate / epochs
    patience: NonNegativeInt = 2
    start_from_epoch: NonNegativeInt = 10  # early stopping watches from this epoch on (past the initial plateau)
    restore_best_weights: bool = True
    filters: Annotated[list[PositiveInt], Field(min_length=1)] = [32, 32, 64]
    dense_units: PositiveInt = 64
    conv_dropout: Probability = 0.25
    dense_dropout: Probability = 0.5
    augmentation: AugmentationParams = AugmentationParams()
    modern: ModernParams = ModernParams()
    cache: Literal["memory", "none"] = "memory"
    strategy: Literal["auto", "none", "mirrored", "multiworker"] = "auto"
    mixed_precision: MixedPrecision = False


class ExtractFeaturesParams(Section):
    """VGG16 bottleneck features."""

    weights: str = "imagenet"  # "imagenet", "none", or a path to a local weights file
    preprocessing: Literal["vgg16", "rescale"] = "vgg16"
    mixed_precision: MixedPrecision = False


class TrainTopParams(Section):
    """The dense classifier on the bottleneck features."""

    epochs: PositiveInt = 15
    batch_size: PositiveInt = 32
    learning_rate: PositiveFloat = 0.001
    units: Annotated[list[PositiveInt], Field(min_length=1)] = [512, 256]
    dropouts: Annotated[list[Probability], Field(min_length=1)] = [0.5, 0.2]

    @model_validator(mode="after")
    def _one_dropout_per_layer(self) -> "TrainTopParams":
        if len(self.units) != len(self.dropouts):
            raise ValueError(
                f"train_top.dropouts has {len(self.dropouts)} values but train_top.units has "
                f"{len(self.units)}: give one dropout per dense layer"
            )
        return self


class FinetuneParams(Section):
    """Fine-tuning VGG16's last block together with the top classifier."""

    epochs: NonNegativeInt = 10  # 0: skip training (see README)
    learning_rate: PositiveFloat = 1e-4
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    trainable_from: str = "block5_conv1"  # layers from here on are trained
    patience: NonNegativeInt = 3
    mixed_precision: MixedPrecision = False


class EvaluateParams(Section):
    """Evaluation, figures and predictions."""

    clip: Annotated[float, Field(gt=0, lt=0.5)] = 0.005  # P(dog) clipped to [clip, 1 - clip]
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    tta: bool = False  # average P(dog) over each photo and its mirror image (evaluate, submission, predict)
    worst_images: PositiveInt = 16


class Params(BaseModel):
    """The whole params.yaml."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    common: CommonParams = CommonParams()
    paths: PathsParams = PathsParams()
    download: DownloadParams = DownloadParams()
    split: SplitParams = SplitParams()
    train_scratch: TrainScratchParams = TrainScratchParams()
    extract_features: ExtractFeaturesParams = ExtractFeaturesParams()
    train_top: TrainTopParams = TrainTopParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()


def _describe(error: dict) -> str:
    """One line per pydantic error: the dotted key, then what is wrong and allowed."""
    key = ".".join(str(part) for part in error["loc"]) or "params"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see params.yaml in the repository for the keys)"
    elif error["type"] == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        message = f"got {error.get('input')!r}; allowed: {allowed}"
    elif error["type"] == "union_error":
        message = f"got {error.get('input')!r}; allowed: true, false or 'auto'"
    elif error["type"].startswith("value_error"):
        message = message.removeprefix("Value error, ")
    else:
        message = f"{message} (got {error.get('input')!r})"
    return f"{key}: {message}"


def validate_params(raw: dict | None) -> Params:
    """Validate a params mapping, raising ``ValueError`` that names every bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"params must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        lines = list(dict.fromkeys(_describe(item) for item in _merge_union_errors(error.errors())))
        raise ValueError("invalid params:\n  " + "\n  ".join(lines)) from None


def _merge_union_errors(errors: list[dict]) -> list[dict]:
    """One error for a value that fits no member of a union (pydantic reports one per member)."""
    merged = []
    for error in errors:
        member = str(error["loc"][-1]) if error["loc"] else ""
        if member in ("bool", "int", "float", "str") or member.startswith("literal["):
            error = {**error, "loc": error["loc"][:-1], "type": "union_error"}
        merged.append(error)
    return merged


def load_params(path: str | Path = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate params.yaml (or another file)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"params file not found: {path} (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    return validate_params(raw)
