"""AppTest of the Home and Dataset pages on the bundled real sample, and TensorFlow stays unloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from page_helpers import PAGE_SCRIPTS, copy_kaggle_subset
from streamlit.testing.v1 import AppTest

import core.data.dataset
from core.settings import BASELINE_INFO, PROJECT_DIR, SAMPLE_DATASET

APP = str(PROJECT_DIR / "streamlit_app.py")
TAB_KEY = "dataset_tab"  # the Dataset page's st.tabs key (a page script cannot be imported)
CAPTION_CHARS = 16  # pages/1_dataset.py: the longest id a grid caption shows


@pytest.fixture()
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    monkeypatch.delenv("PATCHLENS_DATA_ROOTS", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def metric_values(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_home_shows_the_bundled_sample_and_links(app):
    assert not app.exception
    assert metric_values(app)["Active dataset"] == "bundled sample"
    text = " ".join(c.value for c in app.caption)
    assert "1,000 patches" in text and "440 tumour / 560 normal" in text
    # the bundled baseline's figures, as models/baseline.json records them: the sample and unseen slides
    info = json.loads(BASELINE_INFO.read_text())
    proxy = info["unseen_slide_proxy"]
    assert f"AUC {info['metrics']['val_auc']:.3f}" in text
    assert f"AUC {proxy['auc']:.3f}, accuracy {proxy['accuracy']:.3f} on {proxy['n']:,} patches" in text


def test_home_and_dataset_pages_never_import_tensorflow(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        at.switch_page({PAGE_SCRIPTS["dataset"]!r})
        at.run()
        assert not at.exception, at.exception
        print("TF_LOADED" if "tensorflow" in sys.modules or "keras" in sys.modules else "TF_ABSENT")
    """)
    env = {**os.environ, "PATCHLENS_HOME": str(tmp_path / "ws")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "TF_ABSENT" in result.stdout


def open_tab(at, tab: str):
    """Select a tab of the Dataset page (its keyed st.tabs state) and run."""
    at.session_state[TAB_KEY] = tab
    return at.run()


def sidebar_open(at, path) -> None:
    at.text_input(key="open_path").set_value(str(path))
    next(b for b in at.button if b.label == "Open").click().run()
    assert not at.exception, at.exception


def test_dataset_page_cards_grid_colour_and_problems(app):
    app.switch_page(PAGE_SCRIPTS["dataset"])
    app.run()
    assert not app.exception
    cards = metric_values(app)
    assert cards["Layout"] == "kaggle" and cards["Patches"] == "1,000"
    assert cards["Tumour (1)"] == "440" and cards["Normal (0)"] == "560" and cards["Problems"] == "0"

    open_tab(app, "Patches")
    images = app.get("image")
    assert len(images) == 25  # a grid page of 24 and the detail view
    app.radio[0].set_value("tumour (1)").run()
    assert not app.exception
    captions = [c for image in app.get("image") for c in image.captions if c]
    assert len(captions) == 24 and all(c.endswith("tumour") for c in captions)
    assert all("…" in c and len(c.split(" · ")[0]) <= CAPTION_CHARS for c in captions)  # cut mid-id

    open_tab(app, "Colour")
    assert any("tumour" in str(df.value) for df in app.dataframe)  # colour statistics per class


@pytest.fixture()
def broken_folder(tmp_path, monkeypatch):
    """A Kaggle folder of 10 real patches plus three broken files listed in its CSV: a truncated
    TIFF, a text file named .tif and an empty file. Its root is a data root."""
    root = tmp_path / "roots"
    folder = copy_kaggle_subset(root / "broken", 5)
    real = next((folder / "train").iterdir()).read_bytes()
    (folder / "train" / "truncated.tif").write_bytes(real[: len(real) // 3])
    (folder / "train" / "text.tif").write_text("this is not an image")
    (folder / "train" / "empty.tif").write_bytes(b"")
    with open(folder / "train_labels.csv", "a") as handle:
        handle.write("truncated,1\ntext,0\nempty,0\n")
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(root))
    return folder


BROKEN = {
    "train/truncated.tif",
    "train/text.tif",
    "train/empty.tif",
}  # named by their files (issue 19 item 11)


def test_broken_files_of_a_small_folder_are_counted_at_open(app, broken_folder):
    sidebar_open(app, broken_folder)
    app.switch_page(PAGE_SCRIPTS["dataset"])
    app.run()
    cards = metric_values(app)
    assert cards["Patches"] == "10" and cards["Problems"] == "3"  # decoded at open: all three known
    open_tab(app, "Problems")
    table = app.dataframe[0].value
    assert set(table["item"]) == BROKEN
    assert not any(".tif" in problem for problem in table["problem"])  # never repeats the file name
    open_tab(app, "Patches")
    assert metric_values(app)["Problems"] == "3" and not app.warning  # the grid holds no broken patch
    assert len(app.get("image")) == 11


def test_a_large_folder_counts_what_the_grid_found_and_check_keeps_the_tab(app, broken_folder, monkeypatch):
    monkeypatch.setattr(core.data.dataset, "DECODE_AT_OPEN_MAX", 0)  # as if too large to decode at open
    sidebar_open(app, broken_folder)
    app.switch_page(PAGE_SCRIPTS["dataset"])
    app.run()
    cards = metric_values(app)
    assert cards["Patches"] == "12" and cards["Problems"] == "1"  # listed: only the empty file is known
    open_tab(app, "Patches")
    assert len(app.warning) == 2  # the two unreadable files on the grid page…
    assert metric_values(app)["Problems"] == "3"  # …are counted by the header of this same run
    open_tab(app, "Problems")
    assert set(app.dataframe[0].value["item"]) == BROKEN
    next(b for b in app.button if b.label == "Check every file").click().run()
    assert not app.exception
    assert app.session_state[TAB_KEY] == "Problems"  # the user stays on the tab
    assert any("0 more unreadable" in s.value for s in app.success)  # nothing listed twice
    assert metric_values(app)["Patches"] == "10" and metric_values(app)["Problems"] == "3"
    assert sorted(app.dataframe[0].value["item"]) == sorted(BROKEN)


def test_grid_page_and_chosen_patch_do_not_carry_over_to_another_dataset(app, tmp_path, monkeypatch):
    other = copy_kaggle_subset(tmp_path / "roots" / "other", 40)  # 80 patches: 4 pages
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(tmp_path / "roots"))
    app.switch_page(PAGE_SCRIPTS["dataset"])
    app.run()
    open_tab(app, "Patches")
    app.number_input[0].set_value(3).run()
    detail_box(app).set_value(50).run()  # a patch of page 3 of the bundled sample
    sample_id = detail_box(app).format_func(50)
    sidebar_open(app, other)
    assert app.number_input[0].value == 1
    detail = detail_box(app)
    assert detail.value == 0  # the first patch of the new dataset's first page
    shown = " ".join(m.value for m in app.markdown)
    assert f"`{sample_id}`" not in shown and f"**id** `{detail.format_func(0)}`" in shown


def detail_box(at):
    return next(s for s in at.selectbox if s.label == "Patch")


def test_switching_to_another_layout_and_refusing_a_path_outside_the_roots(app, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "roots"
    classes = root / "classes"
    for label in ("0", "1"):
        (classes / label).mkdir(parents=True)
    rows = (SAMPLE_DATASET / "train_labels.csv").read_text().splitlines()[1:13]
    for row in rows:
        patch_id, label = row.split(",")
        shutil.copy(SAMPLE_DATASET / "train" / f"{patch_id}.tif", classes / label / f"{patch_id}.tif")
    (classes / "1" / "broken.tif").write_text("not an image")
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(root))

    sidebar_open(app, tmp_path / "elsewhere")
    assert any("outside the data roots" in e.value for e in app.error)

    sidebar_open(app, classes)
    app.switch_page(PAGE_SCRIPTS["dataset"])
    app.run()
    cards = metric_values(app)
    assert cards["Layout"] == "class-folders"
    assert cards["Patches"] == "12" and cards["Problems"] == "1"  # small: decoded at open
    open_tab(app, "Problems")
    assert any("broken" in str(df.value) for df in app.dataframe)


def grid_state(at) -> tuple:
    """(tab, Show, Page, the grid's captions) of the Dataset page as drawn."""
    show = next(r for r in at.radio if r.label == "Show").value
    page = next(n for n in at.number_input if n.label.startswith("Page")).value
    return (
        at.session_state[TAB_KEY],
        show,
        page,
        [c for image in at.get("image") for c in image.captions if c],
    )


def test_tab_grid_filter_and_page_survive_a_reload_and_stay_with_their_dataset(app, tmp_path, monkeypatch):
    """Issue 19 item 6: the tab, the grid's filter and page live in the URL, so a reload (a new session
    with the same URL) or a copied link shows the same patches; opening another dataset drops them."""
    app.switch_page(PAGE_SCRIPTS["dataset"])
    app.run()
    open_tab(app, "Patches")
    next(r for r in app.radio if r.label == "Show").set_value("tumour (1)").run()
    next(n for n in app.number_input if n.label.startswith("Page")).set_value(3).run()
    assert not app.exception
    link = {key: app.query_params[key] for key in app.query_params}
    assert link == {"tab": "Patches", "grid_show": "tumour (1)", "grid_page": "3"}
    before = grid_state(app)

    reloaded = AppTest.from_file(APP, default_timeout=120)
    reloaded.query_params.update(link)
    reloaded.run()
    reloaded.switch_page(PAGE_SCRIPTS["dataset"]).run()
    assert not reloaded.exception
    assert grid_state(reloaded) == before and before[3]  # the same patches, captioned the same

    other = copy_kaggle_subset(tmp_path / "roots" / "other", 40)
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(tmp_path / "roots"))
    sidebar_open(reloaded, other)
    assert not {"grid_show", "grid_page"} & set(reloaded.query_params)  # they described the sample
    assert grid_state(reloaded)[1:3] == ("all", 1)
