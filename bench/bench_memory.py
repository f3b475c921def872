"""Peak resident memory of prepare, train and predict at 10,000 and 100,000 patches.

Datasets repeat the 3,329 real Kaggle patches (bench/bigdata.py): a PCam-HDF5 folder of N patches,
and the PatchLens cache `python -m core prepare` makes of it. Each command runs as its own process
under `/usr/bin/time -v` (Maximum resident set size = the process's peak RSS, VmHWM):

  prepare   python -m core prepare PCAM_FOLDER --out CACHE.h5
  train     python -m core train CACHE.h5 --val-data SAMPLE_CACHE.h5 --epochs 1 --out RUN --quiet,
            run through bench/train_driver.py (same code path, in-process) and stopped after
            TRAIN_STEPS steps through RUN/stop.request (the page's Stop button), so every size
            trains the same number of steps on the full N-patch selection (no --limit, which would
            shrink the selection and hide any growth). Validation on the 1,000 bundled patches.
            Two variants: the default (selections under 3 GB are loaded into memory) and streaming
            (`--memory-limit-gb 0`; on an older CLI without that flag, the driver sets make_dataset's
            default memory_limit_bytes to 0 instead).
  predict   python -m core predict MODEL CACHE.h5 --out preds.csv

Target: peak memory flat within ±15 % from 10,000 to 100,000 patches (ratio 100k/10k ≤ 1.15).

Usage: /work/venv/bin/python bench/bench_memory.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bigdata import cache_of, pcam_folder, sample_cache
from common import PROJECT_DIR, SCRATCH, log, median, parser, peak_memory_run, report, spread, table

TRAIN_STEPS = 30


def measure(command: list[str], env: dict, *, stop_run_dir: Path | None = None, steps: int = 0) -> dict:
    """Run `command` under /usr/bin/time -v; returns peak RSS (MB) and wall seconds.

    With `stop_run_dir`, asks the training job to stop once status.json reports `steps` steps.
    """

    def run(full: list[str]) -> None:
        process = subprocess.Popen(
            full, cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if stop_run_dir is not None:
            while process.poll() is None:
                time.sleep(0.2)
                try:
                    status = json.loads((stop_run_dir / "status.json").read_text())
                except (OSError, ValueError):
                    continue
                if (status.get("progress") or {}).get("step", 0) >= steps and status.get(
                    "phase"
                ) == "training":
                    (stop_run_dir / "stop.request").touch()
        _, errors = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {errors[-1500:]}")

    return peak_memory_run(command, run=run)


def bench_model(env: dict) -> Path:
    """models/baseline.keras, else an untrained patchnet saved once under SCRATCH."""
    from core.settings import BASELINE_MODEL

    if BASELINE_MODEL.exists():
        return BASELINE_MODEL
    path = SCRATCH / "untrained-patchnet.keras"
    if not path.exists():
        code = (
            "from core.model.io import build_model, save_model; "
            f"save_model(build_model('patchnet', seed=0), {str(path)!r})"
        )
        subprocess.run(
            [sys.executable, "-c", code], cwd=PROJECT_DIR, env=env, check=True, capture_output=True
        )
    return path


def cli_has_memory_flag() -> bool:
    from core.cli import train as cli_train

    return "--memory-limit-gb" in Path(cli_train.__file__).read_text()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--commands", default="prepare,train,predict", help="comma-separated subset to measure")
    args = p.parse_args()
    wanted = set(args.commands.split(","))
    memory_flag = cli_has_memory_flag()
    sizes = (1000, 5000) if args.quick else (10_000, 100_000)
    steps = 5 if args.quick else TRAIN_STEPS
    SCRATCH.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="workspace-", dir=SCRATCH))
    env = {**os.environ, "PATCHLENS_HOME": str(workspace), "TF_CPP_MIN_LOG_LEVEL": "2"}
    folders = {n: pcam_folder(n) for n in sizes}
    caches = {n: cache_of(folders[n]) for n in sizes}
    val_cache = sample_cache()
    model = bench_model(env)
    log(f"model {model}; datasets {', '.join(str(f) for f in folders.values())}")

    results: dict[tuple[str, int], list[dict]] = {}
    phases: dict[tuple[str, int], list[dict]] = {}
    driver = str(PROJECT_DIR / "bench" / "train_driver.py")
    for run in range(args.repeats):
        for n in sizes:
            jobs = {
                "prepare": (
                    [sys.executable, "-m", "core", "prepare", str(folders[n]), "--out", str(caches[n])],
                    None,
                ),
            }
            for variant, limit in (("train (default: in memory < 3 GB)", None), ("train (streaming)", 0)):
                run_dir = workspace / f"run-{run}-{n}-{limit}"
                rss_log = workspace / f"rss-{run}-{n}-{limit}.json"
                patch = [] if limit is None or memory_flag else ["--memory-limit-bytes", str(limit)]
                flag = ["--memory-limit-gb", "0"] if limit is not None and memory_flag else []
                command = [sys.executable, driver, *patch, "--rss-log", str(rss_log), "--",
                           str(caches[n]), "--val-data", str(val_cache), "--epochs", "1", "--out", str(run_dir),
                           "--quiet", *flag]  # fmt: skip
                jobs[variant] = (command, (run_dir, rss_log))
            jobs["predict"] = (
                [sys.executable, "-m", "core", "predict", str(model), str(caches[n]), "--out",
                 str(workspace / f"preds-{n}.csv")],
                None,
            )  # fmt: skip
            jobs = {name: job for name, job in jobs.items() if name.split(" ")[0] in wanted}
            for name, (command, train) in jobs.items():
                result = measure(command, env, stop_run_dir=train[0] if train else None, steps=steps)
                results.setdefault((name, n), []).append(result)
                if train:
                    info = json.loads(train[1].read_text())
                    phases.setdefault((name, n), []).append(info["peaks_kb"])
                    status = json.loads((train[0] / "status.json").read_text())
                    result["steps"] = (status.get("progress") or {}).get("step")
                log(f"run {run + 1}/{args.repeats} {name} n={n:,}: {result}")

    small, large = sizes
    rows = []
    names = ["prepare", "train (default: in memory < 3 GB)", "train (streaming)", "predict"]
    for name in [n for n in names if n.split(" ")[0] in wanted]:
        a = [r["rss_mb"] for r in results[(name, small)]]
        b = [r["rss_mb"] for r in results[(name, large)]]
        ratio = median(b) / median(a)
        wall_a = median([r["wall_s"] for r in results[(name, small)]])
        wall_b = median([r["wall_s"] for r in results[(name, large)]])
        rows.append(
            [name, f"{median(a):,.0f} ({spread(a)})", f"{median(b):,.0f} ({spread(b)})", f"{ratio:.2f}",
             "yes" if ratio <= 1.15 else "**no**", f"{wall_a:.1f}", f"{wall_b:.1f}"]
        )  # fmt: skip
    body = table(
        ["command", f"peak RSS MB at {small:,} (min–max)", f"peak RSS MB at {large:,}", f"ratio {large:,}/{small:,}",
         "flat ±15 %", f"wall s {small:,}", f"wall s {large:,}"],
        rows,
    )  # fmt: skip
    phase_rows = []
    for name in [n for n in names[1:3] if "train" in wanted]:
        for n in sizes:
            keys = sorted(
                {k for p in phases[(name, n)] for k in p},
                key=lambda k: median([p.get(k, 0) for p in phases[(name, n)]]),
            )
            for key in keys:
                phase_rows.append(
                    [name, f"{n:,}", key, f"{median([p.get(key, 0) for p in phases[(name, n)]]) / 1024:,.0f}"]
                )
    body += "\n\nPeak RSS by training phase (sampled every 0.1 s inside the process; phase = status.json `phase`):\n\n"
    body += table(["variant", "patches", "phase", "peak RSS MB (median)"], phase_rows)
    steps_seen = sorted(
        {r.get("steps") for (name, _), runs in results.items() for r in runs if "train" in name} - {None}
    )
    notes = [
        "streaming = "
        + (
            "`--memory-limit-gb 0`"
            if memory_flag
            else "make_dataset memory_limit_bytes=0 set by bench/train_driver.py"
        )
        + "; 'building the model' phase includes make_dataset (reading the pixels into memory on the default path).",
        f"data: PCam-HDF5 folders of {small:,} and {large:,} patches repeating the 3,329 real Kaggle patches "
        f"({large * 27648 / 1e9:.2f} GB of pixels at {large:,}); train/predict read the cache prepare wrote.",
        f"train: patchnet, batch 64, stopped through stop.request once status.json reported ≥ {steps} steps "
        f"(steps seen at stop: {steps_seen}); then validation + prediction on 1,000 patches and model save.",
        f"predict model: {model.relative_to(PROJECT_DIR) if model.is_relative_to(PROJECT_DIR) else model.name}.",
        "ratio = peak at the large size / peak at the small size, both measured in this run.",
    ]
    report("Peak memory vs dataset size (bench/bench_memory.py)", body, args, notes)


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
