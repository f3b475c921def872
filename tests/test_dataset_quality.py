"""core.data.stats.dataset_quality on real patches: labels aligned with dataset positions, the
sampling bound, stratified shares, unreadable patches skipped, bounded batches, and the filter."""

from __future__ import annotations

import numpy as np
import pytest
from quality_folders import CAT, mixed_class_folders

import core.data.stats as stats
from core.data.dataset import open_dataset
from core.data.quality import count_flags, quality_labels
from core.data.stats import (
    ALL,
    QUALITY_BATCH,
    dataset_quality,
    filtered_indices,
    quality_sample,
    with_quality,
)
from core.settings import SAMPLE_DATASET


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Listed, not decoded: the broken file stays in the dataset as a position."""
    return open_dataset(mixed_class_folders(tmp_path_factory.mktemp("mixed") / "classes", broken=True))


def test_labels_are_aligned_with_positions_and_unreadable_patches_are_skipped(mixed):
    quality = dataset_quality(mixed)
    broken = mixed.ids.index("broken")
    assert set(quality.unreadable) == {broken} and broken not in quality.indices
    assert sorted(quality.indices.tolist()) == [i for i in range(len(mixed)) if i != broken]
    assert not quality.sampled
    by_id = {mixed.ids[i]: label for i, label in zip(quality.indices, quality.labels)}
    assert by_id["blue"] == "not_he" and by_id[CAT.stem] == "not_he"
    assert by_id["blank"] == "background" and by_id["blurred"] == "blurred"
    for i, label in zip(quality.indices, quality.labels):  # each label is its own patch's
        assert label == quality_labels(mixed.read_patch(i))[0]
    assert quality.counts == count_flags(quality.labels)


def test_flag_filter_combines_with_the_label_filter(mixed):
    quality = dataset_quality(mixed)
    ids = lambda positions: {mixed.ids[i] for i in positions}  # noqa: E731
    flagged = {mixed.ids[i] for i, label in zip(quality.indices, quality.labels) if "not_he" in label}
    assert ids(with_quality(filtered_indices(mixed), quality, "not_he")) == flagged
    assert {"blue", CAT.stem} <= flagged
    assert (
        ids(with_quality(filtered_indices(mixed, 1), quality, "not_he"))
        == {mixed.ids[i] for i in filtered_indices(mixed, 1)} & flagged
    )
    assert "blue" not in ids(with_quality(filtered_indices(mixed, 1), quality, "not_he"))
    ok = ids(with_quality(filtered_indices(mixed), quality, "ok"))
    assert not ok & {"blue", "blank", "blurred", CAT.stem, "broken"}
    assert len(with_quality(filtered_indices(mixed), quality, ALL)) == len(mixed)


def test_reads_in_bounded_batches(mixed, monkeypatch):
    sizes = []
    read = mixed.read_tolerant

    def recording(indices):
        sizes.append(len(indices))
        return read(indices)

    monkeypatch.setattr(stats, "QUALITY_BATCH", 7)
    monkeypatch.setattr(mixed, "read_tolerant", recording)
    dataset_quality(mixed)
    assert max(sizes) == 7 and sum(sizes) == len(mixed)
    assert QUALITY_BATCH == 256


@pytest.fixture(scope="module")
def sample():
    return open_dataset(SAMPLE_DATASET)  # 1,000 real patches: 440 tumour, 560 normal


def test_every_patch_up_to_the_bound_and_a_stratified_sample_above(sample):
    assert stats.QUALITY_ALL_MAX == 20_000 and stats.QUALITY_SAMPLE < stats.QUALITY_ALL_MAX
    assert len(quality_sample(sample)) == 1000  # 1,000 <= 20,000: everything
    chosen = quality_sample(sample, max_all=999, size=51)
    assert len(chosen) == 51 and len(set(chosen.tolist())) == 51 and np.all(np.diff(chosen) > 0)
    shares = np.bincount(sample.labels[chosen], minlength=2)
    assert shares.tolist() == [29, 22]  # 51 x 560/1000 = 28.56, 51 x 440/1000 = 22.44
    assert np.array_equal(chosen, quality_sample(sample, max_all=999, size=51))  # reproducible


def test_sampled_quality_says_so_and_matches_the_sampled_patches(sample, monkeypatch):
    monkeypatch.setattr(stats, "QUALITY_ALL_MAX", 100)
    monkeypatch.setattr(stats, "QUALITY_SAMPLE", 40)
    quality = dataset_quality(sample)
    assert quality.sampled and len(quality.indices) == 40 and quality.n_patches == 1000
    assert quality.labels == tuple(quality_labels(sample.read_tolerant(quality.indices)[0]))
    assert sum(quality.counts.values()) >= 40


def test_an_unlabelled_folder_is_one_stratum(tmp_path):
    classes = mixed_class_folders(tmp_path / "classes")
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in classes.glob("*/*"):
        image.rename(flat / image.name)
    dataset = open_dataset(flat)
    assert dataset.labels is None
    chosen = quality_sample(dataset, max_all=10, size=6)
    assert len(chosen) == 6 and len(set(chosen.tolist())) == 6
    quality = dataset_quality(dataset)
    assert len(quality.indices) == len(dataset) == 20
    assert {dataset.ids[i] for i in quality.matching("not_he")} >= {"blue", CAT.stem}
