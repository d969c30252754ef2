"""One measurement in a fresh process: ``python -m benchmarks.worker TASK SETTINGS_JSON``.

Prints one JSON line (the last line of stdout) with the task's figures and the
process's peak resident memory. Run by :func:`benchmarks.common.run_child`;
Keras' own output goes to stderr so stdout stays the report.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path


def epoch_timer():
    """A Keras callback recording each epoch's wall time (training and validation)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    return EpochTimer()


def default_recipe(name: str, **changes):
    """Recipe ``name`` (:mod:`catsdogs.models.recipes`) with its default config (params.yaml's
    ``recipes.<name>`` as shipped), ``changes`` applied and validated."""
    from catsdogs.models.recipes import default_configs, load_recipe

    return load_recipe(name, {name: {**default_configs()[name].model_dump(), **changes}})


def recipe_cnn(settings: dict, train_count: int):
    """The scratch CNN exactly as train_scratch builds and compiles it: the recipe ``settings["recipe"]`` (the
    tutorial's when absent) at its defaults, for ``train_count`` training images."""
    from catsdogs.models.precision import set_mixed_precision

    recipe = default_recipe(settings.get("recipe", "tutorial"))
    policy = set_mixed_precision(settings["mixed_precision"])
    model = recipe.build(settings["image_size"], steps_per_epoch=math.ceil(train_count / settings["batch_size"]))
    return model, policy, recipe.augmentation.model_dump()


def epochs_report(timer, train_count: int, policy: str) -> dict:
    """Images/s over whole epochs (validation included): the first epoch alone, the median of the others, and
    the fastest of the others.

    Both are reported because neither is clean on these machines: an epoch can take
    15-20 s longer with both CPUs idle when Keras drops the last epoch's tf.data
    iterator and waits for its autotuning thread (catsdogs.data.datasets.without_autotune
    turns it off in ours and the bound's; the tutorial's ImageDataGenerator pipeline
    keeps it, as its users get it), which the median absorbs only when fewer than
    half stall, and the fastest epoch can be one where the machine ran faster than usual.
    """
    later = timer.seconds[1:] or timer.seconds
    return {
        "train_images": train_count,
        "epoch_seconds": [round(seconds, 2) for seconds in timer.seconds],
        "first_epoch_images_per_second": round(train_count / timer.seconds[0], 1),
        "images_per_second": round(train_count / statistics.median(later), 1),
        "best_images_per_second": round(train_count / min(later), 1),
        "dtype_policy": policy,
    }


def train_ours(settings: dict) -> dict:
    """train_scratch's own input pipeline (uint8 memory cache, tf.data augmentation) feeding the CNN."""
    from catsdogs.core.seeding import seed_everything
    from catsdogs.data.augmentation import batch_augmentation
    from catsdogs.data.datasets import list_labelled_images
    from catsdogs.stages.train_scratch import make_datasets

    data, size, batch, seed = Path(settings["data"]), settings["image_size"], settings["batch_size"], settings["seed"]
    train, validation = list_labelled_images(data / "train"), list_labelled_images(data / "validation")
    seed_everything(seed, False)
    model, policy, augmentation = recipe_cnn(settings, len(train[0]))
    datasets = make_datasets(train, validation, size, batch, seed, True, batch_augmentation(**augmentation, seed=seed))
    timer = epoch_timer()
    model.fit(*datasets[:1], validation_data=datasets[1], epochs=settings["epochs"], callbacks=[timer], verbose=2)
    return epochs_report(timer, len(train[0]), policy)


def train_tutorial(settings: dict) -> dict:
    """The tutorial's pipeline: ImageDataGenerator (shear, zoom, flip) flow_from_directory feeding the same CNN."""
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    from catsdogs.core.seeding import seed_everything
    from catsdogs.data.datasets import list_labelled_images

    data, size, batch, seed = Path(settings["data"]), settings["image_size"], settings["batch_size"], settings["seed"]
    seed_everything(seed, False)
    model, policy, augmentation = recipe_cnn(settings, len(list_labelled_images(data / "train")[0]))
    # No rescale=1/255 here: the CNN's own Rescaling layer does it (the same arithmetic, once).
    train = ImageDataGenerator(
        shear_range=augmentation["shear"], zoom_range=augmentation["zoom"],
        horizontal_flip=augmentation["horizontal_flip"],
    ).flow_from_directory(str(data / "train"), target_size=(size, size), batch_size=batch, class_mode="binary", seed=seed)
    validation = ImageDataGenerator().flow_from_directory(
        str(data / "validation"), target_size=(size, size), batch_size=batch, class_mode="binary", shuffle=False
    )
    timer = epoch_timer()
    model.fit(train, validation_data=validation, epochs=settings["epochs"], callbacks=[timer], verbose=2)
    return epochs_report(timer, train.samples, policy)


def in_memory(paths: list, size: int):
    """Decoded, resized images as one float32 array (what the compute bound trains on)."""
    import numpy as np

    from catsdogs.data.datasets import decode_and_resize

    return np.stack([decode_and_resize(str(path), size).numpy() for path in paths]).astype(np.float32)


def train_bound(settings: dict) -> dict:
    """The compute bound: the same CNN's training steps on images already decoded in memory, no augmentation."""
    import numpy as np
    import tensorflow as tf

    from catsdogs.core.seeding import seed_everything
    from catsdogs.data.datasets import list_labelled_images, without_autotune

    data, size, batch, seed = Path(settings["data"]), settings["image_size"], settings["batch_size"], settings["seed"]
    train, validation = list_labelled_images(data / "train"), list_labelled_images(data / "validation")
    seed_everything(seed, False)
    model, policy, _ = recipe_cnn(settings, len(train[0]))

    def dataset(split):
        """Whole batches sliced from one in-memory tensor: no decoding, no per-image work, no augmentation."""
        images = tf.constant(in_memory(split[0], size))
        labels = tf.constant(np.asarray(split[1], np.float32))
        count = len(split[1])
        starts = tf.data.Dataset.range(0, count, batch)
        # Autotuning off as in train_scratch's pipeline (catsdogs.data.datasets.without_autotune): no tuning thread
        # for the bound's epochs to wait for either.
        return without_autotune(
            starts.map(lambda start: (images[start : start + batch], labels[start : start + batch])).prefetch(2))

    timer = epoch_timer()
    model.fit(dataset(train), validation_data=dataset(validation), epochs=settings["epochs"],
              callbacks=[timer], verbose=2)
    return epochs_report(timer, len(train[0]), policy)


def augmentation_cost(settings: dict) -> dict:
    """CPU time per batch, on one thread, of the training augmentation against the CNN's training step.

    What the augmentation adds to the CPU work of training. On two cores it runs
    beside the training step's two threads rather than in idle time, so this share
    does not predict what ours loses against the bound (it lost more on 2026-12-02,
    README "Results"). Ours (one OpenCV warp by the
    product of the layers' matrices, then contrast) beside the same Keras layers
    applied in turn (one warp each, what train_scratch did before), for the
    tutorial's augmentation and the modern recipe's; and, for the tutorial's, the
    same one warp by TensorFlow's projective-transform kernel (what ours used
    before OpenCV's).
    """
    import numpy as np
    import tensorflow as tf

    from catsdogs.data.augmentation import augmentation_layers, batch_augmentation, combined_matrix

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    size, batch, seed = settings["image_size"], settings["batch_size"], settings["seed"]
    model, policy, tutorial = recipe_cnn({**settings, "recipe": "tutorial"}, batch)
    modern = default_recipe("modern").augmentation.model_dump()
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype(np.float32))
    labels = tf.constant((np.arange(batch) % 2).astype(np.float32))

    def in_turn(layers):
        def apply(x):
            for layer in layers:
                x = layer(x, training=True)
            return x
        return tf.function(apply)

    def ours(augmentation):
        augment = batch_augmentation(**augmentation, seed=seed)
        return tf.function(lambda x: augment(x, labels)[0])

    def tensorflow_kernel(augmentation):  # the same one warp by TensorFlow's kernel: ours until OpenCV's
        geometric = augmentation_layers(**augmentation, seed=seed)
        return tf.function(lambda x: tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=tf.reshape(combined_matrix(x, geometric), [-1, 9])[:, :8],
            output_shape=tf.shape(x)[1:3], fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST"))

    steps = {
        "tutorial_ours": ours(tutorial),
        "tutorial_one_warp_tensorflow_kernel": tensorflow_kernel(tutorial),
        "tutorial_layers_in_turn": in_turn(augmentation_layers(**tutorial, seed=seed)),
        "modern_ours": ours(modern),
        "modern_layers_in_turn": in_turn(augmentation_layers(**modern, seed=seed)),
        "train_step": lambda x: model.train_on_batch(x, labels),
    }
    seconds: dict = {name: [] for name in steps}
    for _ in range(settings["repeats"] + 1):  # the first round builds and traces
        for name, step in steps.items():
            started = time.perf_counter()
            result = step(images)
            np.asarray(result)  # wait for the values
            seconds[name].append(time.perf_counter() - started)
    ms = {name: round(1000 * statistics.median(times[1:]), 1) for name, times in seconds.items()}
    share = {name: round(value / ms["train_step"], 3) for name, value in ms.items() if name != "train_step"}
    return {"ms_per_batch_one_thread": ms, "augmentation_vs_step": share["tutorial_ours"], "vs_step": share,
            "dtype_policy": policy}


def extract_ours(settings: dict) -> dict:
    """The extract_features stage's own function, both splits, into a temporary folder."""
    from catsdogs.core.seeding import seed_everything
    from catsdogs.stages.extract_features import extract_features
    from catsdogs.stages.weights import prepare_weights

    data = Path(settings["data"])
    with tempfile.TemporaryDirectory() as scratch:
        weights_file = Path(scratch) / "vgg16_notop.weights.h5"  # random weights, as the weights stage writes
        prepare_weights("none", weights_file, seed=settings["seed"], local_dir=scratch)
        seed_everything(settings["seed"], False)
        meta = extract_features(
            {split: data / split for split in ("train", "validation")}, Path(scratch) / "features",
            image_size=settings["image_size"], batch_size=settings["batch_size"], weights_file=weights_file,
            preprocessing="vgg16", mixed_precision=settings["mixed_precision"],
        )
    images = sum(counts["total"] for counts in meta["counts"].values())
    seconds = sum(meta["extract_seconds"].values())
    return {"images": images, "seconds": round(seconds, 2), "images_per_second": round(images / seconds, 2),
            "dtype_policy": meta["dtype_policy"]}


def extract_bound(settings: dict) -> dict:
    """The bound: VGG16's forward pass (the same extractor) on the same images already decoded in memory."""
    from catsdogs.core.seeding import seed_everything
    from catsdogs.data.datasets import list_labelled_images
    from catsdogs.models import vgg
    from catsdogs.models.precision import set_mixed_precision

    data, size, batch = Path(settings["data"]), settings["image_size"], settings["batch_size"]
    paths = [path for split in ("train", "validation") for path in list_labelled_images(data / split)[0]]
    seed_everything(settings["seed"], False)
    policy = set_mixed_precision(settings["mixed_precision"])
    import keras

    keras.utils.set_random_seed(settings["seed"])  # random weights: the speed does not depend on them
    model = vgg.vgg16_image_model(vgg.vgg16_base(size), "vgg16", size)
    images = in_memory(paths, size)
    started = time.perf_counter()
    for start in range(0, len(images), batch):  # every batch timed, the first included, like the stage's timer
        model.predict_on_batch(images[start : start + batch])
    seconds = time.perf_counter() - started
    return {"images": len(images), "seconds": round(seconds, 2), "images_per_second": round(len(images) / seconds, 2),
            "dtype_policy": policy}


def train_stage(settings: dict) -> dict:
    """The whole train_scratch stage function (checks, cache, training, saving) for its peak memory."""
    from catsdogs.core.params import CommonParams, RuntimeParams, TrainScratchParams
    from catsdogs.stages.train_scratch import train_scratch
    from catsdogs.train.training import TrainingFiles

    data = Path(settings["data"])
    common = CommonParams(**{**CommonParams().model_dump(), "image_size": settings["image_size"],
                             "batch_size": settings["batch_size"], "seed": settings["seed"]})
    scratch_params = TrainScratchParams(**{**TrainScratchParams().model_dump(), "cache": settings["cache"]})
    recipe = default_recipe("tutorial", epochs=settings["epochs"])
    with tempfile.TemporaryDirectory() as scratch:
        files = TrainingFiles(data / "train", data / "validation", Path(scratch) / "scratch.keras",
                              Path(scratch) / "reports")
        summary = train_scratch(files, common, RuntimeParams(), scratch_params, recipe)
    return {"images": summary["train_count"] + summary["validation_count"], "images_per_second": summary["images_per_second"]}


TASKS = {
    "train_ours": train_ours,
    "train_tutorial": train_tutorial,
    "train_bound": train_bound,
    "augmentation_cost": augmentation_cost,
    "extract_ours": extract_ours,
    "extract_bound": extract_bound,
    "train_stage": train_stage,
}


def main() -> None:
    """Run the task named on the command line; print its JSON report as the last stdout line."""
    task, settings = sys.argv[1], json.loads(sys.argv[2])
    with contextlib.redirect_stdout(sys.stderr):  # Keras' epoch lines: stdout stays the report
        result = TASKS[task](settings)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    print(json.dumps(result))


if __name__ == "__main__":
    main()
