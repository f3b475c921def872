"""ui.cache, the one cache of the pages: one key (path, mtime_ns, size) for what is read from a file,
one key (path, length, fingerprint) for what is derived from an open dataset. Real tiny Keras models,
real bundled patches, the real st.cache_resource (it runs outside a script, as the warm-up does)."""

from __future__ import annotations

import os
import shutil

from ui import cache


def test_the_key_of_a_file_follows_its_content(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"12345")
    first = cache.file_key(path)
    assert first == (str(path), os.stat(path).st_mtime_ns, 5)
    os.utime(path, ns=(first.mtime_ns, first.mtime_ns))
    path.write_bytes(b"123456")  # rewritten in place
    os.utime(path, ns=(first.mtime_ns, first.mtime_ns))  # ... and its old mtime put back
    assert cache.file_key(path) != first  # the size still tells the versions apart
    assert cache.file_key(tmp_path / "missing") == (str(tmp_path / "missing"), 0, -1)


def test_a_model_is_loaded_once_per_file_version_and_shared_by_its_explainer(tmp_path, page_model):
    path = shutil.copy(page_model, tmp_path / "model.keras")
    model = cache.model_at(path)
    assert cache.model_at(path) is model
    assert cache.explainer_at(path).model is model  # one model in memory, not one per cache
    assert cache.model_at(tmp_path) is model  # a run folder names its model.keras: the same entry

    os.utime(path, ns=(os.stat(path).st_mtime_ns + 10**9,) * 2)  # the file changed (e.g. retrained)
    reloaded = cache.model_at(path)
    assert reloaded is not model
    assert cache.explainer_at(path).model is reloaded


def test_a_dataset_and_its_lookup_are_built_once_per_content(small_kaggle):
    dataset = cache.dataset_at(small_kaggle)
    assert cache.dataset_at(small_kaggle) is dataset
    lookup = cache.lookup_of(dataset)
    assert cache.lookup_of(dataset) is lookup
    assert cache.dataset_key(dataset) == (str(dataset.path), len(dataset), repr(dataset.fingerprint))

    labels = small_kaggle / "train_labels.csv"
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")  # one patch fewer
    os.utime(small_kaggle, ns=(os.stat(small_kaggle).st_mtime_ns + 10**9,) * 2)
    smaller = cache.dataset_at(small_kaggle)
    assert smaller is not dataset and len(smaller) == len(dataset) - 1
    assert cache.lookup_of(smaller) is not lookup
