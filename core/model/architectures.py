"""The architectures PatchLens builds (Functional API only: tf-keras-vis Grad-CAM fails on Keras 3
`Sequential` models) and how to find a model's Grad-CAM target layer.

Every architecture keeps the model contract of core.model.io: input RGB patches (N, 96, 96, 3) with values
0-255 (scaling happens inside the model), output (N, 1) = P(tumour in the centre 32x32 px).
TensorFlow is imported inside the functions, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.constants import PATCH_SHAPE
from core.errors import ModelError

LAST_CONV_NAME = "last_conv"


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    build: Callable[..., Any]


def _conv_bn_relu(x, filters: int, *, strides: int = 1, name: str | None = None):
    from keras import layers

    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def build_patchnet(*, width: int = 32, dropout: float = 0.3):
    """Our default: a strided stem, then BN conv blocks, global average pooling and dropout.

    The stride-2 stem halves the grid at once, so each patch costs ~6x fewer multiply-adds than the
    seed CNN, which convolves the full 96x96 grid. About 1.2 M parameters at width 32.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=PATCH_SHAPE, name="patch")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    x = _conv_bn_relu(x, width, strides=2)  # 48x48
    x = _conv_bn_relu(x, width)
    x = layers.MaxPooling2D()(x)  # 24x24
    x = _conv_bn_relu(x, width * 2)
    x = _conv_bn_relu(x, width * 2)
    x = layers.MaxPooling2D()(x)  # 12x12
    x = _conv_bn_relu(x, width * 4)
    x = _conv_bn_relu(x, width * 4)
    x = layers.MaxPooling2D()(x)  # 6x6
    x = _conv_bn_relu(x, width * 8)
    x = _conv_bn_relu(x, width * 8, name=LAST_CONV_NAME)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="tumour_probability", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="patchnet")


def build_seed(*, dropout: float = 0.3):
    """The plain CNN of the original write-up: three conv/conv/pool blocks at 32-128 filters on the
    full 96x96 grid, then a dense head. Reported val accuracy 0.8867, loss 0.2923; slow on a CPU."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=PATCH_SHAPE, name="patch")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    for i, filters in enumerate((32, 64, 128)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        name = LAST_CONV_NAME if i == 2 else None
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.1)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="tumour_probability", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="seed")


def build_tiny(*, dropout: float = 0.1):
    """A few-thousand-parameter CNN for smoke tests and trying the pipeline in seconds."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=PATCH_SHAPE, name="patch")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name=LAST_CONV_NAME)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="tumour_probability", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="tiny")


ARCHITECTURES: dict[str, Architecture] = {
    "patchnet": Architecture(
        "patchnet",
        "Default. Strided stem + 8 BN conv layers + global average pooling (~1.2 M parameters).",
        build_patchnet,
    ),
    "seed": Architecture(
        "seed",
        "The plain CNN of the original write-up (6 convs on the full grid); ~6x slower per patch.",
        build_seed,
    ),
    "tiny": Architecture(
        "tiny", "Smoke-test CNN (~1.5 k parameters): checks the pipeline in seconds.", build_tiny
    ),
}
DEFAULT_ARCHITECTURE = "patchnet"


def build_model(name: str = DEFAULT_ARCHITECTURE, *, seed: int | None = None, **options):
    """Build a fresh, uncompiled model of a registered architecture."""
    if name not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ModelError(f"Unknown architecture {name!r}; choose one of: {known}.")
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    return ARCHITECTURES[name].build(**options)


def find_last_conv_layer(model) -> str:
    """The name of the last 4-D (convolutional) layer: the Grad-CAM target."""
    for layer in reversed(model.layers):
        if LAST_CONV_NAME == layer.name:
            return layer.name
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is not None and len(shape) == 4 and "conv" in type(layer).__name__.lower():
            return layer.name
    raise ModelError("The model has no convolutional layer, so Grad-CAM cannot explain it.")
