"""Stochastic weight averaging (core.train.averaging) with real Keras models on real bundled patches:
the running mean, the learning rate of the averaged epochs, adopting or refusing the average, and a
training run that delivers it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from page_helpers import copy_kaggle_subset

from core.errors import RunError
from core.settings import SAMPLE_DATASET
from core.train.config import TrainConfig


def small_bn_model():
    """A real CNN small enough for a unit test, with a BatchNormalization layer."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(96, 96, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(4, 3, strides=4)(x)
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy", "auc"]
    )
    return model


@pytest.fixture(scope="module")
def patches_and_labels(small_patches, small_rows):
    return small_patches.astype("float32"), np.array([label for _, label in small_rows], "float32")


def test_the_averager_keeps_the_mean_of_the_weights_at_the_end_of_the_averaged_epochs(patches_and_labels):
    import keras

    from core.train.averaging import weight_averager

    x, y = patches_and_labels
    model, seen = small_bn_model(), []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append([v.numpy().copy() for v in model.trainable_weights])
    )
    averager = weight_averager(3)  # epochs 3, 4 and 5 of 5
    model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[recorder, averager])
    assert averager.epochs == [3, 4, 5]
    for index, mean in enumerate(averager.mean):
        expected = np.mean([weights[index] for weights in seen[2:]], axis=0)
        np.testing.assert_allclose(mean, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(averager.mean[0], seen[-1][0])  # an average, not the last epoch's weights


def test_an_adopted_average_gets_its_own_batch_norm_statistics_and_a_refused_one_says_so(patches_and_labels):
    import keras
    import tensorflow as tf

    from core.train.averaging import adopt_average, weight_averager
    from core.train.batch_norm import batch_norm_layers, recompute_batch_norm

    x, y = patches_and_labels
    data = tf.data.Dataset.from_tensor_slices((x, y.reshape(-1, 1))).batch(8)
    model, averager = small_bn_model(), weight_averager(2)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[averager])

    refused = adopt_average(model, averager, best_auc=2.0, batch_norm_data=data, val_data=data)
    assert refused["adopted"] is False and refused["epochs_averaged"] == 2
    assert (refused["first_epoch"], refused["last_epoch"]) == (2, 3)

    layer = batch_norm_layers(model)[0]
    layer.moving_mean.assign(np.full(layer.moving_mean.shape, 100.0, "float32"))  # stale statistics
    adopted = adopt_average(model, averager, best_auc=-1.0, batch_norm_data=data, val_data=data)
    assert adopted["adopted"] is True
    for variable, mean in zip(model.trainable_weights, averager.mean):
        np.testing.assert_allclose(variable.numpy(), mean, rtol=1e-6)
    statistics = layer.moving_mean.numpy().copy()
    assert np.all(np.abs(statistics) < 100.0)
    recompute_batch_norm(model, data)
    np.testing.assert_allclose(layer.moving_mean.numpy(), statistics, rtol=1e-5)
    scores = model.evaluate(data, verbose=0, return_dict=True)
    assert adopted["val_auc"] == pytest.approx(scores["auc"], abs=1e-6)
    assert adopted["val_loss"] == pytest.approx(scores["loss"], rel=1e-5)
    keras.backend.clear_session()


def test_one_average_needs_two_epochs_and_fewer_than_the_run():
    for epochs, swa_epochs in ((5, 1), (5, 5), (5, 7), (5, -1)):
        with pytest.raises(RunError):
            TrainConfig(data=[str(SAMPLE_DATASET)], epochs=epochs, swa_epochs=swa_epochs).validate()
    with pytest.raises(RunError):
        TrainConfig(data=[str(SAMPLE_DATASET)], epochs=5, swa_epochs=2, swa_lr=0.0).validate()
    assert TrainConfig(data=[str(SAMPLE_DATASET)], epochs=5, swa_epochs=4).validate().swa_epochs == 4


def test_resume_and_the_cli_set_the_averaging(tmp_path):
    from core.cli import build_parser
    from core.cli.train import config_from_args
    from core.model.architectures import build_model
    from core.model.io import save_model
    from core.train.runs import atomic_write_json

    earlier = tmp_path / "earlier"
    save_model(build_model("tiny", seed=0), earlier / "best.keras", {"epoch": 24})
    atomic_write_json(earlier / "config.json", TrainConfig(data=[str(SAMPLE_DATASET)], epochs=36).to_dict())
    parse = build_parser().parse_args
    config = config_from_args(
        parse(["train", "--resume", str(earlier), "--swa-epochs", "12", "--swa-lr", "3e-4"])
    )
    assert (config.epochs, config.swa_epochs, config.swa_lr) == (36, 12, 3e-4)
    config = config_from_args(parse(["train", str(SAMPLE_DATASET), "--epochs", "6", "--swa-epochs", "3"]))
    assert (config.swa_epochs, config.swa_lr) == (3, None)
    assert config_from_args(parse(["train", str(SAMPLE_DATASET)])).swa_epochs == 0


def test_a_run_with_averaging_holds_the_rate_averages_its_last_epochs_and_delivers_by_validation(
    tmp_path, workspace
):
    from core.model.io import load_model, read_model_meta
    from core.train.job import run_training
    from core.train.runs import WEIGHT_AVERAGE, curves_long, read_metrics

    data = copy_kaggle_subset(tmp_path / "data", 24)
    config = TrainConfig(
        data=[str(data)],
        architecture="tiny",
        epochs=4,
        swa_epochs=2,
        batch_size=16,
        learning_rate=1e-2,
        seed=3,
    )
    run_dir = tmp_path / "run"
    status = run_training(config, run_dir, verbose=False)
    assert status["state"] == "finished", status.get("error")
    records = read_metrics(run_dir)
    rates = [r["lr"] for r in records if r["kind"] == "epoch"]
    assert rates[0] > 2e-3 * 1.01  # still decaying after epoch 1 of the 2 cosine epochs
    assert rates[1:] == pytest.approx([2e-3] * 3)  # a fifth of 1e-2 from the end of the decay on
    (swa,) = [r for r in records if r["kind"] == "swa"]
    assert (swa["first_epoch"], swa["last_epoch"], swa["epochs_averaged"]) == (3, 4, 2)
    best = max(r["val_auc"] for r in records if r["kind"] == "epoch")
    assert swa["adopted"] == (swa["val_auc"] >= best)
    assert status["swa"]["adopted"] == swa["adopted"]
    assert json.loads((run_dir / "config.json").read_text())["swa_epochs"] == 2
    curves = curves_long(records)  # the Train page's curves show the average as its own point
    average = curves[curves["split"] == WEIGHT_AVERAGE].set_index("metric")
    assert sorted(average.index) == ["accuracy", "auc", "loss"] and (average["epoch"] == 4).all()
    assert average.loc["auc", "value"] == swa["val_auc"]
    final, checkpoint = load_model(run_dir / "model.keras"), load_model(run_dir / "best.keras")
    conv = [layer.name for layer in final.layers if layer.weights][0]  # calibration leaves it alone
    same = np.allclose(final.get_layer(conv).get_weights()[0], checkpoint.get_layer(conv).get_weights()[0])
    assert same != swa["adopted"]  # the average is delivered exactly when it was adopted
    averaged = load_model(run_dir / "averaged.keras")  # kept either way, with its validation record
    assert read_model_meta(run_dir / "averaged.keras")["swa"] == {k: v for k, v in swa.items() if k != "time"}
    weights = averaged.get_layer(conv).get_weights()[0]
    assert np.allclose(weights, final.get_layer(conv).get_weights()[0]) == swa["adopted"]
