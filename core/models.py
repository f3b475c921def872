"""Architectures (Functional API only) and the contract every PatchLens model keeps.

Contract of a saved model: input RGB patches (N, 96, 96, 3) with values 0-255 (scaling happens
inside the model), output (N, 1) = probability of tumour in the centre 32x32 px. The name of the
last convolutional layer (the Grad-CAM target) is stored inside the .keras file as
`patchlens.json`, with the architecture name and anything else the trainer wants to keep.

Functional models only: tf-keras-vis Grad-CAM fails on Keras 3 `Sequential` models.
TensorFlow is imported inside the functions, never at module import.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.constants import PATCH_SHAPE
from core.errors import ModelError

META_ENTRY = "patchlens.json"
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


def save_model(model, path: str | Path, meta: dict | None = None) -> Path:
    """Save atomically (temp file in the same folder, then rename) with `patchlens.json` inside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"architecture": model.name, "last_conv_layer": find_last_conv_layer(model)}
    info.update(meta or {})
    if getattr(model, "optimizer", None) is not None:
        model = _without_optimizer(model)  # the optimizer state would triple the file
    fd, tmp = tempfile.mkstemp(suffix=".keras", prefix=f".{path.stem}-", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(META_ENTRY, json.dumps(info, indent=2, default=str))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _without_optimizer(model):
    """A copy of the model with the same layers and weights and no optimizer state."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def read_model_meta(path: str | Path) -> dict:
    """The `patchlens.json` stored in a .keras file ({} for a Keras file saved elsewhere)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if META_ENTRY not in archive.namelist():
                return {}
            return json.loads(archive.read(META_ENTRY))
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise ModelError(f"{Path(path).name} is not a Keras model file ({error}).") from error


def resolve_model_path(path: str | Path) -> Path:
    """A .keras file, or a run directory (its final model, else its best checkpoint)."""
    path = Path(path).expanduser()
    if path.is_dir():
        from core.runs import run_model_path

        found = run_model_path(path)
        if found is None:
            raise ModelError(f"{path} holds no model.keras or best.keras yet.")
        return found
    if not path.is_file():
        raise ModelError(f"No model file at {path}.")
    if path.suffix != ".keras":
        raise ModelError(f"{path.name} is not a .keras model file (Keras 3 format expected).")
    return path


def load_model(path: str | Path):
    """Load a model safely (safe_mode=True: a Lambda layer's code is never executed) and check the
    contract: input (None, 96, 96, 3), output (None, 1). Raises ModelError otherwise."""
    path = resolve_model_path(path)
    meta = read_model_meta(path)  # also rejects files that are not zip archives
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for foreign or unsafe files
        reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        raise ModelError(f"{path.name} could not be loaded safely as a Keras model: {reason}") from error
    input_shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if input_shape is None or tuple(input_shape[1:]) != PATCH_SHAPE:
        raise ModelError(
            f"{path.name} expects input {model.input_shape}; PatchLens models take (None, 96, 96, 3)."
        )
    if tuple(model.output_shape[1:]) != (1,):
        raise ModelError(
            f"{path.name} outputs {model.output_shape}; PatchLens models output (None, 1) = P(tumour)."
        )
    model.patchlens_meta = meta
    model.patchlens_path = str(path)
    return model
