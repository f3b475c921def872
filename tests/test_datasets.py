"""open_dataset detects every layout, skips bad items with a named problem, and reads lazily."""

from __future__ import annotations

import pickle
import shutil

import h5py
import numpy as np
import pytest
from conftest import write_labels_csv, write_pcam_split
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from core.data.dataset import open_checked, open_dataset
from core.data.images import decode_patch
from core.data.layouts import parse_labels_csv
from core.data.scan import map_chunks
from core.errors import DatasetError, PatchError
from core.formatting import short_name

DESCRIBE_KEYS = {"layout", "n_patches", "n_labelled", "n_positive", "n_negative", "problems"}


def problems_of(dataset) -> dict[str, str]:
    return {p.item: p.problem for p in dataset.problems}


# --- Kaggle ------------------------------------------------------------------------------------


def test_bundled_sample_opens_as_kaggle(sample_dir):
    dataset = open_dataset(sample_dir)
    summary = dataset.describe()
    assert set(summary) == DESCRIBE_KEYS
    assert (dataset.layout, len(dataset), summary["n_positive"], summary["n_negative"]) == (
        "kaggle",
        1000,
        440,
        560,
    )
    assert dataset.labels.dtype == np.int8 and dataset.groups is None and dataset.problems == []


def test_read_patch_and_batch_match_the_files(small_kaggle, small_patches):
    dataset = open_dataset(small_kaggle)
    np.testing.assert_array_equal(dataset.read_patch(3), small_patches[3])
    batch = dataset.read_batch([5, 0, 5])
    assert batch.shape == (3, 96, 96, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch, small_patches[[5, 0, 5]])
    assert dataset.source_of(0).endswith(f"train/{dataset.ids[0]}.tif")
    with pytest.raises(IndexError):
        dataset.read_patch(len(dataset))


def test_images_beside_the_csv_any_csv_name_and_ids_with_extension(tmp_path, small_kaggle, small_rows):
    flat = tmp_path / "flat"
    shutil.copytree(small_kaggle / "train", flat)
    write_labels_csv(flat / "labels.csv", [(f"{i}.tif", label) for i, label in small_rows])
    dataset = open_dataset(flat)
    assert dataset.layout == "kaggle" and dataset.ids == [i for i, _ in small_rows]
    assert dataset.problems == []


def test_bom_header_case_spaces_and_extra_columns_are_tolerated(small_kaggle, small_rows):
    lines = "".join(f"x{k}, {label} ,{i}\n" for k, (i, label) in enumerate(small_rows))
    (small_kaggle / "train_labels.csv").write_text("\ufeffNote, Label ,ID \n" + lines, encoding="utf-8")
    dataset = open_dataset(small_kaggle)
    assert dataset.ids == [i for i, _ in small_rows]
    assert dataset.labels.tolist() == [label for _, label in small_rows]


def test_bad_rows_and_missing_files_become_problems(small_kaggle, small_rows):
    (a, la), (b, lb), (c, _), (d, _), (e, _) = small_rows[:5]
    rows = small_rows[5:] + [(a, la), (a, la), (b, lb), (b, 1 - lb), (c, 2), (d, "x"), ("ghost", 1)]
    write_labels_csv(small_kaggle / "train_labels.csv", rows)
    (small_kaggle / "train" / f"{small_rows[6][0]}.tif").write_bytes(b"")  # empty file
    problems = problems_of(open_dataset(small_kaggle))
    assert "kept the first" in problems[a]
    assert "different label" in problems[b]
    assert "not 0 or 1" in problems[c] and "not 0 or 1" in problems[d]
    assert problems["ghost"] == "id has no image file"
    assert "no label" in problems[e]  # file e has no row any more
    assert "empty file" in problems[small_rows[6][0]]
    dataset = open_dataset(small_kaggle)
    assert b not in dataset.ids and c not in dataset.ids and a in dataset.ids
    assert len(dataset) == len(small_rows) - 5 - 1 + 1  # rows 5.. minus the empty one, plus a
    assert len(dataset.labels) == len(dataset.ids)


@pytest.mark.parametrize(
    "text",
    ["0000d563d5cfafc4e68acb7c9829258a298d9b6a,0\n", "id,target\nabc,1\n", "", "identifier;label\nabc;1\n"],
)
def test_csv_without_id_label_header_is_a_dataset_error(small_kaggle, text):
    (small_kaggle / "train_labels.csv").write_text(text)
    with pytest.raises(DatasetError, match="header"):
        open_dataset(small_kaggle)


def test_opening_does_not_decode_and_scan_removes_broken_files(small_kaggle, small_rows):
    folder = small_kaggle / "train"
    text_id, cut_id, big_id, grey16_id = (i for i, _ in small_rows[:4])
    (folder / f"{text_id}.tif").write_text("not an image")
    data = (folder / f"{cut_id}.tif").read_bytes()
    (folder / f"{cut_id}.tif").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (200, 200)).save(folder / f"{big_id}.tif")
    grey16 = decode_patch(folder / f"{grey16_id}.tif")[:, :, 0].astype(np.uint16) * 257
    Image.fromarray(grey16).save(folder / f"{grey16_id}.tif")

    dataset = open_dataset(small_kaggle)
    assert len(dataset) == len(small_rows) and dataset.problems == []
    with pytest.raises(PatchError, match=text_id):
        dataset.read_batch([0, 1])

    reported = []
    found = dataset.scan(workers=1, progress=lambda done, total: reported.append((done, total)))
    assert {p.item for p in found} == {text_id, cut_id, big_id}
    assert "not a readable image" in problems_of(dataset)[text_id]
    assert "got 200×200" in problems_of(dataset)[big_id]
    assert reported[-1] == (len(small_rows), len(small_rows))
    assert len(dataset) == len(dataset.labels) == len(small_rows) - 3
    assert dataset.ids[0] == grey16_id  # 16-bit greyscale is readable, kept
    assert dataset.labels.tolist() == [label for _, label in small_rows[3:]]
    assert dataset.describe()["n_patches"] == len(small_rows) - 3


def test_small_datasets_are_decoded_at_open_and_problems_never_repeat_the_file_name(small_kaggle, small_rows):
    text_id, cut_id = small_rows[0][0], small_rows[1][0]
    (small_kaggle / "train" / f"{text_id}.tif").write_text("not an image")
    data = (small_kaggle / "train" / f"{cut_id}.tif").read_bytes()
    (small_kaggle / "train" / f"{cut_id}.tif").write_bytes(data[: len(data) // 2])

    listed = open_checked(small_kaggle, max_decode=len(small_rows) - 1)  # one too many: listed only
    assert not listed.scanned and listed.problems == []
    dataset = open_checked(small_kaggle)
    assert dataset.scanned and set(problems_of(dataset)) == {text_id, cut_id}
    assert len(dataset) == len(small_rows) - 2
    assert not any(".tif" in problem or text_id in problem for problem in problems_of(dataset).values())


def test_unreadable_patches_found_by_a_read_are_listed_once(small_kaggle, small_rows):
    text_id = small_rows[2][0]
    (small_kaggle / "train" / f"{text_id}.tif").write_text("not an image")
    dataset = open_dataset(small_kaggle)
    _, kept, bad = dataset.read_tolerant([0, 1, 2, 3])
    assert kept == [0, 1, 3] and list(bad) == [2]
    assert [p.item for p in dataset.record_unreadable(bad)] == [text_id]
    assert dataset.record_unreadable(bad) == []  # the same page drawn again adds nothing
    assert len(dataset) == len(small_rows)  # positions stay until a scan
    assert dataset.scan(workers=1) == []  # found again by the scan: dropped, not listed twice
    assert [p.item for p in dataset.problems] == [text_id] and text_id not in dataset.ids


def test_every_patch_broken_is_refused_at_open(tmp_path):
    (tmp_path / "a.tif").write_text("text")
    (tmp_path / "b.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match="no readable patches"):
        open_checked(tmp_path)


def test_short_names_are_cut_in_the_middle_keeping_the_extension():
    name = "f38a6374c348f90b587e046aac6079959adf3835.tif"
    short = short_name(name, 20)
    assert len(short) == 20 and short.endswith(".tif") and short.startswith("f38a") and "…" in short
    assert short_name("short.tif", 20) == "short.tif"
    assert len(short_name("x" * 40, 14)) == 14


def test_two_thousand_garbage_files_open_instantly_and_fail_only_in_scan(tmp_path):
    folder = tmp_path / "many"
    (folder / "train").mkdir(parents=True)
    rows = [(f"id{k:05d}", k % 2) for k in range(2000)]
    for item, _ in rows:
        (folder / "train" / f"{item}.tif").write_bytes(b"junk")
    write_labels_csv(folder / "train_labels.csv", rows)
    dataset = open_dataset(folder)
    assert len(dataset) == 2000 and dataset.problems == []
    assert len(dataset.scan(workers=1)) == 2000 and len(dataset) == 0


# --- class folders and unlabelled folders -------------------------------------------------------


def test_class_folders_of_png_and_jpeg(class_folder_dir, small_rows, small_patches):
    dataset = open_dataset(class_folder_dir)
    assert dataset.layout == "class-folders" and len(dataset) == len(small_rows)
    labels = dict(small_rows)
    assert [labels[i] for i in dataset.ids] == dataset.labels.tolist()
    k = dataset.ids.index(small_rows[0][0])  # saved as PNG: lossless
    np.testing.assert_array_equal(dataset.read_patch(k), small_patches[0])
    assert dataset.scan(workers=1) == []


def test_same_id_in_both_classes_is_dropped(class_folder_dir, small_rows):
    item, label = small_rows[0]
    shutil.copy(
        class_folder_dir / str(label) / f"{item}.png", class_folder_dir / str(1 - label) / f"{item}.png"
    )
    dataset = open_dataset(class_folder_dir)
    assert item not in dataset.ids and "in both classes" in problems_of(dataset)[item]


def test_class_folders_win_over_an_exported_id_label_csv(class_folder_dir, small_rows):
    write_labels_csv(class_folder_dir / "predictions.csv", small_rows[:3])
    dataset = open_dataset(class_folder_dir)
    assert dataset.layout == "class-folders" and len(dataset) == len(small_rows)


def test_named_class_folders(tmp_path, class_folder_dir):
    named = tmp_path / "named"
    shutil.copytree(class_folder_dir / "0", named / "normal")
    shutil.copytree(class_folder_dir / "1", named / "tumour")
    assert open_dataset(named).layout == "class-folders"


def test_unlabelled_folder(unlabelled_folder_dir, small_rows):
    (unlabelled_folder_dir / "README.txt").write_text("ignored")
    dataset = open_dataset(unlabelled_folder_dir)
    assert dataset.layout == "unlabelled" and dataset.labels is None
    assert sorted(dataset.ids) == sorted(i for i, _ in small_rows)
    assert dataset.describe()["n_labelled"] == 0


# --- PCam HDF5 ---------------------------------------------------------------------------------


def test_pcam_folder_reads_all_splits_lazily_with_slide_groups(pcam_h5_dir, small_rows, small_patches):
    dataset = open_dataset(pcam_h5_dir)
    assert dataset.layout == "pcam-hdf5" and len(dataset) == len(small_rows)
    assert dataset.ids[:2] == ["train-0", "train-1"] and dataset.ids[30] == "valid-0"
    assert dataset.labels.tolist() == [label for _, label in small_rows]
    assert dataset.groups[0] == "patient_000_node_0" and len(dataset.groups) == len(dataset)
    order = [35, 2, 2, 31, 0]
    np.testing.assert_array_equal(dataset.read_batch(order), small_patches[order])
    assert dataset.source_of(31) == "camelyonpatch_level_2_split_valid_x.h5[1]"


def test_pcam_dataset_survives_pickling_after_reading(pcam_h5_dir, small_patches):
    dataset = open_dataset(pcam_h5_dir)
    dataset.read_patch(0)  # opens a handle
    copy = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(copy.read_patch(33), small_patches[33])


@pytest.mark.parametrize("kind", ["x", "y", "meta"])
def test_pcam_path_to_one_file_opens_that_split(pcam_h5_dir, kind):
    suffix = "csv" if kind == "meta" else "h5"
    dataset = open_dataset(pcam_h5_dir / f"camelyonpatch_level_2_split_valid_{kind}.{suffix}")
    assert len(dataset) == 10 and dataset.ids[0] == "valid-0"


def test_pcam_without_y_is_unlabelled_and_partial_y_skips_the_split(pcam_h5_dir):
    (pcam_h5_dir / "camelyonpatch_level_2_split_valid_y.h5").unlink()
    dataset = open_dataset(pcam_h5_dir)
    assert (
        len(dataset) == 30
        and "split 'valid' skipped" in problems_of(dataset)["camelyonpatch_level_2_split_valid_y.h5"]
    )
    (pcam_h5_dir / "camelyonpatch_level_2_split_train_y.h5").unlink()
    dataset = open_dataset(pcam_h5_dir)
    assert len(dataset) == 40 and dataset.labels is None


def test_pcam_labels_other_than_0_1_and_meta_mismatch_are_problems(tmp_path, small_patches):
    labels = np.array([0, 1, 7, 1, 0, 0])
    write_pcam_split(tmp_path, "test", small_patches[:6], labels, ["slide_a"] * 5)
    dataset = open_dataset(tmp_path)
    assert "test-2" not in dataset.ids and "not 0 or 1" in problems_of(dataset)["test-2"]
    assert (
        dataset.groups is None
        and "5 rows for 6 patches" in problems_of(dataset)["camelyonpatch_level_2_split_test_meta.csv"]
    )


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (np.zeros((4, 64, 64, 3), np.uint8), r"\(4, 64, 64, 3\)"),
        (np.zeros((4, 96, 96, 3), np.float32), "float32"),
    ],
)
def test_pcam_wrong_x_shape_or_dtype_names_the_file(tmp_path, data, found):
    with h5py.File(tmp_path / "camelyonpatch_level_2_split_train_x.h5", "w") as handle:
        handle.create_dataset("x", data=data)
    with pytest.raises(DatasetError, match=rf"camelyonpatch_level_2_split_train_x\.h5.*{found}"):
        open_dataset(tmp_path)


def test_pcam_y_of_the_wrong_length_is_a_dataset_error(pcam_h5_dir):
    with h5py.File(pcam_h5_dir / "camelyonpatch_level_2_split_valid_y.h5", "w") as handle:
        handle.create_dataset("y", data=np.zeros((3, 1, 1, 1), np.uint8))
    with pytest.raises(DatasetError, match=r"split_valid_y\.h5.*\(3, 1, 1, 1\)"):
        open_dataset(pcam_h5_dir)


# --- refusals ----------------------------------------------------------------------------------


def test_missing_empty_and_unrecognised_paths_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("hello")
    (tmp_path / "plain.h5").write_bytes(b"")
    for path in (tmp_path / "absent", tmp_path / "empty", tmp_path / "docs", tmp_path / "docs" / "notes.txt"):
        with pytest.raises(DatasetError) as caught:
            open_dataset(path)
        assert "\n" not in str(caught.value)
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle.create_dataset("data", data=[1, 2])
    with pytest.raises(DatasetError, match="not a PatchLens cache"):
        open_dataset(tmp_path / "other.h5")


def test_folder_whose_every_file_is_empty_has_no_patches(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="no readable patches"):
        open_dataset(tmp_path)


# --- parallel reading --------------------------------------------------------------------------


def test_worker_processes_return_chunks_in_order(sample_dir):
    dataset = open_dataset(sample_dir)
    chunks = [list(range(k, k + 100)) for k in range(0, 600, 100)]
    results = list(map_chunks(dataset, _first_pixel_sums, chunks, workers=2, in_flight=2, min_parallel=0))
    assert [indices for indices, _ in results] == chunks
    expected = dataset.read_batch(range(600))[:, 0, 0].sum(axis=1)
    np.testing.assert_array_equal(np.concatenate([sums for _, sums in results]), expected)


def _first_pixel_sums(dataset, indices):
    return indices, dataset.read_batch(indices)[:, 0, 0].sum(axis=1)


# --- the label CSV as a property ----------------------------------------------------------------

ids = st.text(alphabet="abcdef0123456789", min_size=1, max_size=6)
labels = st.sampled_from(["0", "1", "2", "-1", "x", "", " 1", "1.0"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ids, labels), max_size=30), st.booleans())
def test_label_csv_parsing_keeps_exactly_the_unambiguous_rows(rows, bom):
    text = ("\ufeff" if bom else "") + "id,label\n" + "".join(f"{i},{label}\n" for i, label in rows)
    parsed_ids, parsed_labels, problems = parse_labels_csv(text)
    valid: dict[str, set[int]] = {}
    for item, label in rows:
        if label.strip() in ("0", "1", "1.0"):
            valid.setdefault(item, set()).add(int(float(label)))
    expected = [item for item in valid if len(valid[item]) == 1]  # in order of their first valid row
    assert parsed_ids == expected
    assert parsed_labels.dtype == np.int8 and parsed_labels.tolist() == [min(valid[i]) for i in expected]
    assert len(problems) == len(rows) - len(valid)  # one problem per row that is not a first valid row


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_label_csv_parsing_never_fails_unexpectedly(text):
    try:
        parsed_ids, parsed_labels, _ = parse_labels_csv(text)
    except DatasetError:
        return
    assert len(parsed_ids) == len(set(parsed_ids)) == len(parsed_labels)
    assert set(parsed_labels.tolist()) <= {0, 1}
