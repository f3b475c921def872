"""The one place to launch, read, list and stop jobs.

A job is a folder (its key names it) and a command: `start` writes `queued` in the folder and hands
the command to the engine (core.jobs.engine), which runs it on a warm worker; the job reports only
through its folder (core.jobs.status). `read` gives its status, a job that went silent read as failed
in words (unless this process's engine is still running or rerunning it); `list_recent` the running
and latest ones; `stop` asks it to stop at its next batch and cancels it if it has not started.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import RunError
from core.files import read_json
from core.jobs import engine
from core.jobs.kinds import KINDS
from core.jobs.records import job_status_dict
from core.jobs.status import (
    ACTIVE_STATES,
    QUEUED_PHASE,
    STATUS_FILE,
    clear_for_new_attempt,
    is_active,  # noqa: F401 (the façades' jobs.is_active)
    pid_alive,
    request_stop,
    silent_for,
    write_status,
)

LAUNCH_LOCK = ".launch.lock"  # held while a launch checks for a running job and claims the key
RERUN_PHASE = "Its worker was lost; running it again…"


def queue(folder: Path, /, **fields) -> None:
    """A fresh `queued` status in `folder` (the last attempt's fields and stop request forgotten)."""
    clear_for_new_attempt(folder)
    write_status(folder, "queued", pid=os.getpid(), created=time.time(), phase=QUEUED_PHASE, done=0, **fields)


def start(kind: str, folder: Path, arguments: list[str]):
    """Run `python -m core <kind's command> ARGUMENTS` on the engine for the job in `folder`, its output
    appended to the kind's log there; returns the task's future."""
    from core.jobs.worker import ATTEMPT_FILE, launching_settings, run_command

    spec = KINDS[kind]
    command = [spec.command, *arguments]
    log, once = str(folder / spec.log_name), spec.retries == 0
    (folder / ATTEMPT_FILE).unlink(missing_ok=True)
    return engine.submit(
        folder, run_command, command, log, launching_settings(), once=once, retries=spec.retries
    )


def read(folder: Path, *, what: str = "job") -> dict | None:
    """The job's status, or None when none was started in `folder`. An active job whose process is
    gone or silent reads as failed, unless this process's engine still holds its task."""
    raw = read_json(folder / STATUS_FILE)
    if raw is None or raw == {}:
        return None
    status = job_status_dict(raw)
    silent = silent_for(status)
    if silent is None:
        return status
    if engine.pending(folder):
        lost = not pid_alive(status.get("pid"))
        return {**status, "phase": RERUN_PHASE} if lost and status["state"] == "running" else status
    pid = status.get("pid")
    return {
        **status,
        "state": "failed",
        "stale": True,
        "error": f"The {what} process (pid {pid}) ended without reporting a result "
        f"(last heartbeat {silent:.0f} s ago); see {folder / 'job.log'}.",
    }


def stop(folder: Path, *, what: str = "job") -> None:
    """Ask the job to stop at its next batch; one not started yet is cancelled and reads `stopped`."""
    if not folder.is_dir():
        raise RunError(f"No {what} {folder.name} to stop: it no longer exists.")
    request_stop(folder)
    status = read_json(folder / STATUS_FILE) or {}
    if status.get("state") == "queued" and engine.cancel(folder):
        write_status(folder, "stopped", phase="stopped", finished=time.time())


def list_recent(root: Path, read_one: Callable[[str], dict | None], *, limit: int) -> list[dict]:
    """The running jobs under `root` and the most recent others (at most `limit` in all), newest first:
    each `read_one(key)` with its `key` and `updated` (seconds since the epoch)."""
    found = []
    for status_file in root.glob(f"*/{STATUS_FILE}") if root.is_dir() else []:
        job = read_one(status_file.parent.name)
        if job:
            found.append({**job, "key": status_file.parent.name, "updated": _mtime(status_file)})
    found.sort(key=lambda job: (job["state"] in ACTIVE_STATES, job["updated"]), reverse=True)
    running = [job for job in found if job["state"] in ACTIVE_STATES]
    others = [job for job in found if job["state"] not in ACTIVE_STATES]
    return running + others[: max(0, limit - len(running))]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile
        return 0.0


@contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """An exclusive lock on a jobs folder (flock: released by the kernel even if this process dies),
    so checking for a running job and claiming its key is one atomic step across sessions."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LAUNCH_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
