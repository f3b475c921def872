"""Helpers for the real-browser tests (tests/test_browser_*.py): the one home of their set-up (a
Chromium launch, a Streamlit server in its own process group with a temporary workspace, the suite's
shared cluster of warm engine workers, fresh browser sessions, job clean-up) and of a few Playwright moves on Streamlit 1.67's DOM.

Not a test module (no test_ prefix). Nothing here imports TensorFlow or Streamlit, and Playwright only
inside `launch_browser`, so a module can import this and still skip when Playwright is missing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.jobs.status import ACTIVE_STATES
from core.settings import BASELINE_MODEL, PROJECT_DIR
from core.train.runs import pid_alive

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium-headless-shell: the same Blink without the full browser around it, 30 % less CPU
# per page than `chromium --headless=new` here (bench/bench_browser.py); used when it is installed
HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JOB_MS = 300_000  # a background job imports TensorFlow and loads the model on two busy cores
# a page load, click or element of a script run: a server shares two busy cores with Chromium and the
# engine workers, so it may wait its turn (a wait that is met returns at once; only a failure waits this long)
WAIT_MS = 120_000
# Every session asks for reduced motion and gets a style sheet that turns CSS animations and transitions
# off: Streamlit's spinners, fades and status icon otherwise keep the compositor drawing frames. Chromium
# used 21 % less CPU for the same tests (test_browser_train: 66.8 and 65.4 CPU-s against 53.2 and 51.4,
# alternating runs); what the tests read and assert is the same.
NO_MOTION_JS = """document.addEventListener("DOMContentLoaded", () => {
    const style = document.createElement("style");
    style.textContent = "*, *::before, *::after { animation: none !important; transition: none !important; }";
    document.head.appendChild(style);
});"""
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "browser"  # where every browser test leaves its screenshots

# Streamlit 1.67 selectors
APP = '[data-testid="stApp"]'
EXCEPTION = '[data-testid="stException"]'
STATUS_WIDGET = '[data-testid="stStatusWidget"]'
SIDEBAR = '[data-testid="stSidebar"]'
NAV_LINK = (
    '[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]'  # the app's own navigation (ui/frame.py)
)
SELECTBOX = '[data-testid="stSelectbox"]'
PLOTLY = '[data-testid="stPlotlyChart"]'
PROGRESS = '[data-testid="stProgress"]'


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(project: Path, port: int, env: dict, log: Path) -> subprocess.Popen:
    """`streamlit run streamlit_app.py` in a new process group (so the whole group can be killed)."""
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",  # other people edit the tree meanwhile; no reload notices, no watcher CPU
    ]
    handle = open(log, "wb")  # closed in stop_process_group
    process = subprocess.Popen(
        command,
        cwd=project,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    process.log_handle = handle  # type: ignore[attr-defined]
    return process


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"streamlit not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_process_group(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left."""
    try:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, if any
        except (ProcessLookupError, PermissionError):
            pass
        process.wait(timeout=5)
    finally:
        handle = getattr(process, "log_handle", None)
        if handle is not None:
            handle.close()


def core_process(env: dict, *arguments: str, **popen) -> subprocess.Popen:
    """`python -m core ARGUMENTS` started from the project root in the environment `env` (a server's)."""
    return subprocess.Popen([sys.executable, "-m", "core", *arguments], cwd=PROJECT_DIR, env=env, **popen)


def run_status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def job_pids(workspace: Path) -> list[int]:
    """Pids of the training processes of runs in `workspace` that are still active (queued or running)
    and alive. On the shared cluster a run's pid is a warm worker's, alive after its run ended: a run
    counts only while its status says it is active."""
    return _active_pids((workspace / "runs").glob("*/status.json"))


def active_job_pids(home: Path) -> list[int]:
    """job_pids, for every kind of job of the workspace `home` (runs, prediction, region, slides … jobs:
    every status.json under it)."""
    return _active_pids(home.rglob("status.json") if home.is_dir() else [])


def _active_pids(status_files) -> list[int]:
    """The live pids (not this process's) of the jobs whose status.json says queued or running."""
    pids = []
    for status_file in status_files:
        status = run_status(status_file.parent)
        pid = status.get("pid")
        if status.get("state") in ACTIVE_STATES and pid and pid != os.getpid() and pid_alive(pid):
            pids.append(int(pid))
    return pids


def _signal(pids, signum: int) -> None:
    """Send `signum` to each of `pids` except the shared cluster's workers: a job there ends at its
    stop request, and the worker runs the next server's jobs."""
    spared = shared_worker_pids()
    for pid in pids:
        if pid not in spared:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


def _stop_and_wait(home: Path, folders, find_pids, timeout: float) -> None:
    """A stop request in each active job folder of `folders`, SIGTERM to their own processes, a wait
    until none is active and alive (a job on a shared worker ends at its next batch), SIGKILL to what
    is left of their own processes."""
    for status_file in folders:
        if run_status(status_file.parent).get("state") in ACTIVE_STATES:
            (status_file.parent / "stop.request").touch()
    _signal(find_pids(home), signal.SIGTERM)
    wait_until(lambda: not find_pids(home), timeout)
    _signal(find_pids(home), signal.SIGKILL)


def stop_jobs(workspace: Path, timeout: float = 60.0) -> None:
    """End every training job of `workspace`: a stop request, then SIGTERM, then SIGKILL (never to a
    shared worker: its job ends at the stop request, waited for here)."""
    _stop_and_wait(workspace, list((workspace / "runs").glob("*/status.json")), job_pids, timeout)


def stop_workspace_jobs(home: Path, timeout: float = 60.0) -> None:
    """End every job of the workspace `home`, of any kind, as stop_jobs ends its training jobs."""
    folders = list(home.rglob("status.json")) if home.is_dir() else []
    _stop_and_wait(home, folders, active_job_pids, timeout)


# --------------------------------------------------------------------------- the shared cluster

# The suite's one real Dask LocalCluster of warm workers (TensorFlow imported once, models cached),
# started when first asked for: every test server runs its jobs there (PATCHLENS_SCHEDULER in
# app_env) instead of starting an embedded engine of its own, and so does the pytest process
# (core.jobs.engine.use) from then on. Two workers: the engine's tests need two (a stop with both
# busy, a killed worker's job rerun by the other). core.jobs.worker runs each task with its
# launcher's PATCHLENS_* settings, so servers with different workspaces share the workers.
SHARED_WORKERS = 2
_shared: dict = {"cluster": None, "client": None}


def shared_cluster():
    """The shared LocalCluster (started now if it is not yet), its workers all joined; this process's
    job engine runs on it from the first call."""
    if _shared["cluster"] is None:
        from distributed import Client

        from core.jobs import engine

        cluster = engine.local_cluster(n_workers=SHARED_WORKERS, threads_per_worker=1)
        _shared["cluster"], _shared["client"] = cluster, Client(cluster, set_as_default=False)
        engine.use(cluster.scheduler_address)
    wait_for_shared_workers()
    return _shared["cluster"]


def shared_address() -> str | None:
    """The shared cluster's scheduler address, or None while it is not started."""
    cluster = _shared["cluster"]
    return cluster.scheduler_address if cluster is not None else None


def wait_for_shared_workers(timeout: float = 300.0) -> None:
    """Wait until all SHARED_WORKERS have joined (a killed worker is restarted by its nanny)."""
    if _shared["client"] is not None:
        _shared["client"].wait_for_workers(SHARED_WORKERS, timeout=timeout)


def shared_worker_pids() -> set[int]:
    """The pids of the shared cluster's workers (none while it is not started)."""
    client = _shared["client"]
    if client is None:
        return set()
    return {int(pid) for pid in client.run(os.getpid).values()}


@contextmanager
def hold_shared_workers(timeout: float = 120.0) -> Iterator[None]:
    """Keep every shared worker busy until the block ends, as a lab's busy cluster would: a job
    submitted meanwhile waits `queued`, so its panel is on the page however fast the job itself is.
    Each worker runs one task that waits for a Dask Event; the block starts once all of them run."""
    import uuid

    from distributed import Event, Queue

    client = _shared["client"]
    name = f"patchlens-hold-{uuid.uuid4().hex}"
    started, release = Queue(name, client=client), Event(name, client=client)

    def hold() -> None:  # nested: pickled by value, as the workers cannot import this module
        from distributed import Event, Queue

        Queue(name).put(True)
        Event(name).wait()

    futures = [
        client.submit(hold, key=f"{name}-{index}", workers=[address], allow_other_workers=False, pure=False)
        for index, address in enumerate(client.scheduler_info()["workers"])
    ]
    try:
        for _ in futures:
            started.get(timeout=timeout)
        yield
    finally:
        release.set()
        client.gather(futures)


def close_shared_cluster() -> None:
    """Stop the shared cluster (at the end of the session)."""
    client, cluster = _shared["client"], _shared["cluster"]
    _shared["client"] = _shared["cluster"] = None
    if client is not None:
        client.close()
    if cluster is not None:
        try:
            cluster.close()
        except TimeoutError:  # a worker slow to exit on a loaded machine: its nanny kills it regardless
            pass


# --------------------------------------------------------------------------- the set-up


def require_browser(baseline_model: bool = False):
    """Skip the calling test module when Debian's chromium or Playwright is missing (or, with
    `baseline_model`, the bundled baseline model its server makes the active model); else return
    playwright.sync_api. Call it at module level, before anything that needs them."""
    import pytest

    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install -y chromium)",
            allow_module_level=True,
        )
    if baseline_model and not BASELINE_MODEL.exists():
        pytest.skip("the bundled baseline model is missing", allow_module_level=True)
    return pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
    )


def chromium_launch(executable: str | None = None) -> dict:
    """Playwright's launch arguments for `executable`, by default the headless shell when it is
    installed (PATCHLENS_TEST_CHROMIUM names another), else Debian's full chromium in its new headless mode."""
    executable = executable or os.environ.get("PATCHLENS_TEST_CHROMIUM")
    if executable is None:
        executable = HEADLESS_SHELL if Path(HEADLESS_SHELL).exists() else CHROMIUM
    mode = [] if executable.endswith("headless-shell") else ["--headless=new"]
    return dict(executable_path=executable, args=mode + CHROMIUM_ARGS, headless=True)


def launch_browser() -> Iterator:
    """Headless Debian Chromium through Playwright, for a module fixture: `yield from launch_browser()`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(**chromium_launch())
        yield chromium
        chromium.close()


@dataclass
class ServedApp:
    """A running `streamlit run` server: its URL, workspace (PATCHLENS_HOME), data set and environment."""

    url: str
    root: Path  # the temporary folder holding home/, data/ and the server's log
    home: Path
    data: Path | None
    env: dict

    def run_dirs(self) -> set[Path]:
        runs = self.home / "runs"
        return (
            {p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")}
            if runs.is_dir()
            else set()
        )


def app_env(root: Path, env_extra: dict | None = None) -> dict:
    """The server's environment: PATCHLENS_HOME=<root>/home, PATCHLENS_DATA_ROOTS=<root>/data, and
    PATCHLENS_SCHEDULER=the shared cluster (started now if need be), so the server starts no engine."""
    env = dict(os.environ)
    env.update(
        PATCHLENS_HOME=str(root / "home"),
        PATCHLENS_DATA_ROOTS=str(root / "data"),
        PATCHLENS_SCHEDULER=shared_cluster().scheduler_address,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(env_extra or {})
    return env


@contextmanager
def serve_app(root: Path, env_extra: dict | None = None, data: Path | None = None) -> Iterator[ServedApp]:
    """Start the app from the project root on a free port with the workspace `root`/home and the data
    roots `root`/data, its jobs on the shared cluster, wait until it is healthy, and at the end stop
    every job of its workspace (those on the shared workers end at their stop requests, waited for) and
    the server's whole process group, then check that nothing outlived it."""
    env = app_env(root, env_extra)
    home = Path(env["PATCHLENS_HOME"])
    port = free_port()
    log = root / "streamlit.log"
    process = start_server(PROJECT_DIR, port, env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log)
        yield ServedApp(url, root, home, data, env)
    finally:
        stop_workspace_jobs(home)
        stop_process_group(process)
        stop_workspace_jobs(home)  # a job the server started as it was stopped; one on a shared worker
    assert process.poll() is not None, "the streamlit server is still running"
    assert not job_pids(home), "a training process outlived the tests"
    assert not active_job_pids(home), "a job outlived the tests"


@contextmanager
def serve_kaggle_copies(root: Path, **n_per_class: int) -> Iterator[ServedApp]:
    """serve_app with Kaggle-layout copies of real bundled patches as its data roots: for each
    `name=n`, `root`/data/`name` holding n patches of each class."""
    from page_helpers import copy_kaggle_subset

    for name, n in n_per_class.items():
        copy_kaggle_subset(root / "data" / name, n)
    with serve_app(root, data=root / "data") as served:
        yield served


def new_session(browser, width: int = 1440, height: int = 1400):
    """A fresh browser context (= a fresh Streamlit session) whose waits time out after WAIT_MS, with
    motion off (NO_MOTION_JS)."""
    context = browser.new_context(viewport={"width": width, "height": height}, reduced_motion="reduce")
    context.add_init_script(NO_MOTION_JS)
    context.set_default_timeout(WAIT_MS)
    return context


@contextmanager
def contexts(browser, home: Path | None = None, height: int = 1400) -> Iterator:
    """Yield `make()`, which opens a page in a fresh session; at the end close them all and, with
    `home`, stop that workspace's jobs."""
    opened = []

    def make():
        context = new_session(browser, height=height)
        opened.append(context)
        return context.new_page()

    try:
        yield make
    finally:
        for context in opened:
            context.close()
        if home is not None:
            stop_jobs(home)


def open_page(page, url: str, path: str, title: str) -> None:
    """Go to `url`/`path`, wait for the h1 `title` and the end of the script run; no exception box."""
    page.goto(f"{url}/{path}")
    wait_title(page, title)
    settle(page)
    assert_no_exception(page)


# --------------------------------------------------------------------------- page moves


def settle(page, timeout: float = 120.0) -> None:
    """Wait until the script run is over: stApp reports notRunning and no status widget shows."""
    page.wait_for_selector(f'{APP}[data-test-script-state="notRunning"]', timeout=timeout * 1000)
    page.wait_for_selector(STATUS_WIDGET, state="detached", timeout=timeout * 1000)


def open_dataset(page, path: Path) -> None:
    """Type `path` into the sidebar's dataset field, press Open, and wait until the app says it opened it."""
    field = page.locator(SIDEBAR).get_by_placeholder("/path/to")
    field.fill(str(path))
    field.press("Enter")
    settle(page)
    page.locator(SIDEBAR).locator("button").filter(has_text=re.compile(r"^Open$")).first.click()
    page.locator(SIDEBAR).get_by_text(f"Opened {path}").wait_for()
    settle(page)
    assert_no_exception(page)


def wait_title(page, text: str, timeout: float = 120.0) -> None:
    page.locator("h1", has_text=text).first.wait_for(timeout=timeout * 1000)


def assert_no_exception(page) -> None:
    boxes = page.locator(EXCEPTION)
    assert boxes.count() == 0, "exception box on the page:\n" + "\n---\n".join(boxes.all_inner_texts())


def go_nav(page, label: str) -> None:
    """Click a sidebar navigation link (same session, no full reload)."""
    page.locator(NAV_LINK, has_text=label).first.click()


def choose(page, selectbox, option_text: str) -> None:
    """Pick the option containing `option_text` in a Streamlit 1.67 selectbox (a react-aria combobox)."""
    field = selectbox.locator('input[role="combobox"]')
    if option_text in field.input_value():
        return
    selectbox.locator('button[aria-label="Open"]').click()
    page.locator('[role="option"]', has_text=option_text).first.click()
    page.wait_for_function(
        "([el, text]) => el.value.includes(text)", arg=[field.element_handle(), option_text]
    )


def selectbox(page, label: str, root: str = ""):
    return page.locator(f"{root} {SELECTBOX}".strip()).filter(has_text=label).first


def slider_thumb(container):
    """The focusable thumb of a Streamlit 1.67 slider: an <input type="range"> (implicit role slider)."""
    return container.get_by_role("slider").first


def plot_points(chart) -> int:
    """Markers drawn in a Plotly chart's SVG (lines+markers traces)."""
    return chart.locator(".scatterlayer .trace .points path").count()


def shoot(page, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --------------------------------------------------------------------------- the Train page's form

TRAIN_FORM = '[data-testid="stForm"]'
# The form's most epochs: a job that is still running when its test stops it. 50 epochs of the tiny
# model on a warm worker could finish while a busy machine drew the pages (CI saw "finished").
OUTLIVING_EPOCHS = 500


def epochs_input(form):
    """The Train form's Epochs box, by its exact label ("Average the weights of the last N epochs"
    contains the word too, and Playwright matches text case-insensitively)."""
    return form.get_by_role("spinbutton", name="Epochs", exact=True)


def fill_train_form(page, data: Path, epochs: int, enter: bool = False) -> None:
    """Fill the Train form for a tiny job (architecture tiny, batch size 16); with `enter`, the Epochs
    box is left by pressing Enter instead of Tab."""
    form = page.locator(TRAIN_FORM)
    area = form.locator('[data-testid="stTextArea"]').filter(has_text="Training dataset").locator("textarea")
    area.fill(str(data))
    area.press("Tab")
    choose(page, selectbox(page, "Architecture", TRAIN_FORM), "tiny")
    batch = slider_thumb(form.locator('[data-testid="stSlider"]').filter(has_text="Batch size"))
    batch.focus()
    batch.press("Home")  # the smallest batch size, 16
    number = epochs_input(form)
    number.fill(str(epochs))
    number.press("Enter" if enter else "Tab")
    assert batch.get_attribute("aria-valuetext") == "16"


def start_training(page, server: ServedApp, timeout: float = 30.0) -> Path:
    """Click Start training and return the run directory it creates."""
    before = server.run_dirs()
    page.get_by_role("button", name="Start training").click()
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = server.run_dirs() - before
        if new:
            (run_dir,) = new
            return run_dir
        time.sleep(0.2)
    raise AssertionError("Start training created no run directory")


# --------------------------------------------------------------------------- reading what a user sees
# (added for tests/test_browser_journey.py; label-based, so a layout change does not break them)

METRIC = '[data-testid="stMetric"]'
SLIDER = '[data-testid="stSlider"]'
RADIO = '[data-testid="stRadio"]'
BUTTON = '[data-testid="stButton"] button, [data-testid="stFormSubmitButton"] button'


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.3) -> bool:
    """Poll `predicate` until it is truthy or `timeout` seconds pass; return its last truth."""
    deadline = time.time() + timeout
    while True:
        if predicate():
            return True
        if time.time() >= deadline:
            return False
        time.sleep(interval)


def exact(text: str):
    """A pattern matching an element whose whole text is `text` (surrounding blanks allowed)."""
    import re

    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def metric_card(scope, label: str):
    """The st.metric card whose label is exactly `label` ("Accuracy" does not match "Balanced accuracy")."""
    return scope.locator(METRIC).filter(
        has=scope.locator('[data-testid="stMetricLabel"]', has_text=exact(label))
    )


def metric_value(scope, label: str) -> str | None:
    """The value text of the metric card labelled `label`, or None when no such card is shown."""
    card = metric_card(scope, label)
    if card.count() == 0:
        return None
    return card.first.locator('[data-testid="stMetricValue"]').inner_text().strip()


def drawn_metric(scope, label: str, timeout: float = 60.0) -> str | None:
    """The value of the metric card labelled `label` once the card is drawn with a value (a busy
    browser draws the cards a moment after the script run reports it is over); None if it never is."""
    seen: list[str | None] = [None]

    def drawn() -> bool:
        seen[0] = metric_value(scope, label)
        return bool(seen[0])

    wait_until(drawn, timeout)
    return seen[0]


def steady_count(locator, hold: float = 3.0, timeout: float = 60.0, interval: float = 0.25) -> int:
    """How many elements `locator` finds once that number has held for `hold` seconds (a busy browser
    draws a grid's images over several frames after the script run is over); the last count if it
    never holds within `timeout`."""
    deadline = time.monotonic() + timeout
    last, since = locator.count(), time.monotonic()
    while time.monotonic() - since < hold and time.monotonic() < deadline:
        time.sleep(interval)
        count = locator.count()
        if count != last:
            last, since = count, time.monotonic()
    return last


def slider_input(scope, label: str):
    return slider_thumb(scope.locator(SLIDER).filter(has_text=label).first)


def slider_value(scope, label: str) -> float | None:
    """The value of the (single-thumb) slider whose label contains `label`, or None when not shown."""
    container = scope.locator(SLIDER).filter(has_text=label)
    if container.count() == 0:
        return None
    return float(slider_thumb(container.first).input_value())


def set_slider(scope, label: str, target: float, tolerance: float = 1e-9, max_presses: int = 400) -> None:
    """Move a slider to `target` with the keyboard, as a user would: PageUp/PageDown for big jumps
    (their size is measured, not assumed), arrows for the rest."""
    thumb = slider_input(scope, label)
    step = float(thumb.get_attribute("step") or 0.01)
    low, high = float(thumb.get_attribute("min") or 0), float(thumb.get_attribute("max") or 1)
    page_jump = (high - low) / 10  # Chromium's jump for a range input; corrected after the first one
    thumb.focus()
    for _ in range(max_presses):
        value = float(thumb.input_value())
        gap = target - value
        if abs(gap) <= tolerance + step / 2:
            return
        big = abs(gap) >= page_jump - tolerance
        key = ("PageUp" if gap > 0 else "PageDown") if big else ("ArrowRight" if gap > 0 else "ArrowLeft")
        thumb.press(key)
        if big:
            page_jump = abs(float(thumb.input_value()) - value) or page_jump
    raise AssertionError(f"the slider {label!r} did not reach {target} (at {thumb.input_value()})")


def radio_choice(scope, label: str) -> str | None:
    """The text of the selected option of the radio group labelled `label`, or None when not shown."""
    group = scope.locator(RADIO).filter(has=scope.locator('[data-testid="stWidgetLabel"]', has_text=label))
    if group.count() == 0:
        return None
    selected = group.first.locator('[data-testid="stRadioOption"]').filter(has=scope.locator("input:checked"))
    return selected.first.inner_text().strip() if selected.count() else ""


def click_radio(scope, label: str, option) -> None:
    group = scope.locator(RADIO).filter(has=scope.locator('[data-testid="stWidgetLabel"]', has_text=label))
    group.first.locator('[data-testid="stRadioOption"]', has_text=option).first.click()


def button(scope, text):
    """The Streamlit button (or form submit button) whose text matches `text` (a str or a pattern)."""
    return scope.locator(BUTTON).filter(has_text=text)


def sidebar_text(page) -> str:
    """What the sidebar states: its text without the navigation, alerts and expanders, plus the values
    its selectboxes show (a typed path in a text box is not counted)."""
    return page.locator(SIDEBAR).evaluate(
        """el => {
            const copy = el.cloneNode(true);
            copy.querySelectorAll(
                '[data-testid="stPageLink"], [data-testid="stAlert"], [data-testid="stExpander"]'
            ).forEach(node => node.remove());
            const shown = [...el.querySelectorAll('input[role="combobox"]')].map(input => input.value);
            return [copy.textContent, ...shown].join("\\n");
        }"""
    )


def confusion_cells(chart) -> dict[str, int]:
    """TN, FP, FN, TP read from a Plotly heatmap's cell text ({} when not drawn)."""
    import re

    text = " ".join(chart.locator("text").all_text_contents())
    return {
        name: int(count.replace(",", "")) for name, count in re.findall(r"\b(TN|FP|FN|TP)\s*(\d[\d,]*)", text)
    }


def select_table_row(page, table, cell_text: str) -> None:
    """Select the st.dataframe row holding a cell with `cell_text`, by the keyboard: focus that cell
    through the grid's accessible table (no pixel positions), then Shift+Space selects its row."""
    cell = table.locator('td[role="gridcell"], td').filter(has_text=exact(cell_text)).first
    cell.focus()
    page.keyboard.press("Shift+Space")


def multiselect_add(page, container, option_text: str, attempts: int = 4) -> None:
    """Add the option containing `option_text` to a Streamlit 1.67 multiselect (a react-aria combobox).

    A rerun of the page (a fragment's last refresh after a job ended) closes an open list, as it
    would for a person, who opens it again: so does this, a few times."""
    option = page.locator('[role="option"]', has_text=option_text).first
    for attempt in range(attempts):
        container.locator('button[aria-label="Open"]').click()
        try:
            option.click(timeout=15_000 if attempt < attempts - 1 else 60_000)
            break
        except Exception:  # playwright's TimeoutError: the list closed before the click
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
    page.keyboard.press("Escape")  # close the list; the choice is kept
