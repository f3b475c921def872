"""A model's features: what its final Dense layer sees, and one forward pass that returns them with
the probability.

Every PatchLens architecture ends GlobalAveragePooling → Dropout → Dense(1, sigmoid); the input of
that Dense layer (the penultimate features) is the model's own description of a patch. It is what
the out-of-distribution check (core.model.ood) measures and what feature maps and neighbours
(core.diagnose) are drawn from. Any Functional model whose last layer is Dense works.

`compiled_scores` is a traced-once `tf.function` that returns (probabilities, features) from one
forward pass, cached on the model object like core.evaluate.predict.compiled_predict; the
probabilities are the model's own output, so they equal the plain forward pass.
TensorFlow is imported inside the functions, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.constants import PATCH_SHAPE, SCORING_BATCH_SIZE
from core.data.normalise import normaliser_of
from core.errors import InputError, ModelError

DEFAULT_BATCH_SIZE = SCORING_BATCH_SIZE
_SCORING_ATTRIBUTE = "_patchlens_compiled_scores"


def final_dense_layer(model):
    """The model's last layer, which must be a Dense layer of a Functional model (ModelError otherwise)."""
    import keras

    layers = getattr(model, "layers", None)
    if not layers or not isinstance(layers[-1], keras.layers.Dense):
        raise ModelError(
            f"{getattr(model, 'name', 'this model')} does not end in a Dense layer, so it has no "
            "penultimate features (what its final layer sees)."
        )
    try:
        layers[-1].input  # noqa: B018 — a layer that was never called on a symbolic tensor has none
    except (AttributeError, ValueError) as error:
        raise ModelError(f"{model.name} is not a Functional model: its features cannot be read.") from error
    return layers[-1]


def feature_extractor(model):
    """A keras.Model from the model's input to the input of its final Dense layer: (n, d) features."""
    import keras

    return keras.Model(_input(model), final_dense_layer(model).input, name=f"{model.name}_features")


def _input(model):
    """The model's input tensor (the list of them for a model with several), as it is called with."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def feature_size(model) -> int:
    """d, the length of the model's feature vector (0 for a model that does not end in Dense)."""
    try:
        return int(final_dense_layer(model).input.shape[-1])
    except ModelError:
        return 0


def compiled_scores(model, *, tta: bool = False) -> Callable:
    """A traced-once function (n, 96, 96, 3) float32 -> ((n,) probabilities, (n, d) features).

    With `tta` the probability is the mean over the 8 dihedral views (as in
    core.evaluate.predict.compiled_predict) and the features are those of the patch as given, the
    view the statistics of the training data were taken on. A model whose last layer is not Dense
    still gets its probabilities, with features of length 0.
    """
    import keras
    import tensorflow as tf

    functions = getattr(model, _SCORING_ATTRIBUTE, None)
    if functions is None:
        functions = {}
        object.__setattr__(model, _SCORING_ATTRIBUTE, functions)  # bypass Keras tracking
    if tta not in functions:
        try:
            both = keras.Model(_input(model), [model.outputs[0], final_dense_layer(model).input])
        except ModelError:  # a foreign model: its probabilities still, with no features (d = 0)
            plain = keras.Model(_input(model), model.outputs[0])

            def both(x, training=False):
                probs = plain(x, training=training)
                return probs, tf.zeros((tf.shape(x)[0], 0), tf.float32)

        signature = [tf.TensorSpec(shape=(None, *PATCH_SHAPE), dtype=tf.float32)]

        def views(x):
            mirrored = tf.reverse(x, axis=[2])
            return [tf.image.rot90(view, k) for view in (x, mirrored) for k in range(4)]

        if tta:

            @tf.function(input_signature=signature, reduce_retracing=True)
            def forward(x):
                outputs = [both(view, training=False) for view in views(x)]
                probs = tf.add_n([out[0] for out in outputs]) / len(outputs)
                return tf.reshape(probs, [-1]), tf.cast(outputs[0][1], tf.float32)

        else:

            @tf.function(input_signature=signature, reduce_retracing=True)
            def forward(x):
                probs, features = both(x, training=False)
                return tf.reshape(probs, [-1]), tf.cast(features, tf.float32)

        functions[tta] = forward
    return functions[tta]


def as_patch_batch(patches) -> np.ndarray:
    """(n, 96, 96, 3) numbers from one patch or a stack (InputError otherwise)."""
    patches = np.asarray(patches)
    if patches.shape == PATCH_SHAPE:
        patches = patches[None]
    if patches.ndim != 4 or patches.shape[1:] != PATCH_SHAPE:
        raise InputError(f"patches must have shape (96, 96, 3) or (n, 96, 96, 3); got {patches.shape}.")
    if not (np.issubdtype(patches.dtype, np.number) or patches.dtype == bool):
        raise InputError(f"patches must hold numbers 0-255; got dtype {patches.dtype}.")
    return patches


def probabilities_and_features(
    model, patches, *, tta: bool = False, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """((n,) float32 probabilities, (n, d) float32 features) of patches with values 0-255, in
    batches of `batch_size` (only one batch is converted to float at a time)."""
    patches = as_patch_batch(patches)
    patches = normaliser_of(model).transform(patches)  # as the model was trained: its stain normalisation
    forward = compiled_scores(model, tta=tta)
    if len(patches) == 0:
        return np.empty(0, np.float32), np.empty((0, feature_size(model)), np.float32)
    probs, features = [], []
    for start in range(0, len(patches), batch_size):
        p, f = forward(patches[start : start + batch_size].astype(np.float32, copy=False))
        probs.append(p.numpy())
        features.append(f.numpy())
    return np.concatenate(probs), np.concatenate(features)
