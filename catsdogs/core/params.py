"""The one validating loader for params.yaml.

Every stage calls :func:`load_params` and reads its own section. Unknown keys,
wrong types, non-finite numbers (``.inf``, ``.nan``) and out-of-range values
raise a ``ValueError`` that names the key (``split.ratio``) and what is allowed
(for a number out of range: the whole allowed range), before any work starts.
Sizes have upper bounds no real run needs to exceed, so an absurd value is a
clear message here rather than a failure deep inside TensorFlow.

The file is read as DVC reads it (ruamel.yaml, YAML 1.2: :func:`parse_params`),
so the value a stage uses is the value ``dvc.lock`` records; what DVC refuses (a
repeated key, invalid YAML) and what YAML 1.1 tools would read differently (an
integer with a leading zero) is refused here in one line naming the key, and so
are alias bombs and files past :data:`MAX_PARAMS_BYTES`.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from catsdogs.core.param_errors import describe_errors, shorten

DEFAULT_PARAMS_FILE = "params.yaml"
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
# false: float32 (reproducible); true: bfloat16 on a CPU, float16 on a GPU; auto: mixed only where it is faster.
MixedPrecision = bool | Literal["auto"]


class Section(BaseModel):
    """Base for every params section: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class CommonParams(Section):
    """Shared by every stage that reads images or trains: size, batch, seed."""

    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 42
    image_size: Annotated[int, Field(ge=32, le=1024)] = 150
    batch_size: BatchSize = 32
    # Ask TensorFlow for deterministic kernels (slower; see README "Reproducibility").
    deterministic: bool = False
    # A training stage whose best validation accuracy is within noise of chance warns; true: it fails.
    fail_at_chance: bool = False


class PathsParams(Section):
    """Every path the pipeline reads or writes; dvc.yaml reaches them via ${paths.*}."""

    raw: str = "data/raw"
    raw_train: str = "data/raw/train"
    raw_test: str = "data/raw/test"
    raw_manifest: str = "data/raw.manifest.json"  # every raw file's path, size, SHA-256: what later stages depend on
    train: str = "data/train"
    validation: str = "data/validation"
    split_report: str = "reports/data/split.json"  # counts only (dvc metrics)
    split_files: str = "reports/data/split_files.json"  # chosen, dropped, normalized file lists
    split_manifest: str = "data/split.manifest.json"  # the same for train and validation (README "Speed, memory and disk")
    features: str = "features"
    vgg16_weights: str = "models/vgg16_notop.weights.h5"  # written by the weights stage, DVC-tracked
    local_weights: str = "weights"  # local VGG16 weights files (extract_features.weights: weights/<file>)
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
    backups: str = ".backups"  # training state for resuming a killed run (not an output; git ignores it)

    @model_validator(mode="after")
    def _paths_stay_apart_inside_the_repository(self) -> "PathsParams":
        check_output_paths(self.model_dump())
        return self

    def model_files(self) -> dict[str, Path]:
        """Each trained model's file, by the model's name (:data:`MODEL_NAMES`)."""
        return {name: Path(getattr(self, f"{name}_model")) for name in MODEL_NAMES}


# Paths that lie inside another path on purpose: the raw tree's train and test folders.
NESTED_PATHS = {("raw_train", "raw"), ("raw_test", "raw")}
# Folders no output may touch: git's and DVC's own.
RESERVED_FOLDERS = (".git", ".dvc")


def normalized_path(key: str, value: str) -> PurePosixPath:
    """``value`` as a clean relative path; ``ValueError`` naming ``paths.<key>`` unless it stays inside
    the repository."""
    where = f"paths.{key} ({shorten(repr(value))})"
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or PureWindowsPath(value).drive:
        raise ValueError(f"{where} is absolute: give a path relative to the repository root")
    if value.startswith("~"):
        raise ValueError(f"{where} starts with '~': give a path relative to the repository root")
    if "\\" in value:
        raise ValueError(f"{where} contains a backslash: separate folders with '/'")
    normal = posixpath.normpath(value) if value else "."
    if normal == ".":
        raise ValueError(f"{where} is the repository root: give a file or folder inside it")
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{where} leaves the repository: give a path inside it")
    if ".." in PurePosixPath(value).parts:
        raise ValueError(f"{where} contains '..': give a plain path inside the repository")
    path = PurePosixPath(normal)
    if path.parts[0] in RESERVED_FOLDERS:
        raise ValueError(f"{where} lies in {path.parts[0]}/, which git or DVC own")
    return path


def check_output_paths(paths: dict[str, str]) -> None:
    """Every path relative, inside the repository, not its root, distinct, none inside another
    (except :data:`NESTED_PATHS`); ``ValueError`` naming the key(s) otherwise."""
    normal = {key: normalized_path(key, value) for key, value in paths.items()}
    keys = list(normal)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            a, b = normal[first], normal[second]
            if a == b:
                raise ValueError(f"paths.{first} and paths.{second} are the same path ({a}): give each its own")
            for inner, outer in ((first, second), (second, first)):
                if normal[outer] in normal[inner].parents and (inner, outer) not in NESTED_PATHS:
                    raise ValueError(
                        f"paths.{inner} ({normal[inner]}) lies inside paths.{outer} ({normal[outer]}): "
                        "one stage's output would overwrite or delete the other's; give them separate places"
                    )


class KaggleFiles(Section):
    """The competition's archive names (test may be empty: no test set)."""

    train: str = "train.zip"
    test: str = "test.zip"


class SyntheticParams(Section):
    """The generated offline data set: two visually distinct, learnable classes."""

    count: Annotated[int, Field(ge=4, le=MAX_IMAGES)] = 200  # images per class
    size: Annotated[int, Field(ge=16, le=1024)] = 64  # side in pixels
    test_count: Annotated[int, Field(ge=0, le=MAX_IMAGES)] = 20


class ExtractionLimits(Section):
    """Limits that refuse archive bombs before anything is written."""

    max_members: Annotated[int, Field(gt=0, le=MAX_ARCHIVE_MEMBERS)] = 100_000
    max_total_bytes: Annotated[int, Field(gt=0, le=MAX_ARCHIVE_BYTES)] = 8 * 1024**3  # also caps a download
    max_ratio: Annotated[float, Field(gt=0, le=MAX_COMPRESSION_RATIO)] = 200.0


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
    # The name of an environment variable holding the URL instead (a signed URL's token stays out of
    # params.yaml and dvc.lock, which record only this name).
    url_env: str = ""
    archive: str = ""
    dir: str = ""
    # Read files that symbolic links in download.dir lead to outside it (refused by default: a link could
    # bring any file of the machine into data/, the DVC cache and the remote).
    follow_links: bool = False
    synthetic: SyntheticParams = SyntheticParams()
    limits: ExtractionLimits = ExtractionLimits()
    retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 5
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)] = 60.0  # each connect and read
    # The whole download, retries and their waits included: the 786 MB mirror at 100 KB/s fits.
    deadline_s: Annotated[float, Field(gt=0, le=MAX_DEADLINE_S)] = 21600.0
    # A server asking to wait longer than this before a retry (Retry-After) ends the download at once.
    max_retry_after_s: Annotated[float, Field(ge=0, le=MAX_TIMEOUT_S)] = 120.0

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

    n: Annotated[int, Field(gt=0, le=MAX_IMAGES)] | None = None  # images to use (None: all)
    ratio: Annotated[float, Field(gt=0, lt=1)] = 0.2  # validation share
    min_side: Annotated[int, Field(gt=0, le=MAX_SIDE)] = 32  # images smaller than this (either side) are dropped
    # Larger images are dropped before any decode (and every untrusted image, test set included, is held to it).
    max_pixels: Annotated[int, Field(gt=0, le=MAX_PIXELS)] = 89_478_485  # Pillow's decompression-bomb limit


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

    epochs: Epochs = 60  # a fixed cosine schedule; the best epoch (validation loss) is kept
    filters: Annotated[
        list[Annotated[int, Field(gt=0, le=MAX_FILTERS)]], Field(min_length=1, max_length=MAX_LAYERS)
    ] = [32, 64, 128, 256]
    dropout: Probability = 0.3
    learning_rate: Annotated[float, Field(gt=0, le=10)] = 0.002  # AdamW's peak, after the warm-up
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.0001
    warmup_epochs: Patience = 2
    label_smoothing: Annotated[float, Field(ge=0, lt=0.5)] = 0.0
    augmentation: AugmentationParams = AugmentationParams(
        shear=0.0, zoom=0.2, horizontal_flip=True, rotation=0.05, translation=0.1, contrast=0.2
    )


class TrainScratchParams(Section):
    """The CNN trained from scratch: the tutorial's recipe (these keys) or the modern one (``modern``)."""

    recipe: Literal["tutorial", "modern"] = "tutorial"
    epochs: Epochs = 50
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    decay: Annotated[float, Field(ge=0)] | None = None  # None: learning_rate / epochs
    patience: Patience = 8  # epochs without a better val_loss (validation losses are noisy; measured: README)
    start_from_epoch: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 10  # early stopping watches from here on
    restore_best_weights: bool = True
    filters: Annotated[
        list[Annotated[int, Field(gt=0, le=MAX_FILTERS)]], Field(min_length=1, max_length=MAX_LAYERS)
    ] = [32, 32, 64]
    dense_units: Annotated[int, Field(gt=0, le=MAX_UNITS)] = 64
    conv_dropout: Probability = 0.25
    dense_dropout: Probability = 0.5
    augmentation: AugmentationParams = AugmentationParams()
    modern: ModernParams = ModernParams()
    cache: Literal["memory", "none"] = "memory"
    strategy: Literal["auto", "none", "mirrored", "multiworker"] = "auto"
    mixed_precision: MixedPrecision = False


class ExtractFeaturesParams(Section):
    """VGG16 bottleneck features."""

    weights: str = "imagenet"  # "imagenet", "none", or a weights file inside paths.local_weights
    preprocessing: Literal["vgg16", "rescale"] = "vgg16"
    mixed_precision: MixedPrecision = False


class TrainTopParams(Section):
    """The dense classifier on the bottleneck features."""

    epochs: Epochs = 15
    batch_size: BatchSize = 32
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

    epochs: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 10  # 0: skip training (see README)
    learning_rate: PositiveFloat = 1e-4
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    trainable_from: str = "block5_conv1"  # layers from here on are trained
    patience: Patience = 3
    mixed_precision: MixedPrecision = False


class EvaluateParams(Section):
    """Evaluation, figures and predictions."""

    clip: Annotated[float, Field(gt=0, lt=0.5)] = 0.005  # P(dog) clipped to [clip, 1 - clip]
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    tta: bool = False  # average P(dog) over each photo and its mirror image (evaluate, submission, predict)
    calibrate: bool = False  # apply each model's fitted temperature in the submission and `catsdogs predict`
    worst_images: Annotated[int, Field(gt=0, le=MAX_WORST_IMAGES)] = 16


class Params(BaseModel):
    """The whole params.yaml."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    common: CommonParams = CommonParams()
    paths: PathsParams = PathsParams()
    download: DownloadParams = DownloadParams()
    split: SplitParams = SplitParams()
    train_scratch: TrainScratchParams = TrainScratchParams()
    extract_features: ExtractFeaturesParams = ExtractFeaturesParams()
    train_top: TrainTopParams = TrainTopParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()


def validate_params(raw: dict | None) -> Params:
    """Validate a params mapping, raising ``ValueError`` that names every bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"params must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        lines = describe_errors(error.errors(), Params)
        raise ValueError("invalid params:\n  " + "\n  ".join(lines)) from None


# Caps on the params file itself, far above any real one (the shipped file: a few KiB, a few hundred values),
# so an alias bomb or a huge file is one line here rather than minutes of work and a multi-megabyte message.
MAX_PARAMS_BYTES = 2**20
MAX_PARAMS_VALUES = 10_000  # nodes once aliases are expanded: what validation and its messages would walk
MAX_PARAMS_DEPTH = 32
GIT_TIMEOUT_S = 30.0
# Path params a stage only reads (never deletes or writes): they may hold files git tracks (weights/README.md).
INPUT_PATHS = frozenset({"local_weights"})
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# An integer with a leading zero: 17 in YAML 1.2 (DVC, the stages), octal 15 (or a string) for YAML 1.1 tools.
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")


def _dotted(key: tuple) -> str:
    return shorten(".".join(str(part) for part in key) or "the document")


def check_yaml_nodes(root, name: str) -> None:
    """Walk a composed YAML document with aliases expanded, stopping at the first problem, so the walk
    costs at most :data:`MAX_PARAMS_VALUES` nodes; ``ValueError`` in one line naming ``name``, the dotted
    key and its line for: more nodes than that cap, nesting deeper than :data:`MAX_PARAMS_DEPTH`, a key
    repeated in one mapping (at any depth), an integer written with a leading zero."""
    if root is None:
        return
    count = 0
    stack = [(root, ())]
    while stack:
        node, key = stack.pop()
        count += 1
        if count > MAX_PARAMS_VALUES:
            raise ValueError(
                f"{name}: more than {MAX_PARAMS_VALUES} values once aliases are expanded (reached at "
                f"{_dotted(key[:3])}): params need no aliases that multiply values; write the values out"
            )
        if len(key) > MAX_PARAMS_DEPTH:
            raise ValueError(f"{name}: {_dotted(key[:3])} is nested more than {MAX_PARAMS_DEPTH} levels deep")
        line = node.start_mark.line + 1
        if isinstance(node, MappingNode):
            seen: dict[tuple, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    stack.append((key_node, (*key, "?")))
                    stack.append((value_node, (*key, "?")))
                    continue
                here = (*key, key_node.value)
                identity, again = (key_node.tag, key_node.value), key_node.start_mark.line + 1
                if key_node.tag != _MERGE_TAG and identity in seen:
                    first = seen[identity]
                    lines = f"lines {first} and {again}" if first != again else f"line {again}"
                    # DVC refuses the file too; last-wins (YAML 1.1 tools) would drop the first silently.
                    raise ValueError(f"{name}: key {_dotted(here)!r} appears twice ({lines}): keep one")
                seen[identity] = again
                stack.append((value_node, here))
        elif isinstance(node, SequenceNode):
            stack.extend((item, (*key, index)) for index, item in reversed(list(enumerate(node.value))))
        elif node.tag == _INT_TAG and _LEADING_ZERO.match(node.value):
            meant = int(node.value.replace("_", ""))
            try:
                old = f"octal {int(node.value.replace('_', ''), 8)}"
            except ValueError:
                old = "a string"
            raise ValueError(
                f"{name}: {_dotted(key)} (line {line}) is {shorten(node.value)}, an integer with a leading zero: "
                f"DVC reads {meant}, YAML 1.1 tools {old}; write {meant}"
            )


def parse_params(text: str, name: str = DEFAULT_PARAMS_FILE) -> object:
    """``text`` read exactly as DVC reads a params file (ruamel.yaml's ``YAML(typ="safe")``: YAML 1.2;
    an empty document is ``{}``), after :func:`check_yaml_nodes`. ``ValueError`` in one line naming
    ``name`` for what DVC refuses too (invalid YAML, a repeated key) and what :func:`check_yaml_nodes` refuses."""
    try:
        check_yaml_nodes(YAML(typ="safe").compose(text), name)
        return YAML(typ="safe").load(text) or {}
    except YAMLError as error:
        raise ValueError(f"{name} is not valid YAML: {shorten(' '.join(str(error).split()), 200)}") from None
    except RecursionError:  # ruamel's composer recurses per nesting level
        raise ValueError(f"{name} is nested too deeply to read") from None


def _dvc_lock_outs(lock: Path) -> list[str]:
    """The ``outs`` paths dvc.lock records, for every stage; none when it is absent or unreadable
    (DVC itself refuses an unreadable one)."""
    try:
        data = YAML(typ="safe").load(lock.read_text(encoding="utf-8")) if lock.is_file() else None
    except (OSError, UnicodeDecodeError, YAMLError, RecursionError):
        return []
    stages = data.get("stages") if isinstance(data, dict) else None
    outs = []
    for stage in stages.values() if isinstance(stages, dict) else []:
        for out in stage.get("outs", []) if isinstance(stage, dict) else []:
            if isinstance(out, dict) and isinstance(out.get("path"), str):
                outs.append(posixpath.normpath(out["path"]))
    return outs


def _git_tracked(paths: list[str]) -> list[str] | None:
    """The files git tracks at or under ``paths`` (relative to the working directory); ``None`` outside a
    git work tree, without git, or when git fails or hangs (then nothing can be checked)."""
    try:
        result = subprocess.run(
            ["git", "--literal-pathspecs", "ls-files", "-z", "--", *paths],
            capture_output=True, timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def check_paths_untracked(paths: PathsParams, lock: str | Path = "dvc.lock") -> None:
    """Inside a git work tree (the working directory, the repository root stages run from): no path param
    but :data:`INPUT_PATHS` holds a file git tracks, except files at or under an output ``lock`` (dvc.lock)
    records (a committed ``cache: false`` report), so no stage deletes tracked files when it replaces its
    outputs; ``ValueError`` naming the key and one or two of the files otherwise. Outside a work tree, or
    without git, nothing is checked. Runs git once."""
    values = {
        key: normalized_path(key, value).as_posix()
        for key, value in paths.model_dump().items() if key not in INPUT_PATHS
    }
    tracked = _git_tracked(list(values.values()))
    if not tracked:
        return
    recorded = _dvc_lock_outs(Path(lock))
    unrecorded = [file for file in tracked if not any(file == out or file.startswith(out + "/") for out in recorded)]
    for key, value in values.items():
        files = [file for file in unrecorded if file == value or file.startswith(value + "/")]
        if files:
            shown = ", ".join(shorten(file) for file in files[:2]) + (f" and {len(files) - 2} more" if len(files) > 2 else "")
            raise ValueError(
                f"paths.{key} ({shorten(value)}) holds files git tracks ({shown}): the stage writing it would "
                "delete them; give a path git does not track"
            )


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
