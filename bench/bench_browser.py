"""Chromium's CPU for the browser tests' page loads: Debian's chromium-headless-shell against the full
chromium in its new headless mode (tests/browser_helpers.chromium_launch picks the shell when it is
installed).

One `streamlit run` server on the bundled sample (no jobs). Each run launches the browser, opens a fresh
session and loads Home, Dataset, Evaluate, Mistakes, Train and Predict --loads times, each page until its
script run is over, then closes the browser. The CPU is the whole browser's (every Chromium process and
Playwright's driver, reaped children of this process), so the server's own CPU is not in it. The two
browsers alternate run by run.

Usage: /work/main/.venv/bin/python bench/bench_browser.py [--repeats 3] [--loads 3] [--quick]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import PROJECT_DIR, SCRATCH, log, median, parser, report, spread, table

sys.path.insert(0, str(PROJECT_DIR / "tests"))

import browser_helpers as bh  # noqa: E402  (tests/: the suite's own launch and server helpers)

PAGES = ["", "dataset", "evaluate", "mistakes", "train", "predict"]
BROWSERS = {"chromium --headless=new": bh.CHROMIUM, "chromium-headless-shell": bh.HEADLESS_SHELL}


def children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def one_run(executable: str, url: str, loads: int) -> tuple[float, float]:
    """(browser CPU-s, wall s) of `loads` rounds of the pages in one fresh session."""
    from playwright.sync_api import sync_playwright

    cpu, wall = children_cpu(), time.perf_counter()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**bh.chromium_launch(executable))
        context = bh.new_session(browser)
        page = context.new_page()
        for _ in range(loads):
            for path in PAGES:
                page.goto(f"{url}/{path}")
                page.wait_for_selector("h1")
                bh.settle(page)
        context.close()
        browser.close()
    return children_cpu() - cpu, time.perf_counter() - wall


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--loads", type=int, default=3, help="rounds of the six pages per run")
    args = p.parse_args()
    loads = 1 if args.quick else args.loads
    missing = [path for path in BROWSERS.values() if not Path(path).exists()]
    if missing:
        raise SystemExit(
            f"missing: {', '.join(missing)} (apt-get install -y chromium chromium-headless-shell)"
        )
    SCRATCH.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=SCRATCH, prefix="browser-"))
    env = dict(os.environ, PATCHLENS_HOME=str(root / "home"), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PATCHLENS_SCHEDULER", None)
    port, log_file = bh.free_port(), root / "streamlit.log"
    server = bh.start_server(PROJECT_DIR, port, env, log_file)
    url = f"http://127.0.0.1:{port}"
    try:
        bh.wait_healthy(url, server, log_file)
        one_run(bh.CHROMIUM, url, 1)  # the server's first runs of each page, and the disk cache, warm
        results = {name: [] for name in BROWSERS}
        for round_ in range(args.repeats):
            for name, executable in BROWSERS.items():
                results[name].append(one_run(executable, url, loads))
            log(f"round {round_ + 1}/{args.repeats} done")
    finally:
        bh.stop_process_group(server)
        shutil.rmtree(root, ignore_errors=True)

    full_cpu = median([cpu for cpu, _ in results["chromium --headless=new"]])
    full_wall = median([wall for _, wall in results["chromium --headless=new"]])
    rows = []
    for name, runs in results.items():
        cpus, walls = [cpu for cpu, _ in runs], [wall for _, wall in runs]
        rows.append([name, median(cpus), spread(cpus), median(cpus) / full_cpu, median(walls), median(walls) / full_wall])  # fmt: skip
    body = table(["browser", "CPU-s", "(min–max)", "CPU ratio", "wall s", "wall ratio"], rows)
    notes = [
        f"{loads} rounds of {len(PAGES)} pages ({loads * len(PAGES)} page loads) per run, {args.repeats} runs "
        "per browser, alternating; one server on the bundled sample, no job running.",
        "CPU is the browser's alone (Chromium's processes and Playwright's driver); the wall time also "
        "holds the server's script runs, which are the same for both.",
    ]
    report("Chromium for the browser tests: headless shell against full chromium (bench/bench_browser.py)", body, args, notes)  # fmt: skip


if __name__ == "__main__":
    main()
