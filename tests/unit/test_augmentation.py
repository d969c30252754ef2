"""The training augmentation: Keras's random draws, one warp by the product of the layers' matrices."""

from __future__ import annotations

import numpy as np
import pytest

from catsdogs.data.augmentation import GEOMETRIC, augmentation_layers, batch_augmentation, warp_once

OFF = {"shear": 0.0, "zoom": 0.0, "horizontal_flip": False, "rotation": 0.0, "translation": 0.0, "contrast": 0.0}
ONE_AT_A_TIME = {
    "shear": {"shear": 0.2}, "zoom": {"zoom": 0.2}, "flip": {"horizontal_flip": True},
    "rotation": {"rotation": 0.05}, "translation": {"translation": 0.1},
}
MODERN = {**OFF, "zoom": 0.2, "horizontal_flip": True, "rotation": 0.05, "translation": 0.1, "contrast": 0.2}
SIZE, BATCH = 48, 16


def noise(seed=0):
    import tensorflow as tf

    return tf.constant(np.random.default_rng(seed).uniform(0, 255, (BATCH, SIZE, SIZE, 3)), tf.float32)


def ramp():
    """Images whose values are a linear function of the position (bilinear interpolation keeps them exactly)."""
    import tensorflow as tf

    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    image = np.stack([x * 3.0, y * 2.0, x + y], axis=-1)
    return tf.constant(np.repeat(image[None], BATCH, axis=0))


def in_turn(layers, images):
    """The Keras layers applied one after the other (one warp each): what the one warp replaces."""
    for layer in layers:
        images = layer(images, training=True)
    return images


@pytest.mark.parametrize("name", sorted(ONE_AT_A_TIME))
def test_each_layer_alone_warps_as_keras_does(name):
    """The same draws (a second layer with the same seed) and the same matrix: Keras's pixels.

    To within 0.01 of 255 (OpenCV's bilinear sums in another order than
    TensorFlow's kernel; a wrong matrix or offset is off by tens).
    """
    settings = {**OFF, **ONE_AT_A_TIME[name]}
    ours, = augmentation_layers(**settings, seed=3)
    keras_layer, = augmentation_layers(**settings, seed=3)
    images = noise()
    for _ in range(2):  # the second batch draws new parameters, in step with Keras's
        expected = keras_layer(images, training=True).numpy()
        warped = warp_once(images, [ours]).numpy()
        np.testing.assert_allclose(warped, expected, rtol=0, atol=0.01)
        assert not np.allclose(warped, images.numpy(), rtol=0, atol=1)


def test_the_layers_compose_in_their_order_with_one_interpolation():
    """On a ramp (where interpolation is exact) one warp equals the layers applied in turn, away from the edges."""
    settings = {**OFF, "shear": 0.2, "zoom": 0.2, "horizontal_flip": True, "rotation": 0.05, "translation": 0.1}
    fused = batch_augmentation(**settings, seed=5)
    sequential = augmentation_layers(**settings, seed=5)
    assert [layer.name for layer in sequential] == list(GEOMETRIC)
    images = ramp()
    warped, _ = fused(images, np.zeros(BATCH, np.float32))
    expected = in_turn(sequential, images)
    # Pixels whose source lies well inside the image in every step: where the edge fill is not involved.
    inside = np.abs(expected.numpy() - warped.numpy()) < 0.05
    assert inside[:, SIZE // 3: 2 * SIZE // 3, SIZE // 3: 2 * SIZE // 3].mean() > 0.9
    assert inside.mean() > 0.5


def test_one_warp_is_sharper_than_several():
    """Each bilinear interpolation blurs: noise keeps more of its variance through one warp than through five."""
    settings = {**OFF, "shear": 0.2, "zoom": 0.2, "horizontal_flip": True, "rotation": 0.05, "translation": 0.1}
    images = noise(1)
    warped, _ = batch_augmentation(**settings, seed=2)(images, np.zeros(BATCH, np.float32))
    sequential = in_turn(augmentation_layers(**settings, seed=2), images)
    assert float(np.std(warped)) > 1.05 * float(np.std(sequential))


def test_contrast_follows_the_warp_and_labels_pass_through():
    import tensorflow as tf

    augment = batch_augmentation(**MODERN, seed=7)
    labels = tf.constant(np.arange(BATCH) % 2, tf.float32)
    images = noise(2)
    augmented, same_labels = augment(images, labels)
    np.testing.assert_array_equal(same_labels.numpy(), labels.numpy())
    assert augmented.shape == images.shape and augmented.dtype == tf.float32
    assert 0 <= float(tf.reduce_min(augmented)) and float(tf.reduce_max(augmented)) <= 255.001
    # Contrast alone on the same warp: the contrast layer (seed + 5) is what changes the warped pixels.
    geometric = [layer for layer in augmentation_layers(**MODERN, seed=7) if layer.name in GEOMETRIC]
    contrast, = [layer for layer in augmentation_layers(**MODERN, seed=7) if layer.name == "contrast"]
    np.testing.assert_allclose(augmented.numpy(), contrast(warp_once(images, geometric), training=True).numpy(),
                               atol=1e-3)


def test_in_tf_data_each_batch_draws_anew_in_order_and_a_seed_repeats_the_pictures():
    """``over``: the draws one batch at a time in the batches' order, the pixel work in parallel.

    A plain parallel map of the whole augmentation reads the layers' seed state
    in any order (two batches can even draw the same parameters): here the
    pictures must be those of the same augmentation called batch by batch.
    """
    import tensorflow as tf

    tutorial = {**OFF, "shear": 0.2, "zoom": 0.2, "horizontal_flip": True}
    images = np.repeat(noise(3).numpy()[:1], 4, axis=0)  # one image four times in each batch
    labels = np.zeros(4, np.float32)

    def pictures(seed, batches=8):
        dataset = tf.data.Dataset.from_tensors((images, labels)).repeat(batches)
        return np.stack([batch.numpy() for batch, _ in batch_augmentation(**tutorial, seed=seed).over(dataset)])

    first = pictures(11)
    one_by_one = batch_augmentation(**tutorial, seed=11)
    np.testing.assert_allclose(first, np.stack([one_by_one(images, labels)[0].numpy() for _ in range(8)]),
                               rtol=0, atol=1e-3)
    assert not any(np.array_equal(first[i], first[j]) for i in range(8) for j in range(i))  # new parameters each batch
    assert not np.array_equal(first[0, 0], first[0, 1])  # and each image
    for _ in range(3):  # parallel calls finish in any order; the pictures stay
        np.testing.assert_array_equal(pictures(11), first)
    assert not np.array_equal(pictures(12)[0], first[0])


def test_a_layer_that_is_not_geometric_has_no_matrix():
    from catsdogs.data.augmentation import layer_matrix

    contrast, = augmentation_layers(**{**OFF, "contrast": 0.2}, seed=1)
    with pytest.raises(ValueError, match="not a geometric augmentation layer: contrast"):
        layer_matrix(contrast, noise())


def test_under_mixed_precision_the_augmentation_stays_float32():
    """The global policy mixed_bfloat16 (``mixed_precision: auto`` on a CPU with AMX) must not reach the layers:
    contrast's factor in bfloat16 against float32 pixels failed, and bfloat16 pixels would round the warp."""
    import keras
    import tensorflow as tf

    images = np.random.default_rng(4).integers(0, 256, (4, SIZE, SIZE, 3)).astype(np.uint8)
    dataset = tf.data.Dataset.from_tensors((images, np.zeros(4, np.float32))).repeat(2)
    expected = [batch.numpy() for batch, _ in batch_augmentation(**MODERN, seed=9).over(dataset)]
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        augment = batch_augmentation(**MODERN, seed=9)
        assert {layer.compute_dtype for layer in augment.geometric + augment.others} == {"float32"}
        pictures = [batch for batch, _ in augment.over(dataset)]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(batch.dtype == tf.float32 for batch in pictures)
    np.testing.assert_allclose(np.stack([batch.numpy() for batch in pictures]), np.stack(expected), rtol=0, atol=1e-3)
