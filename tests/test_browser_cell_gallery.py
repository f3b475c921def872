"""Real-browser test of the Evaluate page's confusion-cell gallery (issue 19 item 1): each patch's caption
names that patch, never a shortened id that is another patch's.

The shared `streamlit run` server (conftest's baseline_server, the bundled baseline active) gets a PCam
HDF5 dataset of real bundled patches whose ids share prefixes: split "valid" with 160 patches holds
valid-10 and valid-100 … valid-109, so cutting 'valid-105' to eight characters reads 'valid-10', a real,
different patch (the bug: `test-2152` captioned `test-215`). The user's path: open it on Evaluate, run
the model, look at the FP cell, click the TN cell; each gallery's captions must name the ids of that
cell's table, in order. Screenshots go to test-artifacts/browser/cell-gallery-*.png.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from browser_helpers import ARTIFACTS, PLOTLY, assert_no_exception, require_browser, settle, shoot

require_browser(baseline_model=True)

from conftest import sample_rows, write_pcam_split  # noqa: E402
from test_browser_evaluate import evaluate_page, show_results  # noqa: E402

N_PATCHES = 160  # ids valid-0 … valid-159: valid-100 … valid-159 begin with another id's 8 characters
CAPTION = '[data-testid="stImageCaption"]'
CELL_TABLE = '[data-testid="stExpander"]'


@pytest.fixture(scope="module")
def prefixed_pcam(baseline_server):
    """A PCam HDF5 folder inside the server's data roots: N_PATCHES real patches in split 'valid'."""
    from core.data.images import decode_patch
    from core.settings import SAMPLE_DATASET

    rows = sample_rows()[:N_PATCHES]
    pixels = np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{item}.tif") for item, _ in rows])
    folder = baseline_server.data / "pcam-prefixed"
    write_pcam_split(folder, "valid", pixels, np.array([label for _, label in rows]))
    return folder


def gallery_ids(page) -> list[str]:
    """The ids the cell gallery's captions name ('p=0.999 · valid-105' → 'valid-105'), in order."""
    captions = page.locator(CAPTION).filter(has_text=re.compile(r"^p="))
    captions.first.wait_for()
    captions = captions.all_inner_texts()
    return [caption.split(" · ", 1)[1].strip() for caption in captions]


def table_ids(page) -> list[str]:
    """The first column of the 'Table of this cell' expander's data grid, read from its accessible table
    (the grid renders the rows in view: the first ones, in order)."""
    expander = page.locator(CELL_TABLE).filter(has_text="Table of this cell")
    if not expander.locator('[data-testid="stDataFrame"]').is_visible():
        expander.locator("summary").click()
        settle(page)
    rows = expander.locator('[data-testid="stDataFrame"] tbody [role="row"]')
    rows.first.wait_for(state="attached")
    return [row.locator('[role="gridcell"]').first.inner_text().strip() for row in rows.all()]


def assert_captions_name_the_table(page, timeout: float = 60.0) -> list[str]:
    """The gallery's captions name the cell table's first rows, in order, once the page has settled (a
    snapshot taken while a rerun is still drawing can hold the previous run's gallery)."""
    deadline = time.monotonic() + timeout
    while True:
        settle(page)
        shown, listed = gallery_ids(page), table_ids(page)
        if (shown and listed and shown[: len(listed)] == listed[: len(shown)]) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert shown and listed
    compared = min(len(shown), len(listed))
    assert compared >= min(5, len(shown))
    assert shown[:compared] == listed[:compared]
    return shown


def test_cell_gallery_captions_name_the_cells_patches(baseline_server, browser, prefixed_pcam):
    page = evaluate_page(browser, baseline_server.url)
    show_results(page, prefixed_pcam)
    fp = assert_captions_name_the_table(page)  # the default cell
    shoot(page, ARTIFACTS, "cell-gallery-FP")

    markers = page.locator(PLOTLY).first.locator(".scatterlayer .trace .points path")
    markers.nth(3).wait_for()
    box = markers.nth(0).bounding_box()  # TN
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    radio = page.locator('[data-testid="stRadio"]').filter(has_text="TN ·")
    page.wait_for_function(
        "el => el.checked", arg=radio.get_by_role("radio", name=re.compile("^TN")).element_handle()
    )
    page.wait_for_timeout(1500)
    settle(page)
    tn = assert_captions_name_the_table(page)
    shoot(page, ARTIFACTS, "cell-gallery-TN")
    assert_no_exception(page)
    assert set(fp).isdisjoint(tn)
    long_ids = [item for item in fp + tn if len(item) > 8]
    assert long_ids, "the cells shown hold no id a cut to 8 characters would turn into another"
    page.context.close()
