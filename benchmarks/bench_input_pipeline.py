"""Images/second of the tutorial's ImageDataGenerator against our tf.data pipeline, side by side.

Both read the same class folders (cats/, dogs/), resize to the same size and apply
the tutorial's augmentation (rescale 1/255 for the generator, shear 0.2, zoom 0.2,
horizontal flip); each is timed over the same number of batches after one
warm-up batch. tf.data is timed without a cache and, for epochs after the first,
with the in-memory cache train_scratch uses by default (and once more without
augmentation, which is what the cache alone buys: the validation pipeline).

    python benchmarks/bench_input_pipeline.py                  # data/train
    python benchmarks/bench_input_pipeline.py --data /tmp/bench/train --batches 50
    python benchmarks/bench_input_pipeline.py --synthetic      # generated images, no data needed

ImageDataGenerator is deprecated and needs SciPy for shear and zoom; it is used
here only as the baseline the tutorial had.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def time_batches(batches, count: int) -> tuple[int, float]:
    """Images drawn from ``count`` batches of an iterable (after one warm-up batch), and the seconds taken."""
    iterator = iter(batches)
    next(iterator)  # warm-up: tracing, thread pools, the first file-system reads
    images, started = 0, time.perf_counter()
    for images_batch, _ in itertools.islice(iterator, count):
        images += int(images_batch.shape[0])
    return images, time.perf_counter() - started


def image_data_generator(directory: Path, image_size: int, batch_size: int, seed: int):
    """The tutorial's augmenting ImageDataGenerator.flow_from_directory."""
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(rescale=1.0 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True)
    return generator.flow_from_directory(
        str(directory), target_size=(image_size, image_size), batch_size=batch_size, class_mode="binary",
        seed=seed,
    )


def tf_data_pipeline(directory: Path, image_size: int, batch_size: int, seed: int, cache: bool, augment=True):
    """train_scratch's training pipeline: parallel decode/resize, shuffle, batch, augment, prefetch."""
    from stages.lib.data import list_labelled_images, make_image_dataset
    from stages.lib.augmentation import batch_augmentation

    paths, labels = list_labelled_images(directory)
    dataset = make_image_dataset(
        paths, labels, image_size, batch_size, shuffle=True, seed=seed, cache=cache,
        augment=batch_augmentation(0.2, 0.2, True, seed=seed) if augment else None,
    )
    return dataset.repeat()


def main() -> None:
    """Parse the arguments, time both pipelines and print their images/second."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/train"), help="a folder with cats/ and dogs/")
    parser.add_argument("--synthetic", action="store_true", help="generate a data folder instead of --data")
    parser.add_argument("--synthetic-count", type=int, default=200, help="generated images per class")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per pipeline")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        directory = args.data
        if args.synthetic:
            from stages.lib.synthetic import write_split_layout

            directory = Path(scratch) / "train"
            write_split_layout(directory, args.synthetic_count, 256, seed=args.seed)
        if not directory.is_dir():
            raise SystemExit(f"no data folder {directory}: pass --data DIR or --synthetic")
        size, batch, seed = args.image_size, args.batch_size, args.seed
        count = sum(1 for _ in directory.glob("*/*"))
        epoch_batches = -(-count // batch)
        print(f"{directory}: {count} images, {args.batches} batches of {batch} at {size}x{size}, "
              f"{os.cpu_count()} CPUs")

        results = []
        images, seconds = time_batches(image_data_generator(directory, size, batch, seed), args.batches)
        results.append(("ImageDataGenerator.flow_from_directory", images, seconds))
        images, seconds = time_batches(tf_data_pipeline(directory, size, batch, seed, cache=False), args.batches)
        results.append(("tf.data (parallel decode, no cache)", images, seconds))
        for augment, name in ((True, "tf.data (memory cache, later epochs)"), (False, "  same, without augmentation")):
            cached = iter(tf_data_pipeline(directory, size, batch, seed, cache=True, augment=augment))
            for _ in range(epoch_batches):  # the first epoch fills the cache
                next(cached)
            images, seconds = time_batches(cached, args.batches)
            results.append((name, images, seconds))

    print(f"{'pipeline':42} {'images':>7} {'seconds':>8} {'images/s':>9}")
    for name, images, seconds in results:
        print(f"{name:42} {images:7d} {seconds:8.2f} {images / seconds:9.1f}")
    baseline = results[0][1] / results[0][2]
    for name, images, seconds in results[1:3]:
        print(f"{name}: {images / seconds / baseline:.1f}x ImageDataGenerator")


if __name__ == "__main__":
    main()
