"""Real-browser tests of the Train page for what AppTest cannot do: press Enter in a form box, and
watch the page while only its live fragment reruns (the runs table and a refused Start must follow
the job's state when it ends; the ETA while it runs, the chart's legend once it has ended; a run
stopped inside an epoch and resumed).

One `streamlit run` server for the module, with a temporary PATCHLENS_HOME and a tiny Kaggle-layout
copy of 40 real bundled patches as the only data root. Screenshots go to
test-artifacts/browser/train-<step>.png. Every job and the server's process group end at teardown.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from browser_helpers import (
    ARTIFACTS,
    OUTLIVING_EPOCHS,
    PROGRESS,
    assert_no_exception,
    contexts,
    fill_train_form,
    multiselect_add,
    open_page,
    require_browser,
    run_status,
    serve_app,
    settle,
    shoot,
    start_training,
    wait_until,
)

sync_api = require_browser()

from page_helpers import copy_kaggle_subset  # noqa: E402

from core.jobs.status import QUEUED_PHASE  # noqa: E402
from core.train.runs import STARTING_TEXT  # noqa: E402

LONG = 120_000  # ms: TensorFlow's first import on two busy cores
ERROR = '[data-testid="stAlertContentError"]'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-train")
    data = copy_kaggle_subset(root / "data" / "kaggle", 20)
    copy_kaggle_subset(
        root / "data" / "larger", 160
    )  # 16 steps an epoch at batch 16: room to stop inside one
    # Runs train on the shared workers: TensorFlow never runs in the server, so no warm-up
    with serve_app(root, {"PATCHLENS_WARMUP": "0"}, data=data) as served:
        yield served


@pytest.fixture()
def new_page(browser, server):
    """Pages in fresh browser contexts (= fresh Streamlit sessions) on /train; jobs stopped afterwards."""
    with contexts(browser, server.home, height=1600) as make:

        def make_on_train():
            page = make()
            open_page(page, server.url, "train", "Train")
            return page

        yield make_on_train


def row_cells(page, run_dir: Path) -> list[str]:
    """The runs table's cells for `run_dir`, read from the data grid's accessible (hidden) table."""
    row = page.locator('[data-testid="stDataFrame"] tbody [role="row"]', has_text=run_dir.name).first
    row.wait_for(state="attached")
    return [cell.strip() for cell in row.locator('[role="gridcell"]').all_text_contents()]


def followed_row(page, run_dir: Path, state: str, timeout: float = 60) -> list[str]:
    """row_cells once the run's status cell reads `state`, or at the timeout: the grid can trail the
    alert above it by a redraw on two busy cores."""
    wait_until(lambda: row_cells(page, run_dir)[:2] == [run_dir.name, state], timeout=timeout)
    return row_cells(page, run_dir)


def test_enter_in_the_epochs_box_does_not_start_a_job(server, new_page):
    page = new_page()
    fill_train_form(page, server.data, epochs=1, enter=True)
    page.wait_for_timeout(3000)  # room for the rerun a submit would cause
    settle(page)
    assert_no_exception(page)
    shoot(page, ARTIFACTS, "train-01-after-enter")
    assert server.run_dirs() == set(), "Enter in the Epochs box started a job"

    run_dir = start_training(page, server)  # the button still does
    progress = page.locator(PROGRESS)
    finished = page.get_by_text("Finished in")
    seen = []
    deadline = time.time() + 240
    while time.time() < deadline and finished.count() == 0:
        if progress.count():
            try:  # the bar may vanish between count() and inner_text(): the job just ended
                seen.append(progress.first.inner_text(timeout=2000).strip())
            except sync_api.TimeoutError:
                pass
        time.sleep(0.3)
    assert finished.count() == 1, f"not finished: {run_status(run_dir)}"
    settle(page)
    shoot(page, ARTIFACTS, "train-01-finished")
    assert {QUEUED_PHASE, STARTING_TEXT} & set(seen), seen  # words before the first batch
    assert not [text for text in seen if "epoch 0/" in text or "step 0/" in text], seen
    assert row_cells(page, run_dir)[:2] == [run_dir.name, "finished"]


def test_a_refused_start_clears_and_the_table_follows_when_the_job_ends(server, new_page):
    first, second = new_page(), new_page()
    fill_train_form(first, server.data, epochs=OUTLIVING_EPOCHS)
    run_dir = start_training(first, server)
    first.get_by_text(run_dir.name).first.wait_for(timeout=LONG)

    # The second session was idle when the job started: it shows the job at its next rerun (an idle
    # Train page does not refresh by itself; a refresh closed any list the user had open).
    settle(second)
    fill_train_form(second, server.data, epochs=1)
    second.get_by_role("button", name="Start training").click()
    refusal = second.locator(ERROR, has_text="already running")
    refusal.wait_for(timeout=LONG)
    assert run_dir.name in refusal.inner_text()
    second.locator('[data-testid="stMarkdownContainer"]', has_text=f"{run_dir.name} —").first.wait_for(
        timeout=LONG
    )
    shoot(second, ARTIFACTS, "train-02-refused")

    first.get_by_text("step").first.wait_for(timeout=LONG)  # it trains; now stop it from the first session
    first.locator(f".st-key-stop-{run_dir.name} button").click()
    try:
        second.get_by_text("Stopped (stopped by the user)").wait_for(timeout=LONG)
    except sync_api.TimeoutError:  # say what the job and both sessions were at, not only that it timed out
        shoot(first, ARTIFACTS, "train-02-first-without-stopped")
        shoot(second, ARTIFACTS, "train-02-second-without-stopped")
        raise AssertionError(("the second session never read Stopped", run_status(run_dir))) from None
    refusal.wait_for(state="detached", timeout=LONG)
    settle(second)
    assert_no_exception(second)
    shoot(second, ARTIFACTS, "train-02-stopped")
    # The table is drawn by the full rerun the live panel asks for when the job's state changes; its
    # grid can trail the alert by a redraw on two busy cores, so follow it (nothing else reruns the
    # idle page: a table that never follows still fails here).
    cells = followed_row(second, run_dir, "stopped")
    if cells[:2] != [run_dir.name, "stopped"]:
        shoot(second, ARTIFACTS, "train-02-table-did-not-follow")
    assert cells[:2] == [run_dir.name, "stopped"], cells


STOPPED = re.compile(r"in epoch (\d+) at step (\d+)/(\d+) after [\d.]+ min; (\d+) of 500 epochs complete")


def legend(page) -> set[str]:
    """The entries of the live chart's legend, as the user reads them."""
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    return {text.strip() for text in chart.locator(".legendtext").all_text_contents()}


def clipped(locator) -> bool:
    """True when the element or anything inside it shows less than its content (cut off, ellipsis)."""
    return locator.evaluate(
        "e => [e, ...e.querySelectorAll('*')].some(n => n.scrollWidth > n.clientWidth + 1)"
    )


def follow_progress(page, until, timeout: float = 240) -> list[str]:
    """The progress bar's texts, read until `until(texts)` is true."""
    progress, seen = page.locator(PROGRESS), []
    deadline = time.time() + timeout
    while time.time() < deadline and not until(seen):
        if progress.count():
            try:
                seen.append(progress.first.inner_text(timeout=2000).strip())
            except sync_api.TimeoutError:
                pass
        time.sleep(0.2)
    return seen


def test_stop_inside_an_epoch_then_resume_with_new_epochs(server, new_page):
    page = new_page()
    fill_train_form(page, server.data.parent / "larger", epochs=500)  # stopped long before the end
    run_dir = start_training(page, server)
    stopped = page.get_by_text("Stopped (stopped by the user)")
    seen = follow_progress(page, lambda texts: any(re.match(r"epoch ([2-9]|\d\d+)/500", t) for t in texts))
    # Plotly paints the live chart a moment after the progress line it is drawn with
    painted = wait_until(lambda: "train (running)" in legend(page), timeout=60)
    assert painted, (legend(page), seen[-3:], run_status(run_dir))
    shoot(page, ARTIFACTS, "train-03-running")
    page.locator(f".st-key-stop-{run_dir.name} button").click()
    stopped.wait_for(timeout=LONG)
    settle(page)
    shoot(page, ARTIFACTS, "train-03-stopped")
    assert_no_exception(page)

    # the ETA is never a number before a steady step has been timed (the warm-up made it 11 minutes)
    assert all("ETA after a few steps" in t for t in seen if t.startswith("epoch 1/500 · step 1/")), seen
    assert any(re.search(r"ETA \d+\.\d min", t) for t in seen), seen
    outcome = stopped.inner_text()
    epoch, step, steps, complete = map(int, STOPPED.search(outcome).groups())
    assert complete == (epoch - 1 if step < steps else epoch), outcome
    assert ("Best val AUC" if complete else "No epoch was completed") in outcome, outcome
    assert not {entry for entry in legend(page) if "running" in entry}, legend(page)
    cells = followed_row(page, run_dir, "stopped")
    assert cells[:2] == [run_dir.name, "stopped"] and any(c.startswith(f"{complete}/500") for c in cells), (
        cells
    )

    # Resume asks for the epochs first, then continues in the original numbering
    picker = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Choose runs")
    multiselect_add(page, picker, run_dir.name)
    make_active = page.get_by_role("button", name=f"Make {run_dir.name} the active model")
    make_active.wait_for(timeout=LONG)
    assert not clipped(make_active), f"the label of {make_active.inner_text()!r} is clipped"
    runs_before = server.run_dirs()
    page.get_by_role("button", name=f"Resume {run_dir.name}").click()
    epochs = page.get_by_role("spinbutton", name=re.compile("Epochs in total"))
    epochs.wait_for(timeout=LONG)
    assert server.run_dirs() == runs_before, "Resume started a run before asking for its epochs"
    epochs.fill(str(complete + 1))
    epochs.press("Tab")
    settle(page)
    shoot(page, ARTIFACTS, "train-04-resume-asks")
    page.get_by_role("button", name=f"Start resumed run of {run_dir.name}").click()
    assert wait_until(lambda: server.run_dirs() - runs_before, timeout=30)
    (resumed_dir,) = server.run_dirs() - runs_before
    finished = page.get_by_text("Finished in")
    finished.wait_for(timeout=LONG * 2)
    settle(page)
    shoot(page, ARTIFACTS, "train-04-resumed")
    assert f"Resumed from {run_dir.name} at epoch" in finished.inner_text()
    header = page.locator('[data-testid="stMarkdownContainer"]', has_text=f"{resumed_dir.name} —").first
    assert f"resumed from {run_dir.name}" in header.inner_text()
    cells = row_cells(page, resumed_dir)
    assert any(c.startswith(f"{complete + 1}/{complete + 1}") for c in cells), cells
