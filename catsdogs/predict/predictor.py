"""Shared prediction code: image models from model files, P(dog) for image files, clipped.

Used by the evaluate and submission stages and by ``catsdogs predict``. Every
model answers P(dog) for raw RGB [0, 255] images: ``scratch`` and ``finetune``
take pixels themselves; ``top`` takes VGG16 bottleneck features, so for images
it is stacked on the same VGG16 base and preprocessing extract_features used.
Files from outside the pipeline (the test set, the command's inputs) are untrusted:
they pass the split's checks and normalisation first (:func:`read_untrusted_image`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catsdogs.predict.metrics import apply_temperature, clip_probabilities

logger = logging.getLogger(__name__)

ENSEMBLE = "ensemble"  # the mean P(dog) of every trained model: a model name like the trained ones
TTA_AUTO = "auto"  # prediction.tta: mirror-average every model but those built on VGG16
CHUNK_BATCHES = 8  # files decoded per model call, in batches: bounded memory, few calls


@dataclass(frozen=True)
class ImagePrediction:
    """One image's outcome: P(dog) (clipped), or the error that stopped it being read."""

    path: Path
    probability: float | None = None
    error: str | None = None


def takes_images(model) -> bool:
    """True when the model's input is a batch of RGB images (rank 4, 3 channels)."""
    shape = tuple(model.input_shape)
    return len(shape) == 4 and shape[-1] == 3


def model_image_size(model, default: int) -> int:
    """The square image side an image model was built for (``default`` when its input is unsized)."""
    height, width = tuple(model.input_shape)[1:3]
    if height is None or width is None:
        return default
    if height != width:
        raise ValueError(f"the model expects {height}x{width} images; only square inputs are supported")
    return int(height)


def load_image_model(path: str | Path, *, image_size: int, weights_file: str | Path, preprocessing: str):
    """The model in ``path`` as a model of raw [0, 255] images.

    A model that takes features rather than images (the top classifier) is stacked
    on VGG16 built as extract_features built it: ``image_size``, ``weights_file``
    (paths.vgg16_weights) and ``preprocessing`` are that stage's.
    """
    from catsdogs.models import vgg
    from catsdogs.models.files import load_model

    model = load_model(path)
    if takes_images(model):
        return model
    logger.info("%s takes VGG16 features: stacking it on VGG16 (weights: %s)", path, weights_file)
    base = vgg.build_vgg16_base(image_size, weights_file)
    return vgg.vgg16_image_model(base, preprocessing, image_size, top=model, name="vgg16_top")


def load_prediction_model(
    name_or_path: str | Path, model_files: dict[str, Path], *, tta: bool | str, image_size: int,
    weights_file: str | Path, preprocessing: str,
):
    """The model to predict with: a trained model by name, ``ensemble`` (the mean of every trained model
    that exists), or a ``.keras`` file; each image model mirror-averaged as ``tta`` says (:func:`mirrors`)."""
    settings = {"image_size": image_size, "weights_file": weights_file, "preprocessing": preprocessing}
    if str(name_or_path) == ENSEMBLE:
        paths = [Path(path) for path in model_files.values() if Path(path).is_file()]
        if not paths:
            raise ValueError(f"the ensemble needs trained models; none of {', '.join(map(str, model_files.values()))} exists")
    else:
        paths = [Path(model_files.get(str(name_or_path), name_or_path))]
    models = [load_image_model(path, **settings) for path in paths]
    return ensemble_of([with_mirror_average(model) if mirrors(model, tta) else model for model in models])


def mirrors(model, tta: bool | str) -> bool:
    """Whether test-time augmentation mirror-averages ``model`` (an image model): always for ``tta`` true,
    never for false; for ``"auto"``, every model but those built on VGG16, whose second pass costs
    the most and whose gain could not be measured without ImageNet weights (docs/design.md)."""
    from catsdogs.models import vgg

    if tta == TTA_AUTO:
        return not vgg.built_on_vgg16(model)
    if not isinstance(tta, bool):
        raise ValueError(f"prediction.tta: got {tta!r}; allowed: true, false or 'auto'")
    return tta


def with_mirror_average(model):
    """Test-time augmentation: a model answering the mean P(dog) of an image and its mirror image."""
    import keras

    from catsdogs.models.layers import HorizontalFlip

    inputs = keras.Input(tuple(model.input_shape[1:]), name="image")
    outputs = keras.layers.Average(name="mirror_average")([model(inputs), model(HorizontalFlip(name="mirror")(inputs))])
    return keras.Model(inputs, outputs, name=f"{model.name}_tta")


def ensemble_of(models: list):
    """One model answering the mean P(dog) of several image models (each with its own preprocessing)."""
    import keras

    if len(models) == 1:
        return models[0]
    shapes = {tuple(model.input_shape[1:]) for model in models}
    if len(shapes) != 1:
        raise ValueError(f"the models of an ensemble must take images of one size, got {sorted(shapes)}")
    shape = shapes.pop()
    members = []
    for index, model in enumerate(models):  # a unique name per member, whatever the models are called
        member_inputs = keras.Input(shape, name=f"member_{index}_image")
        members.append(keras.Model(member_inputs, model(member_inputs), name=f"member_{index}_{model.name}"))
    inputs = keras.Input(shape, name="image")
    outputs = keras.layers.Average(name="ensemble_average")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name="ensemble")


def predict_array(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Raw P(dog) for a batch array (N, H, W, 3) or features (N, ...): shape (N,), unclipped."""
    if len(images) == 0:
        return np.zeros((0,), dtype=np.float64)
    outputs = model.predict(images, batch_size=batch_size, verbose=0)
    return _as_probabilities(outputs, len(images))


def predict_dataset(model, paths: list[Path], image_size: int, batch_size: int, callbacks=None) -> np.ndarray:
    """Raw P(dog) for known-good image files (the split's), in file order, via tf.data; ``callbacks``
    go to ``model.predict``."""
    from catsdogs.data.datasets import make_image_dataset

    if not paths:
        return np.zeros((0,), dtype=np.float64)
    dataset = make_image_dataset(paths, None, image_size, batch_size)
    return _as_probabilities(model.predict(dataset, verbose=0, callbacks=callbacks), len(paths))


def _as_probabilities(outputs, count: int) -> np.ndarray:
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.shape not in ((count, 1), (count,)):
        raise ValueError(f"the model gave outputs of shape {outputs.shape}; expected ({count}, 1): P(dog)")
    return outputs.reshape(-1)


def read_image(path: str | Path, image_size: int) -> np.ndarray:
    """One known-good image file (the split's) as float32 RGB [0, 255] resized like the training data."""
    import tensorflow as tf

    from catsdogs.data.datasets import decode_and_resize
    from catsdogs.data.images import tensorflow_message

    try:
        return decode_and_resize(str(path), image_size).numpy().astype(np.float32)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError) as error:
        raise ValueError(f"not a readable image ({tensorflow_message(error)})") from None


def read_untrusted_image(path: str | Path, image_size: int, max_pixels: int) -> np.ndarray:
    """Any image file as float32 RGB [0, 255] resized like the training data; ``ValueError`` if unusable.

    The file goes through the split's checks (:func:`catsdogs.data.images.prepare_image`:
    accepted formats, ``max_pixels`` before any decode, a full decode, the same
    normalisation, TensorFlow's decoder), so it is read exactly as a training image was.
    """
    from catsdogs.core.io import describe_non_file
    from catsdogs.data.datasets import decode_rgb, resize_image
    from catsdogs.data.images import prepare_image

    path = Path(path)
    if not path.is_file():
        raise ValueError(describe_non_file(path))
    check, normalized = prepare_image(path, 1, max_pixels)  # any size is worth a prediction
    if not check.ok:
        raise ValueError(f"{check.drop.replace('_', ' ')}: {check.detail}")
    data = path.read_bytes() if normalized is None else normalized
    return resize_image(decode_rgb(data), image_size).numpy().astype(np.float32)


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, folders replaced by their image files (sorted, numerically where names are numbers)."""
    from catsdogs.data.datasets import list_images

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        files.extend(list_images(path) if path.is_dir() else [path])
    return files


def predict_files(
    model, files: list[Path], image_size: int, batch_size: int, clip: float, max_pixels: int,
    temperature: float = 1.0,
) -> list[ImagePrediction]:
    """Clipped P(dog) for each file (calibrated by ``temperature`` first); unusable files
    (see :func:`read_untrusted_image`) get an error instead. Logs an estimate of the time left
    after two chunks of files (the first includes loading and tracing) when more remain."""
    from catsdogs.core.progress import WorkEstimate

    results: list[ImagePrediction | None] = [None] * len(files)
    chunk_size = batch_size * CHUNK_BATCHES
    estimate = WorkEstimate(logger, "predictions", len(files), "images", min(2 * chunk_size, len(files)))
    start = 0
    while start < len(files):
        chunk = range(start, min(start + chunk_size, len(files)))
        images, indices = [], []
        for index in chunk:
            try:
                images.append(read_untrusted_image(files[index], image_size, max_pixels))
                indices.append(index)
            except ValueError as error:
                results[index] = ImagePrediction(files[index], error=str(error))
        if images:
            raw = apply_temperature(predict_array(model, np.stack(images), batch_size), temperature)
            probabilities = clip_probabilities(raw, clip)
            for index, probability in zip(indices, probabilities):
                results[index] = ImagePrediction(files[index], probability=float(probability))
        estimate.update(len(chunk))
        start = chunk.stop
    return [result for result in results if result is not None]


@dataclass(frozen=True)
class ModelFiles:
    """Where the trained models are, by name (``paths.*_model``), and the VGG16 weights file and
    preprocessing that a model taking VGG16 features is stacked with."""

    models: dict[str, Path]
    weights_file: str | Path
    preprocessing: str

    @classmethod
    def of(cls, params) -> "ModelFiles":
        """From validated params: ``paths.*_model``, ``paths.vgg16_weights``, ``vgg16.preprocessing``."""
        return cls(params.paths.model_files(), params.paths.vgg16_weights, params.vgg16.preprocessing)


@dataclass(frozen=True)
class PredictionSettings:
    """How photos are scored: the size they are resized to (a model with its own input size uses that),
    the batch, P(dog)'s clip, mirror averaging, the pixel limit untrusted photos are held to, and the
    calibration temperature (1.0: none)."""

    image_size: int
    batch_size: int
    clip: float
    tta: bool | str
    max_pixels: int
    temperature: float = 1.0


@dataclass(frozen=True)
class Predictor:
    """One model ready to score photos from outside: the submission and ``catsdogs predict`` both use it."""

    model: object
    settings: PredictionSettings

    @property
    def image_size(self) -> int:
        return model_image_size(self.model, self.settings.image_size)

    def predict_files(self, files: list[Path]) -> list[ImagePrediction]:
        """Clipped (and calibrated) P(dog) of each file, or the reason it could not be read."""
        settings = self.settings
        return predict_files(self.model, files, self.image_size, settings.batch_size, settings.clip,
                             settings.max_pixels, settings.temperature)


def load_predictor(name_or_path: str | Path, files: ModelFiles, settings: PredictionSettings) -> Predictor:
    """The :class:`Predictor` of a trained model by name, ``ensemble`` or a ``.keras`` file
    (:func:`load_prediction_model`), mirror-averaged as ``settings.tta`` says."""
    model = load_prediction_model(
        name_or_path, files.models, tta=settings.tta, image_size=settings.image_size,
        weights_file=files.weights_file, preprocessing=files.preprocessing,
    )
    return Predictor(model, settings)
