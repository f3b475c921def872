"""A new user's first hour (issue 9), walked in a real Chromium against a real `streamlit run` server.

open my own dataset → train a short run → make it active → evaluate (threshold where I put it) →
predict → mistakes → reload → a second session.

The user's "own dataset" is 200 real bundled patches re-saved as class folders 0/ and 1/ of PNGs (a
layout the bundled sample does not use), in a data root given by PATCHLENS_DATA_ROOTS; PATCHLENS_HOME
is a fresh temporary workspace. Every number the pages show for it is compared with what the command
line gives for the same files (`python -m core inspect`; `python -m core predict` and `evaluate
--no-cache`, which run the same model file afresh in a process of their own).

Each step asserts what a user sees (texts, numbers, widget values) through labels and headings, never
positions. Checks that a user would notice but that leave the journey walkable are collected, so one
run names every broken step; a step that cannot go on stops the test with what was collected so far.
Screenshots: test-artifacts/browser/journey-*.png.

The wording the journey looks for lives in the constants below (one place to adjust).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from browser_helpers import (
    APP,
    ARTIFACTS,
    EXCEPTION,
    PLOTLY,
    SIDEBAR,
    SLIDER,
    ServedApp,
    button,
    choose,
    click_radio,
    confusion_cells,
    core_process,
    epochs_input,
    go_nav,
    metric_value,
    multiselect_add,
    new_session,
    radio_choice,
    require_browser,
    run_status,
    select_table_row,
    selectbox,
    serve_app,
    set_slider,
    settle,
    shoot,
    sidebar_text,
    slider_thumb,
    slider_value,
    wait_title,
    wait_until,
)

sync_api = require_browser()

from core.formatting import NAME_IN_TEXT, short_name  # noqa: E402
from core.settings import SAMPLE_DATASET  # noqa: E402

# ---- the wording the journey looks for (one place to adjust it) --------------------------------------
OPEN_PATH_BOX = "Open a dataset by path"  # the sidebar's text box
OPEN_BUTTON = re.compile(r"^\s*Open\s*$")
START_TRAINING = "Start training"
FINISHED = re.compile(r"Finished in")  # the Train page's message when the job is done
RUN_PICKER = "Choose runs"  # the Train page's multiselect of runs (else: select rows of its runs table)
MAKE_ACTIVE = re.compile(r"Make .+ the active model")  # the Train page's button for a chosen run
SOURCE_RADIO = "Predictions"  # Evaluate/Mistakes: where the predictions come from
ACTIVE_SOURCE = re.compile(r"active model", re.IGNORECASE)  # ... the active model on the active dataset
RUN_THE_MODEL = re.compile(r"Run the model")  # starts the evaluation of the active model (a job soon)
NOT_COMPUTED = "not computed yet"  # shown while no predictions of (active model, dataset) exist
THRESHOLD = "Threshold"  # the shared threshold slider's label starts with this
THRESHOLD_CAPTION = re.compile(r"at threshold (\d\.\d{3})")  # Evaluate's caption under the cards
RERUN_TOGGLE = "Log count axis"  # any Evaluate control that reruns the page without touching the threshold
PROBABILITY_TEXT = re.compile(r"P\(tumour\)\s+(\d\.\d{4})")  # Predict's text beside each patch
CALL_TEXT = "call at {threshold:.3f}"  # ... and its call at the threshold in force
QUERY_PARAMS = ("dataset", "model", "threshold")  # what a shared URL carries

# ---- the journey's data ----------------------------------------------------------------------------
MULTISELECT = '[data-testid="stMultiSelect"]'
DATAFRAME = '[data-testid="stDataFrame"]'
PER_CLASS = 100
DATASET_NAME = "my-patches"
DEFAULT_THRESHOLD = 0.5
THRESHOLD_DIGITS = 3  # the slider's step is 0.001
LONG = 240  # s: TensorFlow's first import + a model load + a job, on two busy cores


def build_class_folders(target: Path, per_class: int) -> Path:
    """Class folders 0/ and 1/ of PNGs holding the first `per_class` real sample patches of each class."""
    from PIL import Image

    from core.data.images import decode_patch

    with open(SAMPLE_DATASET / "train_labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for label in ("0", "1"):
        folder = target / label
        folder.mkdir(parents=True)
        for row in [r for r in rows if r["label"] == label][:per_class]:
            pixels = decode_patch(SAMPLE_DATASET / "train" / f"{row['id']}.tif")
            Image.fromarray(pixels).save(folder / f"{row['id']}.png")
    return target


def solid_image(path: Path, rgb=(0, 0, 255)) -> Path:
    """A 96x96 image of one colour: not tissue, yet a valid upload."""
    from PIL import Image

    Image.new("RGB", (96, 96), rgb).save(path)
    return path


def cli(env: dict, *args: str) -> subprocess.Popen:
    return core_process(env, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cli_json(process: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out)


def threshold_between_the_scores(submission: Path) -> float:
    """Where a user puts the threshold after a look at the score histogram: in the middle of the
    scores (a short run's scores crowd near 0.5), on the slider's 0.001 grid, and as far as possible
    from every score so that float noise between two runs of the model cannot flip a call."""
    import numpy as np

    with open(submission, newline="") as handle:
        scores = np.sort([float(row["label"]) for row in csv.DictReader(handle)])
    low, high = np.quantile(scores, [0.3, 0.7])
    grid = np.round(np.arange(round(low, THRESHOLD_DIGITS), high + 1e-3, 1e-3), THRESHOLD_DIGITS)
    grid = grid[np.abs(grid - DEFAULT_THRESHOLD) > 1e-9]
    assert len(grid), f"no threshold between the scores {low:.4f}–{high:.4f}"
    distance = [np.min(np.abs(scores - g)) for g in grid]
    return float(grid[int(np.argmax(distance))])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey")
    data = build_class_folders(root / "data" / DATASET_NAME, PER_CLASS)
    (root / "uploads").mkdir()
    with serve_app(root, data=data) as served:
        yield served


# --------------------------------------------------------------------------- the journey's bookkeeping


IMAGES_IN_VIEW_LOADED = """() => [...document.querySelectorAll('[data-testid="stMain"] img')]
    .filter(img => { const r = img.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })
    .every(img => img.complete && img.naturalWidth > 0)"""


class Journey:
    """Collects what a user would see go wrong, step by step, and screenshots each step."""

    def __init__(self, page):
        self.page = page
        self.step = "start"
        self.failures: list[str] = []
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}  # for the report only; nothing asserts on time

    def begin(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[self.step] = round(now - self.started, 1)
        self.step, self.started = step, now

    def timings(self) -> str:
        self.begin("end")
        return "seconds per step: " + ", ".join(f"{k} {v}" for k, v in self.seconds.items())

    def expect(self, ok: bool, message: str) -> bool:
        if not ok:
            self.failures.append(f"[{self.step}] {message}")
        return ok

    def equal(self, seen, wanted, what: str) -> bool:
        return self.expect(seen == wanted, f"{what}: the page shows {seen!r}, expected {wanted!r}")

    def open_step(self, step: str, label: str):
        """Begin `step` on the page `label` opened from the navigation, with no exception box: the page."""
        self.begin(step)
        open_by_nav(self.page, label)
        self.no_exception()
        return self.page

    def no_exception(self, page=None) -> None:
        boxes = (page or self.page).locator(EXCEPTION)
        self.expect(boxes.count() == 0, "exception box: " + " | ".join(boxes.all_inner_texts())[:1500])

    def shoot(self, name: str, page=None, show=None) -> None:
        """A screenshot once the images in view have loaded; `show` is scrolled into view first."""
        page = page or self.page
        if show is not None and show.count():
            show.first.scroll_into_view_if_needed()
        try:
            page.wait_for_function(IMAGES_IN_VIEW_LOADED, timeout=15_000)
        except sync_api.TimeoutError:
            pass  # the screenshot then shows what a user would see: images still loading
        shoot(page, ARTIFACTS, f"journey-{name}")

    def report(self, stopped: str | None = None) -> str:
        lines = [f"{len(self.failures)} thing(s) a user would see go wrong:", *self.failures]
        if stopped:
            lines.append(f"and the journey could not go on at [{self.step}]: {stopped}")
        return "\n".join(lines)


def names_in_sidebar(page, *names: str) -> bool:
    text = sidebar_text(page)
    return all(name in text for name in names)


def open_by_nav(page, label: str) -> None:
    go_nav(page, label)
    wait_title(page, label)
    settle(page)


def caption_threshold(page) -> float | None:
    found = page.get_by_text(THRESHOLD_CAPTION)
    if found.count() == 0:
        return None
    return float(THRESHOLD_CAPTION.search(found.first.inner_text()).group(1))


def confusion_chart(page):
    return page.locator(PLOTLY).filter(has=page.locator("text", has_text="TN"))


def evaluate_view(page) -> dict:
    """What Evaluate says about the threshold: the slider, the caption, the matrix's axis title."""
    chart = confusion_chart(page)
    axis = chart.first.locator("text", has_text="prediction at") if chart.count() else None
    axis_text = axis.first.text_content() if axis is not None and axis.count() else ""
    match = re.search(r"prediction at (\d\.\d{3})", axis_text)
    return {
        "slider": slider_value(page, THRESHOLD),
        "caption": caption_threshold(page),
        "matrix axis": float(match.group(1)) if match else None,
    }


def threshold_agrees(page, value: float) -> bool:
    view = evaluate_view(page)
    return all(v is not None and abs(v - value) < 5e-4 for v in view.values())


def rerun(page, action) -> None:
    """Do something that reruns the page, and wait until that rerun is over."""
    action()
    try:  # a quick rerun may be over before it is seen running: then settle() alone is right
        page.wait_for_selector(f'{APP}[data-test-script-state="running"]', timeout=3000)
    except sync_api.TimeoutError:
        pass
    settle(page)


def results_or_not(page) -> None:
    """Wait until Evaluate shows its results or says they are not computed, and any rerun that
    follows a new session's first run (the URL brought in step with the session) is over."""
    wait_until(lambda: metric_value(page, "AUC") is not None or page.get_by_text(NOT_COMPUTED).count(), 60)
    rerun(page, lambda: None)


# --------------------------------------------------------------------------- the steps


def step_open_dataset(journey: Journey, server: ServedApp, inspected: dict) -> None:
    page = journey.page
    journey.begin("1 open my dataset")
    page.goto(server.url)
    wait_title(page, "PatchLens")
    settle(page)
    journey.no_exception()
    box = page.locator(SIDEBAR).get_by_role("textbox", name=OPEN_PATH_BOX)
    box.fill(str(server.data))
    box.press("Tab")
    settle(page)
    button(page.locator(SIDEBAR), OPEN_BUTTON).click()
    page.locator(SIDEBAR).get_by_text(re.compile(rf"Opened .*{DATASET_NAME}")).first.wait_for(
        timeout=LONG * 1000
    )
    settle(page)
    journey.shoot("01-opened")
    journey.expect(
        names_in_sidebar(page, DATASET_NAME),
        f"the sidebar does not name {DATASET_NAME} right after Open (it says: "
        f"{' '.join(sidebar_text(page).split())[:200]!r})",
    )
    open_by_nav(page, "Dataset")
    journey.no_exception()
    journey.expect(
        names_in_sidebar(page, DATASET_NAME), f"the sidebar does not name {DATASET_NAME} on Dataset"
    )
    journey.equal(metric_value(page, "Layout"), inspected["layout"], "Dataset: layout")
    journey.equal(metric_value(page, "Patches"), f"{inspected['n_patches']:,}", "Dataset: patches")
    journey.equal(metric_value(page, "Tumour (1)"), f"{inspected['n_positive']:,}", "Dataset: tumour count")
    journey.equal(metric_value(page, "Normal (0)"), f"{inspected['n_negative']:,}", "Dataset: normal count")
    journey.shoot("02-dataset")


def step_train(journey: Journey, server: ServedApp) -> Path:
    page = journey.open_step("2 train a short run", "Train")
    form = page.locator('[data-testid="stForm"]')
    area = form.locator('[data-testid="stTextArea"]').filter(has_text="Training dataset").locator("textarea")
    area.fill(str(server.data))
    choose(page, selectbox(page, "Architecture", '[data-testid="stForm"]'), "tiny")
    epochs = epochs_input(form)
    epochs.fill("2")
    batch = slider_thumb(form.locator('[data-testid="stSlider"]').filter(has_text="Batch size"))
    batch.focus()
    batch.press("Home")  # 16: several steps an epoch on 160 training patches
    before = server.run_dirs()
    button(form, START_TRAINING).click()
    assert wait_until(lambda: server.run_dirs() - before, 60), "Start training created no run directory"
    (run_dir,) = server.run_dirs() - before
    page.get_by_text(FINISHED).first.wait_for(timeout=LONG * 1000)
    settle(page)
    assert run_status(run_dir).get("state") == "finished", run_status(run_dir)
    journey.expect(
        page.locator(f"{PLOTLY} .main-svg").count() > 0, "no training curves once the run finished"
    )
    journey.no_exception()
    journey.shoot("03-trained")
    return run_dir


def step_make_active(journey: Journey, run_dir: Path) -> None:
    page = journey.page
    journey.begin("2 make it the active model")
    make_active = button(page, MAKE_ACTIVE)
    picker = page.locator(MULTISELECT).filter(has_text=RUN_PICKER)
    if picker.count():  # runs chosen by name
        multiselect_add(page, picker.first, run_dir.name)
    else:  # runs chosen by selecting rows of the runs table (main before issue 9)
        table = page.locator(DATAFRAME).filter(has=page.locator("td", has_text=run_dir.name))
        assert table.count(), f"the Train page lists no run {run_dir.name}"
        select_table_row(page, table.last, run_dir.name)
    make_active.first.wait_for(timeout=60_000)
    settle(page)
    rerun(page, make_active.first.click)
    journey.no_exception()
    journey.expect(
        names_in_sidebar(page, run_dir.name),
        f"the sidebar does not name {run_dir.name} right after it was made active (it says: "
        f"{' '.join(sidebar_text(page).split())[:200]!r})",
    )
    journey.shoot("04-active-model")


def step_evaluate(journey: Journey, run_dir: Path, choose_threshold) -> dict:
    page = journey.open_step("3 evaluate", "Evaluate")
    journey.expect(
        names_in_sidebar(page, DATASET_NAME, run_dir.name), "the sidebar lost the dataset or model"
    )
    chosen = radio_choice(page, SOURCE_RADIO)
    if chosen is not None and not journey.expect(
        bool(ACTIVE_SOURCE.search(chosen)),
        f"Evaluate opens on {chosen!r}, not on the active model and dataset",
    ):
        rerun(page, lambda: click_radio(page, SOURCE_RADIO, ACTIVE_SOURCE))
    journey.expect(page.get_by_text(NOT_COMPUTED).count() > 0, "a never-run evaluation is not offered to run")
    journey.shoot("05-evaluate-before")
    start = button(page, RUN_THE_MODEL)
    assert start.count(), "no button to run the model on this dataset"
    start.first.click()
    page.wait_for_function(  # the results, however long the job runs (a background job polls by itself)
        "() => [...document.querySelectorAll('[data-testid=\"stMetricLabel\"]')]"
        ".some(l => l.innerText.trim() === 'AUC')",
        timeout=LONG * 1000,
    )
    settle(page)
    journey.no_exception()
    journey.shoot("06-evaluate-results")
    journey.expect(
        threshold_agrees(page, DEFAULT_THRESHOLD),
        f"once the results show, the threshold is not the {DEFAULT_THRESHOLD:.3f} in force before: "
        f"{evaluate_view(page)}",
    )
    rerun(page, lambda: page.get_by_text(RERUN_TOGGLE).first.click())
    journey.expect(
        threshold_agrees(page, DEFAULT_THRESHOLD),
        f"one rerun after the results, the threshold is not {DEFAULT_THRESHOLD:.3f}: {evaluate_view(page)}",
    )

    threshold = choose_threshold()
    set_slider(page, THRESHOLD, threshold)
    wait_until(lambda: caption_threshold(page) == threshold, 60)
    settle(page)
    for reruns in (0, 1):
        journey.expect(
            threshold_agrees(page, threshold),
            f"after setting {threshold:.3f} (+{reruns} reruns) the page disagrees: {evaluate_view(page)}",
        )
        rerun(page, lambda: page.get_by_text(RERUN_TOGGLE).first.click())
    journey.no_exception()
    journey.shoot("07-evaluate-threshold", show=page.locator(SLIDER).filter(has_text=THRESHOLD))
    return {
        "threshold": threshold,
        "auc": metric_value(page, "AUC"),
        "accuracy": metric_value(page, "Accuracy"),
        "cells": confusion_cells(confusion_chart(page).first),
    }


def step_compare_with_cli(journey: Journey, shown: dict, cli_metrics: dict) -> None:
    journey.begin("3 evaluate = the CLI")
    (tn, fp), (fn, tp) = cli_metrics["confusion"]
    journey.equal(shown["auc"], f"{cli_metrics['auc']:.3f}", "AUC card vs `core evaluate`")
    journey.equal(shown["accuracy"], f"{cli_metrics['accuracy']:.3f}", "Accuracy card vs `core evaluate`")
    journey.equal(
        shown["cells"], {"TN": tn, "FP": fp, "FN": fn, "TP": tp}, "confusion matrix vs `core evaluate`"
    )


def step_predict(journey: Journey, server: ServedApp, threshold: float) -> None:
    page = journey.open_step("4 predict", "Predict")
    journey.equal(slider_value(page, THRESHOLD), threshold, "Predict: the threshold slider")
    real = sorted((server.data / "1").glob("*.png"))[0]
    blue = solid_image(server.root / "uploads" / "blue.png")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(real), str(blue)])
    for upload in (real, blue):
        shown_name = short_name(upload.name, NAME_IN_TEXT)  # the page shortens long names
        text = page.locator('[data-testid="stMarkdownContainer"]', has_text=shown_name).filter(
            has_text=PROBABILITY_TEXT
        )
        if not journey.expect(
            wait_until(lambda t=text: t.count() > 0, LONG), f"no probability for {upload.name}"
        ):
            continue
        said = text.first.inner_text()
        probability = float(PROBABILITY_TEXT.search(said).group(1))
        journey.expect(
            0.0 <= probability <= 1.0, f"{upload.name}: P(tumour) {probability} is not a probability"
        )
        journey.expect(CALL_TEXT.format(threshold=threshold) in said, f"{upload.name}: {said!r}")
    settle(page)
    journey.no_exception()
    journey.equal(metric_value(page, "Scored"), "2", "Predict: patches scored")
    journey.equal(slider_value(page, THRESHOLD), threshold, "Predict: the threshold after scoring")
    journey.shoot("08-predict")


def step_mistakes(journey: Journey, shown: dict) -> None:
    page = journey.open_step("5 mistakes", "Mistakes")
    chosen = radio_choice(page, SOURCE_RADIO)
    journey.expect(
        chosen is None or bool(ACTIVE_SOURCE.search(chosen)),
        f"Mistakes opens on {chosen!r}, not on the active model and dataset",
    )
    journey.equal(slider_value(page, THRESHOLD), shown["threshold"], "Mistakes: the threshold slider")
    journey.equal(
        metric_value(page, "Threshold"), f"{shown['threshold']:.3f}", "Mistakes: the threshold card"
    )
    cells = shown["cells"]
    journey.equal(metric_value(page, "False positives"), f"{cells.get('FP'):,}", "Mistakes: FP vs the matrix")
    journey.equal(metric_value(page, "False negatives"), f"{cells.get('FN'):,}", "Mistakes: FN vs the matrix")
    journey.shoot("09-mistakes")


def step_reload(journey: Journey, run_dir: Path, shown: dict) -> str:
    page = journey.page
    journey.begin("6 reload")
    open_by_nav(page, "Evaluate")
    page.reload()
    wait_title(page, "Evaluate")
    settle(page)
    results_or_not(page)
    journey.no_exception()
    journey.shoot("10-reloaded")
    journey.expect(
        names_in_sidebar(page, DATASET_NAME, run_dir.name),
        f"after a reload the sidebar does not name {DATASET_NAME} and {run_dir.name} (it says: "
        f"{' '.join(sidebar_text(page).split())[:200]!r})",
    )
    journey.equal(slider_value(page, THRESHOLD), shown["threshold"], "after a reload: the threshold slider")
    journey.expect(
        page.get_by_text(NOT_COMPUTED).count() == 0, "after a reload the evaluation is 'not computed yet'"
    )
    journey.equal(metric_value(page, "AUC"), shown["auc"], "after a reload: the AUC card")
    query = {key for key, _ in _query(page.url)}
    journey.expect(
        set(QUERY_PARAMS) <= query, f"the URL {page.url} does not carry {', '.join(QUERY_PARAMS)} to share"
    )
    return page.url


def _query(url: str):
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(url).query)


def step_second_session(journey: Journey, browser, url: str, run_dir: Path, shown: dict) -> None:
    journey.begin("7 a second session on the shared URL")
    context = new_session(browser)
    try:
        page = context.new_page()
        page.goto(url)
        wait_title(page, "Evaluate")
        settle(page)
        results_or_not(page)
        journey.no_exception(page)
        journey.shoot("11-second-session", page)
        journey.expect(
            names_in_sidebar(page, DATASET_NAME, run_dir.name),
            f"a second session on {url} does not show {DATASET_NAME} and {run_dir.name} (it says: "
            f"{' '.join(sidebar_text(page).split())[:200]!r})",
        )
        journey.equal(
            slider_value(page, THRESHOLD), shown["threshold"], "second session: the threshold slider"
        )
        journey.equal(metric_value(page, "AUC"), shown["auc"], "second session: the AUC card")
    finally:
        context.close()


# --------------------------------------------------------------------------- the test


def test_a_new_users_first_hour(server, browser, tmp_path):
    inspect = cli(server.env, "inspect", str(server.data), "--json")
    cli_env = dict(server.env, PATCHLENS_HOME=str(tmp_path / "cli-home"))  # its own prediction cache
    scores, evaluation = None, None
    context = new_session(browser)
    journey = Journey(context.new_page())

    def choose_threshold() -> float:  # then the CLI evaluates the same model file at it, meanwhile
        nonlocal evaluation
        _, err = scores.communicate(timeout=300)
        assert scores.returncode == 0, err[-3000:]
        threshold = threshold_between_the_scores(tmp_path / "scores.csv")
        evaluation = cli(
            cli_env, "evaluate", str(model_file), str(server.data),
            "--threshold", str(threshold), "--json", "--no-cache",
        )  # fmt: skip
        return threshold

    try:
        step_open_dataset(journey, server, cli_json(inspect))
        run_dir = step_train(journey, server)
        model_file = run_dir / "model.keras"
        scores = cli(
            cli_env, "predict", str(model_file), str(server.data), "--out", str(tmp_path / "scores.csv")
        )
        step_make_active(journey, run_dir)
        shown = step_evaluate(journey, run_dir, choose_threshold)
        step_predict(journey, server, shown["threshold"])
        step_mistakes(journey, shown)
        step_compare_with_cli(journey, shown, cli_json(evaluation))
        url = step_reload(journey, run_dir, shown)
        step_second_session(journey, browser, url, run_dir, shown)
    except Exception as error:  # a step that cannot go on: say so beside what was collected
        try:
            journey.shoot(f"stopped-{re.sub(r'[^a-z0-9]+', '-', journey.step)}")
        except sync_api.Error:
            pass
        print(journey.timings())
        raise AssertionError(journey.report(stopped=f"{type(error).__name__}: {error}")) from error
    finally:
        context.close()
        for process in (inspect, scores, evaluation):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    print(journey.timings())
    assert not journey.failures, journey.report()
