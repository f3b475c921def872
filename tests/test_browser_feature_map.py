"""Real-browser test of the Feature map page (issue 12, item 1): what AppTest cannot do is draw a lasso
on the plotly scatter. One `streamlit run` server with a temporary PATCHLENS_HOME and a tiny
Kaggle-layout copy of real bundled patches; the active model is the bundled baseline. A lasso around
the left half of the points must open a gallery of exactly those patches, and Grad-CAM must draw
their heatmaps on demand. Screenshots go to test-artifacts/browser/feature-map-*.png.
"""

from __future__ import annotations

import re

import pytest
from browser_helpers import (
    ARTIFACTS,
    PLOTLY,
    SIDEBAR,
    assert_no_exception,
    go_nav,
    new_session,
    require_browser,
    serve_app,
    settle,
    shoot,
    wait_title,
)

require_browser()

from page_helpers import copy_kaggle_subset  # noqa: E402

from core.settings import BASELINE_MODEL  # noqa: E402

if not BASELINE_MODEL.exists():
    pytest.skip("the bundled baseline model is missing", allow_module_level=True)

IMAGE = '[data-testid="stImage"]'
N_PER_CLASS = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-feature-map")
    copy_kaggle_subset(root / "data" / "subset", N_PER_CLASS)
    with serve_app(root, data=root / "data") as served:
        yield served


def open_dataset(page, path) -> None:
    field = page.locator(SIDEBAR).get_by_placeholder("/path/to")
    field.fill(str(path))
    field.press("Enter")
    settle(page)
    page.locator(SIDEBAR).locator("button").filter(has_text=re.compile(r"^Open$")).first.click()
    page.locator(SIDEBAR).get_by_text(f"Opened {path}").wait_for()
    settle(page)


def lasso(page, left: float, top: float, right: float, bottom: float) -> None:
    """Draw a closed lasso along the rectangle's edges (plotly needs intermediate mouse moves)."""
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in ((right, top), (right, bottom), (left, bottom), (left, top)):
        page.mouse.move(x, y, steps=12)
    page.mouse.up()


def test_a_lasso_opens_a_gallery_of_the_selected_patches_with_gradcam_on_demand(server, browser):
    page = new_session(browser, height=1600).new_page()
    page.goto(server.url)
    settle(page)
    open_dataset(page, server.data / "subset")
    go_nav(page, "Feature map")
    wait_title(page, "Feature map")
    settle(page)  # the first visit computes the features (TensorFlow + the baseline model)
    assert_no_exception(page)
    chart = page.locator(PLOTLY).first
    markers = chart.locator(".scatterlayer .trace .points path")
    markers.first.wait_for()
    assert markers.count() == 2 * N_PER_CLASS
    page.get_by_text("Nothing selected yet.").wait_for()
    before = page.locator(IMAGE).count()  # the similar-patches grid

    centres = []
    for k in range(markers.count()):
        box = markers.nth(k).bounding_box()
        centres.append((box["x"] + box["width"] / 2, box["y"] + box["height"] / 2))
    xs = sorted(x for x, _ in centres)
    cut = (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2  # between the two middle points
    inside = sum(x < cut for x, _ in centres)
    area = chart.locator(".nsewdrag").first.bounding_box()
    lasso(page, area["x"] + 2, area["y"] + 2, cut, area["y"] + area["height"] - 2)
    page.get_by_text(f"Selected patches ({inside})").wait_for()
    settle(page)
    assert_no_exception(page)
    shoot(page, ARTIFACTS, "feature-map-lasso")
    assert page.locator(IMAGE).count() == before + inside

    page.get_by_text("Grad-CAM", exact=True).click()
    page.get_by_text("Shared scale: each").first.wait_for(timeout=180_000)
    settle(page)
    assert_no_exception(page)
    shoot(page, ARTIFACTS, "feature-map-gradcam")
    assert page.locator(IMAGE).count() == before + inside + 1  # the overlays + the colour bar
    page.context.close()
