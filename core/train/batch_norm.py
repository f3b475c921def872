"""Precise BatchNorm: a model's BatchNormalization statistics re-estimated over training batches.

During training a BatchNormalization layer normalises with the statistics of each batch and keeps
a running average (momentum 0.99) for inference. That average weighs the last ~100 steps and
starts from mean 0 / variance 1, so after a short run (a user's first run: 50-110 steps) it still
describes neither the data nor the current weights, and the model scores at chance in inference
mode while it ranks well with batch statistics.

`recompute_batch_norm` replaces every moving mean and variance by the population statistics of the
layer's input over a fixed random sample of `PRECISE_BN_PATCHES` un-augmented training patches,
seen through training-mode forward passes (each earlier layer normalised by its batch statistics,
as in training). Training calls it after every epoch, before validation, so validation metrics,
the best checkpoint and the saved model all use statistics that match the weights. Under a
tf.distribute strategy the per-replica sums are all-reduced, so every replica and worker ends with
the same statistics.
TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import numpy as np

PRECISE_BN_PATCHES = 1024  # training patches whose statistics make the population estimate


def batch_norm_layers(model) -> list:
    """The BatchNormalization layers of `model`, in order (the top-level layers only)."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


class BatchNormEstimator:
    """Re-estimates a model's BatchNormalization statistics; the traced step is kept between calls."""

    def __init__(self, model, *, strategy=None):
        import keras
        import tensorflow as tf

        self.layers = batch_norm_layers(model)
        self.strategy = strategy or tf.distribute.get_strategy()
        self._batch_sums = None
        if self.layers:
            probe = keras.Model(model.inputs, [layer.input for layer in self.layers])
            self._batch_sums = self._trace(probe)

    def _trace(self, probe):
        import tensorflow as tf

        strategy = self.strategy

        def replica_sums(images):
            sums, outputs = [], probe(images, training=True)
            # a model with one BatchNormalization layer gives one tensor, not a list of one
            for features in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
                features = tf.cast(features, tf.float32)
                axes = list(range(len(features.shape) - 1))
                mean, variance = tf.nn.moments(features, axes)
                count = tf.cast(tf.reduce_prod(tf.shape(features)[:-1]), tf.float32)
                sums.append((count * mean, count * (variance + tf.square(mean)), count))
            return sums

        @tf.function(reduce_retracing=True)
        def batch_sums(images):
            per_replica = strategy.run(replica_sums, args=(images,))
            return tf.nest.map_structure(
                lambda value: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None), per_replica
            )

        return batch_sums

    def recompute(self, dataset, *, max_batches: int | None = None) -> int:
        """Set every BatchNormalization layer's moving mean and variance to the exact population mean
        and (biased) variance of its input over the batches of `dataset` (all, or the first
        `max_batches`; batches of (images, labels), labels ignored). `dataset` is a plain
        tf.data.Dataset; under a multi-replica strategy it is distributed here. Returns the number
        of batches used (0 when the model has no BatchNormalization layer: left untouched)."""
        if not self.layers:
            return 0
        batches = dataset if max_batches is None else dataset.take(max_batches)
        if self.strategy.num_replicas_in_sync > 1:
            batches = self.strategy.experimental_distribute_dataset(batches)
        totals, used = None, 0
        for images, _ in batches:
            sums = [tuple(np.asarray(v, np.float64) for v in layer) for layer in self._batch_sums(images)]
            totals = sums if totals is None else [tuple(map(np.add, t, s)) for t, s in zip(totals, sums)]
            used += 1
        for layer, (sum_x, sum_x2, count) in zip(self.layers, totals or []):
            mean = sum_x / count
            variance = np.maximum(sum_x2 / count - np.square(mean), 0.0)
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(variance.astype(np.float32))
        return used


def recompute_batch_norm(model, dataset, *, strategy=None, max_batches: int | None = None) -> int:
    """`BatchNormEstimator(model).recompute(dataset)` once: see there."""
    return BatchNormEstimator(model, strategy=strategy).recompute(dataset, max_batches=max_batches)


def precise_batch_norm_callback(dataset, *, strategy=None):
    """A Keras callback that recomputes the BatchNorm statistics over `dataset` (see
    `BatchNormEstimator.recompute`) when validation begins.

    `model.fit` validates each epoch through `evaluate(callbacks=...)`, whose `on_test_begin` runs
    after the epoch's last training step and before any validation batch; the multi-worker loop
    (core.train.distributed) calls the same hook at the same point. So the epoch's validation metrics,
    the best checkpoint and the final model all see the re-estimated statistics.
    """
    import keras

    class PreciseBatchNorm(keras.callbacks.Callback):
        estimator = None

        def on_test_begin(self, logs=None):
            if self.estimator is None:
                self.estimator = BatchNormEstimator(self.model, strategy=strategy)
            self.estimator.recompute(dataset)

    return PreciseBatchNorm()
