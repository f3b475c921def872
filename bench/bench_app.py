"""The dashboard's cold start and the Dataset page on a 100,000-patch dataset, in a real browser.

Each run starts a fresh `streamlit run streamlit_app.py` (temp PATCHLENS_HOME, a free port) and a
fresh headless Chromium context (Playwright; the browser process itself is launched once, outside
every timing):

  server up      spawn -> /_stcore/health answers 200
  first paint    page.goto(/) at server up -> the h1 "PatchLens" is visible in the main area
                 (the first session runs the entry script and the Home page: imports included)
  Dataset page   in a new session on the Dataset page (the bundled sample shown), type the path of a 100,000-patch dataset into the sidebar
                 input (key open_path) and press Open; then time, from the click:
                   cards      the "Patches" card shows 100,000
                   grid       after clicking the "Patches" tab: 24 patch images loaded
                   run done   Streamlit's running indicator gone (colour statistics included)
                 for the PatchLens cache (.h5, chunks of 64 rows) and the PCam-HDF5 folder it came from.

Target: server up -> first paint <= 2 s.

Usage: /work/venv/bin/python bench/bench_app.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bigdata import cache_of, pcam_folder
from common import PROJECT_DIR, SCRATCH, free_port, log, median, parser, report, spread, stop_server, table

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
TIMEOUT_MS = 180_000
GRID_IMAGES = 24
LAST_GRID_ID = f"train-{GRID_IMAGES - 1}"  # ids of PCam rows (and of their cache): train-<row>


def start_server(env: dict) -> tuple[subprocess.Popen, int, float, float]:
    """(process, port, spawn time, seconds until /_stcore/health answers)."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
    spawned = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = spawned + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError("streamlit exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as answer:
                if answer.status == 200:
                    return process, port, spawned, time.perf_counter() - spawned
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("streamlit did not answer /_stcore/health within 120 s")


def wait_idle(page) -> None:
    """Until Streamlit's 'Running…' indicator has gone (the script run has finished)."""
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
    )


def patches_card_shows(page, text: str) -> None:
    page.locator('[data-testid="stMetric"]', has_text="Patches").filter(has_text=text).first.wait_for(
        state="visible", timeout=TIMEOUT_MS
    )


def open_on_dataset_page(context, port: int, name: str, path: Path, expected: str) -> dict[str, float]:
    """A new session on the Dataset page (the bundled sample), then open `path` from the sidebar."""
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{port}/dataset", timeout=TIMEOUT_MS)
    patches_card_shows(page, "1,000")
    wait_idle(page)
    box = page.get_by_role("textbox", name="Open a dataset by path")
    box.fill(str(path))
    box.press("Enter")  # commit the text input (a rerun) before pressing Open
    wait_idle(page)
    out = {}
    start = time.perf_counter()
    page.locator(
        ".st-key-open_dataset button"
    ).click()  # the sidebar's Open (the model picker has an "Open" too)
    page.locator(
        '[data-testid="stMain"] [data-testid="stCaptionContainer"]', has_text=f"{path.name} — "
    ).first.wait_for(state="visible", timeout=TIMEOUT_MS)
    patches_card_shows(page, expected)
    out[f"{name}: cards"] = time.perf_counter() - start
    page.get_by_role("tab", name="Patches").click()
    page.wait_for_function(  # the new grid: its last caption (ids train-0 … train-23) and every image loaded
        """(lastCaption) => {
            const panel = [...document.querySelectorAll('[role="tabpanel"]')].find(p => p.offsetParent !== null);
            if (!panel || !panel.innerText.includes(lastCaption)) return false;
            const images = [...panel.querySelectorAll('[data-testid="stImage"] img')];
            return images.length >= 24 && images.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=f"{LAST_GRID_ID} ·",
        timeout=TIMEOUT_MS,
    )
    out[f"{name}: grid"] = time.perf_counter() - start
    wait_idle(page)
    out[f"{name}: run done"] = time.perf_counter() - start
    page.close()
    return out


def one_run(browser, env: dict, datasets: dict[str, tuple[Path, str]]) -> dict[str, float]:
    process, port, _, up = start_server(env)
    out = {"server up": up}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/", timeout=TIMEOUT_MS)
        page.locator('[data-testid="stMain"] h1', has_text="PatchLens").wait_for(
            state="visible", timeout=TIMEOUT_MS
        )
        out["first paint"] = time.perf_counter() - start
        wait_idle(page)
        out["home run done"] = time.perf_counter() - start
        for name, (path, expected) in datasets.items():
            out.update(open_on_dataset_page(context, port, name, path, expected))
    finally:
        context.close()
        stop_server(process)
    return out


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    from playwright.sync_api import sync_playwright

    n = 5000 if args.quick else 100_000
    folder = pcam_folder(n)
    cache = cache_of(folder)
    datasets = {
        f"cache .h5 ({n:,})": (cache, f"{n:,}"),
        f"PCam-HDF5 folder ({n:,})": (folder, f"{n:,}"),
    }
    home = Path(tempfile.mkdtemp(prefix="app-home-", dir=SCRATCH))
    env = {**os.environ, "PATCHLENS_HOME": str(home), "PATCHLENS_DATA_ROOTS": str(SCRATCH)}
    results: dict[str, list[float]] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for run in range(args.repeats):
                for key, value in one_run(browser, env, datasets).items():
                    results.setdefault(key, []).append(value)
                log(
                    f"run {run + 1}/{args.repeats}: "
                    + ", ".join(f"{k} {v[-1]:.2f}" for k, v in results.items())
                )
            browser.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    m = {key: median(values) for key, values in results.items()}
    first = m["first paint"]
    rows = [
        ["spawn → /_stcore/health answers", f"{m['server up']:.2f} ({spread(results['server up'])})", "–", "–"],
        ["server up → first paint (h1 PatchLens)", f"{first:.2f} ({spread(results['first paint'])})", "≤ 2 s",
         "yes" if first <= 2 else "**no**"],
        ["server up → Home run finished", f"{m['home run done']:.2f} ({spread(results['home run done'])})", "–", "–"],
    ]  # fmt: skip
    for name in datasets:
        for step in ("cards", "grid", "run done"):
            key = f"{name}: {step}"
            rows.append([f"Dataset page, {key} (from the Open click)", f"{m[key]:.2f} ({spread(results[key])})",
                         "–", f"{m[key] / first:.1f}× first paint"])  # fmt: skip
    body = table(["step", "seconds (min–max)", "target", "met / ratio"], rows)
    notes = [
        "Chromium (Debian package) headless through Playwright, one fresh context per run, viewport 1400×1000; the "
        "browser launch is outside every timing. A fresh Streamlit server per run (cold: nothing cached).",
        f"datasets: {n:,} patches repeating the 3,329 real Kaggle patches — the cache written by `python -m core "
        "prepare` (x chunked 64 rows) and the PCam-HDF5 folder it came from (x contiguous); opened through the sidebar "
        "with PATCHLENS_DATA_ROOTS pointing at their folder. 'grid' includes clicking the Patches tab.",
        "ratios are to the first-paint median of the same run.",
    ]
    report("Dashboard cold start and Dataset page (bench/bench_app.py)", body, args, notes)


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
