"""One lifecycle for every background job: its status.json, heartbeat and stop request.

A job's folder holds `status.json` (state queued → running → finished | failed | stopped, phase,
done/total, pid, heartbeat, error; replaced atomically) and, when a stop was asked for, `stop.request`.
`JobReporter` owns status.json while the job runs (a heartbeat thread keeps it fresh); `job_lifecycle`
runs a job's body so that it always ends in a state a page can show; `read_job_status` reads it back,
reporting as failed a job whose process is gone or whose heartbeat went silent. Training's run folder
is such a folder too (core.train.runs adds what only runs have).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import PatchLensError
from core.files import atomic_write_bytes, atomic_write_json, read_json

STATES = ("queued", "running", "finished", "failed", "stopped")
ACTIVE_STATES = ("queued", "running")
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 45.0  # no heartbeat for this long = the process is gone
QUEUED_GRACE_SECONDS = 120.0  # a queued job may take this long to import TensorFlow and start
STOP_FILE = "stop.request"
STATUS_FILE = "status.json"
LOG_NAME = "job.log"
LOADING_PHASE = "Starting TensorFlow and loading the model…"
QUEUED_PHASE = "Queued: waiting for a free worker…"  # every worker is busy (or still starting)


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def write_status(folder: str | Path, state: str, /, **fields) -> dict:
    """Replace status.json, keeping earlier fields (started, pid, ...) unless overridden."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    path = Path(folder) / STATUS_FILE
    status = read_json(path, {})
    status = status if isinstance(status, dict) else {}  # a damaged file is replaced, not kept
    status.update(fields)
    status["state"] = state
    status["heartbeat"] = time.time()
    atomic_write_json(path, status)
    return status


def is_active(status: dict | None) -> bool:
    """Whether a job's status says it is queued or running."""
    return bool(status) and status.get("state") in ACTIVE_STATES


def silent_for(status: dict) -> float | None:
    """How long an active job has been silent past its limit (dead process or stale heartbeat), in
    seconds since its last heartbeat; None while it is alive or when it has ended."""
    state = status.get("state")
    if state not in ACTIVE_STATES:
        return None
    age = time.time() - float(status.get("heartbeat") or 0)
    limit = QUEUED_GRACE_SECONDS if state == "queued" else STALE_AFTER_SECONDS
    pid = status.get("pid")
    return age if (pid is not None and not pid_alive(pid)) or age > limit else None


def request_stop(folder: str | Path) -> None:
    """Ask a running job to stop gracefully at its next batch."""
    from core.errors import RunError

    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder.name} no longer exists.")
    atomic_write_bytes(folder / STOP_FILE, str(time.time()).encode())


def stop_requested(folder: str | Path) -> bool:
    return (Path(folder) / STOP_FILE).exists()


def clear_for_new_attempt(folder: Path) -> None:
    """Forget the last attempt's status and stop request (a new attempt starts from nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (STATUS_FILE, STOP_FILE):
        (folder / name).unlink(missing_ok=True)


class JobReporter:
    """Owns status.json for one job: state, phase, progress, heartbeat (from a thread)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.lock = threading.Lock()
        self.fields: dict = {}
        self.state = "running"
        self.stop_reason: str | None = None
        self._beating = threading.Event()

    def update(self, state: str | None = None, **fields) -> None:
        with self.lock:
            if state:
                self.state = state
            self.fields.update(fields)
            write_status(self.run_dir, self.state, **self.fields)

    def start_heartbeat(self) -> None:
        def beat():
            while not self._beating.wait(HEARTBEAT_SECONDS):
                self.update()

        threading.Thread(target=beat, daemon=True, name="heartbeat").start()

    def stop_heartbeat(self) -> None:
        self._beating.set()


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
        if state == "failed" and not isinstance(
            error, (PatchLensError, OSError)
        ):  # a bug: its traceback in the log
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


def stop_on_sigterm(folder: Path):
    """SIGTERM becomes a stop request (the job ends as `stopped` at its next batch); only in a
    process's main thread (an engine worker runs jobs in its own threads and is stopped by request)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda signum, frame: request_stop(folder))
