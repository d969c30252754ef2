"""The figures the reports stage draws (PNG), from the reports the other stages wrote.

Each deterministic for the same inputs (same bytes):

- the tutorial's four curves: training vs validation loss and accuracy for the
  scratch CNN and the VGG16 top classifier (and the fine-tuning, when it trained),
  from each training stage's history;
- validation confusion matrices and ROC curves of every evaluated model, and a
  gallery of the best model's worst misclassified validation images with their
  P(dog) (from the evaluate stage's reports);
- the tutorial's convolution walk-through (box blurs, Sobel, gradient magnitude)
  on the first validation dog, and the scratch CNN's first convolution layer's
  feature maps for that image.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from catsdogs.core.io import ROC_FOLDER
from catsdogs.core.labels import CLASS_FOLDERS, CLASS_LABELS
from catsdogs.core.params import MODEL_NAMES
from catsdogs.data.datasets import list_images
from catsdogs.report import plotting

logger = logging.getLogger("reports")

HISTORY_TITLES = {
    "scratch": "Scratch CNN",
    "top": "VGG16 top classifier",
    "finetune": "VGG16 fine-tuning",
}
TRAINING_STAGES = {"scratch": "train_scratch", "top": "train_top", "finetune": "finetune"}  # model -> its stage
THUMBNAIL = 96  # gallery images are shown at most this many pixels wide (PNG size)


def read_json(path: str | Path, produced_by: str) -> dict:
    """A JSON report, with a clear error naming the stage that writes it when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} not found (written by the {produced_by} stage: dvc repro)")
    return json.loads(path.read_text(encoding="utf-8"))


def read_history(path: str | Path, produced_by: str) -> pd.DataFrame:
    """A per-epoch history.csv, with a clear error naming the stage that writes it when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"training history {path} not found (written by the {produced_by} stage: dvc repro)")
    return pd.read_csv(path)


def history_figures(histories: dict[str, pd.DataFrame], output_dir: Path, recipes: dict[str, str] | None = None) -> list[Path]:
    """``<model>_loss.png`` and ``<model>_accuracy.png`` for each history that has epochs.

    ``recipes`` names the recipe that trained a model (train_scratch's), shown in its titles.
    """
    written = []
    for name, history in histories.items():
        if history.empty:
            logger.info("%s: no epochs in its history (skipped stage): no curves", name)
            continue
        for metric in ("loss", "accuracy"):
            recipe = (recipes or {}).get(name)
            model = HISTORY_TITLES.get(name, name) + (f" ({recipe} recipe)" if recipe else "")
            title = f"{model}: training vs validation {metric}"
            written.append(plotting.save_figure(plotting.history_figure(history, metric, title), output_dir / f"{name}_{metric}.png"))
    return written


def load_thumbnail(path: Path) -> np.ndarray:
    """An RGB image scaled down to at most THUMBNAIL pixels wide, as an array."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        return np.asarray(image)


def worst_misclassified(table: pd.DataFrame, model: str, count: int) -> pd.DataFrame:
    """The ``count`` misclassified rows with the highest per-image log loss for ``model``."""
    wrong = table[table[f"{model}_predicted"] != table["actual"]].copy()
    probability = wrong[f"p_{model}"].to_numpy()
    wrong["loss"] = -np.log(np.where(wrong["label"] == 1, probability, 1 - probability))
    return wrong.sort_values(["loss", "file"], ascending=[False, True], kind="mergesort").head(count)


def gallery_figure_file(table: pd.DataFrame, validation_dir: Path, model: str, count: int, output_dir: Path) -> Path:
    """``worst_misclassified.png``: the model's worst misclassified validation images with P(dog).

    One gallery, for the best model (the one the submission uses): photo grids are
    the heaviest PNGs, and they are committed to git (predictions.csv holds every
    model's scores for other error analyses).
    """
    worst = worst_misclassified(table, model, count)
    images = [load_thumbnail(validation_dir / name) for name in worst["file"]]
    captions = [
        f"{Path(name).name}\nactual {actual}, P(dog)={p:.3f}"
        for name, actual, p in zip(worst["file"], worst["actual"], worst[f"p_{model}"])
    ]
    title = f"{model} (best model): worst misclassified validation images ({len(worst)} shown)"
    return plotting.save_figure(plotting.gallery_figure(images, captions, title), output_dir / "worst_misclassified.png")


def first_validation_dog(validation_dir: str | Path) -> Path:
    """The walk-through image: the first dog of the validation split by sorted name."""
    dogs = list_images(Path(validation_dir) / CLASS_FOLDERS[1])
    if not dogs:
        raise ValueError(f"no validation dog images in {Path(validation_dir) / CLASS_FOLDERS[1]}")
    return sorted(dogs, key=lambda path: path.name)[0]


def first_conv_maps(model, image: np.ndarray) -> np.ndarray:
    """The first Conv2D layer's output for one raw [0, 255] image: (H, W, filters)."""
    import keras

    layer = next((layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)), None)
    if layer is None:
        raise ValueError(f"the model {model.name} has no Conv2D layer")
    # Everything up to that layer (the Rescaling included): the model's own view of the pixels.
    submodel = keras.Model(model.inputs, layer.output)
    return np.asarray(submodel.predict(image[np.newaxis], verbose=0))[0]


def convolution_figures(image_path: Path, scratch_model_path: Path, image_size: int, output_dir: Path):
    """``convolution_walkthrough.png`` and ``scratch_first_layer.png`` for one validation image."""
    from PIL import Image

    from catsdogs.models.files import load_model
    from catsdogs.predict.predictor import model_image_size, read_image

    with Image.open(image_path) as image:
        gray = np.asarray(image.convert("L"), dtype=np.float64)
    panels = plotting.convolution_walkthrough(gray)
    title = f"Convolutions on {image_path.name}"
    written = [plotting.save_figure(plotting.panels_figure(panels, title), output_dir / "convolution_walkthrough.png")]
    model = load_model(scratch_model_path)
    size = model_image_size(model, image_size)
    pixels = read_image(image_path, size)
    maps = first_conv_maps(model, pixels)
    title = f"Scratch CNN first convolution layer: {maps.shape[-1]} feature maps of {image_path.name}"
    written.append(plotting.save_figure(plotting.feature_maps_figure(pixels, maps, title), output_dir / "scratch_first_layer.png"))
    return written


def evaluation_figures(evaluate_dir: Path, metrics: dict, table: pd.DataFrame, output_dir: Path) -> list[Path]:
    """``confusion_matrices.png`` and ``roc_curves.png`` from the evaluate stage's outputs."""
    from catsdogs.predict.metrics import confusion_counts

    models = list(metrics)
    matrices = {
        model: confusion_counts(table["label"], (table[f"{model}_predicted"] == CLASS_LABELS[1]).astype(int))
        for model in models
    }
    curves = {model: pd.read_csv(evaluate_dir / ROC_FOLDER / f"{model}.csv") for model in models}
    auc = {model: metrics[model].get("roc_auc") for model in models}
    return [
        plotting.save_figure(plotting.confusion_figure(matrices), output_dir / "confusion_matrices.png"),
        plotting.save_figure(plotting.roc_figure(curves, auc), output_dir / "roc_curves.png"),
    ]


def ordered_models(metrics: dict) -> dict:
    """Metrics by model in the pipeline's order (scratch, top, finetune), then any others by name."""
    order = {name: index for index, name in enumerate(MODEL_NAMES)}
    return {name: metrics[name] for name in sorted(metrics, key=lambda name: (order.get(name, len(order)), name))}
