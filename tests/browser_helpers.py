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
