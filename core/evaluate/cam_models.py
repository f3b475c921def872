"""The Keras models core.evaluate.explain builds from a PatchLens model: the layers after the Grad-CAM
target chained onto a new input, one fused model that returns activations and gradients in a single
pass, and a two-logit head so that "normal" can be explained as well as "tumour". TensorFlow is
imported inside the functions."""

from __future__ import annotations

import numpy as np

from core.constants import PATCH_SHAPE


def chain_after(model, layer_name: str):
    """The layers after `layer_name` if each one feeds only on the previous one, else None."""
    layers = model.layers
    index = [layer.name for layer in layers].index(layer_name)
    head = layers[index + 1 :]
    previous = layers[index]
    for layer in head:
        if len(getattr(layer, "_inbound_nodes", [])) != 1 or layer.input is not previous.output:
            return None
        previous = layer
    return head if head and previous is layers[-1] else None


def build_fused_gradcam(original, layer_name: str):
    import keras
    import tensorflow as tf

    # Work on a copy: a sub-model on the original's layers would add graph nodes that break the
    # tf-keras-vis visualizers built from the same model later.
    model = keras.models.clone_model(original)
    head = chain_after(model, layer_name)
    if head is None:
        return None
    model.set_weights(original.get_weights())
    output = head[-1]
    activation = getattr(getattr(output, "activation", None), "__name__", "")
    if not isinstance(output, keras.layers.Dense) or activation != "sigmoid":
        return None
    conv_model = keras.Model(model.inputs, model.get_layer(layer_name).output)

    @tf.function(input_signature=[tf.TensorSpec((None, *PATCH_SHAPE), tf.float32)])
    def fused(x):
        conv = conv_model(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(conv)
            h = conv
            for layer in head[:-1]:
                h = layer(h, training=False)
            h = tf.cast(h, output.kernel.dtype)
            logit = tf.matmul(h, output.kernel) + output.bias  # the sigmoid layer, made linear
            score = tf.reduce_sum(logit)
        gradients = tape.gradient(score, conv)
        weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
        signed = tf.reduce_sum(tf.cast(weights, conv.dtype) * conv, axis=-1)
        return signed, tf.sigmoid(logit)[:, 0]

    return fused


def without_exp_score(maps: np.ndarray, linear_model, batch: np.ndarray, tumour_wanted) -> np.ndarray:
    """Grad-CAM++ maps divided by exp(score), the factor tf-keras-vis multiplies them by.

    tf-keras-vis scales every gradient by exp(score) (score = the logit for the tumour score, minus
    it for the normal score); the alphas cancel it, so the map is exactly exp(score) times the
    map of the score itself. `linear_model` is the visualizer's copy with a linear output.
    """
    logits = np.asarray(linear_model(batch, training=False), dtype=np.float64).reshape(-1)
    scores = np.where(tumour_wanted, logits, -logits)
    return (maps.astype(np.float64) * np.exp(-scores)[:, None, None]).astype(np.float32)


def two_class_logits(model):
    """The one-logit model z seen as two classes with logits (0, z).

    tf-keras-vis ScoreCAM applies a softmax to the model output before scoring. On a (N, 1)
    output that softmax is always 1, so every activation map would get the same weight whatever
    the patch. Softmax of (0, z) is (1 - sigmoid(z), sigmoid(z)) = (P(normal), P(tumour)): the
    weights become the masked patches' class probabilities, as ScoreCAM intends.
    """
    import keras

    logit = model.outputs[0]
    both = keras.ops.concatenate([keras.ops.zeros_like(logit), logit], axis=-1)
    return keras.Model(model.inputs, both, name=f"{model.name}_two_class")
