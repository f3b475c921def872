"""prepare writes one uint8 HDF5 cache, atomically, that reads back equal to its source."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from PIL import Image

from core.data import scan
from core.data.cache import cache_path_for, prepare
from core.data.dataset import open_dataset
from core.data.layouts import open_cache
from core.errors import DatasetError
from core.settings import WORKSPACE_ENV


def test_kaggle_cache_reads_back_equal(small_kaggle, small_rows, small_patches, tmp_path):
    calls = []
    summary = prepare(small_kaggle, tmp_path / "c.h5", chunk=16, progress=lambda d, t: calls.append((d, t)))
    assert (summary.n_patches, summary.n_skipped, summary.layout) == (len(small_rows), 0, "kaggle")
    assert summary.patches_per_second > 0 and calls[0] == (0, 40) and calls[-1] == (40, 40)

    cache = open_dataset(tmp_path / "c.h5")
    assert cache.layout == "cache" and cache.ids == [i for i, _ in small_rows]
    assert cache.labels.tolist() == [label for _, label in small_rows]
    np.testing.assert_array_equal(cache.read_batch(range(len(cache))), small_patches)
    with h5py.File(tmp_path / "c.h5") as handle:
        assert handle["x"].dtype == np.uint8 and handle["x"].chunks[1:] == (96, 96, 3)
        assert handle["y"].dtype == np.int8 and handle.attrs["patchlens_cache"] == 1
        assert handle.attrs["layout"] == "kaggle" and handle.attrs["source"] == str(small_kaggle)


def test_unreadable_patches_are_skipped_and_recorded(small_kaggle, small_rows, small_patches, tmp_path):
    broken = small_rows[1][0]
    (small_kaggle / "train" / f"{broken}.tif").write_text("not a tiff")
    summary = prepare(small_kaggle, tmp_path / "c.h5", workers=1)
    assert summary.n_skipped == 1 and summary.problems[0].item == broken
    cache = open_cache(tmp_path / "c.h5")
    assert broken not in cache.ids and len(cache) == len(small_rows) - 1
    np.testing.assert_array_equal(cache.read_patch(1), small_patches[2])
    assert cache.problems[0].item == broken
    with h5py.File(tmp_path / "c.h5") as handle:
        assert json.loads(handle["problems"][()])[0]["item"] == broken


def test_unlabelled_source_stores_minus_one_and_reads_back_unlabelled(unlabelled_folder_dir, tmp_path):
    prepare(unlabelled_folder_dir, tmp_path / "u.h5")
    with h5py.File(tmp_path / "u.h5") as handle:
        assert (handle["y"][...] == -1).all()
    assert open_dataset(tmp_path / "u.h5").labels is None


def test_pcam_slide_groups_survive_the_cache(pcam_h5_dir, tmp_path):
    source = open_dataset(pcam_h5_dir)
    cache = open_dataset(prepare(source, tmp_path / "p.h5").path)
    assert cache.groups == source.groups and cache.ids == source.ids
    np.testing.assert_array_equal(cache.read_batch([0, 39]), source.read_batch([0, 39]))


def test_parallel_prepare_matches_single_process(sample_dir, tmp_path, monkeypatch):
    dataset = open_dataset(sample_dir)
    one = prepare(dataset, tmp_path / "one.h5", workers=1, chunk=128)
    # 1,000 patches is below the size where worker processes pay off: lower the threshold.
    monkeypatch.setattr(scan, "MIN_PARALLEL_PATCHES", 0)
    two = prepare(dataset, tmp_path / "two.h5", workers=2, chunk=128)
    assert one.n_patches == two.n_patches == 1000
    with h5py.File(one.path) as a, h5py.File(two.path) as b:
        np.testing.assert_array_equal(a["x"][...], b["x"][...])
        np.testing.assert_array_equal(a["y"][...], b["y"][...])


def test_failure_leaves_an_existing_cache_intact_and_no_temporary_file(small_kaggle, tmp_path):
    out = tmp_path / "cache.h5"
    prepare(small_kaggle, out)
    before = out.read_bytes()

    def interrupt(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(small_kaggle, out, chunk=8, progress=interrupt)
    for path in (small_kaggle / "train").iterdir():
        path.write_text("garbage")
    with pytest.raises(DatasetError, match="no patch"):
        prepare(small_kaggle, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["cache.h5"]


def test_cache_path_is_stable_and_follows_the_content(small_kaggle, small_patches, tmp_path, monkeypatch):
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "workspace"))
    first = cache_path_for(open_dataset(small_kaggle))
    assert first == cache_path_for(open_dataset(small_kaggle))
    assert first.parent == tmp_path / "workspace" / "cache" and first.suffix == ".h5"
    Image.fromarray(small_patches[0]).save(small_kaggle / "train" / "extra.tif")
    assert cache_path_for(open_dataset(small_kaggle)) != first


def test_open_cache_refuses_an_unmarked_file(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as handle:
        handle.create_dataset("x", data=np.zeros((1, 96, 96, 3), np.uint8))
    with pytest.raises(DatasetError, match="not a PatchLens cache"):
        open_cache(tmp_path / "x.h5")
