"""K-fold cross-validated, out-of-sample probabilities for every labelled patch of a dataset.

The labelled patches are split into K stratified folds (seeded, sizes within one patch). For each fold, a small model is
trained by the project's own trainer (core.train.job.run_training, a TrainConfig with a short
budget) on the other K-1 folds, with the held-out fold as its separate validation dataset: the
trainer leaves every held-out id out of training and writes the fold's probabilities to its
val_predictions.csv. Together the K files score every patch with a model that never saw it.

This is slow (K trainings), so it reports progress (`progress(fold, folds, text)`), honours a stop
request between and inside folds (`request_stop`; Ctrl-C in the command line), and keeps what it
finished: each fold lives in `<workspace>/cache/label-issues/<key>/fold-<k>/`, a finished fold is
reused when the same cross-validation is asked for again, and the joined result is stored as
`out_of_fold.csv` (id,label,prob). The key hashes the dataset content and the settings.

Honest limits: each fold model keeps its best epoch by AUC on the held-out fold (the trainer's
rule), a mild optimism that vanishes with one epoch; a random patch split shares slides between
folds, like the trainer's own validation split. The fold's held-out patches are written once to a
small HDF5 cache (deleted when the fold ends); the training folds are read from the dataset's
usual training cache. Like every training job, it takes the workspace's one-job lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.cache_records import warn_recomputed
from core.errors import DatasetError, RunError
from core.evaluate.predictions import read_predictions, write_predictions
from core.files import atomic_write_json, read_json
from core.jobs import engine
from core.jobs.launch import start
from core.jobs.status import ACTIVE_STATES, STOP_FILE, pid_alive
from core.train.config import DEFAULT_BATCH_SIZE
from core.train.runs import is_active, read_status, run_progress

RESULT_FILE = "out_of_fold.csv"
JOB_FILE = "job.json"  # the attempt a page queued on the engine, and the process that claimed it
LOG_FILE = "job.log"
DEFAULT_FOLDS = 5
DEFAULT_EPOCHS = 2
RECIPE_FIELDS = ("architecture", "epochs", "batch_size", "learning_rate", "seed")  # named as in TrainConfig

FoldProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class CrossValSettings:
    """What defines a cross-validation: the folds and the short training recipe of each fold model."""

    folds: int = DEFAULT_FOLDS
    architecture: str = "patchnet"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = 1e-3
    seed: int = 0
    max_minutes_per_fold: float | None = None

    def validate(self) -> CrossValSettings:
        from core.model.architectures import ARCHITECTURES

        if int(self.folds) != self.folds or self.folds < 2:
            raise RunError(f"Cross-validation needs at least 2 folds; got {self.folds}.")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise RunError("Epochs, batch size and learning rate of the fold models must be positive.")
        if self.architecture not in ARCHITECTURES:
            raise RunError(f"Unknown architecture {self.architecture!r}: {', '.join(ARCHITECTURES)}.")
        return self

    def recipe(self) -> dict:
        """The TrainConfig fields every fold model takes from these settings as they are."""
        return {name: getattr(self, name) for name in RECIPE_FIELDS}


# --------------------------------------------------------------------------- folds


def assign_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number (0..folds-1) per patch, stratified: each class is shuffled and dealt round-robin,
    so every fold holds both classes in nearly the same proportion. Needs `folds` patches a class."""
    labels = np.asarray(labels)
    counts = {int(c): int((labels == c).sum()) for c in (0, 1)}
    if min(counts.values()) < folds:
        raise DatasetError(
            f"{folds}-fold cross-validation needs at least {folds} patches of each class; this dataset "
            f"has {counts[0]} normal and {counts[1]} tumour patches."
        )
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    dealt = 0  # the second class is dealt on from where the first stopped: fold sizes differ by <= 1
    for c in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == c))
        assignment[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return assignment


def crossval_dir(dataset, settings: CrossValSettings) -> Path:
    """Where this cross-validation of this dataset keeps its folds and result (in the workspace)."""
    from core.data.dataset import content_hash
    from core.settings import cache_dir

    text = json.dumps({"dataset": content_hash(dataset), **asdict(settings)}, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = Path(dataset.path).resolve().name or "dataset"
    return cache_dir() / "label-issues" / f"{name}-{settings.folds}fold-{key}"


def stored_crossval(dataset, settings: CrossValSettings) -> pd.DataFrame | None:
    """The finished out-of-fold probabilities of this cross-validation, or None when not computed."""
    path = crossval_dir(dataset, settings) / RESULT_FILE
    if not path.is_file():
        return None
    stored = read_predictions(path)
    problem = _ids_problem(stored["id"].tolist(), set(dataset.ids), "of the dataset")
    if problem is None:
        return stored
    warn_recomputed(path, problem)  # recomputed from its folds, each reused when it is sound
    return None


def request_stop(work_dir: str | Path) -> None:
    """Ask a running cross-validation to stop: the running fold ends at its next batch, no new fold
    starts, and one still queued on the engine is cancelled. The request names the page's attempt
    (job.json), so a request made before the job got going is still honoured, and a stale one never
    stops a later job."""
    work_dir = Path(work_dir)
    job = read_json(work_dir / JOB_FILE) or {}
    if work_dir.is_dir():
        (work_dir / STOP_FILE).write_text(str(job.get("attempt") or ""))
        engine.cancel(work_dir)
    for folder in sorted(work_dir.glob("fold-*")):
        if folder.is_dir():
            (folder / STOP_FILE).touch()


def _claim_attempt(work_dir: Path) -> None:
    """Forget a stop request left by an earlier job (one not naming the page's attempt this process
    claims), and claim the attempt so that its stop requests are this process's."""
    job = read_json(work_dir / JOB_FILE) or {}
    attempt = job.get("attempt") if not job.get("claimed_by") else None
    stop = work_dir / STOP_FILE
    if stop.is_file() and (attempt is None or stop.read_text().strip() != attempt):
        stop.unlink(missing_ok=True)
    if attempt is not None:
        atomic_write_json(work_dir / JOB_FILE, {**job, "claimed_by": os.getpid()})


# --------------------------------------------------------------------------- a background job (the page)


@dataclass(frozen=True)
class CrossValProgress:
    """How far a cross-validation started in the background has got."""

    running: bool
    folds_done: int
    text: str  # one line for a progress bar
    error: str | None = None  # why an ended job left no result


def command_arguments(model_path: str | Path, dataset, settings: CrossValSettings) -> list[str]:
    """The `python -m core` arguments that compute this cross-validation (and rank its suspects)."""
    out = crossval_dir(dataset, settings) / "suspects.csv"
    return [
        "label-issues", str(model_path), str(dataset.path), "--out", str(out), "--folds", str(settings.folds),
        "--epochs", str(settings.epochs), "--arch", settings.architecture,
    ]  # fmt: skip


def _end_attempt(work_dir: Path) -> None:
    """Say in job.json that the claimed attempt is over (its worker process lives on)."""
    job = read_json(work_dir / JOB_FILE) or {}
    if job.get("claimed_by") == os.getpid():
        atomic_write_json(work_dir / JOB_FILE, {**job, "ended": time.time()})


def launch(model_path: str | Path, dataset, settings: CrossValSettings) -> Path:
    """Queue the cross-validation on the job engine (it outlives page reruns); returns its folder."""
    work_dir = crossval_dir(dataset, settings.validate())
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / STOP_FILE).unlink(missing_ok=True)
    atomic_write_json(work_dir / JOB_FILE, {"attempt": uuid.uuid4().hex, "created": time.time()})
    start("folds", work_dir, command_arguments(model_path, dataset, settings)[1:])
    return work_dir


def _job_running(work_dir: Path, job: dict) -> bool:
    """Whether the background job is queued or running: this process's engine holds it, or the
    process that claimed it is alive."""
    if (work_dir / RESULT_FILE).is_file():
        return False
    return engine.pending(work_dir) or (pid_alive(job.get("claimed_by")) and not job.get("ended"))


def progress_of(dataset, settings: CrossValSettings) -> CrossValProgress:
    """The state of this cross-validation's background job, read from its folder."""
    work_dir = crossval_dir(dataset, settings)
    job = read_json(work_dir / JOB_FILE) or {}
    folds = [read_json(work_dir / f"fold-{k}" / "status.json") or {} for k in range(settings.folds)]
    done = sum(status.get("state") == "finished" for status in folds)
    running = bool(job) and _job_running(work_dir, job)
    current = next((s for s in folds if s.get("state") in ACTIVE_STATES), None)
    text = f"{done}/{settings.folds} folds done"
    if running and current:
        text += f" · fold {done + 1}: {run_progress(current)[1]}"
    error = None
    if job and not running and not (work_dir / RESULT_FILE).is_file():
        lines = (
            (work_dir / LOG_FILE).read_text(errors="replace").splitlines()
            if (work_dir / LOG_FILE).is_file()
            else []
        )
        error = next(
            (line for line in reversed(lines) if line.startswith("error:")), "the job ended without a result"
        )
    return CrossValProgress(running=running, folds_done=done, text=text, error=error)


# --------------------------------------------------------------------------- the job


def crossval_probabilities(
    dataset,
    settings: CrossValSettings,
    *,
    progress: FoldProgress | None = None,
    verbose: bool = False,
) -> pd.DataFrame:
    """Out-of-fold P(tumour) of every readable labelled patch of `dataset`: DataFrame id,label,prob.

    Finished folds of an earlier call with the same dataset and settings are reused. Raises
    DatasetError for an unlabelled dataset or too few patches a class, RunError when a fold fails
    or is stopped (the folds finished so far are kept).
    """
    settings.validate()
    if dataset.labels is None:
        raise DatasetError(f"{Path(dataset.path).name} is unlabelled: there is nothing to cross-validate.")
    stored = stored_crossval(dataset, settings)
    if stored is not None:
        return stored
    work_dir = crossval_dir(dataset, settings)
    work_dir.mkdir(parents=True, exist_ok=True)
    _claim_attempt(work_dir)
    try:
        return _all_folds(dataset, settings, work_dir, progress, verbose)
    finally:
        _end_attempt(work_dir)


def _all_folds(dataset, settings: CrossValSettings, work_dir: Path, progress, verbose: bool) -> pd.DataFrame:
    assignment = assign_folds(dataset.labels, settings.folds, settings.seed)
    parts = []
    for fold in range(settings.folds):
        if (work_dir / STOP_FILE).exists():
            raise RunError(_stopped(fold, settings.folds))
        if progress:
            progress(fold, settings.folds, f"fold {fold + 1}/{settings.folds}: training on the other folds")
        parts.append(
            _fold_predictions(dataset, assignment == fold, work_dir / f"fold-{fold}", settings, verbose)
        )
    if progress:
        progress(settings.folds, settings.folds, "all folds done")
    result = pd.concat(parts, ignore_index=True)
    write_predictions(result, work_dir / RESULT_FILE)
    return result


def _stopped(fold: int, folds: int) -> str:
    return f"Cross-validation stopped before fold {fold + 1} of {folds}; finished folds are kept and reused."


def _ids_problem(ids: list[str], expected: set[str], whose: str) -> str | None:
    """Why stored out-of-fold predictions cannot be reused (repeated ids, ids not in `expected`)."""
    if len(ids) != len(set(ids)):
        return f"{len(ids) - len(set(ids)):,} of its ids appear more than once"
    foreign = set(ids) - expected
    if foreign:
        return f"{len(foreign):,} of its ids are not patches {whose} (e.g. {min(foreign)!r})"
    return None


def _fold_predictions(
    dataset, held_out: np.ndarray, fold_dir: Path, settings: CrossValSettings, verbose: bool
):
    """The held-out fold's probabilities, from a model trained on every other labelled patch."""
    predictions = fold_dir / "val_predictions.csv"
    if predictions.is_file() and (read_json(fold_dir / "status.json") or {}).get("state") == "finished":
        reused = read_predictions(predictions)
        held_out_ids = {dataset.ids[i] for i in np.flatnonzero(held_out)}
        problem = _ids_problem(reused["id"].tolist(), held_out_ids, "this fold holds out")
        if problem is None:
            return reused
        warn_recomputed(predictions, problem)
    if is_active(fold_dir):
        raise RunError(f"{fold_dir} is being trained by another job; wait for it or stop it.")
    shutil.rmtree(fold_dir, ignore_errors=True)  # an unfinished earlier attempt: start the fold afresh
    fold_dir.mkdir(parents=True)
    held_out_cache = fold_dir.with_name(f"{fold_dir.name}-held-out.h5")
    try:
        _write_subset(dataset, held_out, held_out_cache)
        status = _train_fold(dataset, held_out_cache, fold_dir, settings, verbose)
    finally:
        held_out_cache.unlink(missing_ok=True)
    if status.get("state") != "finished":
        reason = status.get("error") or status.get("note") or status.get("state")
        if status.get("state") == "stopped":
            (fold_dir / "status.json").unlink(missing_ok=True)  # never reused as finished
            raise RunError(
                f"Cross-validation stopped in {fold_dir.name} ({reason}); finished folds are kept."
            )
        raise RunError(f"Cross-validation {fold_dir.name} failed: {reason} (see {fold_dir / 'train.log'}).")
    return read_predictions(predictions)


def _write_subset(dataset, keep: np.ndarray, path: Path) -> None:
    """The patches of `dataset` where `keep` is True, as a PatchLens HDF5 cache (a dataset of its own)."""
    import copy

    from core.data.cache import prepare

    subset = copy.copy(dataset)
    subset._keep(np.asarray(keep, dtype=bool))  # Dataset items can only be removed: ids stay aligned
    subset.problems = []
    prepare(subset, path, workers=1)


def _train_fold(dataset, held_out_cache: Path, fold_dir: Path, settings: CrossValSettings, verbose: bool):
    from core.train.job import TrainConfig, run_training

    config = TrainConfig(
        data=[str(dataset.path)],
        val_data=str(held_out_cache),
        max_minutes=settings.max_minutes_per_fold,
        workers=1,
        **settings.recipe(),
    )
    run_training(config, fold_dir, verbose=verbose)
    return read_status(fold_dir)
