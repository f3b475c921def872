"""Real-browser test of text cut off on the Dataset and Predict pages (issue 19 item 11): AppTest sees the
words, only a browser sees whether they fit. At 1,280 and 1,440 px, the Dataset page of a class-folders
dataset ('class-fo…' in its Layout card, 'Ce…' for the Centre box toggle) and the Predict page after an
upload ('the tumour s…' in the Explain box, 'Centre …') show every metric value, widget label and
select box value whole. Screenshots go to test-artifacts/browser/clipped-*.png.
"""

from __future__ import annotations

import shutil

import pytest
from browser_helpers import (
    ARTIFACTS,
    assert_no_exception,
    new_session,
    open_dataset,
    open_page,
    require_browser,
    settle,
    shoot,
)

require_browser(baseline_model=True)

from core.settings import SAMPLE_DATASET  # noqa: E402

CLIPPED = """() => [...document.querySelectorAll(
    '[data-testid="stMain"] [data-testid="stMetricValue"] *, [data-testid="stMain"] [data-testid="stWidgetLabel"] *,'
    + '[data-testid="stMain"] input[role="combobox"], [data-testid="stMain"] [data-testid="stTab"] *')]
    .filter(e => e.getClientRects().length && e.scrollWidth > e.clientWidth + 1)
    .map(e => (e.value || e.textContent || '').trim()).filter(text => text)"""


@pytest.fixture(scope="module")
def class_folders(baseline_server):
    """A class-folders dataset of 12 real patches inside the server's data roots."""
    folder = baseline_server.data / "class-folders-demo"
    rows = (SAMPLE_DATASET / "train_labels.csv").read_text().splitlines()[1:13]
    for row in rows:
        patch_id, label = row.split(",")
        (folder / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DATASET / "train" / f"{patch_id}.tif", folder / label / f"{patch_id}.tif")
    return folder


def clipped(page) -> list[str]:
    return page.evaluate(CLIPPED)


@pytest.mark.parametrize("width", [1280, 1440])
def test_dataset_and_predict_show_their_words_whole(baseline_server, browser, class_folders, width):
    page = new_session(browser, width, height=1100).new_page()
    open_page(page, baseline_server.url, "dataset", "Dataset")
    open_dataset(page, class_folders)
    page.get_by_role("tab", name="Patches").click()
    page.get_by_text("Centre box").first.wait_for()
    settle(page)
    shoot(page, ARTIFACTS, f"clipped-dataset-{width}")
    assert page.get_by_text("class-folders", exact=True).count() == 1
    assert clipped(page) == []

    page.goto(f"{baseline_server.url}/predict")
    settle(page)
    broken = baseline_server.root / "not-an-image.tif"
    broken.write_text("not an image")
    tiffs = sorted((SAMPLE_DATASET / "train").glob("*.tif"))[:2]
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        [*map(str, tiffs), str(broken)]
    )
    page.get_by_text("Where the model looked").wait_for(timeout=120_000)
    page.wait_for_timeout(1500)
    settle(page)
    assert_no_exception(page)
    shoot(page, ARTIFACTS, f"clipped-predict-{width}")
    assert clipped(page) == []
    page.context.close()
