"""Cold start with and without the background warm-up (ui/warmup.py), in a real browser.

Each run starts a fresh `streamlit run streamlit_app.py` (temp PATCHLENS_HOME, a free port,
PATCHLENS_WARMUP=0 or 1) and a fresh headless Chromium context:

  first paint        page.goto(/) once /_stcore/health answers -> the h1 "PatchLens" is visible
  probability        10 s after the goto, go to Predict (sidebar link, same session) and drop one
                     bundled patch: from the drop until the cards ("Scored 1", drawn once the
                     probabilities are in) are shown
  Grad-CAM           from the drop until the Grad-CAM overlay's caption is shown

Target: the first prediction <= 1 s when the patch is dropped 10 s after opening the app.

Usage: python bench/bench_warmup.py [--repeats 3] [--drop-after 10] [--quick] [--no-append]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import PROJECT_DIR, SCRATCH, free_port, log, median, parser, report, spread, stop_server, table

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TIMEOUT_MS = 180_000
DROP_AFTER_S = 10.0
GRADCAM_CAPTION = re.compile(r"grad-?cam", re.IGNORECASE)  # the overlay's caption names its method
PATCH = sorted((PROJECT_DIR / "data" / "sample" / "train").glob("*.tif"))[0]


def start_server(env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
               "--server.headless", "true", "--server.fileWatcherType", "none"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as answer:
                if answer.status == 200:
                    return process, port
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("streamlit did not answer /_stcore/health within 120 s")


def one_run(browser, warmup: str, drop_after: float) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="warmup-home-", dir=SCRATCH))
    env = {**os.environ, "PATCHLENS_HOME": str(home), "PATCHLENS_WARMUP": warmup}
    process, port = start_server(env)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    out = {}
    try:
        page = context.new_page()
        opened = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/", timeout=TIMEOUT_MS)
        page.locator('[data-testid="stMain"] h1', has_text="PatchLens").wait_for(timeout=TIMEOUT_MS)
        out["first paint"] = time.perf_counter() - opened
        page.locator(
            '[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]', has_text="Predict"
        ).click()
        uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
        uploader.wait_for(state="attached", timeout=TIMEOUT_MS)
        page.wait_for_timeout(max(0.0, drop_after - (time.perf_counter() - opened)) * 1000)
        dropped = time.perf_counter()
        uploader.set_input_files(str(PATCH))
        page.locator('[data-testid="stMetric"]', has_text="Scored").first.wait_for(timeout=TIMEOUT_MS)
        out["probability"] = time.perf_counter() - dropped
        page.locator('[data-testid="stImageCaption"]', has_text=GRADCAM_CAPTION).first.wait_for(
            timeout=TIMEOUT_MS
        )
        out["Grad-CAM"] = time.perf_counter() - dropped
    finally:
        context.close()
        stop_server(process)
        shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--drop-after", type=float, default=DROP_AFTER_S, help="seconds after opening")
    args = arguments.parse_args()
    from playwright.sync_api import sync_playwright

    SCRATCH.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for run in range(args.repeats):
            for warmup, name in (("0", "no warm-up"), ("1", "warm-up")):
                for key, value in one_run(browser, warmup, args.drop_after).items():
                    results.setdefault(f"{name}: {key}", []).append(value)
            log(f"run {run + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in results.items()))
        browser.close()
    rows = []
    for step in ("first paint", "probability", "Grad-CAM"):
        row = [step]
        for name in ("no warm-up", "warm-up"):
            values = results[f"{name}: {step}"]
            row.append(f"{median(values):.2f} ({spread(values)})")
        rows.append(row)
    body = table(["step (seconds)", "PATCHLENS_WARMUP=0", "PATCHLENS_WARMUP=1 (default)"], rows)
    notes = [
        "Chromium (Debian) headless through Playwright; a fresh server and browser context per run.",
        f"The patch ({PATCH.name}) is dropped on the Predict page {args.drop_after:.0f} s after the first "
        "page was requested; probability and Grad-CAM are timed from the drop.",
    ]
    report("Cold start: first prediction with and without the background warm-up", body, args, notes)


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
