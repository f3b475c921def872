"""The model contract and safe loading: only PatchLens-shaped Keras models, never code from a file."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ModelError
from core.model.architectures import ARCHITECTURES, build_model, find_last_conv_layer
from core.model.io import load_model, read_model_meta, save_model


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_keeps_the_contract(name):
    model = build_model(name, seed=0)
    assert model.input_shape == (None, 96, 96, 3)
    assert model.output_shape == (None, 1)
    assert find_last_conv_layer(model) == "last_conv"
    probs = np.asarray(model(np.full((2, 96, 96, 3), 200.0, dtype="float32")))
    assert probs.shape == (2, 1) and np.all((probs > 0) & (probs < 1))


def test_patchnet_is_well_under_two_million_parameters_and_cheaper_than_the_seed():
    patchnet, seed = build_model("patchnet"), build_model("seed")
    assert patchnet.count_params() < 2_000_000
    assert seed.count_params() > patchnet.count_params()


def test_saved_model_round_trips_with_its_metadata(tmp_path):
    model = build_model("tiny", seed=1)
    path = save_model(model, tmp_path / "m.keras", {"note": "hello"})
    meta = read_model_meta(path)
    assert meta["last_conv_layer"] == "last_conv" and meta["note"] == "hello"
    loaded = load_model(path)
    x = np.random.default_rng(0).integers(0, 255, (3, 96, 96, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_a_trained_model_is_saved_without_its_optimizer_state(tmp_path):
    """A run's model.keras and best.keras held Adam's two moments per weight: three times the file."""
    import io
    import json
    import zipfile

    import h5py
    import keras

    model = build_model("patchnet", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    x = np.random.default_rng(0).integers(0, 255, (8, 96, 96, 3)).astype("float32")
    model.fit(x, np.ones((8, 1), "float32"), epochs=1, verbose=0)
    path = save_model(model, tmp_path / "trained.keras")
    with zipfile.ZipFile(path) as archive:
        weights = archive.read("model.weights.h5")
        assert not json.loads(archive.read("config.json")).get("compile_config")
    with h5py.File(io.BytesIO(weights), "r") as handle:
        assert "optimizer" not in handle
    assert len(weights) < 1.2 * 4 * model.count_params()  # float32 weights and little else
    np.testing.assert_allclose(np.asarray(load_model(path)(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_a_file_that_is_not_a_keras_model_is_refused(tmp_path):
    fake = tmp_path / "model.keras"
    fake.write_text("definitely not a zip archive")
    with pytest.raises(ModelError, match="not a Keras model"):
        load_model(fake)
    other = tmp_path / "weights.h5"
    other.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(ModelError, match=".keras"):
        load_model(other)
    with pytest.raises(ModelError, match="No model file"):
        load_model(tmp_path / "missing.keras")


def test_a_model_with_another_input_shape_or_output_is_refused(tmp_path):
    import keras

    inputs = keras.Input((64, 64, 3))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "small.keras")
    with pytest.raises(ModelError, match=r"\(None, 96, 96, 3\)"):
        load_model(tmp_path / "small.keras")

    inputs = keras.Input((96, 96, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "two.keras")
    with pytest.raises(ModelError, match=r"\(None, 1\)"):
        load_model(tmp_path / "two.keras")


def test_a_lambda_layer_is_never_executed(tmp_path):
    import keras

    marker = tmp_path / "executed"
    inputs = keras.Input((96, 96, 3))
    x = keras.layers.Lambda(lambda t: t * 1.0)(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(ModelError, match="safely"):
        load_model(tmp_path / "lambda.keras")
    assert not marker.exists()


def test_a_seeded_build_keeps_its_weights_while_another_thread_draws_from_random():
    """On an engine worker Dask's event loop calls random.sample (dask.sizeof) while a job builds its
    model. Keras drew the layers' default seeds from that same global `random`, so a seeded run on a
    warm worker started from other weights than the same run from the CLI (core.model.seeding)."""
    import random
    import threading

    alone = build_model("patchnet", seed=0).get_weights()
    stop, draws = threading.Event(), []

    def draw():
        while not stop.is_set():
            draws.append(random.random())

    thread = threading.Thread(target=draw, daemon=True)
    thread.start()
    try:
        disturbed = build_model("patchnet", seed=0).get_weights()
    finally:
        stop.set()
        thread.join()
    assert draws, "the other thread never drew"
    assert all(np.array_equal(a, b) for a, b in zip(alone, disturbed, strict=True))
    assert build_model("patchnet", seed=1).get_weights()[0].tolist() != alone[0].tolist()
