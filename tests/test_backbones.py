"""Keras Applications backbones (issue 11, item 4): built inline with weights none on real 96x96 patches,
the model contract kept (0-255 RGB in, P(tumour) out), safe save/load, Grad-CAM, weights from a local
file, the ImageNet download refused offline with a clear message, and a one-step training run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from page_helpers import PAGE_SCRIPTS, copy_kaggle_subset

from core.errors import ModelError
from core.model.architectures import BACKBONES, IMAGENET_UNREACHABLE, build_model, find_last_conv_layer
from core.model.io import load_model, read_model_meta, save_model

CHEAPEST = "mobilenetv3small"


@pytest.fixture(scope="module")
def patches(small_patches) -> np.ndarray:
    """Two real sample patches (uint8, 0-255)."""
    return small_patches[:2]


@pytest.fixture(scope="module")
def built() -> dict:
    """Backbones built with weights none, once per module (building one costs seconds)."""
    return {}


def _first_conv_input(model, patches):
    """What the backbone's first convolution sees for `patches`: the model's own preprocessing."""
    import keras

    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    return np.asarray(keras.Model(model.inputs, conv.input)(patches.astype("float32")))


@pytest.mark.parametrize("name", [backbone.name for backbone in BACKBONES])
def test_each_backbone_is_built_inline_and_keeps_the_contract(name, patches, built):
    import keras

    model = built[name] = build_model(name, seed=0, weights="none")
    assert model.name == name and model.input_shape == (None, 96, 96, 3) and model.output_shape == (None, 1)
    # Inline: the backbone's convolutions are layers of the PatchLens model, not a nested sub-model.
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) > 10
    assert find_last_conv_layer(model) == "last_conv"
    assert model.get_layer("last_conv").output.shape[1:3] == (3, 3)
    head = model.layers[-3:]
    assert [type(layer).__name__ for layer in head] == ["GlobalAveragePooling2D", "Dropout", "Dense"]
    # 0-255 in: the family's ImageNet preprocessing happens inside the model.
    seen = _first_conv_input(model, patches)
    assert seen.min() >= -3.0 and seen.max() <= 3.0 and seen.max() - seen.min() > 1.0
    probs = np.asarray(model(patches.astype("float32")))
    assert probs.shape == (2, 1) and np.all((probs >= 0) & (probs <= 1))


@pytest.fixture(scope="module")
def saved_cheapest(built, tmp_path_factory):
    """The cheapest backbone saved through core.model.io, and the path."""
    model = built.get(CHEAPEST) or build_model(CHEAPEST, seed=0)
    return model, save_model(model, tmp_path_factory.mktemp("models") / f"{CHEAPEST}.keras")


def test_a_backbone_round_trips_through_safe_loading_with_identical_outputs(saved_cheapest, patches):
    model, path = saved_cheapest
    assert read_model_meta(path)["last_conv_layer"] == "last_conv"
    loaded = load_model(path)  # safe_mode=True
    x = patches.astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory, patches):
    """A standalone Keras MobileNetV3Small (weights none, its own random init), its features of `patches`
    with batch statistics, and its weights saved in the legacy .h5 layout of Keras' own `*_notop.h5`
    downloads and as a Keras 3 .weights.h5."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(1)
    source = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(96, 96, 3), include_preprocessing=True
    )
    # Batch statistics: at random init BatchNorm's moving statistics silence the features. (A training
    # call also updates those statistics, so it comes before the weights are saved.)
    features = np.asarray(source(patches.astype("float32"), training=True))
    assert np.abs(features).max() > 1e-3
    folder = tmp_path_factory.mktemp("weights")
    with h5py.File(folder / "mobilenet.h5", "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, source)
    source.save_weights(folder / "mobilenet.weights.h5")
    return source, features, folder


@pytest.mark.parametrize("name", ["mobilenet.h5", "mobilenet.weights.h5"])
def test_weights_path_loads_a_local_weights_file(name, weights_files, patches):
    import keras

    source, expected, folder = weights_files
    model = build_model(CHEAPEST, seed=2, weights=str(folder / name))  # another seed: other random weights
    loaded = [layer for layer in source.layers if layer.weights]
    assert len(loaded) > 50
    for layer in loaded:
        for saved, got in zip(layer.get_weights(), model.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, saved)
    features = keras.Model(model.inputs, model.get_layer("last_conv").output)
    got = np.asarray(features(patches.astype("float32"), training=True))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_weights_of_another_model_or_a_missing_file_are_refused(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    build_model("tiny").save_weights(path)
    with pytest.raises(ModelError, match="does not hold weights"):
        build_model(CHEAPEST, weights=str(path))
    with pytest.raises(ModelError, match="No weights file"):
        build_model(CHEAPEST, weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ModelError, match="no pretrained weights"):
        build_model("tiny", weights="imagenet")


def _internet_reachable() -> bool:
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=3).close()
    except OSError:
        return False
    return True


def _imagenet_file_cached() -> bool:
    from keras.src.backend import config

    return any((Path(config.keras_home()) / "models").glob("weights_mobilenet_v3_small*"))


def test_imagenet_weights_offline_raise_a_model_error_that_says_so():
    if _internet_reachable() or _imagenet_file_cached():
        pytest.skip("this machine can reach (or has cached) Keras' ImageNet weights")
    with pytest.raises(ModelError) as caught:
        build_model(CHEAPEST, weights="imagenet")
    assert IMAGENET_UNREACHABLE in str(caught.value)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A one-step training run of the cheapest backbone through `python -m core train` (in process)."""
    from core.cli import main

    root = tmp_path_factory.mktemp("training")
    data = copy_kaggle_subset(root / "data", 12)  # 24 real patches: 18 train (one batch), 6 validation
    run_dir = root / "run"
    argv = ["train", str(data), "--out", str(run_dir), "--arch", CHEAPEST, "--weights", "none"]
    argv += ["--epochs", "1", "--batch-size", "32", "--val-fraction", "0.25", "--quiet"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATCHLENS_HOME", str(root / "workspace"))
        assert main(argv) == 0
    return run_dir


def test_one_training_step_of_a_backbone_through_the_cli(trained_run, small_patches):
    from core.cli import build_parser
    from core.train.runs import read_status

    status = read_status(trained_run)
    assert status["state"] == "finished" and status["progress"]["steps"] == 1
    meta = read_model_meta(trained_run / "model.keras")
    assert meta["architecture"] == CHEAPEST and meta["last_conv_layer"] == "last_conv"
    assert meta["config"]["weights"] == "none"
    probs = np.asarray(load_model(trained_run / "model.keras")(small_patches[:2].astype("float32")))
    assert probs.shape == (2, 1) and np.all(np.isfinite(probs))
    with pytest.raises(SystemExit):  # --arch offers the registered architectures only
        build_parser().parse_args(["train", "data", "--arch", "resnet-nope"])


def test_a_training_run_starts_from_the_weights_it_is_given(tmp_path, monkeypatch, capsys):
    """--weights reaches the model the job builds: weights of another model end the run as failed."""
    from core.cli import main

    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    weights = tmp_path / "tiny.weights.h5"
    build_model("tiny").save_weights(weights)
    data = copy_kaggle_subset(tmp_path / "data", 4)
    argv = ["train", str(data), "--out", str(tmp_path / "run"), "--arch", CHEAPEST, "--weights", str(weights)]
    assert main([*argv, "--epochs", "1", "--quiet"]) == 2
    assert "does not hold weights" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["weights"] == str(weights)


def test_gradcam_explains_a_trained_backbone_with_a_96x96_map(trained_run, small_patches):
    from core.evaluate.explain import Explainer

    # Loaded from the run (safe mode), with the BatchNorm statistics training re-estimated on real patches.
    explainer = Explainer(load_model(trained_run / "model.keras"), reference_patches=small_patches[:4])
    assert explainer.layer == "last_conv"
    explanation = explainer.explain(small_patches[0], method="gradcam")
    assert explanation.heatmaps.shape == (96, 96) and explanation.raw.shape == (96, 96)
    assert np.all(np.isfinite(explanation.raw)) and float(explanation.strengths) > 0.0


def test_the_train_page_offers_the_backbones_and_refuses_imagenet_for_a_plain_cnn(tmp_path, monkeypatch):
    from page_helpers import app_test

    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    data = copy_kaggle_subset(tmp_path / "data", 12)
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(data.parent))
    at = app_test()
    at.session_state["dataset_path"] = str(data)
    at.run()
    at.switch_page(PAGE_SCRIPTS["train"])
    at.run()
    assert {b.name for b in BACKBONES} <= set(at.selectbox(key="arch").options)
    at.selectbox(key="arch").set_value("tiny")
    at.text_input(key="train_weights").set_value("imagenet")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    assert any("tiny has no pretrained weights" in e.value for e in at.error)
