"""Dataset problem messages (issue 19 item 9, issue 24 item 2): they name the CSV they used, point to the
datasets inside a parent folder, never quote a file's content on a page, and name a broken patch by its
file. The command line (run with the user's own rights) still lists the ids."""

from __future__ import annotations

import json

import pytest
from conftest import write_labels_csv
from page_helpers import PAGE_SCRIPTS, copy_kaggle_subset
from test_pages_home_dataset import TAB_KEY, sidebar_open

from core.data.base import shown_problems
from core.data.dataset import open_dataset
from core.errors import DatasetError

SECRET = "SECRET-TOKEN-abc123"


@pytest.fixture()
def app_of_roots(tmp_path, monkeypatch):
    """make(root): an AppTest of the app, its first run over, with `root` as the only data root."""
    from page_helpers import app_test

    def make(root):
        monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
        monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(root))
        at = app_test()
        at.run()
        return at

    return make


@pytest.fixture()
def parent_of_datasets(tmp_path):
    """A data root's folder holding two Kaggle datasets a/ and b/ and a truth.csv of other ids."""
    parent = tmp_path / "roots" / "parent"
    copy_kaggle_subset(parent / "a", 3)
    copy_kaggle_subset(parent / "b", 3)
    write_labels_csv(parent / "truth.csv", [(SECRET, 1), ("other-id", 0)])
    return parent


def test_a_parent_folder_names_its_csv_and_the_datasets_inside(parent_of_datasets):
    with pytest.raises(DatasetError) as raised:
        open_dataset(parent_of_datasets)
    message = str(raised.value)
    assert "truth.csv" in message and "2 rows: id has no image file" in message
    assert "This folder holds datasets: a/, b/ — open one of them." in message
    assert SECRET not in message


def test_a_parent_folder_without_a_csv_points_to_the_datasets_inside(parent_of_datasets):
    (parent_of_datasets / "truth.csv").unlink()
    with pytest.raises(DatasetError, match="holds datasets: a/, b/ — open one of them"):
        open_dataset(parent_of_datasets)


@pytest.mark.parametrize("first_line", [f"{SECRET},1", f"{SECRET};label"])
def test_a_csv_without_its_header_is_named_not_quoted(tmp_path, first_line):
    folder = copy_kaggle_subset(tmp_path / "kaggle", 2)
    (folder / "train_labels.csv").write_text(first_line + "\n")
    with pytest.raises(DatasetError, match="train_labels.csv has no 'id' and 'label' header") as raised:
        open_dataset(folder)
    assert SECRET not in str(raised.value)


def test_page_rows_count_a_csvs_ids_and_name_patches_by_their_file(tmp_path, run_cli):
    folder = copy_kaggle_subset(tmp_path / "kaggle", 3)
    with open(folder / "train_labels.csv", "a") as handle:
        handle.write(f"{SECRET},1\nghost,0\nbad-label,7\n")
    (folder / "train" / "truncated.tif").write_bytes(b"II*\x00")
    (folder / "train" / "extra.tif").write_bytes(b"")
    dataset = open_dataset(folder)
    rows = {row["item"]: row["problem"] for row in shown_problems(dataset.problems)}
    assert rows["train_labels.csv"] == "2 rows: id has no image file"
    assert SECRET not in json.dumps(rows) and "bad-label" not in json.dumps(rows)
    assert rows["train/truncated.tif"].startswith("file has no label")  # its extension is kept
    dataset.scan(workers=1)
    assert "train/truncated.tif" in {row["item"] for row in shown_problems(dataset.problems)}
    code, out, _ = run_cli("inspect", str(folder), "--json")
    assert code == 0 and SECRET in out  # the CLI lists the ids, in the same words
    assert {p["problem"] for p in json.loads(out)["problems"] if p["item"] == SECRET} == {
        "id has no image file"
    }


def test_the_dataset_page_says_why_and_never_quotes_the_csv(app_of_roots, parent_of_datasets):
    app = app_of_roots(parent_of_datasets.parent)
    sidebar_open(app, parent_of_datasets)
    errors = " ".join(e.value for e in app.error)
    assert "truth.csv" in errors and "a/, b/" in errors and SECRET not in errors

    folder = copy_kaggle_subset(parent_of_datasets.parent / "kaggle", 3)
    with open(folder / "train_labels.csv", "a") as handle:
        handle.write(f"{SECRET},1\n")
    (folder / "train" / "x.tif").write_text("not an image")
    with open(folder / "train_labels.csv", "a") as handle:
        handle.write("x,0\n")
    sidebar_open(app, folder)
    app.switch_page(PAGE_SCRIPTS["dataset"])
    app.session_state[TAB_KEY] = "Problems"
    app.run()
    assert not app.exception
    table = app.dataframe[0].value
    shown = dict(zip(table["item"], table["problem"], strict=True))
    assert shown == {"train_labels.csv": "1 row: id has no image file", "train/x.tif": shown["train/x.tif"]}
    assert SECRET not in app.dataframe[0].value.to_csv()


def test_a_cache_keeps_which_problems_came_from_a_csv(tmp_path):
    from core.data.cache import prepare

    folder = copy_kaggle_subset(tmp_path / "kaggle", 2)
    with open(folder / "train_labels.csv", "a") as handle:
        handle.write(f"{SECRET},1\n")
    prepare(folder, tmp_path / "cache.h5", workers=1)
    rows = shown_problems(open_dataset(tmp_path / "cache.h5").problems)
    assert rows == [{"item": "train_labels.csv", "problem": "1 row: id has no image file"}]
