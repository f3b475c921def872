"""AppTest of the Dataset page's input-quality part on a class-folders dataset of real sample patches
plus made-up non-H&E images (tests/quality_folders.py): the Quality tab's counts are core's, the grid's
quality filter shows exactly the flagged patches, and it combines with the label filter."""

from __future__ import annotations

import pytest
from page_helpers import PAGE_SCRIPTS, app_test
from quality_folders import CAT, mixed_class_folders

import core.data.stats as stats
from core.data.dataset import open_dataset
from core.data.stats import dataset_quality
from core.formatting import quality_words, short_name

TAB_KEY = "dataset_tab"  # the Dataset page's st.tabs key
CAPTION_CHARS = 16  # pages/1_dataset.py: the longest id a grid caption shows
FLAG_CARDS = ("ok", "background", "not H&E", "blurred")  # in words (issue 19 item 11)


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    root = tmp_path / "roots"
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(root))
    return mixed_class_folders(root / "classes")


def dataset_page(folder):
    """The Dataset page after opening `folder` by path in the sidebar."""
    at = app_test()
    at.run()
    at.text_input(key="open_path").set_value(str(folder))
    next(b for b in at.button if b.label == "Open").click().run()
    at.switch_page(PAGE_SCRIPTS["dataset"])
    return at.run()


@pytest.fixture()
def page(folder):
    at = dataset_page(folder)
    assert not at.exception, at.exception
    return at


def open_tab(at, tab: str):
    at.session_state[TAB_KEY] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def flag_cards(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric if m.label in FLAG_CARDS}


def grid_ids(at) -> set[str]:
    return {c.split(" · ")[0] for image in at.get("image") for c in image.captions if c}


def radio(at, label: str):
    return next(r for r in at.radio if r.label == label)


def flagged_ids(folder, flag: str, label: int | None = None) -> set[str]:
    dataset = open_dataset(folder)
    quality = dataset_quality(dataset)
    return {
        short_name(dataset.ids[i], CAPTION_CHARS)
        for i, quality_label in zip(quality.indices, quality.labels)
        if flag in quality_label.split(";") and (label is None or dataset.labels[i] == label)
    }


def test_quality_tab_counts_equal_core_counts(page, folder):
    open_tab(page, "Quality")
    expected = dataset_quality(open_dataset(folder)).counts
    assert flag_cards(page) == {quality_words(name): f"{count:,}" for name, count in expected.items()}
    assert expected["not_he"] >= 2 and expected["background"] >= 1 and expected["blurred"] >= 1
    assert any("every readable patch (20)" in c.value for c in page.caption)
    table = page.dataframe[0].value
    assert dict(zip(table["quality"], table["patches"])) == {
        quality_words(name): n for name, n in expected.items()
    }


def test_not_he_filter_shows_exactly_the_not_he_patches_with_their_flag(page, folder):
    open_tab(page, "Patches")
    radio(page, "Quality").set_value("not_he").run()
    assert not page.exception, page.exception
    expected = flagged_ids(folder, "not_he")
    assert {"blue", short_name(CAT.stem, CAPTION_CHARS)} <= expected
    assert grid_ids(page) == expected
    captions = [c for image in page.get("image") for c in image.captions if c]
    assert all("⚠ not H&E" in c for c in captions)
    assert any("**quality** not H&E" in m.value for m in page.markdown)  # the detail of the first one


def test_label_filter_and_quality_filter_combine(page, folder):
    open_tab(page, "Patches")
    radio(page, "Quality").set_value("not_he").run()
    radio(page, "Show").set_value("tumour (1)").run()
    assert grid_ids(page) == flagged_ids(folder, "not_he", label=1)
    assert short_name(CAT.stem, CAPTION_CHARS) in grid_ids(page) and "blue" not in grid_ids(page)
    radio(page, "Show").set_value("normal (0)").run()
    assert grid_ids(page) == flagged_ids(folder, "not_he", label=0) and "blue" in grid_ids(page)
    radio(page, "Quality").set_value("background").run()
    assert grid_ids(page) == flagged_ids(folder, "background", label=0) and "blank" in grid_ids(page)
    radio(page, "Quality").set_value("blurred").run()
    expected = flagged_ids(folder, "blurred", label=0)  # the blurred patch is a tumour one
    assert grid_ids(page) == expected and "blurred" not in expected
    if not expected:
        assert any("No patch matches" in i.value for i in page.info)


def test_a_large_dataset_is_sampled_and_the_page_says_so(folder, monkeypatch):
    monkeypatch.setattr(stats, "QUALITY_ALL_MAX", 10)  # as if the 20 patches were too many
    monkeypatch.setattr(stats, "QUALITY_SAMPLE", 8)
    at = dataset_page(folder)
    open_tab(at, "Quality")
    assert any("stratified random sample of 8 of 20 patches" in c.value for c in at.caption)
    expected = dataset_quality(open_dataset(folder)).counts
    assert flag_cards(at) == {quality_words(name): f"{count:,}" for name, count in expected.items()}
    open_tab(at, "Patches")
    radio(at, "Quality").set_value("ok").run()
    assert any("among the 8 sampled patches" in c.value for c in at.caption)
    assert len(grid_ids(at)) == expected["ok"]
