"""Real-browser test of the Region page: what AppTest cannot see.

One `streamlit run` server with a temporary workspace and a mosaic of real patches (PNG with its
resolution) in its data roots; the active model is the bundled baseline. The user's path: choose the
image, compute the heatmap (a real background job), see the map drawn by plotly over the thumbnail,
click a tile on it, and get that tile's probability below. Screenshots go to
test-artifacts/browser/region-*.png.
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

from region_images import mosaic, write_png  # noqa: E402

from core.constants import PCAM_MPP  # noqa: E402

# Where a tile's centre is drawn, in page pixels: plotly's own axis mapping of the chart.
TILE_CENTRE_JS = """([el, x, y]) => {
    const plot = el.querySelector('.js-plotly-plot');
    const layout = plot._fullLayout;
    const box = plot.getBoundingClientRect();
    return [box.left + layout.xaxis._offset + layout.xaxis.l2p(x), box.top + layout.yaxis._offset + layout.yaxis.l2p(y)];
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-region")
    (root / "data").mkdir()
    image = mosaic()
    write_png(root / "data" / "mosaic.png", image.pixels, mpp=PCAM_MPP)
    with serve_app(root, data=root / "data") as served:
        served.image = image
        yield served


def test_a_heatmap_is_computed_drawn_and_a_clicked_tile_is_shown(server, browser):
    context = new_session(browser)
    page = context.new_page()
    try:
        page.goto(server.url)
        settle(page)
        go_nav(page, "Region")
        page.locator("h1", has_text="Region").first.wait_for()
        field = page.get_by_label("Path of a region image or slide", exact=True).and_(page.locator("input"))
        field.fill(str(server.data / "mosaic.png"))
        field.press("Enter")
        settle(page)
        page.get_by_role("button", name="Compute the heatmap").click()
        chart = page.locator(PLOTLY).first
        chart.wait_for(timeout=JOB_MS)
        settle(page)
        shoot(page, ARTIFACTS, "region-map")
        row, col = server.image.cells[7]
        centre = ((col + 0.5) * 96, (row + 0.5) * 96)  # level-0 px = model px here (0.972 µm/px)
        x, y = page.evaluate(TILE_CENTRE_JS, [chart.element_handle(), *centre])
        page.mouse.click(x, y)
        page.wait_for_timeout(3000)
        shoot(page, ARTIFACTS, "region-click")
        page.wait_for_function(
            "([r, c]) => { const inputs = [...document.querySelectorAll('[data-testid=stNumberInput] input')];"
            " return inputs.length >= 2 && inputs.at(-2).value == r && inputs.at(-1).value == c; }",
            arg=[row, col],
            timeout=60_000,
        )
        settle(page)
        probabilities = np.load(next(server.home.glob("cache/region/jobs/*/outputs/probabilities.npy")))
        page.get_by_text(f"P(tumour) {probabilities[row, col]:.4f}").first.wait_for()
        shoot(page, ARTIFACTS, "region-tile")
    finally:
        context.close()
