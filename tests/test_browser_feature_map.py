"""Real-browser test of the Feature map page (issue 12, item 1): what AppTest cannot do is draw a lasso
on the plotly scatter. The shared `streamlit run` server (conftest's baseline_server) with a temporary
PATCHLENS_HOME and a tiny Kaggle-layout copy of real bundled patches; the active model is the bundled
baseline. A lasso around the left half of the points must open a gallery of exactly those patches, and
Grad-CAM must draw their heatmaps on demand. Screenshots go to
test-artifacts/browser/feature-map-*.png.
"""

from __future__ import annotations

import pytest
from browser_helpers import (
    ARTIFACTS,
    PLOTLY,
    assert_no_exception,
    go_nav,
    new_session,
    open_dataset,
    require_browser,
    settle,
    shoot,
    steady_count,
    wait_title,
)

require_browser(baseline_model=True)

from conftest import BASELINE_SERVER_DATA  # noqa: E402

IMAGE = '[data-testid="stImage"]'
N_PER_CLASS = BASELINE_SERVER_DATA["subset"]


@pytest.fixture(scope="module")
def server(baseline_server):
    return baseline_server  # conftest: the baseline model, data roots first/, second/ and subset/


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
    before = steady_count(page.locator(IMAGE))  # the similar-patches grid, once it is all drawn

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
    assert steady_count(page.locator(IMAGE)) == before + inside

    page.get_by_text("Grad-CAM", exact=True).click()
    page.get_by_text("Shared scale: each").first.wait_for(timeout=180_000)
    settle(page)
    assert_no_exception(page)
    shoot(page, ARTIFACTS, "feature-map-gradcam")
    assert page.locator(IMAGE).count() == before + inside + 1  # the overlays + the colour bar
    page.context.close()
