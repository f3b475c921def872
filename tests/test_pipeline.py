"""The tf.data pipeline over an HDF5 cache: the in-memory and streaming paths give the same patches."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.cache import prepare
from core.train.pipeline import Selection, make_dataset, read_cache_index


@pytest.fixture()
def selection(small_kaggle, tmp_path):
    cache = tmp_path / "cache.h5"
    prepare(small_kaggle, cache, workers=1)
    ids, labels = read_cache_index(cache)
    rows = np.arange(len(ids))
    return Selection(parts=[(cache, rows)], labels=labels.astype(np.float32), ids=ids)


def batches(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_in_memory_and_streaming_paths_read_the_same_patches_in_order(selection):
    in_memory = batches(make_dataset(selection, batch_size=16, shuffle=False))
    streaming = batches(make_dataset(selection, batch_size=16, shuffle=False, memory_limit_bytes=0))
    np.testing.assert_array_equal(in_memory[0], streaming[0])
    np.testing.assert_array_equal(in_memory[1], streaming[1])
    assert in_memory[0].shape == (len(selection), 96, 96, 3) and in_memory[1].shape == (len(selection), 1)


@pytest.mark.parametrize("limit", [None, 0])
def test_a_shuffled_epoch_holds_every_patch_once(selection, limit):
    kwargs = {} if limit is None else {"memory_limit_bytes": limit}
    ordered = batches(make_dataset(selection, batch_size=16, shuffle=False))[0]
    shuffled = batches(make_dataset(selection, batch_size=16, shuffle=True, seed=3, **kwargs))[0]
    assert not np.array_equal(ordered, shuffled)
    key = lambda a: sorted(p.tobytes() for p in a)  # noqa: E731
    assert key(ordered) == key(shuffled)


def test_a_sample_of_a_selection_reads_the_sampled_rows(selection):
    whole_x, whole_y = batches(make_dataset(selection, batch_size=16, shuffle=False))
    sample = selection.sample(10, seed=1)
    x, y = batches(make_dataset(sample, batch_size=4, shuffle=False))
    rows = [selection.ids.index(i) for i in sample.ids]
    assert len(sample) == 10 and len(set(sample.ids)) == 10 and rows == sorted(rows)
    np.testing.assert_array_equal(x, whole_x[rows])
    np.testing.assert_array_equal(y, whole_y[rows])
    assert selection.sample(len(selection) + 5) is selection
