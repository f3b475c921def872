"""Training overlap by content (issue 19, item 3): a patch is 'in the model's training data' when its
pixels are, whatever the path or layout it is read from. Real patches, a real finished run (whose job
writes training_hashes.npy), the bundled baseline's shipped record, and `evaluate --json`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from overlap_helpers import as_pcam_hdf5, run_data, training_ids

from core.data.base import content_hash
from core.data.dataset import open_dataset
from core.data.hashes import (
    TRAINING_HASHES,
    UNREADABLE,
    dataset_hashes,
    hashes_of_ids,
    overlap,
    patch_hashes,
    read_training_hashes,
)
from core.errors import DatasetError
from core.settings import BASELINE_MODEL, SAMPLE_DATASET


def test_a_patch_hashes_the_same_from_tiff_png_and_hdf5_and_a_second_look_is_cached(
    workspace, small_kaggle, class_folder_dir, pcam_h5_dir, small_rows
):
    kaggle = open_dataset(small_kaggle)
    by_id = dict(zip(kaggle.ids, dataset_hashes(kaggle), strict=True))
    folders = open_dataset(class_folder_dir)
    lossless = [i for i, f in zip(folders.ids, folders.files, strict=True) if f.endswith(".png")]
    lossy = [i for i, f in zip(folders.ids, folders.files, strict=True) if f.endswith(".jpg")]
    png_hashes = hashes_of_ids(folders, lossless)
    assert [by_id[i.split("/")[-1]] for i in lossless] == list(png_hashes)  # same pixels, same hash
    assert not set(hashes_of_ids(folders, lossy)) & set(by_id.values())  # JPEG changed the pixels
    pcam = dataset_hashes(open_dataset(pcam_h5_dir))
    assert list(pcam) == [by_id[i] for i, _ in small_rows]  # HDF5 rows in the order they were written
    assert len(set(by_id.values())) == len(kaggle)  # no two different patches collide
    cached = workspace / "cache" / "hashes" / f"{content_hash(kaggle)}-{len(kaggle)}.npy"
    written = cached.stat().st_mtime_ns
    assert np.array_equal(dataset_hashes(open_dataset(small_kaggle)), np.load(cached))  # read, not redone
    assert cached.stat().st_mtime_ns == written


def test_hashing_refuses_what_is_not_a_patch_stack():
    with pytest.raises(DatasetError, match="uint8"):
        patch_hashes(np.zeros((2, 96, 96, 3), dtype=np.float32))
    assert overlap(np.array([UNREADABLE], dtype=np.uint64), np.array([5], dtype=np.uint64)).n == 0


def test_a_run_records_its_training_patches_and_evaluate_counts_them_on_another_layout(
    tiny_run, workspace, tmp_path, run_cli
):
    _, run_dir = tiny_run
    trained = training_ids(run_dir)
    record = read_training_hashes(run_dir / "model.keras")
    assert record is not None and (run_dir / TRAINING_HASHES).is_file()
    assert len(record) == len(trained) and np.all(np.diff(record.astype(np.float64)) > 0)  # sorted, unique

    data = run_data(run_dir)
    same_patches = as_pcam_hdf5(data, tmp_path / "pcam")  # the training data under another path and layout
    code, out, err = run_cli("evaluate", run_dir, same_patches, "--json")
    assert code == 0, err
    n = len(open_dataset(data))
    assert json.loads(out)["training_overlap"] == pytest.approx(len(trained) / n)

    three = tmp_path / "three" / "train"  # a copy of three of its training patches, Kaggle layout
    three.mkdir(parents=True)
    chosen = sorted(trained)[:3]
    for item in chosen:
        shutil.copy(SAMPLE_DATASET / "train" / f"{item}.tif", three)
    labels = dict(zip(open_dataset(data).ids, open_dataset(data).labels, strict=True))
    (three.parent / "train_labels.csv").write_text(
        "id,label\n" + "".join(f"{i},{int(labels[i])}\n" for i in chosen)
    )
    code, out, err = run_cli("evaluate", run_dir, three.parent)
    assert code == 0 and "3 of 3 patches were in this model's training data" in err


def test_the_bundled_baseline_ships_its_record_and_a_model_without_one_reports_null(
    workspace, small_kaggle, page_model, run_cli
):
    record = read_training_hashes(BASELINE_MODEL)
    # every shared PCam JPEG and the 1,329 Kaggle TIFFs of kaggle-train (models/README.md, bench/bundled_split.py)
    assert record is not None and len(record) == 21_745 + 1_329
    assert overlap(dataset_hashes(open_dataset(SAMPLE_DATASET)), record).in_training == 0

    code, out, err = run_cli("evaluate", page_model, small_kaggle, "--json")
    assert code == 0, err
    assert json.loads(out)["training_overlap"] is None
    code, out, err = run_cli("evaluate", page_model, small_kaggle)
    assert "no record of its training patches" in err


def test_training_cache_rows_hash_like_their_source_dense_or_sparse(workspace, small_kaggle, tmp_path):
    from core.data.cache import prepare
    from core.data.hashes import cache_rows_hashes

    cache = prepare(small_kaggle, tmp_path / "cache.h5", workers=1).path
    source = dataset_hashes(open_dataset(small_kaggle))
    for rows in (np.arange(2, 30), np.array([0, 17, 39])):  # one slice; row by row
        assert np.array_equal(cache_rows_hashes([(cache, rows)]), np.unique(source[rows]))


def test_scoring_a_dataset_caches_its_hashes_so_overlap_needs_no_second_read(
    workspace, small_kaggle, page_model
):
    """A prediction job hashes the pixels it scores: afterwards the page finds the dataset's hashes."""
    from core.data.hashes import cached_dataset_hashes
    from core.evaluate.predict import predict_dataset
    from core.model.io import load_model

    dataset = open_dataset(small_kaggle)
    assert cached_dataset_hashes(dataset) is None
    predict_dataset(load_model(page_model), dataset)
    stored = cached_dataset_hashes(dataset)
    assert stored is not None and (stored != UNREADABLE).all()
    for path in (workspace / "cache" / "hashes").glob("*.npy"):
        path.unlink()
    assert np.array_equal(stored, dataset_hashes(dataset))  # the same as hashing the files themselves
