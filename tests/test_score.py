"""The one scoring loop (core.evaluate.score) and its three consumers — predict_dataset, compute_features,
the region heatmap's score — checked bit for bit against a plain computation written out here: the same
batches read one patch at a time, the model's stain normaliser, its traced forward pass, the quality
gate and its out-of-distribution statistics, with no thread and no loop of the product's.

The model is the real tiny CNN fitted on real bundled patches, given a real Reinhard normaliser and real
out-of-distribution statistics (calibrated at the median so that about half the patches are flagged).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from region_images import mosaic, write_png

from core.constants import IMAGE_SIZE, PCAM_MPP
from core.data.dataset import open_dataset
from core.data.normalise import META_KEY, StainNormaliser, normaliser_of
from core.data.quality import OUT_OF_DISTRIBUTION, assess, quality_labels, with_flag
from core.data.stream import PREFETCH_BATCHES
from core.diagnose.features import compute_features
from core.errors import PatchError, ScoringStopped
from core.evaluate.predict import compiled_predict, forward_pass, predict_dataset
from core.evaluate.score import Batch, dataset_batches, score_batches
from core.model.features import compiled_scores
from core.model.ood import attach_ood_stats, fit_ood_stats, model_ood_stats
from core.region.heatmap import HeatmapStopped, prepare, score
from core.region.outputs import FLAG_BITS

BATCH = 7  # several batches, the last one short


@pytest.fixture(scope="module")
def model(tiny_kaggle_model):
    """The tiny model, its own copy, with a Reinhard normaliser and OOD statistics flagging ~half."""
    from core.model.io import load_model

    data, path = tiny_kaggle_model(8)
    model = load_model(path)
    patches = open_dataset(data).read_batch(range(16))
    meta = dict(getattr(model, "patchlens_meta", None) or {})
    meta[META_KEY] = StainNormaliser("reinhard").fit(patches).to_meta()
    object.__setattr__(model, "patchlens_meta", meta)
    labels = open_dataset(data).labels
    attach_ood_stats(model, fit_ood_stats(model, patches, labels, patches[::2], percentile=50))
    assert normaliser_of(model).active and model_ood_stats(model) is not None
    return model


@pytest.fixture
def damaged(small_kaggle):
    """40 real patches with the 10th one's file broken."""
    dataset = open_dataset(small_kaggle)
    (small_kaggle / "train" / f"{dataset.ids[9]}.tif").write_bytes(b"not a tiff at all")
    return open_dataset(small_kaggle)


def plain_batches(dataset, batch_size):
    """(indices, pixels) of the readable patches of each run of `batch_size`, read one by one."""
    for start in range(0, len(dataset), batch_size):
        good, pixels = [], []
        for i in range(start, min(start + batch_size, len(dataset))):
            try:
                pixels.append(dataset.read_patch(i))
                good.append(i)
            except PatchError:
                continue
        if good:
            yield np.array(good), np.stack(pixels)


def plain_scores(model, pixels, *, tta=False, ood=True):
    """(probabilities, features, quality labels) of one batch, as the three loops computed them."""
    x = normaliser_of(model).transform(pixels).astype(np.float32)
    if not ood:
        return compiled_predict(model, tta=tta)(x).numpy(), None, quality_labels(pixels)
    probs, features = (out.numpy() for out in compiled_scores(model, tta=tta)(x))
    flagged = model_ood_stats(model).out_of_distribution(features)
    return probs, features, with_flag(quality_labels(pixels), OUT_OF_DISTRIBUTION, flagged)


def test_predict_dataset_is_bit_identical_to_the_plain_computation(model, damaged, workspace):
    frame = predict_dataset(model, damaged, batch_size=BATCH, quality=True)
    indices, probs, labels = [], [], []
    for good, pixels in plain_batches(damaged, BATCH):
        p, _, q = plain_scores(model, pixels)
        indices.extend(good), probs.append(p), labels.extend(q)
    assert frame["id"].tolist() == [damaged.ids[i] for i in indices]
    np.testing.assert_array_equal(frame["prob"].to_numpy(), np.concatenate(probs).astype(np.float64))
    assert frame["quality"].tolist() == labels
    assert 0 < sum(OUT_OF_DISTRIBUTION in label for label in labels) < len(labels)  # the check bites
    assert list(frame.attrs["skipped"]) == [damaged.ids[9]]


def test_predict_dataset_with_tta_and_no_gate_runs_the_plain_forward_pass(model, damaged, workspace):
    frame = predict_dataset(model, damaged, batch_size=BATCH, tta=True)
    expected = [
        plain_scores(model, pixels, tta=True, ood=False)[0] for _, pixels in plain_batches(damaged, BATCH)
    ]
    np.testing.assert_array_equal(frame["prob"].to_numpy(), np.concatenate(expected).astype(np.float64))
    assert "quality" not in frame


def test_compute_features_is_bit_identical_and_keeps_the_image_flags_only(model, damaged):
    found = compute_features(model, damaged, batch_size=BATCH)
    probs, features, labels = [], [], []
    for _, pixels in plain_batches(damaged, BATCH):
        p, f, _ = plain_scores(model, pixels)
        probs.append(p), features.append(f), labels.extend(quality_labels(pixels))
    np.testing.assert_array_equal(found.probs, np.concatenate(probs))
    np.testing.assert_array_equal(found.features, np.concatenate(features))
    assert found.quality == labels  # the feature cache stores the image's flags, not the model's verdict
    assert found.skipped == {damaged.ids[9]: found.skipped[damaged.ids[9]]}


def test_heatmap_score_is_bit_identical_to_scoring_the_tissue_tiles_by_hand(model, tmp_path):
    image = mosaic()
    plan = prepare(write_png(tmp_path / "mosaic.png", image.pixels, mpp=PCAM_MPP))
    with plan.image:
        probabilities, flags = score(model, plan, batch_size=256)  # one batch: all tissue tiles, row by row
    rows, cols = np.nonzero(plan.tissue)
    tiles = np.stack(
        [image.pixels[r * IMAGE_SIZE : (r + 1) * IMAGE_SIZE, c * IMAGE_SIZE : (c + 1) * IMAGE_SIZE] for r, c in
         zip(rows, cols, strict=True)]
    )  # fmt: skip
    probs, features, _ = plain_scores(model, tiles)
    np.testing.assert_array_equal(probabilities[rows, cols], probs)
    masks = {**assess(tiles).masks, OUT_OF_DISTRIBUTION: model_ood_stats(model).out_of_distribution(features)}
    bits = np.zeros(len(tiles), np.uint8)
    for flag, mask in masks.items():
        bits |= np.where(mask, FLAG_BITS[flag], 0).astype(np.uint8)
    np.testing.assert_array_equal(flags[rows, cols], bits)
    assert (bits & FLAG_BITS[OUT_OF_DISTRIBUTION]).any()  # the verdict reaches the grid
    assert np.isnan(probabilities[~plan.tissue]).all() and not flags[~plan.tissue].any()


def test_progress_counts_every_patch_read_or_not_after_each_batch(model, damaged):
    calls, skipped = [], {}
    source = dataset_batches(damaged, 16, skipped=skipped)
    for _ in score_batches(
        model,
        source,
        forward=forward_pass(model),
        total=len(damaged),
        progress=lambda *done: calls.append(done),
    ):
        pass
    assert calls == [(0, 40), (16, 40), (32, 40), (40, 40)]
    assert list(skipped) == [damaged.ids[9]]


def _reader_alive(name: str) -> bool:
    return any(thread.name == name for thread in threading.enumerate())


def test_should_stop_ends_the_run_with_the_one_stop_error_and_the_reader_ends(model, damaged):
    asked = []
    scored = score_batches(
        model, dataset_batches(damaged, 8, skipped={}), forward=forward_pass(model), total=40, should_stop=lambda: len(asked.append(1) or asked) > 2,
        name="stopping-reader",
    )  # fmt: skip
    with pytest.raises(ScoringStopped):
        list(scored)
    assert len(asked) == 3  # before the first batch, then after the first two
    assert HeatmapStopped is ScoringStopped
    deadline = time.monotonic() + 10
    while _reader_alive("stopping-reader") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _reader_alive("stopping-reader")


def test_the_source_is_read_ahead_a_bounded_number_of_batches_and_its_error_is_raised(model, small_patches):
    produced = []

    def source():
        for k in range(20):
            produced.append(k)
            if k == 6:
                raise PatchError("tile 6 cannot be read")
            yield Batch(k, small_patches[:4])

    scored = score_batches(model, source(), forward=forward_pass(model), total=80, name="bounded-reader")
    first = next(scored)
    time.sleep(1.0)  # let the reader run as far ahead as it may
    assert first.where == 0 and len(produced) <= PREFETCH_BATCHES + 2
    with pytest.raises(PatchError, match="tile 6"):
        list(scored)


def test_the_consumer_gets_the_raw_pixels_as_read_not_the_normalised_ones(model, small_kaggle):
    """Prediction hashes the pixels it scores (the training-overlap count): the raw ones."""
    dataset = open_dataset(small_kaggle)
    batch = next(
        score_batches(model, dataset_batches(dataset, 40, skipped={}), forward=forward_pass(model), total=40)
    )
    np.testing.assert_array_equal(batch.pixels, dataset.read_batch(range(40)))
