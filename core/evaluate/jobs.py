"""Scoring jobs: the model over a whole dataset on the job engine, for the Evaluate, Compare and
Feature map pages.

`launch(model_path, dataset)` queues `python -m core predict-job MODEL DATA --key KEY` on the engine
(core.jobs: a warm worker, TensorFlow already imported) and returns KEY, the prediction cache key
(core.evaluate.predict.prediction_cache_key). A page finds the job again after a reload, or from a
second session, by computing the same key (`job_key`). The job writes its result through
core.evaluate.predict.cached_predictions, so the file is the very one `python -m core evaluate` and the
page read. With `features=True` the job computes the Feature map's features instead
(core.evaluate.features.cached_features, keyed by feature_cache_key, its folder the feature cache).
A job reports only through files in `<its cache>/jobs/<KEY>/`: status.json, stop.request and job.log
(the lifecycle is core.jobs.status').

A job that dies without reporting (its worker killed, out of memory) is rerun by the engine; one
whose process is gone and that no engine holds reads as failed. Nothing here imports Streamlit;
TensorFlow is imported only by the worker, when it loads the model.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from core.errors import InputError, JobStopped, RunError
from core.files import read_json
from core.jobs import launch as jobs
from core.jobs.status import (  # noqa: F401 (LOADING_PHASE and job_lifecycle were defined here)
    LOADING_PHASE,
    LOG_NAME,
    JobReporter,
    job_lifecycle,
    stop_requested,
)

PREDICTING_PHASE = "predicting"
FEATURES_PHASE = "computing features"
# Patches in a prediction job's first batch: its first progress comes after these, not a whole batch
# (what a page shows first; the predictions are the same).
FIRST_PROGRESS_BATCH = 32
KEY_PATTERN = re.compile(r"[0-9a-f]{8,64}")  # a job key is a hash: it names a folder, never a path


def jobs_dir(cache_dir: str | Path | None = None) -> Path:
    from core.evaluate.predictions import default_prediction_cache_dir

    return (Path(cache_dir) if cache_dir is not None else default_prediction_cache_dir()) / "jobs"


def check_key(key: str) -> str:
    """`key` when it is a job key (8-64 lower-case hex digits); InputError otherwise, so a key such as
    `../..` can never name a folder outside the jobs folder."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise InputError(f"a job key is 8 to 64 lower-case hex digits (a cache key); got {key!r}.")
    return key


def job_dir(key: str, cache_dir: str | Path | None = None) -> Path:
    return jobs_dir(cache_dir) / check_key(key)


def read_job(key: str, cache_dir: str | Path | None = None) -> dict | None:
    """The job's status, or None when no job was ever started for `key`.

    An active job whose process is gone, or whose heartbeat is stale, is reported as failed (unless
    the engine of this process is still running or rerunning it).
    """
    return jobs.read(job_dir(key, cache_dir), what="prediction")


def is_running(key: str, cache_dir: str | Path | None = None) -> bool:
    return jobs.is_active(read_job(key, cache_dir))


def stop_job(key: str, cache_dir: str | Path | None = None) -> None:
    """Ask the job to stop at its next batch (it ends as `stopped`; no cache file is written); one
    still queued is cancelled."""
    jobs.stop(job_dir(key, cache_dir), what="prediction job")


def job_key(model_path: str | Path, dataset, *, tta: bool = False, features: bool = False) -> str:
    """The key of the job computing (model, dataset): the name of the cache file it writes."""
    if features:
        from core.evaluate.features import feature_cache_key

        return feature_cache_key(model_path, dataset)
    from core.evaluate.predictions import prediction_cache_key

    return prediction_cache_key(model_path, dataset, tta=tta)


def results_dir(cache_dir: str | Path | None = None, *, features: bool = False) -> Path | None:
    """Where a job writes its result (and keeps its jobs/ folder): `cache_dir`, else the feature
    cache for a features job, else None (the prediction cache, core.evaluate.predictions' default)."""
    if cache_dir is not None or not features:
        return cache_dir
    from core.evaluate.features import default_feature_cache_dir

    return default_feature_cache_dir()


def launch(
    model_path: str | Path,
    dataset,
    *,
    tta: bool = False,
    features: bool = False,
    cache_dir: str | Path | None = None,
) -> str:
    """Queue the job for (model, dataset, tta), or its features job, on the engine; returns its key.

    A job already running for the same key is joined, never started twice.
    """
    key = job_key(model_path, dataset, tta=tta, features=features)
    cache_dir = results_dir(cache_dir, features=features)
    with jobs.exclusive(jobs_dir(cache_dir)):  # two clicks at once: the second finds the first one's job
        if is_running(key, cache_dir):
            return key
        folder = job_dir(key, cache_dir)
        jobs.queue(folder)
        arguments = [str(model_path), str(dataset.path), "--key", key]
        arguments += ["--tta"] if tta else []
        arguments += ["--features"] if features else []
        arguments += ["--cache-dir", str(cache_dir)] if cache_dir is not None else []
        jobs.start("features" if features else "predict", folder, arguments)
    return key


def run_job(
    model_path: str | Path,
    dataset_path: str | Path,
    *,
    key: str | None = None,
    tta: bool = False,
    features: bool = False,
    cache_dir: str | Path | None = None,
) -> dict:
    """Compute and cache the predictions (or, with `features`, the features) in this process,
    reporting in the job folder.

    `key` (from `launch`) is the key the page waits on; the job fails with a clear message when the
    model or dataset changed since, so the page never waits for a file that will not come.
    Returns the final status (finished, stopped or failed); never raises for a job failure.
    """
    from core.data.dataset import open_dataset

    if key is None:  # run by hand: the key follows from the inputs, and bad inputs fail right here
        key = job_key(model_path, open_dataset(dataset_path), tta=tta, features=features)
    cache_dir = results_dir(cache_dir, features=features)
    folder = job_dir(key, cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    job = JobReporter(folder)
    started = time.time()
    job.update("running", pid=os.getpid(), started=started, phase=LOADING_PHASE, done=0)
    with job_lifecycle(job, folder, stopped_by=JobStopped):
        dataset = open_dataset(dataset_path)
        job.update(total=len(dataset))
        if job_key(model_path, dataset, tta=tta, features=features) != key:
            raise RunError("The model file or the dataset changed since this job was started; run it again.")
        _compute(model_path, dataset, tta, features, cache_dir, job, folder)
        job.update("finished", phase="done", finished=time.time(), duration_s=round(time.time() - started, 1))
    return read_json(folder / "status.json", {})


def _compute(
    model_path, dataset, tta: bool, features: bool, cache_dir, job: JobReporter, folder: Path
) -> None:
    from core.model.io import load_model

    model = load_model(model_path)
    phase = FEATURES_PHASE if features else PREDICTING_PHASE

    def progress(done: int, total: int) -> None:
        if stop_requested(folder):
            raise JobStopped("stopped on request")
        job.update(phase=phase, done=done, total=total)

    if features:
        from core.evaluate.features import cached_features

        cached_features(model_path, dataset, cache_dir=cache_dir, model=model, progress=progress)
    else:
        from core.evaluate.predictions import cached_predictions

        cached_predictions(
            model_path, dataset, tta=tta, cache_dir=cache_dir, model=model, progress=progress,
            first_batch=FIRST_PROGRESS_BATCH,
        )  # fmt: skip
