"""`python -m core train …` run in-process, for bench_memory.py, with two additions for measuring:

  --memory-limit-bytes N   the default `memory_limit_bytes` of core.train.pipeline.make_dataset, for a CLI
                           without --memory-limit-gb (newer ones pass the limit explicitly, so use
                           that flag); 0 forces the HDF5 streaming path
  --rss-log FILE           a thread samples this process's resident memory every 0.1 s and writes
                           the peak per training phase (status.json `phase`) to FILE as JSON

Usage: python bench/train_driver.py [--memory-limit-bytes N] [--rss-log FILE] -- <python -m core train arguments>
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def monitor(run_dir: Path, peaks: dict, stop: threading.Event) -> None:
    phase = "start-up"
    while not stop.wait(0.1):
        try:
            phase = json.loads((run_dir / "status.json").read_text()).get("phase") or phase
        except (OSError, ValueError):
            pass
        if phase.startswith("Converting") or phase.startswith("Cached"):
            phase = "converting into a cache"
        peaks[phase] = max(peaks.get(phase, 0), rss_kb())


def main() -> int:
    if "--" not in sys.argv:
        raise SystemExit(__doc__)
    split = sys.argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-limit-bytes", type=int)
    parser.add_argument("--rss-log", type=Path)
    args = parser.parse_args(sys.argv[1:split])
    train_args = sys.argv[split + 1 :]

    import core.train.pipeline
    from core.cli import main as core_main

    if args.memory_limit_bytes is not None:
        core.train.pipeline.make_dataset.__kwdefaults__["memory_limit_bytes"] = args.memory_limit_bytes
    run_dir = Path(train_args[train_args.index("--out") + 1])
    peaks: dict[str, int] = {}
    stop = threading.Event()
    thread = threading.Thread(target=monitor, args=(run_dir, peaks, stop), daemon=True)
    thread.start()
    started = time.time()
    try:
        return core_main(["train", *train_args])
    finally:
        stop.set()
        thread.join()
        if args.rss_log:
            args.rss_log.write_text(json.dumps({"peaks_kb": peaks, "seconds": time.time() - started}))


if __name__ == "__main__":
    sys.exit(main())
