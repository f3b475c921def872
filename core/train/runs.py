"""The run registry on disk: one directory per training job, read by the pages and the CLI.

A run directory holds `config.json`, `status.json` (state, error, pid, heartbeat, optional
`warning`), `metrics.jsonl` (one JSON object a line, appended and flushed), `best.keras` (best
validation AUC), `model.keras` (final), `val_predictions.csv` (id,label,prob) and `train.log` (the
job's own output). Every file except the append-only metrics is written atomically (temp file + rename).
Every file is read through core.train.records, so a damaged one reads as words, never a traceback.
The lifecycle every job shares (states, status.json, heartbeat, stop request) is core.jobs.status'.
This module also owns what a run offers: the model to use and the checkpoint to resume from; how a
run is shown (progress in words, curves) is core.train.views.
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
from core.files import atomic_write_bytes, atomic_write_json, read_json  # noqa: F401 (re-exported)
from core.jobs.status import (  # noqa: F401 (the one lifecycle of every job; these were defined here)
    ACTIVE_STATES,
    HEARTBEAT_SECONDS,
    QUEUED_GRACE_SECONDS,
    STALE_AFTER_SECONDS,
    STATES,
    STOP_FILE,
    pid_alive,
    stop_requested,
    write_status,
)
from core.model.io import CHECKPOINT_FILE, FINAL_MODEL_FILE, run_checkpoint_path, run_model_path
from core.settings import runs_dir, workspace_dir
from core.train.records import (
    LockRecord,
    RunConfigRecord,
    metric_line,
    parse,
    read_raw,
    read_record,
    status_dict,
    type_problems,
)
from core.train.views import STARTING_TEXT, WEIGHT_AVERAGE, curves_long, run_progress  # noqa: F401 (were here)

RESUMABLE_STATES = ("failed", "stopped")
RUN_FILES = (
    "config.json",
    "status.json",
    "metrics.jsonl",
    CHECKPOINT_FILE,
    FINAL_MODEL_FILE,
    "val_predictions.csv",
)
LOCK_NAME = "train.lock"


# ---------------------------------------------------------------- status


def read_status(run_dir: str | Path) -> dict:
    """status.json validated (core.train.records.RunStatus: every field of its type, problems in
    `damaged`), with a dead job (no live process, stale heartbeat) reported as failed."""
    run_dir = Path(run_dir)
    raw, problem = read_raw(run_dir / "status.json")
    if raw is None:
        if not run_dir.is_dir():
            raise RunError(f"Run {run_dir.name} no longer exists.")
        problem = problem or "status.json is missing"
        return status_dict({"error": f"{problem}.", "damaged": problem}) | {"damaged": problem}
    status = status_dict(raw)
    if status["state"] not in STATES:
        status["damaged"] = "; ".join(
            filter(None, [status["damaged"], f"status.json: unknown state {status['state']!r}"])
        )
        status["state"] = "failed"
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
    """Ask a running training job to stop gracefully at its next batch; one still queued on the job
    engine is cancelled and reads `stopped`."""
    from core.jobs.launch import stop

    stop(Path(run_dir), what="run")


# ---------------------------------------------------------------- metrics


def append_metrics(run_dir: str | Path, record: dict) -> None:
    """Append one JSON line and flush it to disk, so a reader never waits on a buffer."""
    with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every sound line of metrics.jsonl (core.train.records.metric_line); damaged lines are left out."""
    return read_metrics_checked(run_dir)[0]


def read_metrics_checked(run_dir: str | Path) -> tuple[list[dict], int]:
    """The sound lines of metrics.jsonl and how many complete lines were damaged (a half-written last
    line, the job still appending it, is not counted)."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [], 0
    lines = text.splitlines()
    records, damaged = [], 0
    for number, line in enumerate(lines, 1):
        try:
            record = metric_line(json.loads(line))
        except ValueError:
            record = None
        if record is not None:
            records.append(record)
        elif line.strip() and (number < len(lines) or text.endswith("\n")):
            damaged += 1
    return records, damaged


# ---------------------------------------------------------------- the workspace lock


def lock_path() -> Path:
    return workspace_dir() / LOCK_NAME


def job_conflict(running: str) -> JobConflictError:
    """The refusal of a second job, naming the one that runs."""
    return JobConflictError(
        f"A training job is already running in this workspace: {running}. "
        "Stop it or wait for it to finish before starting another."
    )


def lock_holder() -> LockRecord:
    """train.lock as a record; a damaged lock reads as held by nobody (and is taken over)."""
    holder, _ = read_record(LockRecord, lock_path())
    return holder or LockRecord()


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
            holder = lock_holder()
            holder_dir = holder.run_dir
            if holder_dir == str(run_dir):
                atomic_write_bytes(path, record.encode())
                return
            if holder_dir and is_active(holder_dir) or (not holder_dir and pid_alive(holder.pid)):
                raise job_conflict(Path(holder_dir).name if holder_dir else "unknown") from None
            path.unlink(missing_ok=True)  # stale lock of a job that is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(record)
        return
    raise JobConflictError("Could not take the training lock; try again.")


def release_lock(run_dir: str | Path) -> None:
    if lock_holder().run_dir == str(Path(run_dir).resolve()):
        lock_path().unlink(missing_ok=True)


def active_run() -> Path | None:
    """The run directory of the job running in this workspace, if any."""
    run_dir = lock_holder().run_dir
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
    config: dict = field(default_factory=dict)  # config.json as written; {} when it is damaged
    damaged: str | None = None  # what is wrong with the run's files, in words (core.train.records)
    resumed_from: str | None = None  # the run this one continues
    stopped_at: dict | None = None  # where a run stopped early (core.train.records.StoppedAt)

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
    def _metrics(self) -> tuple[list[dict], int]:
        return read_metrics_checked(self.path)

    @property
    def records(self) -> list[dict]:
        return self._metrics[0]

    @property
    def problems(self) -> str | None:
        """What is damaged in the run's files, metrics.jsonl included, in words."""
        bad = self._metrics[1]
        lines = f"metrics.jsonl: {bad} damaged line{'s' * (bad > 1)} left out" if bad else None
        return "; ".join(filter(None, [self.damaged, lines])) or None

    @cached_property
    def epoch_records(self) -> list[dict]:
        return [r for r in self.records if r.get("kind") == "epoch"]

    @property
    def epochs_done(self) -> int:
        """Complete epochs in the original numbering: a resumed run counts its source's epochs too."""
        before = (self.stopped_at or {}).get("epochs_complete", 0)  # a stop before any epoch of its own
        return max((r["epoch"] for r in self.epoch_records), default=before)

    @property
    def epochs_here(self) -> tuple[int, int] | None:
        """The first and last complete epoch this run trained itself, when it continues another."""
        epochs = [r["epoch"] for r in self.epoch_records]
        return (min(epochs), max(epochs)) if self.resumed_from and epochs else None

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
    """A run as the registry shows it; damaged files (core.train.records) read as words in `damaged`."""
    from core.train.config import TrainConfig

    run_dir = Path(run_dir)
    raw, problem = read_raw(run_dir / "config.json")
    config, problems = parse(RunConfigRecord, raw, "config.json")
    if isinstance(raw, dict):
        problems = type_problems(TrainConfig, raw, "config.json")
    status = read_status(run_dir)
    return RunSummary(
        path=run_dir,
        name=run_dir.name,
        state=status["state"],
        architecture=config.architecture,
        data=", ".join(Path(d).name for d in config.data),
        epochs=config.epochs,
        duration_s=status.get("duration_s"),
        started=status.get("started"),
        error=status.get("error"),
        warning=status.get("warning"),
        model_path=run_model_path(run_dir),
        config=raw if isinstance(raw, dict) and not problems else {},
        damaged="; ".join(filter(None, [problem, *problems, status.get("damaged")])) or None,
        resumed_from=status.get("resumed_from") or checkpoint_run(config.resume_from),
        stopped_at=status.get("stopped_at"),
    )


def checkpoint_run(checkpoint: str | None) -> str | None:
    """The name of the run a checkpoint path (a run's .keras file, or the run directory) belongs to."""
    if not checkpoint:
        return None
    path = Path(checkpoint)
    return path.parent.name if path.suffix == ".keras" else path.name


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
