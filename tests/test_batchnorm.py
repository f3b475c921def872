"""Precise BatchNorm (core.train.batch_norm): a short patchnet run scores in inference mode as it does with
batch statistics, and the re-estimated statistics are the exact population statistics."""

from __future__ import annotations

import csv
import json

import numpy as np
from conftest import SHUFFLED_VALIDATION_N, sample_rows
from sklearn.metrics import roc_auc_score

from core.data.images import decode_patch
from core.settings import SAMPLE_DATASET


def val_patches(run_dir):
    """The validation patches of a run (from val_predictions.csv): pixels, the labels the run was given,
    their true labels (the sample's CSV) and the run's inference-mode probabilities."""
    rows = list(csv.DictReader(open(run_dir / "val_predictions.csv")))
    pixels = np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{row['id']}.tif") for row in rows])
    true = dict(sample_rows())
    given = np.array([int(row["label"]) for row in rows])
    labels = np.array([true[row["id"]] for row in rows])
    return pixels.astype("float32"), given, labels, np.array([float(row["prob"]) for row in rows])


def batch_statistics_probs(model, pixels, batch_size=128):
    """Probabilities with every BatchNorm layer normalising by the batch's own statistics
    (training mode) and dropout off: what the model's training batches see."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    parts = [model(pixels[i : i + batch_size], training=True) for i in range(0, len(pixels), batch_size)]
    return np.concatenate([np.asarray(p).reshape(-1) for p in parts])


def test_a_two_epoch_patchnet_run_scores_well_above_chance_in_inference_mode(shuffled_validation_run):
    """conftest's two-epoch patchnet run of the sample (26 steps), shared with test_chance: it was
    validated on 200 patches with shuffled labels, so its scores are judged here against their true
    labels. Without the re-estimate the moving statistics would still be ~77 % their initial values
    (momentum 0.99) and inference-mode AUC near chance."""
    from core.model.io import load_model
    from core.train.chance import auc_at_chance

    run_dir, code, _ = shuffled_validation_run
    status = json.loads((run_dir / "status.json").read_text())
    assert code == 0 and status["state"] == "finished"

    pixels, given, labels, inference_probs = val_patches(run_dir)
    assert len(labels) == SHUFFLED_VALIDATION_N and not np.array_equal(given, labels)
    inference_auc = roc_auc_score(labels, inference_probs)
    batch_stats_auc = roc_auc_score(labels, batch_statistics_probs(load_model(run_dir), pixels))
    assert inference_auc >= 0.75, (inference_auc, batch_stats_auc)
    assert inference_auc >= batch_stats_auc - 0.05, (inference_auc, batch_stats_auc)
    assert status["val_auc"] == roc_auc_score(given, inference_probs)  # the run's own number: inference mode
    assert not auc_at_chance(inference_auc)  # on true labels the chance warning would not fire


def test_recomputed_statistics_are_the_population_statistics_of_each_layer_input(small_patches):
    import keras
    import tensorflow as tf

    from core.train.batch_norm import recompute_batch_norm

    inputs = keras.Input(shape=small_patches.shape[1:])
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.BatchNormalization(name="first")(x)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.BatchNormalization(name="second")(x)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    pixels = small_patches.astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((pixels, np.zeros(len(pixels)))).batch(16)

    used = recompute_batch_norm(model, dataset, max_batches=2)  # the first 32 patches

    assert used == 2
    seen = pixels[:32] / 255.0
    first = model.get_layer("first")  # float32 sums over 147,456 values a batch: ~1e-4 relative error
    exact = seen.astype(np.float64)
    np.testing.assert_allclose(first.moving_mean.numpy(), exact.mean(axis=(0, 1, 2)), rtol=1e-3)
    np.testing.assert_allclose(first.moving_variance.numpy(), exact.var(axis=(0, 1, 2)), rtol=1e-3)
    # the second layer sees the conv of the first layer's output normalised per batch (as in training)
    conv_inputs = np.concatenate(
        [np.asarray(model.get_layer("first")(seen[i : i + 16], training=True)) for i in range(0, 32, 16)]
    )
    conv_outputs = np.asarray(model.get_layer("conv")(conv_inputs), dtype=np.float64)
    second = model.get_layer("second")
    np.testing.assert_allclose(second.moving_mean.numpy(), conv_outputs.mean(axis=(0, 1, 2)), atol=1e-3)
    np.testing.assert_allclose(second.moving_variance.numpy(), conv_outputs.var(axis=(0, 1, 2)), rtol=1e-3)


def test_a_model_without_batch_norm_is_left_untouched(small_patches):
    import tensorflow as tf

    from core.model.architectures import build_model
    from core.train.batch_norm import recompute_batch_norm

    model = build_model("tiny", seed=0)
    before = [w.copy() for w in model.get_weights()]
    dataset = tf.data.Dataset.from_tensor_slices((small_patches.astype("float32"), np.zeros(40))).batch(8)
    assert recompute_batch_norm(model, dataset) == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_model_with_a_single_batch_norm_layer_gets_its_population_statistics(small_patches):
    """Keras gives a one-output probe's output as a tensor, not a list: iterating it inside the traced
    step looped over the batch instead of the layers and raised InaccessibleTensorError."""
    import keras
    import tensorflow as tf

    from core.train.batch_norm import recompute_batch_norm

    inputs = keras.Input(shape=small_patches.shape[1:])
    x = keras.layers.BatchNormalization(name="only")(keras.layers.Rescaling(1.0 / 255.0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x)))
    pixels = small_patches.astype("float32")

    assert (
        recompute_batch_norm(
            model, tf.data.Dataset.from_tensor_slices((pixels, pixels[:, 0, 0, 0])).batch(16)
        )
        == 3
    )
    seen = (pixels / 255.0).astype(np.float64)
    np.testing.assert_allclose(
        model.get_layer("only").moving_mean.numpy(), seen.mean(axis=(0, 1, 2)), rtol=1e-3
    )
