"""A training loop over several machines through tf.distribute.MultiWorkerMirroredStrategy.

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy ("Attempt to convert a value
(PerReplica…)", keras-team/keras#20585, still open for Keras 3.15 / TF 2.21), so the multi-worker
path runs TensorFlow's own distributed loop: `strategy.run` per step, losses scaled by the global
batch, gradients all-reduced by the strategy, predictions gathered from every worker for the
epoch metrics. It drives the same Keras callbacks as `fit`, at the same points (`on_test_begin`
between an epoch's training and its validation, where core.train.batch_norm re-estimates the BatchNorm
statistics), so the run directory looks the same.
"""

from __future__ import annotations

import json
import os

import numpy as np

from core.errors import RunError


def _auc(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else float("nan")


def fit_multiworker(
    model, strategy, train_ds, val_ds, *, epochs: int, global_batch: int, callbacks, initial_epoch: int = 0
) -> None:
    """Train `model` (built and compiled under `strategy.scope()`) for `epochs` passes."""
    train_dist = strategy.experimental_distribute_dataset(train_ds)
    val_dist = strategy.experimental_distribute_dataset(val_ds)
    train_step, eval_step = _distributed_steps(model, strategy, global_batch)
    model.stop_training = False
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)

        def on_batch(index, logs):
            for callback in callbacks:
                callback.on_train_batch_end(index, logs)

        logs = _run_pass(model, train_dist, train_step, on_batch)
        for callback in callbacks:
            callback.on_test_begin()
        val_logs = _run_pass(model, val_dist, eval_step)
        for callback in callbacks:
            callback.on_test_end(val_logs)
        logs.update({f"val_{k}": v for k, v in val_logs.items()})
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for callback in callbacks:
        callback.on_train_end()


def _distributed_steps(model, strategy, global_batch: int):
    """(train_step, eval_step): tf.functions running one global batch on every replica, each returning
    the summed loss and the gathered probabilities and labels."""
    import keras
    import tensorflow as tf

    optimizer = model.optimizer

    def replica_train_step(images, labels):
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            per_example = keras.losses.binary_crossentropy(labels, probs)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return tf.reduce_sum(per_example), probs, labels

    def replica_eval_step(images, labels):
        probs = model(images, training=False)
        return tf.reduce_sum(keras.losses.binary_crossentropy(labels, probs)), probs, labels

    def reduced(outputs):
        loss_sum, probs, labels = outputs
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
            strategy.gather(probs, axis=0),
            strategy.gather(labels, axis=0),
        )

    @tf.function
    def train_step(batch):
        return reduced(strategy.run(replica_train_step, args=batch))

    @tf.function
    def eval_step(batch):
        return reduced(strategy.run(replica_eval_step, args=batch))

    return train_step, eval_step


def _run_pass(model, dataset, step, on_batch=None) -> dict:
    """One pass of `step` over a distributed dataset: its loss, accuracy and AUC. With `on_batch`, the
    running loss and accuracy go to it after each batch, and the pass ends early on model.stop_training."""
    total, all_probs, all_labels = 0.0, [], []
    for index, batch in enumerate(dataset):
        loss_sum, probs, labels = step(batch)
        total += float(loss_sum)
        all_probs.append(probs.numpy().reshape(-1))
        all_labels.append(labels.numpy().reshape(-1))
        if on_batch is not None:
            seen_probs, seen_labels = np.concatenate(all_probs), np.concatenate(all_labels)
            logs = {
                "loss": total / len(seen_labels),
                "accuracy": float(np.mean((seen_probs >= 0.5) == seen_labels)),
            }
            on_batch(index, logs)
            if model.stop_training:
                break
    probs, labels = np.concatenate(all_probs), np.concatenate(all_labels)
    return {
        "loss": total / max(len(labels), 1),
        "accuracy": float(np.mean((probs >= 0.5) == labels)),
        "auc": _auc(labels, probs),
    }


def cluster_role() -> tuple[str, int]:
    """(task type, index) from TF_CONFIG; ("chief", 0) when there is no cluster."""
    spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = spec.get("task") or {}
    return task.get("type", "chief"), int(task.get("index", 0))


def is_chief() -> bool:
    """The chief writes the run directory: task "chief", or worker 0 when the cluster has no chief."""
    spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
    kind, index = cluster_role()
    has_chief = "chief" in (spec.get("cluster") or {})
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


def make_strategy(name: str):
    """TensorFlow's own distribution engine: default, MirroredStrategy or MultiWorkerMirroredStrategy."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise RunError("--strategy multiworker needs TF_CONFIG describing the cluster (see README).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()
