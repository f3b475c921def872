"""Real-browser end-to-end tests: a real `streamlit run` server driven by headless Chromium.

One server for the module, started from the project root with a temporary PATCHLENS_HOME and
PATCHLENS_DATA_ROOTS pointing at a tiny Kaggle-layout copy of 40 real bundled patches. Before the
server starts, the session's real finished run on the same 40 patches (conftest's tiny_run, trained
once for every module that needs one) is copied into its workspace as the seed run, so Predict and
Evaluate work whether or not models/baseline.keras exists.

Each step leaves a screenshot in test-artifacts/browser/<step>.png. Every training job and the
server's whole process group are ended at teardown, and the teardown checks nothing is left.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from browser_helpers import (
    ARTIFACTS,
    NAV_LINK,
    OUTLIVING_EPOCHS,
    PLOTLY,
    PROGRESS,
    SIDEBAR,
    ServedApp,
    app_env,
    assert_no_exception,
    choose,
    contexts,
    fill_train_form,
    go_nav,
    new_session,
    open_page,
    plot_points,
    require_browser,
    run_status,
    selectbox,
    serve_app,
    settle,
    shoot,
    slider_thumb,
    start_training,
    wait_title,
)

require_browser()

from page_helpers import TINY_RUN, copy_kaggle_subset  # noqa: E402

from core.formatting import NAME_IN_TEXT, short_name  # noqa: E402

SEED_RUN = TINY_RUN  # conftest's tiny_run, copied into the server's workspace
LONG = 120_000  # ms: TensorFlow's first import + a model load on two busy cores
PAGES = [  # (sidebar label, h1 text, URL path)
    ("Dataset", "Dataset", "dataset"),
    ("Train", "Train", "train"),
    ("Evaluate", "Evaluate", "evaluate"),
    ("Predict", "Predict", "predict"),
    ("Mistakes", "Mistakes", "mistakes"),
    ("Feature map", "Feature map", "feature_map"),
    ("Label issues", "Label issues", "label_issues"),
    ("Compare", "Compare", "compare"),
    ("Region", "Region", "region"),
    ("Slides", "Slides", "slides"),
]


def first_visit_by_deep_link(browser, server: ServedApp) -> dict:
    """Open /train as the server's very first session (a bookmark, or a tab reconnecting after a
    restart) and record the navigation it shows."""
    context = new_session(browser, height=1000)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/train")
        wait_title(page, "Train")
        settle(page)
        page.locator(NAV_LINK).first.wait_for()  # the sidebar may still be drawing on a busy machine
        shoot(page, ARTIFACTS, "00-fresh-server-deep-link-train")
        return {
            "nav": [text.split("\n")[-1].strip() for text in page.locator(NAV_LINK).all_inner_texts()],
            "title": page.title(),
        }
    finally:
        context.close()


@pytest.fixture(scope="module")
def seeded_server(browser, tiny_run, tmp_path_factory):
    """The server, with the seed run in its workspace, and what its very first session (a deep link)
    saw."""
    root = tmp_path_factory.mktemp("browser")
    data = copy_kaggle_subset(root / "data" / "kaggle", 20)  # 40 real patches, balanced
    home = Path(app_env(root)["PATCHLENS_HOME"])
    shutil.copytree(tiny_run[1], home / "runs" / SEED_RUN)
    assert run_status(home / "runs" / SEED_RUN).get("state") == "finished"
    with serve_app(root, data=data) as served:
        yield served, first_visit_by_deep_link(browser, served)


@pytest.fixture(scope="module")
def server(seeded_server) -> ServedApp:
    return seeded_server[0]


@pytest.fixture(scope="module")
def fresh_deep_link(seeded_server) -> dict:
    return seeded_server[1]


@pytest.fixture()
def new_page(browser, server):
    """Open pages in fresh browser contexts (= fresh Streamlit sessions); stop any job afterwards."""
    with contexts(browser, server.home, height=1400) as make:
        yield make


@pytest.fixture()
def page(new_page):
    return new_page()


# --------------------------------------------------------------------------- Train form moves


def start_job(page, server, epochs: int) -> Path:
    """Fill the form, click Start training, and return the new run directory."""
    fill_train_form(page, server.data, epochs)
    return start_training(page, server)


def job_header(page, run_dir: Path):
    return page.locator('[data-testid="stMarkdownContainer"]', has_text=f"{run_dir.name} —").first


def stop_button(page, run_dir: Path):
    return page.locator(f".st-key-stop-{run_dir.name} button")


# --------------------------------------------------------------------------- 1. pages


def test_every_page_loads_without_an_exception(server, page):
    open_page(page, server.url, "", "PatchLens")
    shoot(page, ARTIFACTS, "01-home")
    for label, title, path in PAGES:  # in-session navigation through the sidebar links
        go_nav(page, label)
        page.wait_for_url(re.compile(rf"/{path}(\?.*)?$"))  # query parameters may follow
        wait_title(page, title)
        settle(page)
        assert_no_exception(page)
        shoot(page, ARTIFACTS, f"01-{path}")
    for _, title, path in PAGES:  # and each URL path opens its page in a fresh session
        open_page(page, server.url, path, title)


def test_a_deep_link_on_a_fresh_server_shows_the_apps_navigation(fresh_deep_link):
    seen = fresh_deep_link
    expected = [label for label, _, _ in [("Home", "", ""), *PAGES]]
    assert seen["nav"] == expected, seen["nav"]  # only the app's pages, from its own navigation
    assert seen["title"] == "PatchLens"


# --------------------------------------------------------------------------- 2. predict


def test_predict_an_uploaded_tiff_shows_a_probability_and_a_gradcam(server, page):
    open_page(page, server.url, "predict", "Predict")
    choose(page, selectbox(page, "", SIDEBAR), f"run {SEED_RUN}")
    # the rerun after choosing may not have started when settle() looks: wait for its result
    page.get_by_text(f"Model: {SEED_RUN}").first.wait_for(timeout=LONG)
    settle(page)
    assert page.get_by_text(f"Model: {SEED_RUN}").count() == 1
    tiff = sorted((server.data / "train").glob("*.tif"))[0]
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(tiff))
    result = page.locator('[data-testid="stMarkdownContainer"]', has_text="P(tumour)").filter(
        has_text=short_name(tiff.name, NAME_IN_TEXT)  # the page shortens long names
    )
    result.first.wait_for(timeout=LONG * 2)
    caption = page.locator('[data-testid="stImageCaption"]', has_text="Grad-CAM, strength")
    caption.first.wait_for(timeout=LONG)
    settle(page)
    assert_no_exception(page)
    text = result.first.inner_text()
    prob = float(re.search(r"P\(tumour\)\s+(\d\.\d{4})", text).group(1))
    assert 0.0 <= prob <= 1.0
    assert re.search(r"call at 0\.500:\s+(tumour|normal)", text)
    assert ("tumour" if prob >= 0.5 else "normal") in text.split("call at 0.500:")[1]
    images = page.locator('[data-testid="stImage"] img')
    assert images.count() == 3  # the colour bar, the original and its Grad-CAM overlay
    assert page.get_by_text("Shared scale").count() == 1  # the caption beside the colour bar
    for k in range(3):
        assert images.nth(k).evaluate("img => img.complete && img.naturalWidth > 0")
    scored = page.locator('[data-testid="stMetric"]', has_text="Scored")
    assert scored.locator('[data-testid="stMetricValue"]').inner_text() == "1"
    shoot(page, ARTIFACTS, "02-predict-gradcam")


# --------------------------------------------------------------------------- 3. train


def test_train_from_the_page_with_a_live_chart_until_finished(server, page):
    open_page(page, server.url, "train", "Train")
    assert page.get_by_text("No job is running").count() == 1
    run_dir = start_job(page, server, epochs=12)  # long enough to watch the chart grow
    shoot(page, ARTIFACTS, "03-train-started")
    chart = page.locator(PLOTLY).first
    finished = page.get_by_text("Finished in")
    seen_points, seen_progress, shot = [], [], False
    deadline = time.time() + 180
    while time.time() < deadline and finished.count() == 0:
        if chart.count():
            seen_points.append(plot_points(chart))
            if not shot and seen_points[-1] > 0:
                shoot(page, ARTIFACTS, "03-train-live-chart")
                shot = True
        # all_inner_texts waits for nothing: the bar may go between a count and a read (job finished)
        seen_progress += page.locator(PROGRESS).all_inner_texts()[:1]
        time.sleep(0.5)
    assert finished.count() == 1, f"not finished: {run_status(run_dir)}"
    settle(page)
    assert_no_exception(page)
    shoot(page, ARTIFACTS, "03-train-finished")
    assert run_status(run_dir)["state"] == "finished"
    assert job_header(page, run_dir).count() == 1
    final = plot_points(chart)
    grown = [n for n in seen_points if n > 0]
    assert grown, "the live chart never drew a point while the job ran"
    assert min(grown) < final, f"the chart did not grow: seen {grown}, final {final}"
    assert len(set(seen_progress)) >= 2, f"the progress text never changed: {seen_progress}"


# --------------------------------------------------------------------------- 4. evaluate


def confusion(chart) -> list[int]:
    """TN, FP, FN, TP read from the heatmap's cell text."""
    text = " ".join(chart.locator("text").all_text_contents())
    cells = dict(re.findall(r"\b(TN|FP|FN|TP)\s*(\d[\d,]*)", text))
    return [int(cells[c].replace(",", "")) for c in ("TN", "FP", "FN", "TP")]


def expected_confusion(labels, probs, threshold: float) -> list[int]:
    called = probs >= threshold
    return [
        int(((labels == 0) & ~called).sum()),
        int(((labels == 0) & called).sum()),
        int(((labels == 1) & ~called).sum()),
        int(((labels == 1) & called).sum()),
    ]


def test_evaluate_the_threshold_moves_the_confusion_matrix(server, page):
    import pandas as pd

    from core.evaluate.metrics import threshold_presets

    open_page(page, server.url, "evaluate", "Evaluate")
    page.get_by_text("A run's validation predictions").click()  # the default is the sidebar's model
    settle(page)
    choose(page, selectbox(page, "Run"), SEED_RUN)
    settle(page)
    assert_no_exception(page)
    predictions = pd.read_csv(server.home / "runs" / SEED_RUN / "val_predictions.csv")
    labels, probs = predictions["label"].to_numpy(), predictions["prob"].to_numpy()
    n_neg, n_pos = int((labels == 0).sum()), int((labels == 1).sum())
    chart = page.locator(PLOTLY).first
    chart.locator("text", has_text="TN").first.wait_for()
    at_half = confusion(chart)
    assert at_half == expected_confusion(labels, probs, 0.5)
    shoot(page, ARTIFACTS, "04-evaluate-0.5")

    def sensitivity() -> str:
        card = page.locator('[data-testid="stMetric"]').filter(has_text="Sensitivity").first
        return card.locator('[data-testid="stMetricValue"]').inner_text()

    thumb = slider_thumb(page.locator('[data-testid="stSlider"]').filter(has_text="Threshold"))
    for key, expected, name in (("End", [n_neg, 0, n_pos, 0], "1.0"), ("Home", [0, n_neg, 0, n_pos], "0.0")):
        thumb.focus()
        thumb.press(key)
        page.wait_for_function(
            "([el, v]) => Math.abs(parseFloat(el.value) - v) < 1e-9",
            arg=[thumb.element_handle(), float(name)],
        )
        deadline = time.time() + 60
        while confusion(chart) != expected and time.time() < deadline:
            time.sleep(0.3)
        settle(page)
        assert_no_exception(page)
        assert confusion(chart) == expected, f"threshold {name}"
        shoot(page, ARTIFACTS, f"04-evaluate-{name}")
        if name == "1.0":
            at_one_sensitivity = sensitivity()
    assert sensitivity() != at_one_sensitivity  # the cards follow the threshold too
    assert at_half != [n_neg, 0, n_pos, 0] or at_half != [0, n_neg, 0, n_pos]

    youden = threshold_presets(labels, probs)["youden"]
    page.get_by_role("button", name=re.compile("Youden")).click()
    want = expected_confusion(labels, probs, youden)
    deadline = time.time() + 60
    while confusion(chart) != want and time.time() < deadline:
        time.sleep(0.3)
    settle(page)
    assert confusion(chart) == want
    assert float(thumb.input_value()) == pytest.approx(youden, abs=1e-3)
    shoot(page, ARTIFACTS, "04-evaluate-youden")


# --------------------------------------------------------------------------- 5. reload


def test_a_reload_reattaches_to_the_running_job_then_stop(server, page):
    open_page(page, server.url, "train", "Train")
    run_dir = start_job(page, server, epochs=OUTLIVING_EPOCHS)
    page.get_by_text(re.compile(rf"epoch \d+/{OUTLIVING_EPOCHS} · step")).first.wait_for(
        timeout=LONG
    )  # it trains
    assert job_header(page, run_dir).count() == 1
    settle(page)
    shoot(page, ARTIFACTS, "05-running-before-reload")

    page.reload()  # a new Streamlit session: nothing of the old one is left but the run on disk
    wait_title(page, "Train")
    header = job_header(page, run_dir)
    header.wait_for(timeout=LONG)
    assert "running" in header.inner_text()
    page.get_by_text(re.compile(rf"epoch \d+/{OUTLIVING_EPOCHS} · step")).first.wait_for(timeout=LONG)
    settle(page)
    page.locator(f"{PLOTLY} .main-svg").first.wait_for(timeout=LONG)  # its curves are back too
    assert run_status(run_dir)["state"] == "running"
    assert_no_exception(page)
    shoot(page, ARTIFACTS, "05-reattached-after-reload")

    stop_button(page, run_dir).click()
    page.get_by_text("Stopped (stopped by the user)").wait_for(timeout=LONG)
    assert "stopped" in job_header(page, run_dir).inner_text()
    assert run_status(run_dir)["state"] == "stopped"
    assert_no_exception(page)
    shoot(page, ARTIFACTS, "05-stopped")


# --------------------------------------------------------------------------- 6. two sessions


def test_two_sessions_share_the_running_job_and_a_second_start_is_refused(server, new_page):
    first, second = new_page(), new_page()
    open_page(first, server.url, "train", "Train")
    run_dir = start_job(first, server, epochs=OUTLIVING_EPOCHS)
    job_header(first, run_dir).wait_for(timeout=LONG)

    open_page(second, server.url, "train", "Train")
    job_header(second, run_dir).wait_for(timeout=LONG)  # the other session's job, seen from here
    before = server.run_dirs()
    fill_train_form(second, server.data, epochs=1)
    second.get_by_role("button", name="Start training").click()
    refusal = second.locator('[data-testid="stAlertContentError"]', has_text="already running")
    refusal.wait_for(timeout=LONG)
    assert run_dir.name in refusal.inner_text()
    assert server.run_dirs() == before, "the refused start left a run directory"
    assert run_status(run_dir)["state"] in ("queued", "running")
    for page in (first, second):
        settle(page)
        page.locator(f"{PLOTLY} .main-svg").first.wait_for(timeout=LONG)
    # The curves mean the job has been running for a while: the page redrew itself when it started
    # (queued -> running), and the refusal, which the user has not acted on, is still there.
    assert run_status(run_dir)["state"] == "running"
    settle(second)
    assert refusal.count() == 1, "the refusal vanished when the other job moved on"
    assert_no_exception(second)
    shoot(first, ARTIFACTS, "06-session-a")
    refusal.scroll_into_view_if_needed()
    shoot(second, ARTIFACTS, "06-session-b-refused")

    stop_button(second, run_dir).click()  # either session may stop it
    for page in (first, second):
        page.get_by_text("Stopped (stopped by the user)").wait_for(timeout=LONG)
    assert run_status(run_dir)["state"] == "stopped"
    shoot(first, ARTIFACTS, "06-session-a-stopped")
