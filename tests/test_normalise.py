"""Stain normalisation (core.data.normalise) on real patches of the bundled sample: the reference's
round trip, the JSON round trip, background passing unchanged, torchstain's arithmetic, and a tiny
model trained with `--stain-norm macenko` that carries its normaliser into prediction and Grad-CAM."""

from __future__ import annotations

import json

import numpy as np
import pytest
from torchstain.numpy.normalizers import NumpyMacenkoNormalizer, NumpyReinhardNormalizer

from core.data.normalise import (
    META_KEY,
    MIN_TISSUE_FRACTION,
    REFERENCE_MIN_TISSUE,
    StainNormaliser,
    tissue_fraction,
)
from core.errors import InputError, RunError
from core.train.config import TrainConfig

METHODS = ("macenko", "reinhard")
# Macenko re-mixes two stains, so even the reference itself comes back projected onto its own H&E plane
# (the third optical-density component is dropped): 6.7 levels on average on the sample's reference,
# exactly what torchstain's own fit + normalize give. Reinhard only truncates to uint8: at most 1 level.
ROUND_TRIP_MEAN = {"macenko": 8.0, "reinhard": 0.5}
ROUND_TRIP_MAX = {"macenko": 40, "reinhard": 1}


@pytest.fixture(scope="module")
def fitted(small_patches) -> dict[str, StainNormaliser]:
    return {method: StainNormaliser(method).fit(small_patches) for method in METHODS}


@pytest.mark.parametrize("method", METHODS)
def test_the_reference_normalised_with_its_own_fit_comes_back(fitted, small_patches, method):
    normaliser = fitted[method]
    reference = small_patches[normaliser.reference["index"]]
    assert normaliser.reference["tissue_fraction"] >= REFERENCE_MIN_TISSUE
    difference = np.abs(normaliser.transform(reference).astype(int) - reference)
    assert difference.mean() <= ROUND_TRIP_MEAN[method]
    assert difference.max() <= ROUND_TRIP_MAX[method]
    other = small_patches[(normaliser.reference["index"] + 1) % len(small_patches)]
    assert np.abs(normaliser.transform(other).astype(int) - other).mean() > 0  # it does change others


@pytest.mark.parametrize("method", METHODS)
def test_meta_round_trip_through_json_gives_identical_output(fitted, small_patches, method):
    meta = json.loads(json.dumps(fitted[method].to_meta()))
    assert meta["method"] == method and "torchstain" in meta["library"]
    restored = StainNormaliser.from_meta(meta)
    assert np.array_equal(restored.transform(small_patches), fitted[method].transform(small_patches))


@pytest.mark.parametrize("method", METHODS)
def test_each_patch_is_what_torchstain_gives(fitted, small_patches, method):
    normaliser = fitted[method]
    reference = small_patches[normaliser.reference["index"]]
    if method == "macenko":
        library = NumpyMacenkoNormalizer()
        library.fit(reference, Io=240, alpha=1, beta=0.15)
    else:
        library = NumpyReinhardNormalizer()
        library.fit(reference)
    out = normaliser.transform(small_patches)
    tissue = np.flatnonzero(tissue_fraction(small_patches) >= MIN_TISSUE_FRACTION)
    for i in tissue[:8]:
        expected = library.normalize(small_patches[i], stains=False)[0] if method == "macenko" else None
        expected = library.normalize(small_patches[i]) if expected is None else expected
        assert np.array_equal(out[i], expected)


@pytest.mark.parametrize("method", METHODS)
def test_background_and_flat_patches_pass_unchanged_in_a_batch(fitted, small_patches, sample_dir, method):
    from core.data.images import decode_patch

    glass = decode_patch(sample_dir / "train" / "0a08e17083f91e83c0bbbc64479d263f58d12143.tif")  # real
    assert tissue_fraction(glass[None])[0] < MIN_TISSUE_FRACTION
    made_up = np.zeros((3, 96, 96, 3), np.uint8)
    made_up[0], made_up[1], made_up[2] = 255, 0, (40, 40, 200)  # white, black, one solid blue
    batch = np.concatenate([glass[None], made_up, small_patches[:4]])
    out = fitted[method].transform(batch)
    assert out.dtype == np.uint8 and out.shape == batch.shape
    assert np.array_equal(out[:4], batch[:4])
    assert not np.array_equal(out[4:], batch[4:])


def test_identity_and_errors(small_patches):
    assert StainNormaliser("none").transform(small_patches) is small_patches
    with pytest.raises(InputError):
        StainNormaliser("vahadane")
    with pytest.raises(InputError):
        StainNormaliser("macenko").transform(small_patches)  # not fitted
    with pytest.raises(InputError):
        StainNormaliser("macenko").fit(np.full((4, 96, 96, 3), 250, np.uint8))  # no tissue to pick from
    with pytest.raises(RunError):
        TrainConfig(data=["."], stain_normalisation="vahadane").validate()


def test_a_model_trained_with_macenko_applies_it_wherever_it_scores(
    small_kaggle, small_patches, tmp_path, monkeypatch
):
    from core.cli import main
    from core.data.dataset import open_dataset
    from core.evaluate.explain import Explainer
    from core.evaluate.predict import predict_dataset, predict_patches
    from core.model.io import load_model, read_model_meta

    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    run = tmp_path / "run"
    arguments = [str(small_kaggle), "--arch", "tiny", "--epochs", "1", "--batch-size", "16"]
    assert (
        main(["train", *arguments, "--val-fraction", "0.5", "--stain-norm", "macenko", "--out", str(run)])
        == 0
    )
    for name in ("model.keras", "best.keras"):
        meta = read_model_meta(run / name)[META_KEY]
        assert meta["method"] == "macenko" and np.shape(meta["stain_matrix"]) == (3, 2)
    assert json.loads((run / "config.json").read_text())["stain_normalisation"] == "macenko"

    model = load_model(run)
    raw = load_model(run)
    raw.patchlens_meta = {}  # the same weights, no normaliser
    manual = StainNormaliser.from_meta(model.patchlens_meta[META_KEY]).transform(small_patches)
    expected = predict_patches(raw, manual)
    assert not np.allclose(expected, predict_patches(raw, small_patches), atol=1e-6)  # it matters here
    np.testing.assert_allclose(predict_patches(model, small_patches), expected, atol=1e-6)
    frame = predict_dataset(model, open_dataset(small_kaggle), batch_size=16)
    np.testing.assert_allclose(frame["prob"].to_numpy(), expected, atol=1e-6)  # same order: the CSV's
    np.testing.assert_allclose(Explainer(model).probabilities(small_patches), expected, atol=1e-5)
    from core.diagnose.features import compute_features  # the Feature map and similar patches

    features = compute_features(model, open_dataset(small_kaggle), batch_size=16)
    np.testing.assert_allclose(features.probs, expected, atol=1e-5)


@pytest.mark.parametrize("memory_limit", [None, 0])  # held in memory / streamed from the HDF5 cache
def test_the_training_pipeline_feeds_normalised_patches(fitted, small_kaggle, tmp_path, memory_limit):
    from core.data.cache import prepare
    from core.train.pipeline import Selection, load_pixels, make_dataset, read_cache_index

    cache = tmp_path / "cache.h5"
    prepare(small_kaggle, cache, workers=1)
    ids, labels = read_cache_index(cache)
    selection = Selection(parts=[(cache, np.arange(len(ids)))], labels=labels.astype(np.float32), ids=ids)
    limit = {} if memory_limit is None else {"memory_limit_bytes": memory_limit}
    data = make_dataset(selection, batch_size=16, shuffle=False, normaliser=fitted["macenko"], **limit)
    fed = np.concatenate([x.numpy() for x, _ in data])
    np.testing.assert_array_equal(fed, fitted["macenko"].transform(load_pixels(selection)).astype(np.float32))


def test_a_given_reference_patch_is_used_as_it_is(small_kaggle, small_rows, small_patches, tmp_path):
    from core.train.data import fit_normaliser

    image = small_kaggle / "train" / f"{small_rows[3][0]}.tif"
    config = TrainConfig(data=[str(small_kaggle)], stain_normalisation="reinhard", stain_reference=str(image))
    normaliser = fit_normaliser(config.validate(), train=None)
    assert normaliser.params == StainNormaliser("reinhard").fit(small_patches[3]).params
    assert "index" not in normaliser.reference
    with pytest.raises(RunError):
        TrainConfig(data=[str(small_kaggle)], stain_reference=str(tmp_path / "missing.png")).validate()
