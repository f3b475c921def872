"""core.evaluate.predict on a real tiny CNN trained for seconds on real patches of the bundled sample.

Every dataset layout is built in a temporary folder from the real Kaggle TIFFs of data/sample:
Kaggle (TIFFs + CSV), an unlabelled folder, class folders 0/ and 1/, and PCam HDF5 files.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.data.dataset import open_dataset

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_DIR / "data" / "sample"
PER_CLASS = 20


@pytest.fixture(scope="module")
def sample_rows() -> list[tuple[str, int]]:
    """40 real patch ids: 20 tumour then 20 normal."""
    with open(SAMPLE / "train_labels.csv", newline="") as handle:
        rows = [(row["id"], int(row["label"])) for row in csv.DictReader(handle)]
    tumour = [row for row in rows if row[1] == 1][:PER_CLASS]
    normal = [row for row in rows if row[1] == 0][:PER_CLASS]
    return tumour + normal


def _tif(patch_id: str) -> Path:
    return SAMPLE / "train" / f"{patch_id}.tif"


@pytest.fixture(scope="module")
def kaggle_dir(sample_rows, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kaggle")
    (folder / "train").mkdir()
    with open(folder / "train_labels.csv", "w", newline="") as handle:
        handle.write("id,label\n")
        for patch_id, label in sample_rows:
            shutil.copy(_tif(patch_id), folder / "train")
            handle.write(f"{patch_id},{label}\n")
    return folder


@pytest.fixture(scope="module")
def unlabelled_dir(sample_rows, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unlabelled")
    for patch_id, _ in sample_rows[::4]:
        shutil.copy(_tif(patch_id), folder)
    return folder


@pytest.fixture(scope="module")
def class_dir(sample_rows, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("classes")
    for patch_id, label in sample_rows[::3]:
        (folder / str(label)).mkdir(exist_ok=True)
        shutil.copy(_tif(patch_id), folder / str(label))
    return folder


@pytest.fixture(scope="module")
def pcam_dir(sample_rows, tmp_path_factory) -> Path:
    import h5py

    folder = tmp_path_factory.mktemp("pcam")
    rows = sample_rows[::2]
    kaggle = open_dataset(SAMPLE)
    where = {patch_id: i for i, patch_id in enumerate(kaggle.ids)}
    x = kaggle.read_batch([where[patch_id] for patch_id, _ in rows])
    y = np.array([label for _, label in rows], dtype=np.uint8).reshape(-1, 1, 1, 1)
    with h5py.File(folder / "camelyonpatch_level_2_split_valid_x.h5", "w") as handle:
        handle.create_dataset("x", data=x)
    with h5py.File(folder / "camelyonpatch_level_2_split_valid_y.h5", "w") as handle:
        handle.create_dataset("y", data=y)
    return folder


def copy_with_a_broken_patch(
    kaggle_dir: Path, folder: Path, index: int, content=b"not a tiff at all"
) -> Path:
    """A copy of `kaggle_dir` at `folder` whose `index`-th TIFF (by name) holds `content`: that file."""
    shutil.copytree(kaggle_dir, folder)
    victim = sorted((folder / "train").iterdir())[index]
    victim.write_bytes(content)
    return victim


@pytest.fixture(scope="module")
def model_path(kaggle_dir, tmp_path_factory, fit_tiny_model) -> Path:
    """The tiny CNN, fitted for a few steps on the 40 patches and saved as a .keras file."""
    return fit_tiny_model(kaggle_dir, tmp_path_factory.mktemp("model") / "model.keras")


@pytest.fixture(scope="module")
def model(model_path):
    from core.model.io import load_model

    return load_model(model_path)


# --------------------------------------------------------------------------- predict_dataset


@pytest.mark.parametrize(
    ("layout_fixture", "layout"),
    [
        ("kaggle_dir", "kaggle"),
        ("unlabelled_dir", "unlabelled"),
        ("class_dir", "class-folders"),
        ("pcam_dir", "pcam-hdf5"),
    ],
)
def test_one_row_per_patch_in_every_layout(request, model, layout_fixture, layout):
    from core.evaluate.predict import predict_dataset

    dataset = open_dataset(request.getfixturevalue(layout_fixture))
    assert dataset.layout == layout
    frame = predict_dataset(model, dataset, batch_size=8)

    assert list(frame.columns) == ["id", "label", "prob"]
    assert frame["id"].tolist() == dataset.ids
    assert frame["prob"].between(0, 1).all()
    if dataset.labels is None:
        assert frame["label"].isna().all()
    else:
        assert frame["label"].tolist() == dataset.labels.astype(float).tolist()
    assert frame.attrs["skipped"] == {}


def test_streamed_predictions_equal_the_model_on_the_whole_batch(model, kaggle_dir):
    from core.evaluate.predict import predict_dataset

    dataset = open_dataset(kaggle_dir)
    expected = model(dataset.read_batch(range(len(dataset))).astype("float32"), training=False)
    expected = np.asarray(expected).reshape(-1)
    for batch_size in (7, 256):  # ragged last batch, and one batch for everything
        frame = predict_dataset(model, dataset, batch_size=batch_size)
        np.testing.assert_allclose(frame["prob"], expected, rtol=1e-5, atol=1e-6)


def test_the_model_has_learned_something(model, kaggle_dir):
    """Guards the fixture: constant predictions would make the TTA tests vacuous."""
    from core.evaluate.predict import predict_dataset

    frame = predict_dataset(model, open_dataset(kaggle_dir))
    assert frame["prob"].std() > 1e-3


def test_progress_reports_every_batch_up_to_the_total(model, kaggle_dir):
    from core.evaluate.predict import predict_dataset

    calls: list[tuple[int, int]] = []
    predict_dataset(
        model,
        open_dataset(kaggle_dir),
        batch_size=16,
        progress=lambda *a: calls.append(a),
    )
    assert calls == [(0, 40), (16, 40), (32, 40), (40, 40)]


def test_a_short_first_batch_reports_progress_sooner_with_the_same_predictions(model, kaggle_dir):
    """A page's prediction job scores a short first batch (core.evaluate.jobs.FIRST_PROGRESS_BATCH) so its
    first progress comes after those patches, not a whole batch; every prediction stays the same."""
    from core.evaluate.predict import predict_dataset

    dataset = open_dataset(kaggle_dir)
    calls: list[tuple[int, int]] = []
    short = predict_dataset(model, dataset, batch_size=16, first_batch=5, progress=lambda *a: calls.append(a))
    assert calls == [(0, 40), (5, 40), (21, 40), (37, 40), (40, 40)]
    whole = predict_dataset(model, dataset, batch_size=16)
    assert short["id"].tolist() == whole["id"].tolist()
    np.testing.assert_allclose(short["prob"], whole["prob"], rtol=1e-5, atol=1e-6)


def test_a_broken_patch_is_skipped_and_named(model, kaggle_dir, tmp_path):
    from core.evaluate.predict import predict_dataset

    folder = tmp_path / "broken"
    victim = copy_with_a_broken_patch(kaggle_dir, folder, 5)
    dataset = open_dataset(folder)
    frame = predict_dataset(model, dataset, batch_size=8)
    assert len(frame) == len(dataset) - 1
    assert list(frame.attrs["skipped"]) == [victim.stem]
    assert victim.stem not in set(frame["id"])


def test_bad_batch_size_is_refused(model, kaggle_dir):
    from core.evaluate.predict import predict_dataset

    with pytest.raises(ValueError, match="batch_size"):
        predict_dataset(model, open_dataset(kaggle_dir), batch_size=0)


# --------------------------------------------------------------------------- patches and TTA


def test_predict_patches_one_or_many(model, kaggle_dir):
    from core.evaluate.predict import predict_dataset, predict_patches

    dataset = open_dataset(kaggle_dir)
    patches = dataset.read_batch(range(5))
    one = predict_patches(model, patches[0])
    many = predict_patches(model, patches)
    assert one.shape == (1,) and many.shape == (5,)
    assert one[0] == pytest.approx(many[0], abs=1e-6)
    frame = predict_dataset(model, dataset)
    np.testing.assert_allclose(many, frame["prob"][:5], atol=1e-6)
    assert predict_patches(model, np.empty((0, 96, 96, 3), np.uint8)).shape == (0,)


def test_predict_patches_refuses_a_wrong_shape(model):
    from core.evaluate.predict import predict_patches

    with pytest.raises(ValueError, match=r"\(96, 96, 3\)"):
        predict_patches(model, np.zeros((64, 64, 3), np.uint8))


def test_tta_differs_but_keeps_the_shape(model, kaggle_dir):
    from core.evaluate.predict import predict_dataset

    dataset = open_dataset(kaggle_dir)
    plain = predict_dataset(model, dataset, batch_size=16)
    tta = predict_dataset(model, dataset, batch_size=16, tta=True)
    assert len(tta) == len(plain)
    assert list(tta.columns) == [*plain.columns, "tta_spread"]  # TTA also keeps the 8 views' spread
    assert tta["id"].tolist() == plain["id"].tolist()
    assert tta["prob"].between(0, 1).all()
    assert np.abs(tta["prob"] - plain["prob"]).max() > 1e-4


def test_tta_is_invariant_to_flips_and_rotations(model, kaggle_dir):
    from core.evaluate.predict import predict_patches

    patches = open_dataset(kaggle_dir).read_batch(range(6))
    reference = predict_patches(model, patches, tta=True)
    for view in (
        patches[:, :, ::-1],  # left-right mirror
        patches[:, ::-1],  # up-down mirror
        np.rot90(patches, 1, axes=(1, 2)),
        np.rot90(patches, 3, axes=(1, 2)).transpose(0, 2, 1, 3),  # transpose = diagonal flip
    ):
        np.testing.assert_allclose(predict_patches(model, view, tta=True), reference, atol=1e-5)
    plain_flipped = predict_patches(model, patches[:, :, ::-1])
    assert np.abs(plain_flipped - predict_patches(model, patches)).max() > 1e-5  # not trivially


# --------------------------------------------------------------------------- the disk cache


def test_cached_predictions_run_the_model_once(model, model_path, kaggle_dir, tmp_path):
    from core.evaluate.predict import predict_dataset
    from core.evaluate.predictions import cached_predictions

    dataset = open_dataset(kaggle_dir)
    cache = tmp_path / "predictions"
    first = cached_predictions(model_path, dataset, cache_dir=cache, model=model)
    assert len(list(cache.glob("*.csv"))) == 1
    np.testing.assert_allclose(first["prob"], predict_dataset(model, dataset)["prob"])

    # A hit never touches the model: an object that cannot predict proves it.
    second = cached_predictions(model_path, open_dataset(kaggle_dir), cache_dir=cache, model=object())
    assert second["id"].tolist() == first["id"].tolist()
    np.testing.assert_array_equal(second["prob"], first["prob"])
    np.testing.assert_array_equal(second["label"], first["label"])

    # TTA, and a changed model file, are different predictions.
    cached_predictions(model_path, dataset, cache_dir=cache, model=model, tta=True)
    assert len(list(cache.glob("*.csv"))) == 2
    stat = model_path.stat()
    os.utime(model_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    cached_predictions(model_path, dataset, cache_dir=cache)  # loads the model itself
    assert len(list(cache.glob("*.csv"))) == 3


def test_cache_key_depends_on_the_dataset(model_path, kaggle_dir, unlabelled_dir):
    from core.evaluate.predictions import prediction_cache_key

    kaggle = open_dataset(kaggle_dir)
    keys = {
        prediction_cache_key(model_path, kaggle),
        prediction_cache_key(model_path, kaggle, tta=True),
        prediction_cache_key(model_path, open_dataset(unlabelled_dir)),
    }
    assert len(keys) == 3
    assert prediction_cache_key(model_path, open_dataset(kaggle_dir)) in keys


def test_cache_remembers_skipped_patches(model, model_path, kaggle_dir, tmp_path):
    from core.evaluate.predictions import cached_predictions, clear_prediction_cache

    folder = tmp_path / "broken"
    victim = copy_with_a_broken_patch(kaggle_dir, folder, 0, b"\x00" * 100)
    cache = tmp_path / "predictions"
    first = cached_predictions(model_path, open_dataset(folder), cache_dir=cache, model=model)
    second = cached_predictions(model_path, open_dataset(folder), cache_dir=cache, model=object())
    assert list(first.attrs["skipped"]) == list(second.attrs["skipped"]) == [victim.stem]
    assert len(second) == len(first) == 2 * PER_CLASS - 1
    assert clear_prediction_cache(cache) == 1
    assert list(cache.iterdir()) == []


# --------------------------------------------------------------------------- the quality gate


def test_quality_column_is_the_gate_on_the_same_pixels(model, kaggle_dir, tmp_path):
    from core.data.quality import quality_labels
    from core.evaluate.predict import predict_dataset

    folder = tmp_path / "with_a_broken_one"
    victim = copy_with_a_broken_patch(kaggle_dir, folder, 3)
    dataset = open_dataset(folder)
    plain = predict_dataset(model, dataset, batch_size=8)
    frame = predict_dataset(model, dataset, batch_size=8, quality=True)

    assert "quality" not in plain.columns
    assert list(frame.columns) == ["id", "label", "prob", "quality"]
    assert frame[["id", "prob"]].equals(plain[["id", "prob"]])
    kept = [dataset.ids.index(i) for i in frame["id"]]
    assert frame["quality"].tolist() == quality_labels(dataset.read_batch(kept))
    assert victim.stem not in set(frame["id"]) and list(frame.attrs["skipped"]) == [victim.stem]


def test_cached_predictions_carry_quality_and_an_old_entry_without_it_is_recomputed(
    model, model_path, kaggle_dir, tmp_path
):
    from core.evaluate.predict import predict_dataset
    from core.evaluate.predictions import cached_predictions, read_predictions, write_predictions

    dataset = open_dataset(kaggle_dir)
    cache = tmp_path / "predictions"
    first = cached_predictions(model_path, dataset, cache_dir=cache, model=model)
    (stored,) = cache.glob("*.csv")
    expected = predict_dataset(model, dataset, quality=True)["quality"].tolist()
    assert first["quality"].tolist() == expected
    assert read_predictions(stored)["quality"].tolist() == expected

    write_predictions(first.drop(columns="quality"), stored)  # an entry written before the column
    assert "quality" not in read_predictions(stored).columns
    again = cached_predictions(model_path, open_dataset(kaggle_dir), cache_dir=cache, model=model)
    assert again["quality"].tolist() == expected
    assert read_predictions(stored)["quality"].tolist() == expected  # rewritten with the column
