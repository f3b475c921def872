"""Helpers for the real-browser tests (tests/test_browser_e2e.py): a Streamlit server in its own
process group, job clean-up, and a few Playwright moves on Streamlit 1.67's DOM.

Not a test module (no test_ prefix). Nothing here imports TensorFlow or Streamlit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from core.runs import pid_alive

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACTIVE_STATES = ("queued", "running")

# Streamlit 1.67 selectors
APP = '[data-testid="stApp"]'
EXCEPTION = '[data-testid="stException"]'
STATUS_WIDGET = '[data-testid="stStatusWidget"]'
SIDEBAR = '[data-testid="stSidebar"]'
NAV_LINK = '[data-testid="stSidebarNavLink"]'
SELECTBOX = '[data-testid="stSelectbox"]'
PLOTLY = '[data-testid="stPlotlyChart"]'


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


def run_status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def job_pids(workspace: Path) -> list[int]:
    """Pids of the training processes of runs in `workspace` that are still alive."""
    pids = []
    for status_file in (workspace / "runs").glob("*/status.json"):
        pid = run_status(status_file.parent).get("pid")
        if pid and pid != os.getpid() and pid_alive(pid):
            pids.append(int(pid))
    return pids


def stop_jobs(workspace: Path, timeout: float = 30.0) -> None:
    """End every training job of `workspace`: a stop request, then SIGTERM, then SIGKILL."""
    for status_file in (workspace / "runs").glob("*/status.json"):
        if run_status(status_file.parent).get("state") in ACTIVE_STATES:
            (status_file.parent / "stop.request").touch()
    pids = job_pids(workspace)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while time.time() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.3)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --------------------------------------------------------------------------- page moves


def settle(page, timeout: float = 120.0) -> None:
    """Wait until the script run is over: stApp reports notRunning and no status widget shows."""
    page.wait_for_selector(f'{APP}[data-test-script-state="notRunning"]', timeout=timeout * 1000)
    page.wait_for_selector(STATUS_WIDGET, state="detached", timeout=timeout * 1000)


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
                '[data-testid="stSidebarNav"], [data-testid="stAlert"], [data-testid="stExpander"]'
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


def multiselect_add(page, container, option_text: str) -> None:
    """Add the option containing `option_text` to a Streamlit 1.67 multiselect (a react-aria combobox)."""
    container.locator('button[aria-label="Open"]').click()
    page.locator('[role="option"]', has_text=option_text).first.click()
    page.keyboard.press("Escape")  # close the list; the choice is kept
