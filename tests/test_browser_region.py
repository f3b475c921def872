"""Real-browser test of the Region page: what AppTest cannot see.

One `streamlit run` server with a temporary workspace and a mosaic of real patches (PNG with its
resolution) in its data roots; the active model is the bundled baseline. The user's path: choose the
image, compute the heatmap (a real background job), reload while it runs (the page says "you may
reload") and find it again, see the map drawn by plotly over the thumbnail with no metric clipped,
click a tile on it and get that tile's probability below and its outline on the map, then click a
glass tile and be told it was not scored. Screenshots go to test-artifacts/browser/region-*.png.
"""

from __future__ import annotations

import numpy as np
import pytest
from browser_helpers import (
    ARTIFACTS,
    JOB_MS,
    PLOTLY,
    go_nav,
    new_session,
    require_browser,
    serve_app,
    settle,
    shoot,
)

require_browser(baseline_model=True)

from region_images import BLANK_ROW, mosaic, write_png  # noqa: E402

from core.constants import PCAM_MPP  # noqa: E402

# Where a tile's centre is drawn, in page pixels: plotly's own axis mapping of the chart.
TILE_CENTRE_JS = """([el, x, y]) => {
    const plot = el.querySelector('.js-plotly-plot');
    const layout = plot._fullLayout;
    const box = plot.getBoundingClientRect();
    return [box.left + layout.xaxis._offset + layout.xaxis.l2p(x), box.top + layout.yaxis._offset + layout.yaxis.l2p(y)];
}"""
# The outline of the selected tile drawn on the map: [x0, y0] of plotly's shape named "selected tile".
SELECTED_JS = """el => (el.querySelector('.js-plotly-plot').layout.shapes || [])
    .filter(s => s.name === 'selected tile').map(s => [s.x0, s.y0])"""
# Texts cut by their box (an ellipsis): the metric values and the buttons, and what they hold.
CLIPPED_JS = """() => [...document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricValue"] *, '
    + '[data-testid="stMain"] button, [data-testid="stMain"] button *')]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"""
INPUTS_AT_JS = (
    "([r, c]) => { const inputs = [...document.querySelectorAll('[data-testid=stNumberInput] input')];"
    " return inputs.length >= 2 && inputs.at(-2).value == r && inputs.at(-1).value == c; }"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-region")
    (root / "data").mkdir()
    image = mosaic()
    write_png(root / "data" / "mosaic.png", image.pixels, mpp=PCAM_MPP)
    with serve_app(root, data=root / "data") as served:
        served.image = image
        yield served


def click_tile(page, chart, row: int, col: int) -> None:
    """Click the centre of tile (row, col) on the map and wait until the row and column inputs follow."""
    centre = ((col + 0.5) * 96, (row + 0.5) * 96)  # level-0 px = model px here (0.972 µm/px)
    x, y = page.evaluate(TILE_CENTRE_JS, [chart.element_handle(), *centre])
    page.mouse.click(x, y)
    page.wait_for_function(INPUTS_AT_JS, arg=[row, col], timeout=60_000)
    settle(page)


def test_a_heatmap_is_computed_found_after_a_reload_drawn_and_its_tiles_clicked(server, browser):
    context = new_session(browser, width=1024)  # a laptop's width: five metric cards clipped there
    page = context.new_page()
    try:
        page.goto(server.url)
        settle(page)
        go_nav(page, "Region")
        page.locator("h1", has_text="Region").first.wait_for()
        path = str(server.data / "mosaic.png")
        field = page.get_by_label("Path of a region image or slide", exact=True).and_(page.locator("input"))
        field.fill(path)
        field.press("Enter")
        settle(page)
        page.get_by_role("button", name="Compute the heatmap").click()
        page.get_by_role("button", name="Stop").wait_for()  # running: "you may reload the page"
        assert "region_image=" in page.url
        page.reload()
        page.get_by_role("button", name="Stop").or_(page.locator(PLOTLY)).first.wait_for(timeout=JOB_MS)
        shoot(page, ARTIFACTS, "region-reloaded")
        assert field.input_value() == path  # found again without retyping
        page.get_by_text("Heatmap jobs:").first.wait_for()  # and listed
        assert page.evaluate(CLIPPED_JS) == []
        chart = page.locator(PLOTLY).first
        chart.wait_for(timeout=JOB_MS)
        settle(page)
        shoot(page, ARTIFACTS, "region-map")
        assert page.evaluate(CLIPPED_JS) == []
        row, col = server.image.cells[7]
        click_tile(page, chart, row, col)
        shoot(page, ARTIFACTS, "region-click")
        probabilities = np.load(next(server.home.glob("cache/region/jobs/*/outputs/probabilities.npy")))
        page.get_by_text(f"P(tumour) {probabilities[row, col]:.4f}").first.wait_for()
        assert page.evaluate(SELECTED_JS, chart.element_handle()) == [[col * 96, row * 96]]
        shoot(page, ARTIFACTS, "region-tile")
        click_tile(page, chart, BLANK_ROW, col)  # glass: not scored, said so, outlined
        page.get_by_text("This tile was not scored (glass/background)").first.wait_for()
        assert page.evaluate(SELECTED_JS, chart.element_handle()) == [[col * 96, BLANK_ROW * 96]]
        shoot(page, ARTIFACTS, "region-glass-tile")
    finally:
        context.close()
