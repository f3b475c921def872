"""A training job: a TrainConfig and a run directory in, a trained model and its record out.

`launch(config)` (the Train page) writes the run directory and queues `python -m core train
--config RUN/config.json --out RUN` on the job engine (core.jobs), so training survives page reruns
and browser reloads. The CLI's `train` calls `run_training` directly: both take the same code path.
The job reports only through files (see core.train.runs and core.train.reporting); the page reads them.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
import traceback
from pathlib import Path

from core.errors import JobConflictError, PatchLensError, RunError
from core.train.config import TrainConfig
from core.train.data import prepare_data
from core.train.distributed import is_chief
from core.train.reporting import JobReporter, terminal_printer
from core.train.resume import resume_config
from core.train.runs import (
    acquire_lock,
    active_run,
    atomic_write_json,
    job_conflict,
    new_run_dir,
    read_json,
    release_lock,
    write_status,
)

__all__ = ["TrainConfig", "launch", "prepare_data", "resume_config", "run_training"]


def run_training(config: TrainConfig, run_dir: str | Path, *, verbose: bool = True) -> dict:
    """Train in this process, writing everything into `run_dir`. Returns the final status.

    Errors end in status `failed` with a readable message (and the traceback in train.log);
    a stop request or SIGTERM ends the run gracefully as `stopped`, keeping the best checkpoint.
    """
    config.validate()
    chief = config.strategy != "multiworker" or is_chief()
    run_dir = _claim_run_dir(config, run_dir, chief)
    job = JobReporter(run_dir)
    started = time.time()
    job.update("running", pid=os.getpid(), started=started, phase="starting", error=None)
    job.start_heartbeat()
    printer = terminal_printer() if verbose else None
    previous_sigterm = _stop_on_sigterm(job, run_dir)
    try:
        result = _train(config, run_dir, job, printer, started)
        state = "stopped" if job.stop_reason and job.stop_reason.startswith("stopped") else "finished"
        job.update(
            state,
            phase="done",
            finished=time.time(),
            duration_s=round(time.time() - started, 1),
            note=job.stop_reason,
            **result,
        )
    except BaseException as error:  # the job must always end in a state the page can show
        _record_failure(job, run_dir, error, started)
        if not isinstance(error, (Exception, KeyboardInterrupt)):
            raise
    finally:
        job.stop_heartbeat()
        if chief:
            release_lock(run_dir)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_sigterm)
    return _final_status(run_dir, chief, job, printer)


def _claim_run_dir(config: TrainConfig, run_dir: str | Path, chief: bool) -> Path:
    """The run's folder, locked (by the chief) and holding config.json; RunError when it already holds
    a run that is not a queued one. A non-chief worker gets a scratch folder instead."""
    if not chief:  # other workers train in step with the chief but write only to a scratch folder
        run_dir = Path(tempfile.mkdtemp(prefix="patchlens-worker-"))
    run_dir = Path(run_dir).resolve()
    existing = read_json(run_dir / "status.json")
    if existing is not None and (not isinstance(existing, dict) or existing.get("state") != "queued"):
        state = existing.get("state") if isinstance(existing, dict) else "damaged"
        raise RunError(f"{run_dir} already holds a run ({state}); choose a new --out.")
    if chief:  # before anything is created: a refused job leaves no folder behind
        acquire_lock(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    return run_dir


def _stop_on_sigterm(job: JobReporter, run_dir: Path):
    """From the main thread: SIGTERM asks the run to stop (as a stop request would); returns the
    handler it replaced."""
    previous_sigterm = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        job.stop_reason = "stopped by SIGTERM"
        (run_dir / "stop.request").touch()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    return previous_sigterm


def _record_failure(job: JobReporter, run_dir: Path, error: BaseException, started: float) -> None:
    """The run ends as failed with a readable message; the traceback goes to train.log."""
    message = str(error) if isinstance(error, PatchLensError) else f"{type(error).__name__}: {error}"
    if isinstance(error, KeyboardInterrupt):
        message = "interrupted"
    with open(run_dir / "train.log", "a") as log:
        log.write(traceback.format_exc())
    job.update(
        "failed",
        phase="failed",
        error=message,
        finished=time.time(),
        duration_s=round(time.time() - started, 1),
    )


def _final_status(run_dir: Path, chief: bool, job: JobReporter, printer) -> dict:
    """The run's last status; a worker's scratch folder is removed, the chief's end is printed."""
    final = json.loads((run_dir / "status.json").read_text())
    if not chief:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    elif printer:
        printer(f"{job.state}: {run_dir}", newline=True)
    return final


def _train(config: TrainConfig, run_dir: Path, job: JobReporter, printer, started: float) -> dict:
    """The run's steps (core.train.steps); returns the summary that ends in status.json."""
    from core.train import steps

    run = steps.Run(config, run_dir, job, printer, started)
    data = steps.load_data(run)
    pipelines = steps.make_pipelines(run, data)
    model, initial_epoch = steps.build_model(run, pipelines)
    callbacks = steps.make_callbacks(run, data, pipelines)
    steps.fit(run, model, data, pipelines, callbacks, initial_epoch)
    swa = steps.average(run, model, data, pipelines, callbacks)
    probs, calibration = steps.predict(run, model, data, pipelines)
    outcome = {
        "best_epoch": callbacks.best.best_epoch
        or initial_epoch
        or None,  # no epoch of its own: its checkpoint
        **({"swa": {k: v for k, v in swa.items() if k != "kind"}} if swa else {}),
    }
    return steps.save(run, model, data, outcome, probs, calibration)


# ---------------------------------------------------------------- launching from the page


def launch(config: TrainConfig, run_dir: str | Path | None = None) -> Path:
    """Queue `python -m core train` for `config` on the job engine (core.jobs: a warm worker); returns
    the run directory. The run is never rerun: a lost worker leaves it failed with its checkpoint kept.

    Refused with JobConflictError when another job runs in this workspace.
    """
    config.validate()
    running = active_run()
    if running is not None:
        raise job_conflict(running.name)
    run_dir = Path(run_dir) if run_dir else new_run_dir(config.architecture)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    write_status(run_dir, "queued", pid=os.getpid(), created=time.time())
    try:
        acquire_lock(run_dir)
    except JobConflictError:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    from core.jobs.launch import start

    start("train", run_dir, ["--config", str(run_dir / "config.json"), "--out", str(run_dir), "--quiet"])
    return run_dir
