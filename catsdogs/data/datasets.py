"""Listing the split's images and reading them with tf.data.

Labels come from the class folders (:mod:`catsdogs.core.labels`: ``cats`` = 0, ``dogs`` = 1).
Images are decoded, resized to the shared size and rounded to 8-bit values (as if
the photos had been stored at that size), so a cached image takes 1 byte per value;
they reach every model as float32 RGB in [0, 255], converted batch by batch, and
each model does its own scaling (Rescaling layer, VGG16's preprocessing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from catsdogs.core.labels import CLASS_FOLDERS, IMAGE_SUFFIXES, numeric_stem

logger = logging.getLogger(__name__)


def list_images(directory: str | Path) -> list[Path]:
    """Image files directly in a folder, sorted by name (numerically where names are numbers)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"image folder not found: {directory}")
    files = [p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]

    def order(path: Path):
        number = numeric_stem(path.name)
        return (0, number, path.name) if number is not None else (1, 0, path.name)

    return sorted(files, key=order)


def list_labelled_images(directory: str | Path) -> tuple[list[Path], np.ndarray]:
    """The files of ``directory/cats`` and ``directory/dogs`` in a fixed order, with their labels."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"data folder not found: {directory} (run the split stage first)")
    paths: list[Path] = []
    labels: list[int] = []
    for label, class_name in enumerate(CLASS_FOLDERS):
        class_dir = directory / class_name
        if not class_dir.is_dir():
            raise ValueError(f"class folder missing: {class_dir} (expected {', '.join(CLASS_FOLDERS)})")
        files = list_images(class_dir)
        if not files:
            raise ValueError(f"class folder is empty: {class_dir}; both classes need images")
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, dtype=np.int32)


# (process id, file): the one file decoder messages are captured in, made once per process.
_message_file: tuple[int, IO[bytes]] | None = None


def _decoder_message_file() -> IO[bytes]:
    """An empty anonymous file of this process (one temporary file, reused: opening one costs more than
    the capture itself; a forked child makes its own, as the offset would be shared)."""
    global _message_file
    if _message_file is None or _message_file[0] != os.getpid():
        _message_file = (os.getpid(), tempfile.TemporaryFile())
    return _message_file[1]


@contextlib.contextmanager
def decoder_messages_logged() -> Iterator[None]:
    """Keep what C decoders write straight to file descriptor 2 (libjpeg's "Inconsistent progression
    sequence…", "Premature end of JPEG file") off the user's terminal: it goes to the debug log
    (its first 4 KB, one line). File descriptor 2 is restored on the way out, whatever happens.

    Process-wide while it lasts (one thread decodes at a time here). Where no file descriptor 2 or
    no temporary file is available, nothing is captured and the decode goes ahead.
    """
    try:
        if sys.stderr is not None:
            sys.stderr.flush()  # Python's own pending text belongs on the terminal
        captured = _decoder_message_file().fileno()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        os.dup2(captured, 2)
        yield
    finally:
        if sys.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()  # what Python wrote meanwhile was part of the decode too
        os.dup2(saved, 2)
        os.close(saved)
        if os.lseek(captured, 0, os.SEEK_END):
            text = os.pread(captured, 4096, 0).decode(errors="replace").strip()
            os.ftruncate(captured, 0)
            os.lseek(captured, 0, os.SEEK_SET)  # the offset is not moved by truncating
            if text:
                logger.debug("decoder messages: %s", " | ".join(text.splitlines()))


def decode_rgb(data):
    """Decode image bytes as uint8 RGB of shape (height, width, 3): the one decoder every model's input goes through.

    Called eagerly (``catsdogs predict``, the image checks), what libjpeg prints to file descriptor 2
    while it decodes goes to the debug log, not the terminal
    (:func:`decoder_messages_logged`). Inside a tf.data pipeline it is a graph op
    that runs later on tf.data's threads, and file descriptor 2 is left alone.
    """
    import tensorflow as tf

    if not tf.executing_eagerly():
        return tf.io.decode_image(data, channels=3, expand_animations=False)
    with decoder_messages_logged():
        return tf.io.decode_image(data, channels=3, expand_animations=False)


def resize_image(image, image_size: int):
    """A decoded image as uint8 RGB of shape (image_size, image_size, 3): bilinear resize, rounded."""
    import tensorflow as tf

    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    image.set_shape((image_size, image_size, 3))
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def decode_and_resize(path, image_size: int):
    """Read one image file as uint8 RGB of shape (image_size, image_size, 3): bilinear resize, rounded."""
    import tensorflow as tf

    return resize_image(decode_rgb(tf.io.read_file(path)), image_size)


def to_float(images, *rest):
    """A batch of uint8 images as float32 [0, 255] (labels, if any, pass through)."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    return (images, *rest) if rest else images


def make_image_dataset(
    paths: list[Path] | list[str],
    labels: np.ndarray | None,
    image_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool = False,
    augment=None,
):
    """A batched, prefetched tf.data pipeline of (images, labels), or images alone without labels.

    Decoding runs in parallel; ``deterministic=True`` keeps the file order, so a
    row of any output always matches its file and label. Shuffling is seeded
    and reshuffles each epoch. ``cache`` keeps the decoded uint8 images in memory
    (N x size^2 x 3 bytes); batches become float32 after it. ``augment``, a
    :class:`catsdogs.data.augmentation.BatchAugmentation`, augments the batches
    (training; never cached): its draws in order, its pixel work in parallel.
    """
    import tensorflow as tf

    path_strings = [str(p) for p in paths]
    dataset = tf.data.Dataset.from_tensor_slices(path_strings)
    dataset = dataset.map(
        lambda p: decode_and_resize(p, image_size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if labels is not None:
        label_dataset = tf.data.Dataset.from_tensor_slices(np.asarray(labels, dtype=np.float32))
        dataset = tf.data.Dataset.zip((dataset, label_dataset))
    if cache:
        dataset = dataset.cache()  # decoded once, reused every epoch
    if shuffle:
        dataset = dataset.shuffle(len(path_strings), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment is None:
        dataset = dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = augment.over(dataset)  # float32 batches, the random draws in order
    return without_autotune(dataset.prefetch(tf.data.AUTOTUNE))


def without_autotune(dataset):
    """The dataset with tf.data's autotuning thread off (AUTOTUNE then means one call per core and a
    prefetch buffer that grows while the model waits).

    Dropping an iterator waits for its tuning thread, and on these machines that
    wait took up to 20 s with both CPUs idle (py-spy's native stack of the stalled
    process: ``RootDataset::Iterator::~Iterator`` waiting in a thread pool's
    ``~LogicalThreadWrapper``): at the end of every prediction or extraction, and at
    the start of training epochs, since Keras makes a new iterator each epoch (one
    epoch in three to five stalled, ImageDataGenerator's and the in-memory bound's
    too). Decoding and augmentation are cheap next to the model; there is little to tune.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def files_to_check(paths: list[Path], labels: np.ndarray, per_class: int) -> list[Path]:
    """An evenly spaced sample of each class's files, first and last included."""
    chosen = []
    for label in np.unique(labels):
        files = [p for p, y in zip(paths, labels) if y == label]
        positions = np.unique(np.linspace(0, len(files) - 1, num=min(per_class, len(files))).round().astype(int))
        chosen += [files[i] for i in positions]
    return chosen


def unreadable_images(paths: list[Path], image_size: int) -> list[Path]:
    """The files among ``paths`` that TensorFlow's decoder (the pipeline's) cannot read."""
    import tensorflow as tf

    broken = []
    for path in paths:
        try:
            decode_and_resize(str(path), image_size)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
            broken.append(path)
    return broken


def check_readable(paths: list[Path], labels: np.ndarray, image_size: int, per_class: int) -> None:
    """Decode ``per_class`` evenly spaced files of each class; raise ValueError naming those that cannot be read."""
    broken = unreadable_images(files_to_check(paths, labels, per_class), image_size)
    if broken:
        raise unreadable_error(broken)


def unreadable_error(broken: list[Path]) -> ValueError:
    """The error that names the files TensorFlow cannot decode."""
    return ValueError(f"cannot decode image(s): {', '.join(map(str, broken))} (remove them or rerun split)")


def cache_bytes(count: int, image_size: int) -> int:
    """RAM that caching ``count`` decoded uint8 images of ``image_size`` squared takes."""
    return count * image_size * image_size * 3


def log_cache_size(logger, count: int, image_size: int) -> None:
    """Log the RAM the in-memory cache will take; warn when it is over half the machine's RAM."""
    needed = cache_bytes(count, image_size)
    logger.info("cache: memory, %.1f MB for %d decoded images", needed / 1e6, count)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not available on every OS
        return
    if needed > total / 2:
        logger.warning(
            "the image cache needs %.1f GB of %.1f GB RAM: set train_scratch.cache: none if memory runs out",
            needed / 1e9, total / 1e9,
        )
