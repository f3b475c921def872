"""Heatmap jobs: a region or slide scored on the job engine, for the Region page.

`launch(model, image, stride=…, mpp=…, threshold=…)` queues `python -m core heatmap-job … --key KEY` on
the engine (core.jobs: a warm worker) and returns KEY, a hash of the model file, the image file and the
settings. The page finds the job again after a reload, or from a second session, by computing the
same key. A job reports only through files in `<workspace>/cache/region/jobs/<KEY>/`: status.json
(state, phase, done/total tiles, patches_per_s, eta_s, pid, heartbeat, error; core.jobs.status),
stop.request, job.log, and the run's outputs in `outputs/` (core.region.outputs), complete once
outputs/summary.json exists. `list_jobs` lists the running and recent jobs (what each scores is in its
status.json), so the page can offer them again after a reload. Reading, staleness and stopping are
core.jobs.launch's. TensorFlow is imported only by the worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from core.errors import RunError
from core.files import read_json
from core.jobs import launch as jobs
from core.jobs.status import LOADING_PHASE, LOG_NAME, JobReporter, job_lifecycle, stop_requested  # noqa: F401
from core.region.heatmap import HeatmapStopped

PREPARING_PHASE = "Reading the image and masking the tissue…"
SCORING_PHASE = "scoring"
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
    from core.evaluate.jobs import check_key

    return jobs.read(job_dir(check_key(key)), what="heatmap")


def is_running(key: str) -> bool:
    return jobs.is_active(read_job(key))


def list_jobs(limit: int = RECENT_JOBS) -> list[dict]:
    """The running heatmap jobs and the most recent others (at most `limit` in all), newest first:
    each its status (read_job) with its `key`, what it scores (image, model, stride, mpp) and `updated`
    (seconds since the epoch)."""
    return jobs.list_recent(region_cache_dir() / "jobs", _heatmap_job, limit=limit)


def _heatmap_job(key: str) -> dict | None:
    job = read_job(key)
    return job if job and job.get("image") else None


def stop_job(key: str) -> None:
    """Ask the job to stop at its next batch (it ends as `stopped`; no summary is written); one still
    queued is cancelled."""
    jobs.stop(job_dir(key), what="heatmap job")


def launch(model_path, image_path, *, stride: int, mpp: float | None, threshold: float) -> str:
    """Queue the heatmap of (model, image, settings) on the engine; returns its key.

    A job already running for the same key is joined, never started twice.
    """
    key = job_key(model_path, image_path, stride=stride, mpp=mpp, threshold=threshold)
    with jobs.exclusive(region_cache_dir() / "jobs"):
        if is_running(key):
            return key
        folder = job_dir(key)
        jobs.queue(folder, image=str(image_path), model=str(model_path), stride=int(stride), mpp=mpp)
        arguments = [str(model_path), str(image_path), "--key", key, "--stride", str(stride)]
        arguments += ["--threshold", repr(float(threshold))]
        arguments += ["--mpp", repr(float(mpp))] if mpp is not None else []
        jobs.start("heatmap", folder, arguments)
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
