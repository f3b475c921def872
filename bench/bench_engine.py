"""The job engine (core.jobs) against a process per request, on patches of slides the model never saw.

Figures (medians of --repeats runs, the two requests interleaved in one run):
  1. a `predict` request to a warm engine (every worker has served one), whole client process included
     (`python -m core predict MODEL DATA --out CSV --scheduler ADDRESS`), vs the plain script a user
     would write (load the model, PIL-load every file, model.predict, write the CSV): the ratio;
  2. the first progress of a page-started prediction job (core.evaluate.jobs.launch → status.json with
     done > 0) on a warm engine, a fresh cache each time so the job computes;
  3. a worker process killed in the middle of a job: the engine reruns it; the CSV is compared with the
     one the uninterrupted request wrote.
The data are PCam's valid-split JPEGs (slides disjoint from PCam train; /work/shared/data/pcam-jpeg),
linked into a class-folder dataset under the scratch folder. The engine is a LocalCluster of
--workers worker processes, one thread each, as the app's default.

Usage: /work/main/.venv/bin/python bench/bench_engine.py [--repeats 3] [--workers 2] [--quick]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import PCAM_JPEG, PROJECT_DIR, SCRATCH, log, median, parser, report, spread, table

MODEL = PROJECT_DIR / "models" / "baseline.keras"
PLAIN_SCRIPT = """
import sys, numpy as np, keras
from pathlib import Path
from PIL import Image
model = keras.saving.load_model(sys.argv[1], compile=False)
files = sorted(Path(sys.argv[2]).glob("*/*.jpg"))
x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).astype("float32")
p = model.predict(x, batch_size=256, verbose=0)[:, 0]
with open(sys.argv[3], "w") as out:
    out.write("id,label\\n")
    out.writelines(f"{f.stem},{v}\\n" for f, v in zip(files, p))
"""


def unseen_dataset(quick: bool) -> Path:
    """PCam valid JPEGs as OUT/{0,1}/*.jpg symbolic links (a class-folder dataset)."""
    out = SCRATCH / ("engine-quick" if quick else "engine-unseen")
    for label in ("0", "1"):
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        files = sorted((PCAM_JPEG / label).glob("pcamvalid_*"))[: 50 if quick else None]
        for file in files:
            link = folder / file.name
            if not link.exists():
                link.symlink_to(file)
    return out


def start(command: list[str]) -> subprocess.Popen:
    """`command` from the project folder, quiet, the project importable."""
    return subprocess.Popen(command, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)})  # fmt: skip


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    if start(command).wait():
        raise RuntimeError(f"{command[:4]} failed")
    return time.perf_counter() - started


def first_progress(model: Path, dataset, cache: Path) -> float:
    """Seconds from a page's launch to the job's first reported progress (done > 0)."""
    from core.evaluate.jobs import launch, read_job

    started = time.perf_counter()
    key = launch(model, dataset, cache_dir=cache)
    while not ((job := read_job(key, cache)) and (job.get("done") or 0) > 0):
        if job and job["state"] in ("failed", "stopped"):
            raise RuntimeError(job.get("error"))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    while read_job(key, cache)["state"] in ("queued", "running"):
        time.sleep(0.2)
    return seconds


def killed_worker_run(model: Path, dataset, cache: Path, reference: Path) -> str:
    """Kill the worker running a job midway; whether the rerun's predictions equal `reference`'s."""
    import numpy as np
    import pandas as pd

    from core.evaluate.jobs import launch, read_job

    key = launch(model, dataset, cache_dir=cache)
    while not ((job := read_job(key, cache)) and job["state"] == "running" and (job.get("done") or 0) > 0):
        time.sleep(0.05)
    os.kill(job["pid"], signal.SIGKILL)
    log(f"killed worker {job['pid']} at {job['done']}/{job['total']}")
    while (final := read_job(key, cache))["state"] in ("queued", "running"):
        time.sleep(0.2)
    rerun = pd.read_csv(cache / f"{key}.csv")
    expected = pd.read_csv(reference)
    same = rerun["id"].tolist() == expected["id"].tolist() and np.allclose(
        rerun["prob"], expected["label"], atol=1e-6
    )
    return f"{final['state']}, rerun by pid {final['pid']}; predictions equal the uninterrupted run's: {same}"


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    from core.data.dataset import open_dataset
    from core.jobs import engine

    data = unseen_dataset(args.quick)
    dataset = open_dataset(data)
    cluster = engine.local_cluster(n_workers=args.workers, threads_per_worker=1)
    engine.use(cluster.scheduler_address)
    out = SCRATCH / "engine-out"
    out.mkdir(parents=True, exist_ok=True)
    remote = [
        sys.executable,
        "-m",
        "core",
        "predict",
        str(MODEL),
        str(data),
        "--scheduler",
        cluster.scheduler_address,
    ]
    plain = [sys.executable, "-c", PLAIN_SCRIPT, str(MODEL), str(data)]
    log("warming the engine: one request per worker at once (TensorFlow import, model load, trace)")
    warming = [start([*remote, "--out", str(out / f"warm-{k}.csv")]) for k in range(args.workers)]
    if any(process.wait() for process in warming):
        raise RuntimeError("a warming request failed")
    engine_s, plain_s, progress_s = [], [], []
    for run in range(args.repeats):
        engine_s.append(wall([*remote, "--out", str(out / "engine.csv")]))
        plain_s.append(wall([*plain, str(out / "plain.csv")]))
        progress_s.append(first_progress(MODEL, dataset, SCRATCH / f"engine-cache-{time.time_ns()}"))
        log(
            f"run {run + 1}: engine {engine_s[-1]:.2f} s, plain {plain_s[-1]:.2f} s, first progress {progress_s[-1]:.2f} s"
        )
    killed = killed_worker_run(MODEL, dataset, SCRATCH / f"engine-cache-{time.time_ns()}", out / "engine.csv")
    engine.close()
    cluster.close()
    rows = [
        ["`predict --scheduler` to a warm engine (whole client process)", median(engine_s), spread(engine_s)],
        ["plain script (load model, PIL-load, model.predict, write CSV)", median(plain_s), spread(plain_s)],
        ["first progress of a page-started job, warm engine", median(progress_s), spread(progress_s)],
    ]
    body = table(["request", "seconds", "range"], rows)
    notes = [
        f"{len(dataset):,} patches (the PCam valid JPEGs: the issue's unseen-slide set; the bundled model trains on them since 2026-12-07, which does not change a speed); {args.workers} worker processes",
        f"engine / plain script: {median(engine_s) / median(plain_s):.2f}× (target ≤ 0.5×)",
        f"first progress target ≤ 2 s: {median(progress_s):.2f} s",
        f"worker killed mid-job: {killed}",
    ]
    report("Job engine (bench/bench_engine.py)", body, args, notes)


if __name__ == "__main__":
    main()
