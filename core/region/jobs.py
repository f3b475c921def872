"""Heatmap jobs: a region or slide scored in its own process, for the Region page.

`launch(model, image, stride=…, mpp=…, threshold=…)` starts `python -m core heatmap-job … --key KEY`
(core.train.runs.start_core_command) and returns KEY, a hash of the model file, the image file and the
settings. The page finds the job again after a reload, or from a second session, by computing the
same key. A job reports only through files in `<workspace>/cache/region/jobs/<KEY>/`: status.json
(state, phase, done/total tiles, patches_per_s, eta_s, pid, heartbeat, error; core.train.reporting),
stop.request, job.log, and the run's outputs in `outputs/` (core.region.outputs), complete once
outputs/summary.json exists. `list_jobs` lists the running and recent jobs (what each scores is in its
status.json), so the page can offer them again after a reload. Reading, staleness and stopping are core.evaluate.jobs' own, on this
folder. TensorFlow is imported only by the job process.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from core.errors import RunError
from core.evaluate.jobs import job_lifecycle
from core.evaluate.jobs import read_job as _read_job
from core.evaluate.jobs import stop_job as _stop_job
from core.files import read_json
from core.region.heatmap import HeatmapStopped
from core.train.reporting import JobReporter
from core.train.runs import ACTIVE_STATES, start_core_command, stop_requested, write_status

LOADING_PHASE = "Starting TensorFlow and loading the model…"
PREPARING_PHASE = "Reading the image and masking the tissue…"
SCORING_PHASE = "scoring"
LOG_NAME = "job.log"
OUTPUT_DIR = "outputs"
RECENT_JOBS = 8  # finished, failed or stopped jobs the Region page lists beside the running ones


def region_cache_dir() -> Path:
    """The prediction-job layout's root for heatmap jobs: jobs live in <this>/jobs/<key>."""
    from core.settings import cache_dir

    return cache_dir() / "region"


def job_dir(key: str) -> Path:
    return region_cache_dir() / "jobs" / key


def output_dir(key: str) -> Path:
    return job_dir(key) / OUTPUT_DIR


def _file_identity(path: str | Path) -> dict:
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
        return {"path": str(resolved), "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
    except OSError:
        return {"path": str(resolved)}


def job_key(model_path, image_path, *, stride: int, mpp: float | None, threshold: float) -> str:
    """What decides a heatmap: the model file, the image file, stride, resolution and threshold."""
    from core.model.io import resolve_model_path

    description = {
        "model": _file_identity(resolve_model_path(model_path)),
        "image": _file_identity(image_path),
        "stride": int(stride),
        "mpp": mpp,
        "threshold": float(threshold),
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]


def read_job(key: str) -> dict | None:
    """The job's status (a dead or silent job reads as failed), or None when none was started."""
    return _read_job(key, region_cache_dir())


def is_running(key: str) -> bool:
    job = read_job(key)
    return bool(job) and job["state"] in ACTIVE_STATES


def list_jobs(limit: int = RECENT_JOBS) -> list[dict]:
    """The running heatmap jobs and the most recent others (at most `limit` in all), newest first:
    each its status (read_job) with its `key`, what it scores (image, model, stride, mpp) and `updated`
    (seconds since the epoch)."""
    folder = region_cache_dir() / "jobs"
    found = []
    for status_file in folder.glob("*/status.json") if folder.is_dir() else []:
        job = read_job(status_file.parent.name)
        if job and job.get("image"):
            found.append({**job, "key": status_file.parent.name, "updated": _mtime(status_file)})
    found.sort(key=lambda job: (job["state"] in ACTIVE_STATES, job["updated"]), reverse=True)
    running = [job for job in found if job["state"] in ACTIVE_STATES]
    return (
        running + [job for job in found if job["state"] not in ACTIVE_STATES][: max(0, limit - len(running))]
    )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile
        return 0.0


def stop_job(key: str) -> None:
    """Ask the job to stop at its next batch (it ends as `stopped`; no summary is written)."""
    _stop_job(key, region_cache_dir())


def launch(model_path, image_path, *, stride: int, mpp: float | None, threshold: float) -> str:
    """Start the heatmap of (model, image, settings) in its own process; returns its key.

    A job already running for the same key is joined, never started twice.
    """
    key = job_key(model_path, image_path, stride=stride, mpp=mpp, threshold=threshold)
    if is_running(key):
        return key
    folder = job_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("status.json", "stop.request"):
        (folder / name).unlink(missing_ok=True)  # a new attempt forgets the last one's fields
    write_status(folder, "queued", pid=os.getpid(), created=time.time(), phase=LOADING_PHASE, done=0,
                 image=str(image_path), model=str(model_path), stride=int(stride), mpp=mpp)  # fmt: skip
    arguments = ["heatmap-job", str(model_path), str(image_path), "--key", key, "--stride", str(stride)]
    arguments += ["--threshold", repr(float(threshold))]
    arguments += ["--mpp", repr(float(mpp))] if mpp is not None else []
    write_status(folder, "queued", pid=start_core_command(arguments, folder / LOG_NAME))
    return key


def run_job(model_path, image_path, *, key: str | None = None, stride: int, mpp: float | None,
            threshold: float) -> dict:  # fmt: skip
    """Score the image in this process, reporting in the job folder; returns the final status
    (finished, stopped or failed). Never raises for a job failure."""
    key = key or job_key(model_path, image_path, stride=stride, mpp=mpp, threshold=threshold)
    folder = job_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    job = JobReporter(folder)
    started = time.time()
    job.update(
        "running", pid=os.getpid(), started=started, phase=LOADING_PHASE, done=0, image=str(image_path),
        model=str(model_path), stride=int(stride), mpp=mpp,
    )  # fmt: skip
    with job_lifecycle(job, folder, stopped_by=HeatmapStopped):
        if job_key(model_path, image_path, stride=stride, mpp=mpp, threshold=threshold) != key:
            raise RunError("The model file or the image changed since this job was started; run it again.")
        summary = _score(model_path, image_path, folder, job, stride=stride, mpp=mpp, threshold=threshold)
        job.update("finished", phase="done", finished=time.time(), duration_s=round(time.time() - started, 1),
                   summary=summary)  # fmt: skip
    return read_json(folder / "status.json", {})


def _score(model_path, image_path, folder: Path, job: JobReporter, **settings) -> dict:
    from core.model.io import load_model
    from core.region.heatmap import run_heatmap

    model = load_model(model_path)
    job.update(phase=PREPARING_PHASE)

    def progress(info: dict) -> None:
        job.update(phase=SCORING_PHASE, **info)

    return run_heatmap(
        model, image_path, folder / OUTPUT_DIR, progress=progress, should_stop=lambda: stop_requested(folder),
        **settings,
    )  # fmt: skip
