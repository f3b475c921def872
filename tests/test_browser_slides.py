"""Real-browser test of the Slides page: what AppTest cannot see.

One `streamlit run` server with a temporary workspace and a small cohort of slides built from real
patches (tests/slides_cohort.py) in its data roots; the active model is the bundled baseline. The user's
path: type the folder, the labels CSV and the annotations folder, score the cohort (a real background
job), reload while it runs or after, and find the table with thumbnails, the slide ROC and a slide's
map with the annotation and model outlines drawn by plotly. Screenshots go to
test-artifacts/browser/slides-*.png.
"""

from __future__ import annotations

import pytest
from browser_helpers import (
    ARTIFACTS,
    JOB_MS,
    PLOTLY,
    SLIDER,
    go_nav,
    metric_value,
    new_session,
    require_browser,
    serve_app,
    settle,
    shoot,
    slider_thumb,
)

require_browser(baseline_model=True)

import pandas as pd  # noqa: E402
from slides_cohort import build_cohort  # noqa: E402

from core.slides.aggregate import DEFAULT_AGGREGATE  # noqa: E402
from core.slides.metrics import labelled_scores, slide_metrics, slide_presets  # noqa: E402

# The names of the traces plotted on the slide's map
TRACE_NAMES_JS = "el => el.querySelector('.js-plotly-plot').data.map(trace => trace.name)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-slides")
    cohort = build_cohort(root / "data")
    # The cohort is scored on the shared workers: TensorFlow never runs in the server, so no warm-up
    with serve_app(root, {"PATCHLENS_WARMUP": "0"}, data=root / "data") as served:
        served.cohort = cohort
        yield served


def fill(page, label: str, text: str) -> None:
    field = page.get_by_label(label, exact=True).and_(page.locator("input"))
    field.fill(text)
    field.press("Enter")
    settle(page)


def test_a_cohort_is_scored_found_after_a_reload_and_a_slide_drawn_with_its_outlines(server, browser):
    context = new_session(browser)
    page = context.new_page()
    try:
        page.goto(server.url)
        settle(page)
        go_nav(page, "Slides")
        page.locator("h1", has_text="Slides").first.wait_for()
        fill(page, "Slides folder", str(server.cohort["slides"]))
        fill(page, "Labels CSV (optional)", str(server.cohort["labels"]))
        fill(page, "Annotations folder (optional)", str(server.cohort["annotations"]))
        page.get_by_role("button", name="Score the cohort").click()
        page.get_by_role("button", name="Stop").or_(page.locator(PLOTLY)).first.wait_for(timeout=JOB_MS)
        assert "slides_folder=" in page.url
        page.reload()  # the job is found again from the URL, running or done
        settle(page)
        page.locator(PLOTLY).nth(1).wait_for(timeout=JOB_MS)  # the ROC, then the slide's map
        settle(page)
        shoot(page, ARTIFACTS, "slides-cohort")
        page.get_by_text("4 slides, 2 failed").first.wait_for()
        names = page.evaluate(TRACE_NAMES_JS, page.locator(PLOTLY).nth(1).element_handle())
        assert "annotation" in names and "model" in names
        page.locator(PLOTLY).nth(1).scroll_into_view_if_needed()
        shoot(page, ARTIFACTS, "slides-map")
        slide_threshold_preset(page, server)
    finally:
        context.close()


def slider(page, words: str):
    return page.locator(SLIDER).filter(has_text=words)


def slide_threshold_preset(page, server) -> None:
    """The slide threshold's Youden preset (from the slide ROC) sets the slide cards, stays in the URL
    through a reload, and leaves the patch threshold (the map's outline) at 0.5."""
    frame = pd.read_csv(next(server.home.rglob("slides.csv")))
    frame["score"] = frame[f"score_{DEFAULT_AGGREGATE}"]
    labels, scores = labelled_scores(frame.to_dict("records"))
    youden = slide_presets(labels, scores)["youden"]
    expected = slide_metrics(labels, scores, youden)
    page.get_by_role("button", name=f"Youden's J ({youden:.3f})").click()
    page.wait_for_url(f"**slide_threshold={youden!r}**")
    settle(page)
    for reloaded in (False, True):  # as clicked, then after a reload
        if reloaded:
            page.reload()
            settle(page)
            page.locator(PLOTLY).nth(1).wait_for(timeout=JOB_MS)
        assert metric_value(page, "Sensitivity") == f"{expected['sensitivity']:.3f}"
        assert metric_value(page, "Specificity") == f"{expected['specificity']:.3f}"
        assert "threshold=" not in page.url.replace("slide_threshold=", "")  # the patch threshold: 0.5
        assert float(slider_thumb(slider(page, "a slide is called")).input_value()) == pytest.approx(
            youden, abs=1e-3
        )
        assert float(slider_thumb(slider(page, "a patch is called")).input_value()) == 0.5
    page.get_by_role("button", name=f"Youden's J ({youden:.3f})").scroll_into_view_if_needed()
    shoot(page, ARTIFACTS, "slides-threshold")
