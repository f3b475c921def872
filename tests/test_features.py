"""Penultimate-layer features (core.diagnose.features), the 2-D projection (core.diagnose.projection)
and the `embed` command, on real patches and a real tiny model, checked against independent
computations (a Keras model cut by hand, scikit-learn's PCA)."""

from __future__ import annotations

import numpy as np
import pytest

from core.cli import main
from core.data.dataset import open_dataset
from core.diagnose.features import (
    cached_features,
    compute_features,
    feature_cache_path,
    patch_features,
)
from core.diagnose.projection import pca_xy, project, stratified_sample
from core.errors import DatasetError, ModelError
from core.model.features import feature_extractor


@pytest.fixture(scope="module")
def tiny(tiny_kaggle_model):
    """(data, model): 16 real patches and the tiny model fitted on them (shared, read-only)."""
    return tiny_kaggle_model(8)


@pytest.fixture(scope="module")
def loaded(tiny):
    from core.model.io import load_model

    return load_model(tiny[1])


def by_hand(model, pixels):
    """The input of the final Dense layer, computed by a Keras model cut at GlobalAveragePooling."""
    import keras

    pooling = next(layer for layer in model.layers if "global_average_pooling" in layer.name)
    return keras.Model(model.input, pooling.output).predict(pixels.astype("float32"), verbose=0)


def test_features_equal_the_penultimate_layer_and_probs_the_model(tiny, loaded):
    dataset = open_dataset(tiny[0])
    pixels = dataset.read_batch(range(5))
    expected = by_hand(loaded, pixels)
    extractor = feature_extractor(loaded)
    assert extractor.output_shape == (None, 16)  # the tiny CNN's last conv has 16 channels
    np.testing.assert_allclose(extractor.predict(pixels.astype("float32"), verbose=0), expected, atol=1e-5)
    features, probs = patch_features(loaded, pixels)
    np.testing.assert_allclose(features, expected, atol=1e-5)
    np.testing.assert_allclose(probs, loaded.predict(pixels.astype("float32"), verbose=0)[:, 0], atol=1e-5)

    found = compute_features(loaded, dataset, batch_size=3)  # several batches, the last one short
    assert found.ids == dataset.ids and found.features.dtype == np.float32
    np.testing.assert_allclose(
        found.features, by_hand(loaded, dataset.read_batch(range(len(dataset)))), atol=1e-5
    )
    np.testing.assert_array_equal(found.labels, dataset.labels)
    assert len(found.quality) == len(dataset)


def test_feature_extractor_refuses_a_model_without_a_final_dense_layer():
    import keras

    inputs = keras.Input((96, 96, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ModelError, match="Dense layer"):
        feature_extractor(model)


def test_an_unreadable_patch_is_left_out_and_listed(tiny, loaded, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny[0], data)
    broken = sorted((data / "train").glob("*.tif"))[2]
    broken.write_bytes(b"not a tiff")
    dataset = open_dataset(data)
    found = compute_features(loaded, dataset, batch_size=4)
    assert broken.stem in found.skipped and broken.stem not in found.ids
    assert len(found) == len(dataset) - 1 == len(found.features) == len(found.probs) == len(found.quality)


def test_cache_is_written_once_and_reused(tiny, loaded, tmp_path):
    data, model_path = tiny
    dataset = open_dataset(data)
    first = cached_features(model_path, dataset, cache_dir=tmp_path, model=loaded)
    path = feature_cache_path(model_path, dataset, tmp_path)
    assert first.cached == str(path) and not first.from_cache
    written = path.stat().st_mtime_ns
    second = cached_features(model_path, dataset, cache_dir=tmp_path)  # no model: it must not be needed
    assert second.from_cache and path.stat().st_mtime_ns == written
    assert second.ids == first.ids
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.probs, first.probs)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.with_suffix(".json").name, path.name]


def test_pca_equals_scikit_learn_and_the_sample_keeps_each_label_share(tiny, loaded):
    from sklearn.decomposition import PCA

    found = compute_features(loaded, open_dataset(tiny[0]))
    np.testing.assert_allclose(
        pca_xy(found.features), PCA(n_components=2).fit_transform(found.features), atol=1e-4
    )
    assert project(found.features, "tsne").shape == (len(found), 2)

    labels = np.array([0.0] * 9000 + [1.0] * 1000)
    rows = stratified_sample(labels, 3000)
    assert len(rows) == 3000 and len(set(rows)) == 3000
    assert (labels[rows] == 1).sum() == 300  # a 10 % class keeps 10 % of the sample
    assert len(stratified_sample(labels[:50], 3000)) == 50  # small: everything


def test_embed_command_writes_ids_features_and_xy(tiny, tmp_path, monkeypatch, capsys):
    data, model_path = tiny
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "home"))
    out = tmp_path / "emb.npz"
    assert main(["embed", str(model_path), str(data), "--out", str(out)]) == 0
    dataset = open_dataset(data)
    with np.load(out, allow_pickle=False) as stored:
        assert sorted(stored.files) == ["features", "ids", "xy"]
        ids, features, xy = stored["ids"], stored["features"], stored["xy"]
    assert ids.tolist() == dataset.ids
    assert features.shape == (len(dataset), 16) and features.dtype == np.float32
    assert xy.shape == (len(dataset), 2)
    np.testing.assert_allclose(xy, pca_xy(features), atol=1e-5)
    assert len(list((tmp_path / "home" / "cache" / "features").glob("*.npz"))) == 1


def test_embed_command_says_why_for_a_bad_model_or_an_unlabelled_dataset(tiny, tmp_path, monkeypatch, capsys):
    data, model_path = tiny
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "home"))
    out = tmp_path / "emb.npz"
    assert main(["embed", str(tmp_path / "missing.keras"), str(data), "--out", str(out)]) == 2
    assert "No model file" in capsys.readouterr().err

    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for tif in sorted((data / "train").glob("*.tif"))[:3]:
        (unlabelled / tif.name).write_bytes(tif.read_bytes())
    assert main(["embed", str(model_path), str(unlabelled), "--out", str(out)]) == 2
    assert "unlabelled" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(DatasetError):
        from core.diagnose.features import require_labels

        require_labels(open_dataset(unlabelled), unlabelled)


@pytest.mark.parametrize("layout", ["pcam_h5_dir", "class_folder_dir", "prepared_cache"])
def test_every_labelled_layout_gives_features_labels_and_slides(layout, request, loaded, tmp_path):
    from core.diagnose.projection import scatter_frame, scatter_points

    if layout == "prepared_cache":
        from core.data.cache import prepare

        path = tmp_path / "cache.h5"
        prepare(request.getfixturevalue("small_kaggle"), path, workers=1)
    else:
        path = request.getfixturevalue(layout)
    dataset = open_dataset(path)
    found = compute_features(loaded, dataset, batch_size=16)
    assert found.ids == dataset.ids and found.features.shape == (len(dataset), 16)
    np.testing.assert_array_equal(found.labels, dataset.labels)
    np.testing.assert_allclose(
        found.features, by_hand(loaded, dataset.read_batch(range(len(dataset)))), atol=1e-5
    )
    rows, xy = scatter_points(found.features, found.labels)
    frame = scatter_frame(found, rows, xy, 0.5)
    assert ("slide" in frame) == (layout == "pcam_h5_dir")  # PCam's _meta.csv names the slides
    if layout == "pcam_h5_dir":
        assert frame["slide"].tolist() == dataset.groups
