"""Continuing a run: the configuration that resumes an earlier run from its best checkpoint, loading
that checkpoint into a new model, and saying in the new run which run and epoch it continues."""

from __future__ import annotations

import time
from pathlib import Path

from core.errors import ModelError, RunError
from core.model.io import resolve_model_path
from core.train.config import TrainConfig
from core.train.reporting import JobReporter
from core.train.runs import append_metrics, checkpoint_run, read_json


def report_resume(run_dir: Path, job: JobReporter, resume_from: str, initial_epoch: int) -> None:
    """Say which run this one continues and from which epoch, in status.json and metrics.jsonl."""
    name = checkpoint_run(resume_from)
    job.update(resumed_from=name, first_epoch=initial_epoch + 1)
    text = f"Resumed from {name} at epoch {initial_epoch + 1} (its checkpoint after epoch {initial_epoch})."
    append_metrics(run_dir, {"kind": "note", "text": text, "time": time.time()})


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory's best checkpoint (else its final model), or the .keras file itself."""
    try:
        return resolve_model_path(path, checkpoint=True)
    except ModelError as error:
        raise RunError(str(error)) from error


def restore_checkpoint(model, path: str | Path) -> int:
    """Load a checkpoint's weights (safely) into `model`; returns the epoch it was saved after."""
    from core.model.io import load_model

    checkpoint = resolve_checkpoint(path)
    saved = load_model(checkpoint)
    if len(saved.weights) != len(model.weights) or any(
        tuple(a.shape) != tuple(b.shape) for a, b in zip(saved.weights, model.weights)
    ):
        raise RunError(f"{checkpoint} does not match the {model.name} architecture; cannot resume from it.")
    model.set_weights(saved.get_weights())
    return checkpoint_epoch(checkpoint)


def resume_config(
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    swa_epochs: int | None = None,
    swa_lr: float | None = None,
) -> TrainConfig:
    """The configuration of an earlier run, set to continue from its best checkpoint; `epochs`, when
    given, is the new total (else the earlier run's); `swa_epochs` and `swa_lr`, when given, replace
    the earlier run's weight averaging (core.train.averaging)."""
    run_dir = Path(run_dir)
    data = read_json(run_dir / "config.json")
    if not data:
        raise RunError(f"{run_dir.name} has no readable config.json.")
    config = TrainConfig.from_dict(data)
    config.resume_from = str(resolve_checkpoint(run_dir))
    if epochs is not None:
        config.epochs = epochs
    if swa_epochs is not None:
        config.swa_epochs = swa_epochs
    config.swa_lr = swa_lr or config.swa_lr
    return config.validate()


def checkpoint_epoch(run_dir: str | Path) -> int:
    """The epoch a run's resume checkpoint was saved after (0 when the file does not say)."""
    from core.model.io import read_model_meta

    try:
        meta = read_model_meta(resolve_checkpoint(run_dir))
    except ModelError as error:
        raise RunError(str(error)) from error
    epoch = meta.get("epoch") or meta.get("best_epoch") or 0
    return epoch if isinstance(epoch, int) and epoch >= 0 else 0
