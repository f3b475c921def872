"""Training's records: status.json, config.json, metrics.jsonl and train.lock of a run.

Each file is a typed record read by the one validated parser of core.jobs.records (`parse`): a field of
the wrong type reads as its default with the problem in words, so one damaged file never takes a page,
the CLI or the runs table down. The generic job fields (JobRecord) and the parser live in core.jobs;
they are re-exported here for the code that imported them from this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core.jobs.records import (  # noqa: F401 (re-exported: were defined here)
    TYPE_WORDS,
    JobRecord,
    _is_number,
    describe,
    job_status_dict,
    parse,
    read_raw,
    read_record,
    type_problems,
)


@dataclass
class Progress:
    """Where a running job is: status.json `progress`."""

    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    patches_per_s: float = 0.0
    eta_s: float | None = None


@dataclass
class EpochScore:
    """The validation of one epoch: status.json `best`."""

    epoch: int | None = None
    val_auc: float | None = None
    val_accuracy: float | None = None


@dataclass
class Average:
    """A run's weight average (core.train.averaging): status.json `swa`."""

    first_epoch: int = 0
    last_epoch: int = 0
    adopted: bool = False
    val_auc: float | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None


@dataclass
class StoppedAt:
    """Where a stopped run stopped: status.json `stopped_at` (core.train.reporting)."""

    epoch: int = 0
    step: int = 0
    steps: int = 0
    epochs_complete: int = 0


@dataclass
class RunStatus:
    """status.json: the job's state and everything it reports while and after it runs."""

    state: str = "failed"
    phase: str | None = None
    error: str | None = None
    warning: str | None = None
    note: str | None = None
    notes: list[str] = field(default_factory=list)
    pid: int | None = None
    heartbeat: float = 0.0
    created: float | None = None
    started: float | None = None
    finished: float | None = None
    duration_s: float | None = None
    progress: Progress | None = None
    best: EpochScore | None = None
    swa: Average | None = None
    stopped_at: StoppedAt | None = None
    resumed_from: str | None = None  # the run a resumed job continues
    first_epoch: int | None = None  # the first epoch this job trains (original numbering)
    best_epoch: int | None = None
    val_auc: float | None = None
    val_accuracy: float | None = None
    temperature: float | None = None
    n_train: int | None = None
    n_val: int | None = None
    stale: bool = False
    damaged: str | None = None  # the problems found reading the file, in words


@dataclass
class RunConfigRecord:
    """The fields of config.json the registry shows (the full TrainConfig is checked by its validate)."""

    data: list[str] = field(default_factory=list)
    architecture: str = ""
    epochs: int = 0
    swa_epochs: int = 0
    resume_from: str | None = None


@dataclass
class LockRecord:
    """train.lock: which run holds the one-job-per-workspace lock."""

    run_dir: str | None = None
    pid: int | None = None
    time: float | None = None


@dataclass
class MetricLine:
    """The fields every consumer of a metrics.jsonl line relies on, by kind."""

    kind: str = ""
    epoch: int | None = None
    step: int | None = None
    steps: int | None = None
    last_epoch: int | None = None
    text: str | None = None


REQUIRED_BY_KIND = {
    "batch": ("epoch", "step", "steps"),
    "epoch": ("epoch",),
    "partial_epoch": ("epoch", "step", "steps"),
    "swa": ("last_epoch",),
    "note": ("text",),
}
METRIC_NUMBERS = ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")


# ---------------------------------------------------------------- the files


def status_dict(raw: object, what: str = "status.json") -> dict:
    """status.json as a validated dict (RunStatus' fields), its problems joined in `damaged`."""
    status, problems = parse(RunStatus, raw, what)
    if problems:
        status.damaged = "; ".join(problems)
    return asdict(status)


def metric_line(raw: object) -> dict | None:
    """One metrics.jsonl line if a consumer can rely on it: a JSON object whose kind's fields have their
    types, and whose metrics are numbers (others dropped); None for a damaged line."""
    line, problems = parse(MetricLine, raw, "")
    required = REQUIRED_BY_KIND.get(line.kind, ())
    if problems or any(getattr(line, name) is None for name in required):
        return None
    kept = dict(raw)
    for name in METRIC_NUMBERS:
        if name in kept and not _is_number(kept[name]):
            del kept[name]
    return kept
