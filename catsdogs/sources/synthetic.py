"""A small generated data set of two visually distinct, learnable classes.

Cats: an ellipse on a warm-tinted, noisy background. Dogs: a rectangle on a
cool-tinted, noisy background. Position, size and colours vary per image, so a
model has to learn colour and shape cues, not memorise pixels; both cues survive
the training augmentation (flip, shear, zoom). Deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from catsdogs.core.labels import CLASS_FOLDERS, CLASS_LABELS


def make_image(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image of class ``label`` (0 cat, 1 dog)."""
    warm = np.array([170, 110, 70], dtype=np.float64)
    cool = np.array([70, 110, 170], dtype=np.float64)
    tint = cool if label else warm
    background = tint + rng.normal(0, 25, size=3)
    pixels = background + rng.normal(0, 18, size=(size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    side = rng.uniform(0.35, 0.7) * size
    left, top = rng.uniform(0, size - side, size=2)
    box = (left, top, left + side, top + side * rng.uniform(0.6, 1.0))
    fill = tuple(int(c) for c in np.clip(255 - tint + rng.normal(0, 30, size=3), 0, 255))
    if label:
        draw.rectangle(box, fill=fill)
    else:
        draw.ellipse(box, fill=fill)
    return image


def write_kaggle_train(directory: str | Path, count: int, size: int, seed: int) -> list[Path]:
    """Write ``count`` cats and ``count`` dogs as ``cat.N.jpg`` / ``dog.N.jpg`` (Kaggle's naming)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for label, prefix in enumerate(CLASS_LABELS):
        for index in range(count):
            rng = np.random.default_rng([seed, label, index])
            path = directory / f"{prefix}.{index}.jpg"
            make_image(label, size, rng).save(path, quality=92)
            written.append(path)
    return written


def write_kaggle_test(directory: str | Path, count: int, size: int, seed: int) -> list[Path]:
    """Write ``count`` unlabelled images ``1.jpg`` … (Kaggle's test naming), classes alternating."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(1, count + 1):
        rng = np.random.default_rng([seed, 2, index])
        path = directory / f"{index}.jpg"
        make_image(index % 2, size, rng).save(path, quality=92)
        written.append(path)
    return written


def write_split_layout(directory: str | Path, count: int, size: int, seed: int) -> None:
    """Write ``directory/cats`` and ``directory/dogs`` directly (for tests of later stages)."""
    directory = Path(directory)
    for label, (class_folder, class_label) in enumerate(zip(CLASS_FOLDERS, CLASS_LABELS)):
        class_dir = directory / class_folder
        class_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rng = np.random.default_rng([seed, label, index])
            make_image(label, size, rng).save(class_dir / f"{class_label}.{index}.jpg", quality=92)
