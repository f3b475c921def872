"""Scoring jobs: the model over a whole dataset in its own process, for the Evaluate, Compare and
Feature map pages.

`launch(model_path, dataset)` starts `python -m core predict-job MODEL DATA --key KEY` as its own
process and returns KEY, the prediction cache key (core.evaluate.predict.prediction_cache_key). A page finds
the job again after a reload, or from a second session, by computing the same key (`job_key`). The job
writes its result through core.evaluate.predict.cached_predictions, so the file is the very one `python
-m core evaluate` and the page read. With `features=True` the job computes the Feature map's features
instead (core.diagnose.features.cached_features, keyed by feature_cache_key, its folder the feature
cache). A job reports only through files in `<its cache>/jobs/<KEY>/`:
status.json (state, phase, done/total, pid, heartbeat, error; written atomically by
core.train.reporting.JobReporter), stop.request and job.log (the process's own output).

A job that dies without reporting (killed, out of memory) is read back as failed once its process
is gone or its heartbeat is stale. Nothing here imports Streamlit; TensorFlow is imported only by
the job process, when it loads the model.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import InputError, PatchLensError, RunError
from core.files import read_json
from core.train.records import job_status_dict
from core.train.reporting import JobReporter
from core.train.runs import (
    ACTIVE_STATES,
    QUEUED_GRACE_SECONDS,
    STALE_AFTER_SECONDS,
    pid_alive,
    request_stop,
    start_core_command,
    stop_requested,
    write_status,
)

LOADING_PHASE = "Starting TensorFlow and loading the model…"
PREDICTING_PHASE = "predicting"
FEATURES_PHASE = "computing features"
LOG_NAME = "job.log"
LAUNCH_LOCK = ".launch.lock"  # held while a launch checks for a running job and claims the key
KEY_PATTERN = re.compile(r"[0-9a-f]{8,64}")  # a job key is a hash: it names a folder, never a path


class JobStopped(PatchLensError):
    """The job was asked to stop (the page's Stop button, or SIGTERM)."""


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

    An active job whose process is gone, or whose heartbeat is stale, is reported as failed.
    """
    raw = read_json(job_dir(key, cache_dir) / "status.json")
    if raw is None or raw == {}:
        return None
    status = job_status_dict(raw)
    if status.get("state") in ACTIVE_STATES:
        age = time.time() - float(status.get("heartbeat") or 0)
        limit = QUEUED_GRACE_SECONDS if status["state"] == "queued" else STALE_AFTER_SECONDS
        pid = status.get("pid")
        if (pid is not None and not pid_alive(pid)) or age > limit:
            log = job_dir(key, cache_dir) / LOG_NAME
            status = {
                **status,
                "state": "failed",
                "stale": True,
                "error": f"The prediction process (pid {pid}) ended without reporting a result "
                f"(last heartbeat {age:.0f} s ago); see {log}.",
            }
    return status


def is_running(key: str, cache_dir: str | Path | None = None) -> bool:
    job = read_job(key, cache_dir)
    return bool(job) and job["state"] in ACTIVE_STATES


def stop_job(key: str, cache_dir: str | Path | None = None) -> None:
    """Ask the job to stop at its next batch (it ends as `stopped`; no cache file is written)."""
    folder = job_dir(key, cache_dir)
    if not folder.is_dir():
        raise RunError(f"No prediction job {key} to stop.")
    request_stop(folder)


def job_key(model_path: str | Path, dataset, *, tta: bool = False, features: bool = False) -> str:
    """The key of the job computing (model, dataset): the name of the cache file it writes."""
    if features:
        from core.diagnose.features import feature_cache_key

        return feature_cache_key(model_path, dataset)
    from core.evaluate.predictions import prediction_cache_key

    return prediction_cache_key(model_path, dataset, tta=tta)


def results_dir(cache_dir: str | Path | None = None, *, features: bool = False) -> Path | None:
    """Where a job writes its result (and keeps its jobs/ folder): `cache_dir`, else the feature
    cache for a features job, else None (the prediction cache, core.evaluate.predictions' default)."""
    if cache_dir is not None or not features:
        return cache_dir
    from core.diagnose.features import default_feature_cache_dir

    return default_feature_cache_dir()


def launch(
    model_path: str | Path,
    dataset,
    *,
    tta: bool = False,
    features: bool = False,
    cache_dir: str | Path | None = None,
) -> str:
    """Start the job for (model, dataset, tta), or its features job, in its own process; returns its key.

    A job already running for the same key is joined, never started twice.
    """
    key = job_key(model_path, dataset, tta=tta, features=features)
    cache_dir = results_dir(cache_dir, features=features)
    with _launch_lock(cache_dir):  # two clicks at once: the second finds the first one's job
        if is_running(key, cache_dir):
            return key
        folder = job_dir(key, cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "status.json").unlink(missing_ok=True)  # a new attempt forgets the last one's fields
        (folder / "stop.request").unlink(missing_ok=True)
        write_status(folder, "queued", pid=os.getpid(), created=time.time(), phase=LOADING_PHASE, done=0)
        arguments = ["predict-job", str(model_path), str(dataset.path), "--key", key]
        arguments += ["--tta"] if tta else []
        arguments += ["--features"] if features else []
        arguments += ["--cache-dir", str(cache_dir)] if cache_dir is not None else []
        write_status(folder, "queued", pid=start_core_command(arguments, folder / LOG_NAME))
    return key


@contextmanager
def _launch_lock(cache_dir: str | Path | None) -> Iterator[None]:
    """An exclusive lock on the jobs folder (flock: released by the kernel even if this process dies),
    so checking for a running job and claiming the key is one atomic step across sessions."""
    folder = jobs_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LAUNCH_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


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


@contextmanager
def job_lifecycle(job: JobReporter, folder: Path, *, stopped_by: type[BaseException]) -> Iterator[None]:
    """Run a background job's body so that it always ends in a state the page can show: `stopped` (a
    stop request raising `stopped_by`, SIGTERM or Ctrl-C) or `failed` with its reason; the body says
    `finished` itself. Heartbeat on while it runs; SIGTERM becomes a stop request."""
    job.start_heartbeat()
    previous = stop_on_sigterm(folder)
    try:
        yield
    except BaseException as error:
        state = "stopped" if isinstance(error, (stopped_by, KeyboardInterrupt)) else "failed"
        message = str(error) if isinstance(error, PatchLensError) else f"{type(error).__name__}: {error}"
        if state == "failed" and not isinstance(error, (PatchLensError, OSError)):  # a bug: its traceback in the log
            message += f" (the traceback is in {_log_traceback(folder)})"
        job.update(state, phase=state, error=message if state == "failed" else None, finished=time.time())
        if not isinstance(error, (Exception, KeyboardInterrupt)):
            raise
    finally:
        job.stop_heartbeat()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _log_traceback(folder: Path) -> Path:
    """Append the traceback being handled to the job's log (not to the terminal); returns the log."""
    log = folder / LOG_NAME
    with open(log, "a") as handle:
        handle.write(traceback.format_exc())
    return log


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
        from core.diagnose.features import cached_features

        cached_features(model_path, dataset, cache_dir=cache_dir, model=model, progress=progress)
    else:
        from core.evaluate.predictions import cached_predictions

        cached_predictions(model_path, dataset, tta=tta, cache_dir=cache_dir, model=model, progress=progress)


def stop_on_sigterm(folder: Path):
    """SIGTERM becomes a stop request (the job ends as `stopped` at its next batch)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: request_stop(folder))
