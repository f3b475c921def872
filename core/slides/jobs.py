"""Cohort jobs: `core slides` on the job engine, for the Slides page.

`launch(model, folder, labels=…, annotations=…, options=…, aggregate=…)` queues `python -m core
slides-job … --key KEY` on the engine (core.jobs: a warm worker) and returns KEY, a hash of the model
file and the inputs' paths and options. The page finds the job again after a reload, or from a second
session, by computing the same key. Everything lives in `<workspace>/cache/slides/jobs/<KEY>/`:
status.json (state, phase, done/total slides, the last slide, tiles_per_s, eta_s, heartbeat, error),
stop.request, job.log, and the cohort's folder `cohort/` (core.slides.cohort), complete once
cohort/summary.json exists. The key leaves out the slides' contents on purpose: a re-run of the same
cohort reuses the folder, where each slide's own key decides what is recomputed (core.slides.task).
Reading, staleness and stopping are core.jobs.launch's, on this folder. A cohort is idempotent (each
slide's folder is complete or recomputed), so the engine reruns it when its worker is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from core.errors import CohortStopped
from core.files import read_json
from core.jobs import launch as jobs
from core.jobs.status import LOADING_PHASE, JobReporter, job_lifecycle, stop_requested  # noqa: F401
from core.slides.cohort import run_cohort
from core.slides.task import SlideOptions

SCORING_PHASE = "scoring slides"
COHORT_DIR = "cohort"


def slides_cache_dir() -> Path:
    from core.settings import cache_dir

    return cache_dir() / "slides"


def job_dir(key: str) -> Path:
    return slides_cache_dir() / "jobs" / key


def output_dir(key: str) -> Path:
    return job_dir(key) / COHORT_DIR


def job_key(model_path, folder, *, labels=None, annotations=None, options: SlideOptions) -> str:
    """What decides the cohort's folder: the model file, the input paths and the options. Not the
    aggregation: every aggregation's score is in slides.csv, so the page switches without a re-run."""
    from core.model.io import resolve_model_path

    def resolved(path):
        return str(Path(path).expanduser().resolve()) if path else None

    description = {"model": resolved(resolve_model_path(model_path)), "folder": resolved(folder),
                   "labels": resolved(labels), "annotations": resolved(annotations),
                   "options": options.described()}  # fmt: skip
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]


def read_job(key: str) -> dict | None:
    """The job's status (a dead or silent job reads as failed), or None when none was started."""
    from core.evaluate.jobs import check_key

    return jobs.read(job_dir(check_key(key)), what="cohort")


def stop_job(key: str) -> None:
    """Ask the job to stop once the slides being scored are done (it ends as `stopped`); one still
    queued is cancelled."""
    jobs.stop(job_dir(key), what="cohort job")


def _arguments(model_path, folder, labels, annotations, options: SlideOptions, aggregate: str) -> list[str]:
    arguments = [str(model_path), str(folder), "--stride", str(options.stride)]
    arguments += ["--threshold", repr(float(options.threshold)), "--aggregate", aggregate]
    arguments += ["--labels", str(labels)] if labels else []
    arguments += ["--annotations", str(annotations)] if annotations else []
    arguments += ["--uncertainty"] if options.uncertainty else []
    return arguments + (["--region-class", options.region_class] if options.region_class else [])


def launch(model_path, folder, *, labels=None, annotations=None, options: SlideOptions = SlideOptions(),
           aggregate: str) -> str:  # fmt: skip
    """Queue the cohort on the engine (joined when it already runs, never started twice); returns its key."""
    key = job_key(model_path, folder, labels=labels, annotations=annotations, options=options)
    with jobs.exclusive(slides_cache_dir() / "jobs"):
        if jobs.is_active(read_job(key)):
            return key
        target = job_dir(key)
        jobs.queue(target, folder=str(folder), model=str(model_path))
        arguments = _arguments(model_path, folder, labels, annotations, options, aggregate) + ["--key", key]
        jobs.start("slides", target, arguments)
    return key


def run_job(model_path, folder, *, key: str, labels=None, annotations=None, options: SlideOptions,
            aggregate: str) -> dict:  # fmt: skip
    """Run the cohort in this process, reporting in the job folder; returns the final status."""
    target = job_dir(key)
    target.mkdir(parents=True, exist_ok=True)
    job = JobReporter(target)
    job.update("running", pid=os.getpid(), started=time.time(), phase=SCORING_PHASE, done=0,
               folder=str(folder), model=str(model_path))  # fmt: skip

    def progress(info: dict) -> None:
        last = info["last"]
        job.update(done=info["done"], total=info["total"], tiles_per_s=info["tiles_per_s"], eta_s=info["eta_s"],
                   last=f"{last['slide']}: {last['status']}")  # fmt: skip

    with job_lifecycle(job, target, stopped_by=CohortStopped):
        summary = run_cohort(model_path, [folder], output_dir(key), options=options, labels_path=labels,
                             annotations_dir=annotations, aggregate=aggregate, progress=progress,
                             should_stop=lambda: stop_requested(target))  # fmt: skip
        job.update("finished", phase="done", finished=time.time(), n_failed=summary["n_failed"])
    return read_json(target / "status.json", {})
