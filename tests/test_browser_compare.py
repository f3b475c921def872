"""Real-browser test of the Compare page (issue 12, item 4): what AppTest cannot see.

One `streamlit run` server with a temporary PATCHLENS_HOME holding two runs with real tiny models, and
a Kaggle-layout copy of real bundled patches as the active dataset (named in the link, with model A).
The user's path: open Compare from the navigation, pick model B, run both models (two background
jobs, each with its progress and Stop), and see the two
models' ROC and PR curves drawn over each other, the tests in words, and the disagreement gallery
with both Grad-CAMs. Screenshots go to test-artifacts/browser/compare-*.png.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from browser_helpers import (
    ARTIFACTS,
    PLOTLY,
    PROGRESS,
    SELECTBOX,
    assert_no_exception,
    choose,
    go_nav,
    hold_shared_workers,
    metric_value,
    new_session,
    require_browser,
    serve_app,
    settle,
    shoot,
    wait_title,
    wait_until,
)

require_browser()

from page_helpers import copy_kaggle_subset  # noqa: E402
from test_page_compare import make_run  # noqa: E402

from core.jobs.status import QUEUED_PHASE  # noqa: E402

RUN_MS = 300_000  # both models run in background jobs: two TensorFlow starts on two busy cores
GRADCAM_MS = 600_000  # two explainers, each first computing its shared-scale references, on busy cores


@pytest.fixture(scope="module")
def server(tmp_path_factory, fit_tiny_model):
    root = tmp_path_factory.mktemp("browser-compare")
    data = copy_kaggle_subset(root / "data" / "small", 10)
    model_a = make_run(root / "home", "tiny-a", data, 4, fit_tiny_model)
    make_run(root / "home", "tiny-b", data, 1, fit_tiny_model)
    with serve_app(root, data=data) as served:
        yield served, model_a


def test_two_models_are_run_then_drawn_over_each_other_with_their_disagreements(server, browser):
    served, model_a = server
    page = new_session(browser, height=1200).new_page()
    page.goto(f"{served.url}/?{urlencode({'dataset': str(served.data), 'model': str(model_a)})}")
    wait_title(page, "PatchLens")
    settle(page)
    go_nav(page, "Compare")
    wait_title(page, "Compare")
    settle(page)
    model_b = page.locator(SELECTBOX).filter(has_text="Model B").first
    choose(page, model_b, "run tiny-b")
    settle(page)
    assert page.get_by_text("not computed yet").count() == 2  # one notice per model

    # Two background jobs, each with its progress and Stop. On idle warm workers each scores the 10
    # patches in about a second, which can end before the page is drawn again (CI saw one panel). So
    # the workers are held busy, as on a shared lab cluster: both jobs wait queued, their panels shown.
    with hold_shared_workers():
        page.get_by_role("button", name="Run the models on this dataset").click()
        page.get_by_text("This runs in the background").first.wait_for()
        stops = page.get_by_role("button", name="Stop", exact=True)
        assert wait_until(lambda: stops.count() == 2 and page.locator(PROGRESS).count() == 2, timeout=60)
        panels = " | ".join(page.locator(PROGRESS).all_inner_texts())
        assert "run tiny-a" in panels and "run tiny-b" in panels, panels
        assert panels.count(QUEUED_PHASE) == 2, panels  # in words: waiting, not computing
        shoot(page, ARTIFACTS, "compare-jobs")
    page.locator(PLOTLY).first.wait_for(timeout=RUN_MS)
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("not computed yet").count() == 0
    shoot(page, ARTIFACTS, "compare-results")

    roc, pr = page.locator(PLOTLY).nth(0), page.locator(PLOTLY).nth(1)
    assert roc.locator(".scatterlayer .trace").count() == 3  # A, B and chance, in one chart
    assert pr.locator(".scatterlayer .trace").count() == 2
    legend = roc.locator(".legend").text_content()  # an SVG group: no inner_text
    assert "A: run tiny-a" in legend and "B: run tiny-b" in legend
    assert page.get_by_text("the AUC difference").count() == 1
    assert page.get_by_text("the accuracy difference").count() == 1

    page.get_by_text("Where they disagree").scroll_into_view_if_needed()
    assert int(metric_value(page, "Patches called differently")) > 0
    if page.get_by_text("No patch at").count():  # the first group is empty: show the other one
        page.get_by_text("B right, A wrong").click()
        page.get_by_text("Grad-CAM of both").wait_for()
        settle(page)
    shown = page.locator('[data-testid="stImage"]').count()
    assert shown > 0
    page.get_by_text("Grad-CAM of both").click()
    # Exact text: a substring wait for "Grad-CAM of B" matched the toggle "Grad-CAM of both" at once,
    # so the counts below were taken before the maps were drawn.
    page.get_by_text("Grad-CAM of B", exact=True).first.wait_for(timeout=GRADCAM_MS)
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("Grad-CAM of A", exact=True).count() == shown
    assert page.get_by_text("Grad-CAM of B", exact=True).count() == shown
    page.get_by_text("Grad-CAM of A", exact=True).first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "compare-gradcam.png"))
    page.context.close()
