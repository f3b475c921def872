"""Real-browser tests of the Train page for what AppTest cannot do: press Enter in a form box, and
watch the page while only its live fragment reruns (the runs table and a refused Start must follow
the job's state when it ends).

One `streamlit run` server for the module, with a temporary PATCHLENS_HOME and a tiny Kaggle-layout
copy of 40 real bundled patches as the only data root. Screenshots go to
test-artifacts/browser/train-<step>.png. Every job and the server's process group end at teardown.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    assert_no_exception,
    choose,
    free_port,
    job_pids,
    run_status,
    selectbox,
    settle,
    shoot,
    slider_thumb,
    start_server,
    stop_jobs,
    stop_process_group,
    wait_healthy,
    wait_title,
)

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing: the browser tests need Debian's chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

from page_helpers import copy_kaggle_subset  # noqa: E402

from core.runs import STARTING_TEXT  # noqa: E402
from core.settings import PROJECT_DIR  # noqa: E402

pytestmark = pytest.mark.browser

ARTIFACTS = PROJECT_DIR / "test-artifacts" / "browser"
LONG = 120_000  # ms: TensorFlow's first import on two busy cores
FORM = '[data-testid="stForm"]'
ERROR = '[data-testid="stAlertContentError"]'


class Server:
    def __init__(self, url: str, home: Path, data: Path):
        self.url, self.home, self.data = url, home, data

    def run_dirs(self) -> set[Path]:
        runs = self.home / "runs"
        return (
            {p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")}
            if runs.is_dir()
            else set()
        )


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-train")
    data = copy_kaggle_subset(root / "data" / "kaggle", 20)
    home = root / "home"
    env = dict(os.environ)
    env.update(
        PATCHLENS_HOME=str(home),
        PATCHLENS_DATA_ROOTS=str(root / "data"),
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    log = root / "streamlit.log"
    process = start_server(PROJECT_DIR, port, env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log)
        yield Server(url, home, data)
    finally:
        stop_jobs(home)
        stop_process_group(process)
        stop_jobs(home)
    assert process.poll() is not None, "the streamlit server is still running"
    assert not job_pids(home), "a training process outlived the tests"


@pytest.fixture()
def new_page(browser, server):
    """Pages in fresh browser contexts (= fresh Streamlit sessions); jobs stopped afterwards."""
    contexts = []

    def make():
        context = browser.new_context(viewport={"width": 1440, "height": 1600})
        context.set_default_timeout(60_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{server.url}/train")
        wait_title(page, "Train")
        settle(page)
        assert_no_exception(page)
        return page

    yield make
    for context in contexts:
        context.close()
    stop_jobs(server.home)


def fill_form(page, data: Path, epochs: int, enter: bool = False) -> None:
    """Fill the form for a tiny job; with `enter`, the Epochs box is left by pressing Enter."""
    form = page.locator(FORM)
    area = form.locator('[data-testid="stTextArea"]').filter(has_text="Training dataset").locator("textarea")
    area.fill(str(data))
    area.press("Tab")
    choose(page, selectbox(page, "Architecture", FORM), "tiny")
    batch = slider_thumb(form.locator('[data-testid="stSlider"]').filter(has_text="Batch size"))
    batch.focus()
    batch.press("Home")  # the smallest batch size, 16
    number = form.locator('[data-testid="stNumberInput"]').filter(has_text="Epochs").locator("input")
    number.fill(str(epochs))
    number.press("Enter" if enter else "Tab")


def start(page, server) -> Path:
    before = server.run_dirs()
    page.get_by_role("button", name="Start training").click()
    deadline = time.time() + 30
    while time.time() < deadline:
        new = server.run_dirs() - before
        if new:
            (run_dir,) = new
            return run_dir
        time.sleep(0.2)
    raise AssertionError("Start training created no run directory")


def row_cells(page, run_dir: Path) -> list[str]:
    """The runs table's cells for `run_dir`, read from the data grid's accessible (hidden) table."""
    row = page.locator('[data-testid="stDataFrame"] tbody [role="row"]', has_text=run_dir.name).first
    row.wait_for(state="attached")
    return [cell.strip() for cell in row.locator('[role="gridcell"]').all_text_contents()]


def test_enter_in_the_epochs_box_does_not_start_a_job(server, new_page):
    page = new_page()
    fill_form(page, server.data, epochs=1, enter=True)
    page.wait_for_timeout(3000)  # room for the rerun a submit would cause
    settle(page)
    assert_no_exception(page)
    shoot(page, ARTIFACTS, "train-01-after-enter")
    assert server.run_dirs() == set(), "Enter in the Epochs box started a job"

    run_dir = start(page, server)  # the button still does
    progress = page.locator('[data-testid="stProgress"]')
    finished = page.get_by_text("Finished in")
    seen = []
    deadline = time.time() + 240
    while time.time() < deadline and finished.count() == 0:
        if progress.count():
            seen.append(progress.first.inner_text().strip())
        time.sleep(0.3)
    assert finished.count() == 1, f"not finished: {run_status(run_dir)}"
    settle(page)
    shoot(page, ARTIFACTS, "train-01-finished")
    assert STARTING_TEXT in seen, seen
    assert not [text for text in seen if "epoch 0/" in text or "step 0/" in text], seen
    assert row_cells(page, run_dir)[:2] == [run_dir.name, "finished"]


def test_a_refused_start_clears_and_the_table_follows_when_the_job_ends(server, new_page):
    first, second = new_page(), new_page()
    fill_form(first, server.data, epochs=50)
    run_dir = start(first, server)
    first.get_by_text(run_dir.name).first.wait_for(timeout=LONG)

    second.locator('[data-testid="stMarkdownContainer"]', has_text=f"{run_dir.name} —").first.wait_for(
        timeout=LONG
    )
    settle(second)
    fill_form(second, server.data, epochs=1)
    second.get_by_role("button", name="Start training").click()
    refusal = second.locator(ERROR, has_text="already running")
    refusal.wait_for(timeout=LONG)
    assert run_dir.name in refusal.inner_text()
    shoot(second, ARTIFACTS, "train-02-refused")

    first.get_by_text("step").first.wait_for(timeout=LONG)  # it trains; now stop it from the first session
    first.locator(f".st-key-stop-{run_dir.name} button").click()
    second.get_by_text("Stopped (stopped by the user)").wait_for(timeout=LONG)
    refusal.wait_for(state="detached", timeout=LONG)
    settle(second)
    assert_no_exception(second)
    shoot(second, ARTIFACTS, "train-02-stopped")
    assert row_cells(second, run_dir)[:2] == [run_dir.name, "stopped"]
