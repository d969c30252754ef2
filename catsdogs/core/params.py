"""The params schema: every key of params.yaml with its type, allowed range, default and meaning.

This module is the one place a default is written: params.yaml is generated from it
(``make params``; :mod:`catsdogs.params_file`), and a test checks that the shipped file
is exactly what it generates. Each section is named after a concept, and dvc.yaml
declares, per stage, exactly the keys the stage reads:

- ``common``: what every stage that reads images or trains shares (seed, size, batch);
- ``runtime``: how the training and VGG16 stages compute, not what they learn;
- ``images``: the limit every photo read from outside is held to;
- ``paths``: every file and folder the pipeline writes (dvc.yaml reads them as ``${paths.*}``);
- ``download``, ``split``: where the photos come from and how they are split;
- ``train_scratch`` and ``recipes``: the from-scratch CNN; ``recipes`` holds one section per recipe of
  :mod:`catsdogs.models.recipes`, validated there, and ``train_scratch.recipe`` picks one;
- ``vgg16``: the weights and preprocessing every VGG16 stage shares; ``train_top``, ``finetune``;
- ``prediction``: how P(dog) is turned into answers (evaluate, submission, ``catsdogs predict``);
- ``reports``: what the figures show.

Every stage calls :func:`load_params`. Unknown keys, wrong types, non-finite numbers
(``.inf``, ``.nan``) and out-of-range values raise a ``ValueError`` that names the key
(``split.ratio``) and what is allowed, before any work starts; a key of the layout
before 1.0 is named with its new place (:data:`MOVED_KEYS`). The file is read as DVC
reads it (:mod:`catsdogs.core.params_yaml`), so the value a stage uses is the value
``dvc.lock`` records.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from catsdogs.core.param_errors import describe_errors
from catsdogs.core.params_yaml import DEFAULT_PARAMS_FILE, MAX_PARAMS_BYTES, parse_params
from catsdogs.core.paths import check_output_paths, check_paths_untracked

__all__ = ["DEFAULT_PARAMS_FILE", "MODEL_NAMES", "Params", "load_params", "parse_params", "validate_params"]

# The trained models, in pipeline order, by the name their stage, params, reports and files share.
MODEL_NAMES = ("scratch", "top", "finetune")

# Upper bounds on sizes: far above any real run, low enough to stop absurd values early.
MAX_SEED = 2**32 - 1  # NumPy and TensorFlow seeds
MAX_BATCH_SIZE = 4096
MAX_EPOCHS = 10_000
MAX_FILTERS = 4096  # per convolution layer
MAX_UNITS = 8192  # per dense layer
MAX_LAYERS = 10  # convolution blocks or dense layers
MAX_IMAGES = 10_000_000  # images per class or in a split (Kaggle's set has 25,000)
MAX_PIXELS = 500_000_000  # pixels of one image (Pillow's own default limit is 89,478,485)
MAX_SIDE = 4096  # split.min_side
MAX_RETRIES = 100
MAX_TIMEOUT_S = 3600.0
MAX_DEADLINE_S = 7 * 24 * 3600.0  # a week
MAX_ARCHIVE_MEMBERS = 10_000_000
MAX_ARCHIVE_BYTES = 2**40  # 1 TiB
MAX_COMPRESSION_RATIO = 100_000.0
MAX_WORST_IMAGES = 256
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, lt=1)]
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH_SIZE)]
Epochs = Annotated[int, Field(gt=0, le=MAX_EPOCHS)]
Patience = Annotated[int, Field(ge=0, le=MAX_EPOCHS)]
Filters = Annotated[list[Annotated[int, Field(gt=0, le=MAX_FILTERS)]], Field(min_length=1, max_length=MAX_LAYERS)]
# false: float32 (reproducible); true: bfloat16 on a CPU, float16 on a GPU; auto: mixed only where it is faster.
MixedPrecision = bool | Literal["auto"]
# Test-time augmentation (each photo's P(dog) averaged with its mirror image's): true | false | auto (every
# model but those built on VGG16: the from-scratch CNN, whose second pass is cheap).
TestTimeAugmentation = bool | Literal["auto"]


def doc(default, text: str, **constraints):
    """A field's default and its meaning (the comment params.yaml shows beside the key)."""
    return Field(default, description=text, **constraints)


class Section(BaseModel):
    """Base for every params section: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class CommonParams(Section):
    """Shared by every stage that reads images or trains."""

    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = doc(42, "one seed for the split, the weights, the shuffles")
    image_size: Annotated[int, Field(ge=32, le=1024)] = doc(150, "images are resized to image_size x image_size")
    batch_size: BatchSize = doc(32, "images per batch when training on photos and predicting")
    fail_at_chance: bool = doc(False, "true: a training stage that ends within noise of chance fails instead of warning")


class RuntimeParams(Section):
    """How the training and VGG16 stages compute, not what they learn."""

    deterministic: bool = doc(False, "true: deterministic TensorFlow kernels (slower); see docs/design.md")
    mixed_precision: MixedPrecision = doc(
        False, "false (float32, bit-reproducible) | true | auto: train_scratch, extract_features, finetune")


class ImagesParams(Section):
    """Photos read from outside the pipeline: split, submission, `catsdogs predict`."""

    # Larger images are refused before any decode; every untrusted image, test set included, is held to it.
    max_pixels: Annotated[int, Field(gt=0, le=MAX_PIXELS)] = doc(
        89_478_485, "larger images are dropped (split) or refused (submission, predict) as decompression bombs")


class PathsParams(Section):
    """Every path the pipeline reads or writes; dvc.yaml reaches them as ${paths.*}."""

    raw: str = "data/raw"
    raw_train: str = "data/raw/train"
    raw_test: str = "data/raw/test"
    raw_manifest: str = doc("data/raw.manifest.json",
                            "every raw file's path, size and SHA-256: later stages depend on it")
    train: str = "data/train"
    validation: str = "data/validation"
    split_report: str = doc("reports/data/split.json", "counts only (dvc metrics)")
    split_files: str = doc("reports/data/split_files.json", "chosen, dropped, normalized file lists")
    split_manifest: str = doc("data/split.manifest.json", "the same for train/ and validation/")
    features: str = "features"
    vgg16_weights: str = doc("models/vgg16_notop.weights.h5", "the weights stage writes it (DVC-tracked: dvc push/pull)")
    local_weights: str = doc("weights", "local VGG16 weights files go here (vgg16.weights: weights/<file>)")
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
    backups: str = doc(".backups", "a killed training run resumes from here (not a DVC output; git ignores it)")

    @model_validator(mode="after")
    def _paths_stay_apart_inside_the_repository(self) -> "PathsParams":
        check_output_paths(self.model_dump())
        return self

    def model_files(self) -> dict[str, Path]:
        """Each trained model's file, by the model's name (:data:`MODEL_NAMES`)."""
        return {name: Path(getattr(self, f"{name}_model")) for name in MODEL_NAMES}


class KaggleFiles(Section):
    """The competition's archive names (test may be empty: no test set)."""

    train: str = "train.zip"
    test: str = "test.zip"


class SyntheticParams(Section):
    """The generated offline data set: two visually distinct, learnable classes."""

    count: Annotated[int, Field(ge=4, le=MAX_IMAGES)] = doc(200, "images per class")
    size: Annotated[int, Field(ge=16, le=1024)] = doc(64, "side in pixels")
    test_count: Annotated[int, Field(ge=0, le=MAX_IMAGES)] = doc(20, "unlabelled test images")


class ExtractionLimits(Section):
    """Limits that refuse archive bombs before anything is written."""

    max_members: Annotated[int, Field(gt=0, le=MAX_ARCHIVE_MEMBERS)] = 100_000
    max_total_bytes: Annotated[int, Field(gt=0, le=MAX_ARCHIVE_BYTES)] = doc(8 * 1024**3, "also caps a download")
    max_ratio: Annotated[float, Field(gt=0, le=MAX_COMPRESSION_RATIO)] = 200.0


class DownloadParams(Section):
    """Where the raw images come from (``source``) and how they are fetched."""

    source: Literal["kaggle", "microsoft", "url", "archive", "dir", "synthetic"] = doc(
        "kaggle", "kaggle (needs credentials, see README) | microsoft (public mirror, no account) | url | archive "
        "| dir | synthetic (generated, offline)")
    competition: str = "dogs-vs-cats-redux-kernels-edition"
    kaggle_files: KaggleFiles = doc(KaggleFiles(), "the competition's archives (test: empty string for none)")
    microsoft_url: str = (
        "https://download.microsoft.com/download/3/E/1/"
        "3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
    )
    url: str = doc("", "source: url -> a zip by URL")
    # A signed URL's token stays out of params.yaml and dvc.lock, which record only this name.
    url_env: str = doc("", "source: url -> or the NAME of an environment variable holding the URL")
    archive: str = doc("", "source: archive -> a zip on disk")
    dir: str | list[str] = doc("", "source: dir -> a folder laid out like Kaggle's train/, or a list of them")
    # Refused by default: a link could bring any file of the machine into data/, the DVC cache and the remote.
    follow_links: bool = doc(False, "source: dir -> true: also read files that symbolic links lead to outside it")
    synthetic: SyntheticParams = doc(SyntheticParams(), "source: synthetic -> the generated photos")
    limits: ExtractionLimits = doc(ExtractionLimits(), "safe extraction: refuse archive bombs")
    retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 5
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)] = doc(60.0, "each connect and read")
    # The 786 MB mirror at 100 KB/s fits.
    deadline_s: Annotated[float, Field(gt=0, le=MAX_DEADLINE_S)] = doc(
        21600.0, "the whole download, retries and their waits included (6 h)")
    max_retry_after_s: Annotated[float, Field(ge=0, le=MAX_TIMEOUT_S)] = doc(
        120.0, "a server asking to wait longer before a retry ends the download at once")

    @field_validator("url_env")
    @classmethod
    def _an_environment_variable_name(cls, value: str) -> str:
        if value and not _ENV_NAME.match(value):
            raise ValueError(
                "must be the name of an environment variable (letters, digits, _; not the URL itself), "
                "or empty"
            )
        return value

    @model_validator(mode="after")
    def _source_needs_its_location(self) -> "DownloadParams":
        if self.source == "url":
            if self.url and self.url_env:
                raise ValueError("download.url and download.url_env are both set: give the URL one way")
            if self.url or self.url_env:
                return self
        if self.source == "dir" and isinstance(self.dir, list):
            if not self.dir or not all(self.dir):
                raise ValueError("download.dir is an empty list or holds an empty name: list the folders to read")
            if len(set(self.dir)) != len(self.dir):
                raise ValueError("download.dir lists a folder twice")
            return self
        needed = {"url": self.url, "archive": self.archive, "dir": self.dir}
        if self.source in needed and not needed[self.source]:
            alternative = " (or download.url_env to the name of an environment variable holding it)"
            raise ValueError(
                f"download.source is {self.source!r} but download.{self.source} is empty: "
                f"set download.{self.source} to the {self.source} to read"
                + (alternative if self.source == "url" else "")
            )
        return self


class SplitParams(Section):
    """The seeded, stratified train/validation split."""

    n: Annotated[int, Field(gt=0, le=MAX_IMAGES)] | None = doc(None, "images to use (null: all of them)")
    ratio: Annotated[float, Field(gt=0, lt=1)] = doc(0.2, "validation share, as in the tutorial")
    min_side: Annotated[int, Field(gt=0, le=MAX_SIDE)] = doc(32, "images smaller than this are dropped (and reported)")


class AugmentationParams(Section):
    """The training augmentation (defaults: the tutorial's shear, zoom and flip); 0 leaves a transform out."""

    shear: Probability = 0.2
    zoom: Probability = 0.2
    horizontal_flip: bool = True
    rotation: Annotated[float, Field(ge=0, le=0.5)] = doc(0.0, "a fraction of a full turn, either way")
    translation: Annotated[float, Field(ge=0, le=0.5)] = doc(0.0, "a fraction of the side, either way")
    contrast: Probability = 0.0


class TrainScratchParams(Section):
    """The CNN trained from scratch: which recipe (a section of recipes: below), and how it runs."""

    recipe: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")] = doc(
        "tutorial", "tutorial (the 2017 tutorial's) | modern | large: README \"Choose the from-scratch recipe\"")
    cache: Literal["memory", "none"] = doc("memory", "memory | none: keep the decoded photos in memory")
    strategy: Literal["auto", "none", "mirrored", "multiworker"] = doc(
        "auto", "auto | none | mirrored | multiworker: how training spreads over devices or machines")


class Vgg16Params(Section):
    """VGG16, for every stage that runs it: weights, extract_features, finetune, evaluate, submission, predict."""

    weights: str = doc("imagenet", "imagenet | none (random, seeded) | weights/<file>.h5 (a file in paths.local_weights)")
    preprocessing: Literal["vgg16", "rescale"] = doc("vgg16", "vgg16 (correct) | rescale (the tutorial's 1/255)")


class TrainTopParams(Section):
    """The dense classifier on VGG16's bottleneck features."""

    epochs: Epochs = 15
    batch_size: BatchSize = doc(32, "feature rows per batch")
    learning_rate: PositiveFloat = 0.001
    units: Annotated[
        list[Annotated[int, Field(gt=0, le=MAX_UNITS)]], Field(min_length=1, max_length=MAX_LAYERS)
    ] = [512, 256]
    dropouts: Annotated[list[Probability], Field(min_length=1, max_length=MAX_LAYERS)] = [0.5, 0.2]

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

    epochs: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = doc(10, "0: skip fine-tuning (see README)")
    learning_rate: PositiveFloat = 1e-4
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    trainable_from: str = doc("block5_conv1", "layers from here on are trained")
    patience: Patience = 3
    augmentation: AugmentationParams = AugmentationParams()


class PredictionParams(Section):
    """How P(dog) becomes answers: evaluate, submission and `catsdogs predict`."""

    clip: Annotated[float, Field(gt=0, lt=0.5)] = doc(0.005, "P(dog) is clipped to [clip, 1 - clip]")
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    tta: TestTimeAugmentation = doc(
        "auto", "mean P(dog) of each photo and its mirror image: auto (not the VGG16 models) | true | false")
    calibrate: bool = doc(False, "true: the submission and `catsdogs predict` apply the temperature fitted in evaluate")


class ReportsParams(Section):
    """The figures and the summary."""

    worst_images: Annotated[int, Field(gt=0, le=MAX_WORST_IMAGES)] = doc(16, "the most confident mistakes shown")


# A recipe's section: validated by its recipe (catsdogs.models.recipes), which this layer does not import.
RecipeSections = dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], dict[str, object]]


class Params(BaseModel):
    """The whole params.yaml."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    common: CommonParams = CommonParams()
    runtime: RuntimeParams = RuntimeParams()
    images: ImagesParams = ImagesParams()
    paths: PathsParams = PathsParams()
    download: DownloadParams = DownloadParams()
    split: SplitParams = SplitParams()
    train_scratch: TrainScratchParams = TrainScratchParams()
    recipes: RecipeSections = doc({}, "one section per recipe (catsdogs/models/recipes/); train_scratch.recipe picks one")
    vgg16: Vgg16Params = Vgg16Params()
    train_top: TrainTopParams = TrainTopParams()
    finetune: FinetuneParams = FinetuneParams()
    prediction: PredictionParams = PredictionParams()
    reports: ReportsParams = ReportsParams()


# Keys of the layout before 1.0 and where each lives now: an old params.yaml gets one line per key.
MOVED_KEYS = {
    "common.deterministic": "runtime.deterministic",
    "train_scratch.mixed_precision": "runtime.mixed_precision",
    "extract_features.mixed_precision": "runtime.mixed_precision",
    "finetune.mixed_precision": "runtime.mixed_precision",
    "split.max_pixels": "images.max_pixels",
    "extract_features.weights": "vgg16.weights",
    "extract_features.preprocessing": "vgg16.preprocessing",
    "evaluate.clip": "prediction.clip",
    "evaluate.threshold": "prediction.threshold",
    "evaluate.tta": "prediction.tta",
    "evaluate.calibrate": "prediction.calibrate",
    "evaluate.worst_images": "reports.worst_images",
    "train_scratch.modern": "recipes.modern",
    **{f"train_scratch.{key}": f"recipes.tutorial.{key}" for key in (
        "epochs", "learning_rate", "momentum", "decay", "patience", "start_from_epoch", "restore_best_weights",
        "filters", "dense_units", "conv_dropout", "dense_dropout", "augmentation")},
}


def moved_keys(raw: dict) -> list[str]:
    """One line per key of ``raw`` that :data:`MOVED_KEYS` lists: where to write it now."""
    lines = []
    for old, new in MOVED_KEYS.items():
        section, _, key = old.partition(".")
        if isinstance(raw.get(section), dict) and key in raw[section]:
            lines.append(f"{old}: moved to {new}")
    return lines


def validate_params(raw: dict | None) -> Params:
    """Validate a params mapping, raising ``ValueError`` that names every bad key (and every moved one)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"params must be a mapping of sections, got {type(raw).__name__}")
    moved = moved_keys(raw)
    if moved:
        raise ValueError("params in the layout before catsdogs 1.0 (the repository's params.yaml shows the new one; "
                         "move each key as below):\n  " + "\n  ".join(moved))
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        lines = describe_errors(error.errors(), Params)
        raise ValueError("invalid params:\n  " + "\n  ".join(lines)) from None


def load_params(path: str | Path = DEFAULT_PARAMS_FILE, *, check_tracked: bool = True) -> Params:
    """Read params.yaml (or another file) as DVC reads it (:func:`parse_params`; at most
    :data:`MAX_PARAMS_BYTES`), validate it (:func:`validate_params`) and, unless ``check_tracked`` is false,
    refuse path params on files git tracks (:func:`check_paths_untracked`); ``ValueError`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"params file not found: {path} (run from the repository root)")
    with path.open("rb") as file:
        data = file.read(MAX_PARAMS_BYTES + 1)  # never more: a huge file is refused unread
    if len(data) > MAX_PARAMS_BYTES:
        raise ValueError(f"{path} is larger than {MAX_PARAMS_BYTES // 2**20} MiB: a params file needs a few KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start})") from None
    params = validate_params(parse_params(text, str(path)))
    if check_tracked:
        check_paths_untracked(params.paths)
    return params
