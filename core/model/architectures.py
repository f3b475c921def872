"""The architectures PatchLens builds (Functional API only: tf-keras-vis Grad-CAM fails on Keras 3
`Sequential` models) and how to find a model's Grad-CAM target layer.

Every architecture keeps the model contract of core.model.io: input RGB patches (N, 96, 96, 3) with values
0-255 (scaling happens inside the model), output (N, 1) = P(tumour in the centre 32x32 px).
The Keras Applications backbones (transfer learning) are built inline, their layers being layers of the
PatchLens model (a nested sub-model would hide its conv layers from Grad-CAM), with their ImageNet
preprocessing inside and `weights` = None, "imagenet" (Keras' own download) or a local weights file.
TensorFlow is imported inside the functions, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from core.constants import PATCH_SHAPE
from core.errors import ModelError

DEFAULT_ARCHITECTURE = "patchnet"
LAST_CONV_NAME = "last_conv"  # the contract: the Grad-CAM target and the features' layer...
OUTPUT_LAYER = "tumour_probability"  # ...and a final Dense(1, sigmoid) of this name (temperature scaling)
NO_WEIGHTS, IMAGENET = "none", "imagenet"  # the `weights` choices besides a path to a local file
WEIGHTS_HELP = "none, imagenet (Keras' download) or the path of a local .h5/.weights.h5 file"
IMAGENET_UNREACHABLE = (
    "ImageNet weights could not be downloaded (no internet?); use --weights none or --weights PATH to a "
    "local .h5/.weights.h5 file"
)


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    build: Callable[..., Any]
    pretrainable: bool = False  # a Keras Applications backbone: takes `weights`


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
    outputs = layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=DEFAULT_ARCHITECTURE)


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
    outputs = layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER, dtype="float32")(x)
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
    outputs = layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _backbone_features(application: str, x, weights: str | None, **options):
    """The feature map of keras.applications.<application> built on the tensor `x` (its layers become
    layers of the caller's model), with `weights` None, "imagenet" or a local file loaded into it."""
    import keras

    build = getattr(keras.applications, application)
    if weights != IMAGENET:
        backbone = build(include_top=False, weights=None, input_tensor=x, **options)
        if weights is not None:
            _load_local_weights(backbone, weights)
        return backbone.output
    try:
        return build(include_top=False, weights=IMAGENET, input_tensor=x, **options).output
    except Exception as error:  # Keras raises a bare Exception for a failed download
        raise ModelError(f"{IMAGENET_UNREACHABLE} ({str(error)[:200]}).") from error


def _load_local_weights(backbone, path: str) -> None:
    """Keras' own loader (by topology for a legacy .h5 such as Keras' `*_notop.h5`, by layer path for
    a .weights.h5); strict, so weights of another backbone are refused rather than half-loaded."""
    try:
        backbone.load_weights(str(Path(path).expanduser()))
    except Exception as error:  # h5py and Keras raise many types for a foreign or mismatched file
        reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        raise ModelError(f"{Path(path).name} does not hold weights of {backbone.name}: {reason}") from error


def build_backbone(
    application: str,
    *,
    weights: str | None = None,
    dropout: float = 0.3,
    scale_to_unit_range: bool = False,
    **options,
):
    """A Keras Applications backbone on 0-255 patches, then the PatchLens head: its feature map (named
    `last_conv`, the Grad-CAM target; 3x3 at 96x96), global average pooling, dropout, sigmoid.
    `options` go to the application (e.g. `include_preprocessing`); `scale_to_unit_range` adds the
    x / 127.5 - 1 preprocessing of the families that have none inside."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=PATCH_SHAPE, name="patch")
    x = inputs
    if scale_to_unit_range:
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    features = _backbone_features(application, x, weights, **options)
    x = layers.Activation("linear", name=LAST_CONV_NAME)(features)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=application.lower())


def _backbone(application: str, description: str, **options) -> Architecture:
    return Architecture(
        application.lower(),
        description,
        partial(build_backbone, application, **options),
        pretrainable=True,
    )


BACKBONES = (  # Keras Applications on 96x96 patches; each applies its own ImageNet preprocessing inside
    _backbone("EfficientNetV2B0", "Keras Applications EfficientNetV2-B0 backbone (~5.9 M parameters)."),
    _backbone(
        "ResNet50V2",
        "Keras Applications ResNet50V2 backbone (~23.6 M parameters).",
        scale_to_unit_range=True,
    ),
    _backbone(
        "MobileNetV3Small",
        "Keras Applications MobileNetV3-Small backbone (~0.9 M parameters), the cheapest.",
        include_preprocessing=True,
    ),
)

ARCHITECTURES: dict[str, Architecture] = {}  # name → architecture, in the order offered


def register(*architectures: Architecture) -> None:
    """Add architectures to the registry (a name already taken is refused). What each builds is held
    to the model contract (`check_contract`) whenever `build_model` builds it: checking at import
    would import TensorFlow."""
    for architecture in architectures:
        if architecture.name in ARCHITECTURES:
            raise ModelError(f"An architecture named {architecture.name!r} is already registered.")
        ARCHITECTURES[architecture.name] = architecture


def check_contract(model, name: str):
    """`model` if it keeps the contract every PatchLens architecture keeps (a layer named `last_conv`
    for Grad-CAM and the features, a final Dense(1) named OUTPUT_LAYER); ModelError saying what
    architecture `name` broke otherwise."""
    import keras

    names = {layer.name for layer in model.layers}
    if LAST_CONV_NAME not in names:
        raise ModelError(
            f"Architecture {name!r} has no layer named {LAST_CONV_NAME!r} (the Grad-CAM target)."
        )
    last = model.layers[-1]
    if not (isinstance(last, keras.layers.Dense) and last.units == 1 and last.name == OUTPUT_LAYER):
        raise ModelError(f"Architecture {name!r} does not end in a Dense(1) layer named {OUTPUT_LAYER!r}.")
    return model


register(
    Architecture(
        DEFAULT_ARCHITECTURE,
        "Default. Strided stem + 8 BN conv layers + global average pooling (~1.2 M parameters).",
        build_patchnet,
    ),
    Architecture(
        "seed",
        "The plain CNN of the original write-up (6 convs on the full grid); ~6x slower per patch.",
        build_seed,
    ),
    Architecture("tiny", "Smoke-test CNN (~1.5 k parameters): checks the pipeline in seconds.", build_tiny),
    *BACKBONES,
)


def weights_problem(name: str, weights: str | None) -> str | None:
    """Why `weights` cannot start architecture `name` (None when it can): only the backbones take
    weights other than none, and a path must name a file."""
    if weights in (None, NO_WEIGHTS):
        return None
    if name in ARCHITECTURES and not ARCHITECTURES[name].pretrainable:
        backbones = ", ".join(b.name for b in BACKBONES)
        return (
            f"{name} has no pretrained weights; --weights {weights} applies to the backbones ({backbones})."
        )
    if weights != IMAGENET and not Path(weights).expanduser().is_file():
        return f"No weights file at {weights} (choose {WEIGHTS_HELP})."
    return None


def build_model(
    name: str = DEFAULT_ARCHITECTURE, *, seed: int | None = None, weights: str | None = None, **options
):
    """Build a fresh, uncompiled model of a registered architecture; `weights` (backbones only): None or
    "none", "imagenet", or the path of a local weights file."""
    if name not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise ModelError(f"Unknown architecture {name!r}; choose one of: {known}.")
    problem = weights_problem(name, weights)
    if problem:
        raise ModelError(problem)
    if ARCHITECTURES[name].pretrainable:
        options["weights"] = None if weights == NO_WEIGHTS else weights
    if seed is None:
        return check_contract(ARCHITECTURES[name].build(**options), name)
    from core.model.seeding import seeded

    with seeded(seed):  # no other thread's draws from `random` reach this build's seeds
        return check_contract(ARCHITECTURES[name].build(**options), name)


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
