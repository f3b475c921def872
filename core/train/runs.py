"""The run registry on disk: one directory per training job, read by the pages and the CLI.

A run directory holds `config.json`, `status.json` (state, error, pid, heartbeat, optional
`warning`), `metrics.jsonl` (one JSON object a line, appended and flushed), `best.keras` (best
validation AUC), `model.keras` (final), `val_predictions.csv` (id,label,prob) and `train.log` (the
job's own output). Every file except the append-only metrics is written atomically (temp file + rename).
This module also owns what a run offers: the model to use, the checkpoint to resume from, and the
progress of a running job in words.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from core.errors import JobConflictError, RunError
from core.files import atomic_write_bytes, atomic_write_json, read_json
from core.model.io import CHECKPOINT_FILE, FINAL_MODEL_FILE, run_checkpoint_path, run_model_path
from core.settings import PROJECT_DIR, runs_dir, workspace_dir

STATES = ("queued", "running", "finished", "failed", "stopped")
ACTIVE_STATES = ("queued", "running")
RESUMABLE_STATES = ("failed", "stopped")
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 45.0  # no heartbeat for this long = the process is gone
QUEUED_GRACE_SECONDS = 120.0  # a queued job may take this long to import TensorFlow and start
STOP_FILE = "stop.request"
RUN_FILES = (
    "config.json",
    "status.json",
    "metrics.jsonl",
    CHECKPOINT_FILE,
    FINAL_MODEL_FILE,
    "val_predictions.csv",
)
LOCK_NAME = "train.lock"


# ---------------------------------------------------------------- processes


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


def start_core_command(arguments: list[str], log_path: str | Path) -> int:
    """Start `python -m core ARGUMENTS` in its own session (it outlives page reruns and reloads),
    its output appended to `log_path`; returns its pid. How the Train and Evaluate pages start jobs."""
    import subprocess
    import sys

    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", *arguments],
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process.pid


# ---------------------------------------------------------------- status


def write_status(run_dir: str | Path, state: str, **fields) -> dict:
    """Replace status.json, keeping earlier fields (started, pid, ...) unless overridden."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    path = Path(run_dir) / "status.json"
    status = read_json(path, {}) or {}
    status.update(fields)
    status["state"] = state
    status["heartbeat"] = time.time()
    atomic_write_json(path, status)
    return status


def read_status(run_dir: str | Path) -> dict:
    """status.json, with a dead job (no live process, stale heartbeat) reported as failed."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json")
    if status is None:
        if not run_dir.is_dir():
            raise RunError(f"Run {run_dir.name} no longer exists.")
        return {"state": "failed", "error": "status.json is missing or unreadable."}
    state = status.get("state")
    if state in ACTIVE_STATES:
        age = time.time() - float(status.get("heartbeat") or 0)
        limit = QUEUED_GRACE_SECONDS if state == "queued" else STALE_AFTER_SECONDS
        pid = status.get("pid")
        dead = (pid is not None and not pid_alive(pid)) or age > limit
        if dead:
            status = dict(status)
            status["state"] = "failed"
            status["error"] = (
                f"The training process (pid {pid}) died without reporting: "
                f"no heartbeat for {age:.0f} s. The best checkpoint, if any, is kept."
            )
            status["stale"] = True
    return status


def is_active(run_dir: str | Path) -> bool:
    try:
        return read_status(run_dir).get("state") in ACTIVE_STATES
    except RunError:
        return False


def request_stop(run_dir: str | Path) -> None:
    """Ask a running job to stop gracefully at its next batch."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"Run {run_dir.name} no longer exists.")
    atomic_write_bytes(run_dir / STOP_FILE, str(time.time()).encode())


def stop_requested(run_dir: str | Path) -> bool:
    return (Path(run_dir) / STOP_FILE).exists()


# ---------------------------------------------------------------- metrics


def append_metrics(run_dir: str | Path, record: dict) -> None:
    """Append one JSON line and flush it to disk, so a reader never waits on a buffer."""
    with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every complete line of metrics.jsonl (a half-written last line is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


# ---------------------------------------------------------------- the workspace lock


def lock_path() -> Path:
    return workspace_dir() / LOCK_NAME


def job_conflict(running: str) -> JobConflictError:
    """The refusal of a second job, naming the one that runs."""
    return JobConflictError(
        f"A training job is already running in this workspace: {running}. "
        "Stop it or wait for it to finish before starting another."
    )


def acquire_lock(run_dir: str | Path, pid: int | None = None) -> None:
    """Take the one-job-per-workspace lock for `run_dir`.

    Succeeds when the lock is free, already names this run, or names a job that is gone.
    Raises JobConflictError naming the running job otherwise.
    """
    run_dir = Path(run_dir).resolve()
    path = lock_path()
    record = json.dumps({"run_dir": str(run_dir), "pid": pid or os.getpid(), "time": time.time()})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_json(path, {}) or {}
            holder_dir = holder.get("run_dir")
            if holder_dir == str(run_dir):
                atomic_write_bytes(path, record.encode())
                return
            if holder_dir and is_active(holder_dir) or (not holder_dir and pid_alive(holder.get("pid"))):
                raise job_conflict(Path(holder_dir).name if holder_dir else "unknown") from None
            path.unlink(missing_ok=True)  # stale lock of a job that is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(record)
        return
    raise JobConflictError("Could not take the training lock; try again.")


def release_lock(run_dir: str | Path) -> None:
    path = lock_path()
    holder = read_json(path, {}) or {}
    if holder.get("run_dir") == str(Path(run_dir).resolve()):
        path.unlink(missing_ok=True)


def active_run() -> Path | None:
    """The run directory of the job running in this workspace, if any."""
    holder = read_json(lock_path(), {}) or {}
    run_dir = holder.get("run_dir")
    if run_dir and is_active(run_dir):
        return Path(run_dir)
    return None


# ---------------------------------------------------------------- the registry


@dataclass
class RunSummary:
    path: Path
    name: str
    state: str
    architecture: str = ""
    data: str = ""
    epochs: int = 0
    duration_s: float | None = None
    started: float | None = None
    error: str | None = None
    warning: str | None = None  # a plain-words concern the job raised (e.g. validation at chance)
    model_path: Path | None = None
    config: dict = field(default_factory=dict)

    @property
    def has_model(self) -> bool:
        return self.model_path is not None

    @property
    def resumable(self) -> bool:
        """A failed or stopped run with a checkpoint to continue from."""
        return self.state in RESUMABLE_STATES and run_checkpoint_path(self.path) is not None

    # The epoch records are read only when a view asks for them: the sidebar lists every run on
    # every page and needs none of this.
    @cached_property
    def records(self) -> list[dict]:
        return read_metrics(self.path)

    @cached_property
    def epoch_records(self) -> list[dict]:
        return [r for r in self.records if r.get("kind") == "epoch"]

    @property
    def epochs_done(self) -> int:
        return len(self.epoch_records)

    @cached_property
    def _best_epoch(self) -> dict:
        """The validation record of the model the run delivers: its weight average when the run
        adopted one (core.train.averaging), else its best epoch."""
        adopted = [r for r in self.records if r.get("kind") == "swa" and r.get("adopted")]
        return (
            adopted[-1]
            if adopted
            else max(self.epoch_records, key=lambda r: r.get("val_auc") or -1, default={})
        )

    @property
    def best_val_auc(self) -> float | None:
        return self._best_epoch.get("val_auc")

    @property
    def best_val_accuracy(self) -> float | None:
        return self._best_epoch.get("val_accuracy")


def new_run_dir(name: str | None = None, root: Path | None = None) -> Path:
    """A fresh, unique run directory name like 20261127-101500-patchnet."""
    root = root or runs_dir()
    stem = time.strftime("%Y%m%d-%H%M%S") + (f"-{name}" if name else "")
    candidate, n = root / stem, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stem}-{n}"
    candidate.mkdir(parents=True)
    return candidate


def summarize_run(run_dir: str | Path) -> RunSummary:
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", {}) or {}
    status = read_status(run_dir)
    data = config.get("data") or []
    return RunSummary(
        path=run_dir,
        name=run_dir.name,
        state=status.get("state", "failed"),
        architecture=config.get("architecture", ""),
        data=", ".join(Path(d).name for d in data) if isinstance(data, list) else str(data),
        epochs=int(config.get("epochs") or 0),
        duration_s=status.get("duration_s"),
        started=status.get("started"),
        error=status.get("error"),
        warning=status.get("warning"),
        model_path=run_model_path(run_dir),
        config=config,
    )


def list_runs(root: Path | None = None) -> list[RunSummary]:
    """Every run directory under the workspace, newest first."""
    root = root or runs_dir()
    runs = []
    for entry in sorted(root.iterdir(), reverse=True) if root.is_dir() else []:
        if entry.is_dir() and (entry / "config.json").exists():
            try:
                runs.append(summarize_run(entry))
            except RunError:
                continue  # deleted while we listed
    return runs


def delete_run(run_dir: str | Path) -> None:
    """Delete a run directory; refused while its job runs."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"Run {run_dir.name} no longer exists.")
    if is_active(run_dir):
        raise RunError(f"Run {run_dir.name} is still running; stop it before deleting it.")
    # Rename first so a reader never sees a half-deleted run under its real name.
    trash = run_dir.with_name(f".deleting-{run_dir.name}-{os.getpid()}")
    os.replace(run_dir, trash)
    shutil.rmtree(trash, ignore_errors=True)


# ---------------------------------------------------------------- views for the page

STARTING_TEXT = "starting TensorFlow…"


def run_progress(status: dict) -> tuple[float, str]:
    """How far a queued or running job is, as a fraction in [0, 1] and a line of text.

    Before the first batch has reported (queued, importing TensorFlow, preparing data, tracing the
    model) there is no step count to show: the text says what the job is doing instead.
    """
    progress = status.get("progress") or {}
    phase = status.get("phase") or ""
    epoch, step = progress.get("epoch") or 0, progress.get("step") or 0
    if status.get("state") == "queued" or epoch < 1 or step < 1:
        early = phase and phase not in ("starting", "building the model", "training")
        return 0.0, f"{phase}…" if early else STARTING_TEXT
    epochs, steps = max(progress.get("epochs") or epoch, 1), max(progress.get("steps") or step, 1)
    fraction = min(max((epoch - 1 + step / steps) / epochs, 0.0), 1.0)
    text = (
        f"epoch {epoch}/{epochs} · step {step}/{steps} · {progress.get('patches_per_s') or 0:.0f} patches/s"
        f" · ETA {(progress.get('eta_s') or 0) / 60:.1f} min"
    )
    if phase and phase != "training":
        text += f" · {phase}…"
    return fraction, text


WEIGHT_AVERAGE = "validation, weight average"  # the split of a run's averaged weights in curves_long


def curves_long(records: list[dict], run_name: str = "") -> object:
    """Long-form curves for plotting: columns run, epoch, metric (loss/accuracy/auc), split, value.

    Batch-window lines give the training curve inside an epoch (fractional epochs), so a chart grows
    while the first epoch runs; epoch lines give the validation points; a weight average
    (core.train.averaging) is one point of split WEIGHT_AVERAGE at the last epoch it averages.
    """
    import pandas as pd

    rows = []
    for r in records:
        if r.get("kind") == "batch":
            x = r["epoch"] - 1 + r["step"] / max(r["steps"], 1)
            for metric in ("loss", "accuracy"):
                if r.get(metric) is not None:
                    rows.append((run_name, x, metric, "train (running)", r[metric]))
        elif r.get("kind") == "epoch":
            for metric in ("loss", "accuracy", "auc"):
                for split, key in (("train", metric), ("validation", f"val_{metric}")):
                    if r.get(key) is not None:
                        rows.append((run_name, float(r["epoch"]), metric, split, r[key]))
        elif r.get("kind") == "swa":  # the weight average's validation, at its last epoch
            for metric in ("loss", "accuracy", "auc"):
                if r.get(f"val_{metric}") is not None:
                    rows.append(
                        (run_name, float(r["last_epoch"]), metric, WEIGHT_AVERAGE, r[f"val_{metric}"])
                    )
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "split", "value"])
