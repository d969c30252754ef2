"""Training cost of candidate from-scratch networks, side by side: images/s of ``fit`` on random images in memory.

    python -m benchmarks.networks                       # modern, large, keras-io's network and its x0.35 form
    python -m benchmarks.networks --networks large keras_io --image-size 160 --batches 12
    python -m benchmarks.networks --quick               # tiny sizes: a check that it still runs

What the sizing of a new recipe needs before any photo is read: the same
training step (forward, backward, AdamW update) per network at one image size,
with no input pipeline, each in a fresh process, one after the other, in
``--precision`` (``auto`` picks bfloat16 where the CPU has it, as the pipeline
does). The networks: the modern and large recipes' (their defaults) and the
network of keras-io's *Image classification from scratch* example (entry
convolution 128, separable residual blocks of 256, 512 and 728, separable 1024)
at full width and with every width scaled by 0.35. Random pixels make no
difference to the cost of a dense convolution. Prints one JSON line per network
with the CPU flags.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks.common import ROOT, machine

NETWORKS = ("modern", "large", "keras_io", "keras_io_x0.35")


def keras_io_network(image_size: int, scale: float):
    """keras-io's *Image classification from scratch* network, every width multiplied by ``scale``."""
    import keras
    from keras import layers

    def width(count: int) -> int:
        return max(8, int(round(count * scale)))

    inputs = keras.Input(shape=(image_size, image_size, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(width(128), 3, strides=2, padding="same")(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    previous = x
    for count in (256, 512, 728):
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.SeparableConv2D(width(count), 3, padding="same")(x))
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(width(count), 1, strides=2, padding="same")(previous)
        x = previous = layers.add([x, residual])
    x = layers.SeparableConv2D(width(1024), 3, padding="same")(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.Dropout(0.25)(layers.GlobalAveragePooling2D()(x))
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name="keras_io")
    model.compile(keras.optimizers.AdamW(1e-3), "binary_crossentropy")
    return model


def build(name: str, image_size: int, steps_per_epoch: int):
    """Network ``name`` compiled for training."""
    if name.startswith("keras_io"):
        return keras_io_network(image_size, float(name.partition("_x")[2] or 1.0))
    from catsdogs.models.recipes import load_recipe

    return load_recipe(name, {}).build(image_size, steps_per_epoch)


def measure(name: str, image_size: int, batch_size: int, batches: int, precision: str) -> dict:
    """One warm-up fit of two batches, then one timed epoch of ``batches`` batches; images/s."""
    import numpy as np

    from catsdogs.models.precision import set_mixed_precision

    policy = set_mixed_precision({"auto": "auto", "float32": False, "bfloat16": True}[precision])
    model = build(name, image_size, batches)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size * batches, image_size, image_size, 3)).astype(np.float32)
    labels = (np.arange(len(images)) % 2).astype(np.float32)
    model.fit(images[: 2 * batch_size], labels[: 2 * batch_size], batch_size=batch_size, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    return {"network": name, "image_size": image_size, "parameters": model.count_params(), "dtype_policy": policy,
            "images": len(images), "seconds": round(seconds, 2), "images_per_second": round(len(images) / seconds, 1)}


def main() -> None:
    """Measure each network in a fresh process (``--child`` runs one) and print a JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12, help="batches in the timed epoch")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto")
    parser.add_argument("--quick", action="store_true", help="32 px, batches of 4, 2 batches")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per network")
    parser.add_argument("--child", choices=NETWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.image_size, args.batch_size, args.batches = 32, 4, 2
    if args.child:
        print(json.dumps(measure(args.child, args.image_size, args.batch_size, args.batches, args.precision)))
        return
    print(json.dumps({"machine": machine(), "precision": args.precision, "batch_size": args.batch_size}))
    for name in args.networks:
        command = [sys.executable, "-m", "benchmarks.networks", "--child", name, "--image-size", str(args.image_size),
                   "--batch-size", str(args.batch_size), "--batches", str(args.batches), "--precision", args.precision]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
        if result.returncode != 0:
            raise SystemExit(f"{name} failed:\n{result.stderr[-4000:]}")
        print(result.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
