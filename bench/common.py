"""Shared helpers of the benchmarks: machine facts, timing, medians, markdown tables, BENCHMARKS.md.

Every benchmark script measures each figure several times (interleaving the variants it compares,
so a noisy neighbour slows them alike), reports the median, and quotes a ratio to a reference
measured in the same run. Run them by hand from the project root, e.g.
`/work/venv/bin/python bench/bench_decode.py`; `--quick` runs tiny sizes and writes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

BENCHMARKS_FILE = PROJECT_DIR / "BENCHMARKS.md"
SHARED_DATA = Path(os.environ.get("PATCHLENS_BENCH_DATA", "/work/shared/data"))
KAGGLE_SAMPLE = SHARED_DATA / "kaggle-sample"
PCAM_JPEG = SHARED_DATA / "pcam-jpeg"
BUNDLED_SAMPLE = PROJECT_DIR / "data" / "sample"
SCRATCH = Path(os.environ.get("PATCHLENS_BENCH_SCRATCH", "/tmp/patchlens-bench"))
TIME = "/usr/bin/time"


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every script takes: --repeats, --quick (tiny sizes, nothing written), --no-append."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test; implies --no-append")
    p.add_argument("--no-append", action="store_true", help="print the table only; leave BENCHMARKS.md alone")
    return p


def machine() -> str:
    """One line: cores, CPU model, RAM, Python, OS."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "? GB"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GB"
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc), {model}, {ram} RAM, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def code_version() -> str:
    """The commit of the working tree, and whether core/ differs from it (others edit concurrently)."""
    import subprocess

    def git(*words: str) -> str:
        try:
            return subprocess.run(
                ["git", *words], cwd=PROJECT_DIR, capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "core", "streamlit_app.py", "ui", "pages")
    return f"commit {commit}" + (" + uncommitted changes in core/app" if dirty else "")


def command_line() -> str:
    """The exact command that ran this script (interpreter and arguments)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(PROJECT_DIR)
    except ValueError:
        pass
    return shlex.join([sys.executable, str(script), *sys.argv[1:]])


def timed(function: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def run_checked(command: list[str], env: dict | None = None) -> None:
    """Run `command` in the project folder; RuntimeError with the end of its stderr if it fails."""
    done = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}): {done.stderr[-1500:]}")


def peak_memory_run(
    command: list[str], env: dict | None = None, run: Callable[[list[str]], object] | None = None
) -> dict:
    """{"rss_mb": peak resident memory, "wall_s": seconds} of `command` under `/usr/bin/time -v`
    (Maximum resident set size = the process's peak RSS, VmHWM), run by `run(full_command)` when given
    (it checks the exit status), else by run_checked with `env`."""
    run = run or (lambda full: run_checked(full, env))
    with tempfile.NamedTemporaryFile("r", suffix=".time", dir=SCRATCH) as report_file:
        started = time.perf_counter()
        run([TIME, "-v", "-o", report_file.name, *command])
        wall = time.perf_counter() - started
        text = Path(report_file.name).read_text()
    peak_kb = next(
        int(line.split(":")[1]) for line in text.splitlines() if "Maximum resident set size" in line
    )
    return {"rss_mb": peak_kb / 1024, "wall_s": wall}


def median(values) -> float:
    return float(statistics.median(values))


def percentile(values, q: float) -> float:
    """The q-quantile (0-1) by linear interpolation; enough for latency p90."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values) -> str:
    """'min-max' of the runs, so a reader sees the noise next to the median."""
    return f"{_number(min(values))}–{_number(max(values))}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table; floats get thousands separators and 3 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if value != value:  # NaN
                return "–"
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report(title: str, body: str, args: argparse.Namespace, notes: list[str] | None = None) -> None:
    """Print the section and, unless --quick/--no-append, append it to BENCHMARKS.md."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {title}",
        "",
        f"- date: {now}",
        f"- machine: {machine()}",
        f"- code: {code_version()} (at the end of the run)",
        f"- command: `{command_line()}`",
        f"- runs per figure: {args.repeats} (median shown; min–max in brackets where given)",
        f"- host speed: {host_speed()}",
        "",
        body,
        "",
    ]
    if notes:
        lines += [f"- {note}" for note in notes] + [""]
    text = "\n".join(lines)
    print("\n" + text)
    if args.quick or args.no_append:
        print("(not appended to BENCHMARKS.md: --quick/--no-append)")
        return
    with open(BENCHMARKS_FILE, "a", encoding="utf-8") as handle:
        handle.write("\n" + text)
    print(f"(appended to {BENCHMARKS_FILE})")


def host_speed() -> str:
    """The host's speed right now, in words (bench/host_speed.py in a process of its own, so a
    benchmark that never imports TensorFlow still does not)."""
    script = Path(__file__).resolve().parent / "host_speed.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env
        )
        seconds = float(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as error:
        return f"not measured ({type(error).__name__})"
    return (
        f"{seconds:.2f} s for the bundled model's forward pass over the 1,000 bundled patches, measured "
        "right after the run (bench/host_speed.py; lower is faster)"
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(process) -> None:
    """End a server started by a benchmark: SIGTERM, then SIGKILL after 10 s."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
