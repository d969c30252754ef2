"""The tutorial's top classifier: a small dense network on VGG16's bottleneck features (a pure builder)."""

from __future__ import annotations

from collections.abc import Sequence


def build_top_classifier(feature_shape: Sequence[int], units: Sequence[int], dropouts: Sequence[float]):
    """Flatten -> (Dense ReLU -> Dropout) per entry of ``units`` -> Dense 1 sigmoid: P(dog)."""
    import keras
    from keras import layers

    if len(units) != len(dropouts):
        raise ValueError(f"one dropout per dense layer: got {len(units)} units and {len(dropouts)} dropouts")
    inputs = keras.Input(tuple(feature_shape), name="features")
    hidden = layers.Flatten(name="flatten")(inputs)
    for index, (width, rate) in enumerate(zip(units, dropouts), start=1):
        hidden = layers.Dense(width, activation="relu", name=f"dense_{index}")(hidden)
        hidden = layers.Dropout(rate, name=f"dropout_{index}")(hidden)
    outputs = layers.Dense(1, activation="sigmoid", name="p_dog")(hidden)
    return keras.Model(inputs, outputs, name="top_classifier")
