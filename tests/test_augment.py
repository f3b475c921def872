"""Augmentation: every dihedral view and only those, reproducible from the seed, values kept in range."""

from __future__ import annotations

import numpy as np
import pytest

from core.model.augment import AugmentConfig, augment_batch

ORIENTATION_ONLY = AugmentConfig(brightness=0, contrast=0, saturation=0, hue=0, hed=0)


def dihedral_views(patch: np.ndarray) -> list[np.ndarray]:
    views = []
    for turns in range(4):
        rotated = np.rot90(patch, turns)
        views += [rotated, rotated[:, ::-1]]
    return views


@pytest.fixture(scope="module")
def batch(small_patches):
    return small_patches[:32].astype(np.float32)


def seed(a: int, b: int):
    import tensorflow as tf

    return tf.constant([a, b], dtype=tf.int64)


def test_orientation_only_gives_each_patch_one_of_its_eight_views(batch):
    out = augment_batch(batch, seed(1, 2), ORIENTATION_ONLY).numpy()
    chosen = []
    for patch, augmented in zip(batch, out, strict=True):
        matches = [k for k, view in enumerate(dihedral_views(patch)) if np.array_equal(view, augmented)]
        assert matches, "the output is not a flip/rotation of its input"
        chosen.append(matches[0])
    assert len(set(chosen)) >= 5  # views vary between patches


def test_all_eight_views_are_drawn_over_many_batches(batch):
    patch = batch[:1]
    seen = set()
    for k in range(40):
        out = augment_batch(patch, seed(7, k), ORIENTATION_ONLY).numpy()[0]
        seen.add(next(i for i, v in enumerate(dihedral_views(patch[0])) if np.array_equal(v, out)))
    assert seen == set(range(8))


def test_same_seed_same_output_and_colour_jitter_stays_in_range(batch):
    config = AugmentConfig(hed=0.05)
    first = augment_batch(batch, seed(3, 4), config).numpy()
    again = augment_batch(batch, seed(3, 4), config).numpy()
    other = augment_batch(batch, seed(3, 5), config).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.min() >= 0.0 and first.max() <= 255.0
    # colour jitter changes colours, not just positions: per-patch channel means move
    assert np.abs(first.mean(axis=(1, 2)) - batch.mean(axis=(1, 2))).max() > 1.0


def test_no_augmentation_config_is_disabled():
    assert not AugmentConfig(dihedral=False, brightness=0, contrast=0, saturation=0, hue=0).enabled
    assert AugmentConfig().enabled


def test_colour_strength_scales_the_default_jitter():
    default = AugmentConfig()
    assert AugmentConfig.with_strength(1.0) == default
    double = AugmentConfig.with_strength(2.0, dihedral=False, hed=0.05)
    assert double.brightness == 2 * default.brightness and double.hue == 2 * default.hue
    assert not double.dihedral and double.hed == 0.05
    assert AugmentConfig.with_strength(-1.0, hed=-1.0) == AugmentConfig(
        brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, hed=0.0
    )
