"""Real-browser tests of what AppTest cannot see: the URL across reloads, page switches and a second
browser, and the Dataset page's tab after "Check every file".

One `streamlit run` server for the module (temporary PATCHLENS_HOME holding one run whose model is a
copy of the bundled baseline, so no training is needed; PATCHLENS_DATA_ROOTS pointing at a tiny
Kaggle copy and at a 2,100-patch folder too large to be decoded at open). Screenshots go to
test-artifacts/browser/session-*.png.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from browser_helpers import (
    ARTIFACTS,
    SIDEBAR,
    assert_no_exception,
    choose,
    contexts,
    go_nav,
    require_browser,
    selectbox,
    serve_app,
    settle,
    shoot,
    wait_title,
)

require_browser()

from page_helpers import baseline_run, copy_kaggle_subset  # noqa: E402

from core.data.dataset import DECODE_AT_OPEN_MAX  # noqa: E402
from core.settings import SAMPLE_DATASET  # noqa: E402

RUN_NAME = "url-run"


def large_folder(target: Path, n: int) -> Path:
    """A Kaggle folder of `n` real patches (the sample's TIFFs hard-linked under new ids)."""
    with open(SAMPLE_DATASET / "train_labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    (target / "train").mkdir(parents=True)
    with open(target / "train_labels.csv", "w") as labels:
        labels.write("id,label\n")
        for k in range(n):
            row = rows[k % len(rows)]
            source = SAMPLE_DATASET / "train" / f"{row['id']}.tif"
            os.link(source, target / "train" / f"p{k:05d}.tif")
            labels.write(f"p{k:05d},{row['label']}\n")
    (target / "train" / "broken.tif").write_text("not an image")
    with open(target / "train_labels.csv", "a") as labels:
        labels.write("broken,0\n")
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("session")
    data = copy_kaggle_subset(root / "data" / "small", 5)
    large = large_folder(root / "data" / "large", DECODE_AT_OPEN_MAX + 100)
    model = baseline_run(root / "home", RUN_NAME)
    extra = {"PATCHLENS_WARMUP": "0"}  # these tests never predict: keep TensorFlow out of the server
    with serve_app(root, extra, data=data) as served:
        yield {"url": served.url, "data": data, "large": large, "model": str(model)}


@pytest.fixture()
def new_page(browser):
    with contexts(browser, height=1200) as make:
        yield make


def sidebar_open(page, path: Path) -> None:
    box = page.get_by_role("textbox", name="Open a dataset by path")
    box.fill(str(path))
    box.press("Enter")
    settle(page)
    page.locator(".st-key-open_dataset button").click()
    page.locator(SIDEBAR).get_by_text(f"Opened {path}").wait_for()
    settle(page)


def shown_dataset(page) -> str:
    """The name under "Active dataset" in the sidebar."""
    return page.locator(f'{SIDEBAR} [data-testid="stCaptionContainer"]').first.inner_text().strip()


def shown_model(page) -> str:
    return selectbox(page, "", SIDEBAR).locator('input[role="combobox"]').input_value()


def url_names(page, server) -> bool:
    return str(server["data"]) in _unquoted(page.url) and server["model"] in _unquoted(page.url)


def _unquoted(url: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(url)


def test_reload_page_switches_and_a_second_browser_keep_the_dataset_and_model(server, new_page):
    page = new_page()
    page.goto(server["url"])
    wait_title(page, "PatchLens")
    settle(page)
    sidebar_open(page, server["data"])
    choose(page, selectbox(page, "", SIDEBAR), f"run {RUN_NAME}")
    settle(page)
    assert shown_dataset(page) == "small" and shown_model(page) == f"run {RUN_NAME}"
    page.wait_for_function("() => location.search.includes('model=')")
    assert url_names(page, server), page.url

    for label, title in (("Dataset", "Dataset"), ("Train", "Train"), ("Home", "PatchLens")):
        go_nav(page, label)
        wait_title(page, title)
        settle(page)
        assert_no_exception(page)
        assert url_names(page, server), f"{label}: {page.url}"
        assert shown_dataset(page) == "small"

    page.reload()
    wait_title(page, "PatchLens")
    settle(page)
    assert shown_dataset(page) == "small" and shown_model(page) == f"run {RUN_NAME}"
    metric = page.locator('[data-testid="stMetric"]', has_text="Active dataset")
    assert "small" in metric.inner_text()
    shoot(page, ARTIFACTS, "session-after-reload")

    other = new_page()  # another browser context: a colleague opening the shared link
    other.goto(page.url)
    wait_title(other, "PatchLens")
    settle(other)
    assert_no_exception(other)
    assert shown_dataset(other) == "small" and shown_model(other) == f"run {RUN_NAME}"
    shoot(other, ARTIFACTS, "session-shared-link")


def test_check_every_file_keeps_the_user_on_the_problems_tab(server, new_page):
    page = new_page()
    page.goto(f"{server['url']}/dataset")
    wait_title(page, "Dataset")
    settle(page)
    sidebar_open(page, server["large"])
    page.get_by_role("tab", name="Problems").click()
    settle(page)
    page.get_by_role("button", name="Check every file").click()
    patches = page.locator('[data-testid="stMetric"]', has_text="Patches")
    patches.filter(has_text=f"{DECODE_AT_OPEN_MAX + 100:,}").wait_for(timeout=120_000)  # broken.tif dropped
    settle(page)
    assert_no_exception(page)
    assert page.get_by_role("tab", name="Problems").get_attribute("aria-selected") == "true"
    problems = page.locator('[data-testid="stMetric"]', has_text="Problems")
    assert problems.locator('[data-testid="stMetricValue"]').inner_text() == "1"
    shoot(page, ARTIFACTS, "session-after-check")
