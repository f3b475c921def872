"""The Keras callbacks through which a training run reports (imported only inside the training process,
as they import Keras).

`BatchReporter` appends a batch-window line to metrics.jsonl every BATCH_RECORD_SECONDS, keeps the
progress in status.json and honours stop requests and the time budget; `EpochReporter` appends the
epoch lines, keeps the best epoch's weights and checkpoint, and warns when validation sits at chance
(status `warning`, see core.train.chance). Both share one `Pace` (core.train.pace) for the ETA.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from core.model.io import CHECKPOINT_FILE, save_model
from core.train.averaging import STOPPED_INSIDE_EPOCH
from core.train.chance import chance_warning
from core.train.pace import Pace, eta_words
from core.train.reporting import JobReporter
from core.train.runs import append_metrics, stop_requested

BATCH_RECORD_SECONDS = 2.0  # how often a batch-window line is appended to metrics.jsonl
EPOCH_LOGS = ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")


@dataclass
class RunShape:
    """What both reporters know of the run: where it reports, its size, its budget and its printer."""

    job: JobReporter
    steps_per_epoch: int
    epochs: int
    batch_size: int
    deadline: float | None = None
    printer: Callable[..., None] | None = None

    def print(self, text: str, newline: bool = False) -> None:
        if self.printer:
            self.printer(text, newline=True) if newline else self.printer(text)


class BatchReporter(keras.callbacks.Callback):
    """Batch-window lines and progress; ends the run after a batch when asked to stop or out of time."""

    def __init__(self, shape: RunShape, pace: Pace):
        super().__init__()
        self.shape, self.pace = shape, pace
        self.epoch = self.step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.step = epoch, 0
        self.epoch_start = self.window_start = self.last_batch_end = time.time()
        self.window_seen = 0

    def on_train_batch_end(self, batch, logs=None):
        shape = self.shape
        self.window_seen += shape.batch_size
        now = self.last_batch_end = time.time()
        self.step = batch + 1
        self.pace.step_ended(self.step, now)
        if now - self.window_start >= BATCH_RECORD_SECONDS or self.step == shape.steps_per_epoch:
            self.report_batch(logs or {}, now)
        if stop_requested(shape.job.run_dir):
            self.stop("stopped by the user")
        elif shape.deadline and now > shape.deadline:
            self.stop("time budget reached")

    def report_batch(self, logs: dict, now: float) -> None:
        """One batch-window line in metrics.jsonl and the progress in status.json."""
        shape = self.shape
        rate = self.window_seen / max(now - self.window_start, 1e-9)
        eta = self.pace.eta_s(self.epoch + 1, self.step)
        record = {
            "kind": "batch",
            "epoch": self.epoch + 1,
            "step": self.step,
            "steps": shape.steps_per_epoch,
            "loss": float(logs.get("loss", np.nan)),
            "accuracy": float(logs.get("accuracy", np.nan)),
            "patches_per_s": round(rate, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "time": now,
        }
        append_metrics(shape.job.run_dir, record)
        progress = {key: record[key] for key in ("epoch", "step", "steps", "patches_per_s", "eta_s")}
        shape.job.update(progress={**progress, "epochs": shape.epochs}, phase="training")
        shape.print(
            f"epoch {self.epoch + 1}/{shape.epochs} step {self.step}/{shape.steps_per_epoch} "
            f"loss {record['loss']:.4f} acc {record['accuracy']:.3f} "
            f"{rate:.0f} patches/s {eta_words(eta)}"
        )
        self.window_start, self.window_seen = now, 0

    def stop(self, reason: str) -> None:
        """End training after this batch. Stopped inside an epoch, the part-epoch is not validated
        (Keras would validate it as if whole) and status `stopped_at` says how far the run got."""
        shape = self.shape
        shape.job.stop_reason = shape.job.stop_reason or reason
        self.model.stop_training = True
        partial = self.stopped_inside_epoch
        if partial:  # Keras' trainer asks _should_eval before validating an epoch
            self.model._should_eval = lambda epoch, validation_freq: False
            setattr(self.model, STOPPED_INSIDE_EPOCH, True)  # nor is it averaged
        stopped_at = {"epoch": self.epoch + 1, "step": self.step, "steps": shape.steps_per_epoch}
        shape.job.update(stopped_at={**stopped_at, "epochs_complete": self.epoch + (0 if partial else 1)})

    @property
    def stopped_inside_epoch(self) -> bool:
        return self.step < self.shape.steps_per_epoch


class EpochReporter(keras.callbacks.Callback):
    """Epoch lines; the best epoch by validation AUC (weights, checkpoint); the chance warning.

    Listed after the run's BatchReporter (`batches`), whose step says whether an epoch was whole."""

    def __init__(
        self,
        shape: RunShape,
        pace: Pace,
        batches: BatchReporter,
        *,
        val_majority_rate: float | None = None,
        checkpoint_meta: dict | None = None,
    ):
        super().__init__()
        self.shape, self.pace, self.batches = shape, pace, batches
        self.val_majority_rate, self.checkpoint_meta = val_majority_rate, checkpoint_meta or {}
        self.best_auc = -1.0
        self.best_epoch = None
        self.best_weights = None
        self.best_record: dict = {}
        self.top_train_auc: float | None = None  # the highest training AUC of any epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.batches.stopped_inside_epoch:
            self.partial_epoch_end(epoch, logs)
            return
        record = self.epoch_record(epoch, logs)
        append_metrics(self.shape.job.run_dir, record)
        self.shape.print(
            f"epoch {epoch + 1}/{self.shape.epochs} done: loss {record.get('loss', np.nan):.4f} "
            f"val_loss {record.get('val_loss', np.nan):.4f} "
            f"val_acc {record.get('val_accuracy', np.nan):.4f} "
            f"val_auc {record.get('val_auc', np.nan):.4f}",
            newline=True,
        )
        if record.get("val_auc", -1.0) > self.best_auc:
            self.keep_best(record)
        train_auc = record.get("auc", np.nan)
        if not np.isnan(train_auc):
            self.top_train_auc = max(train_auc, self.top_train_auc or train_auc)
        self.report_chance(epoch + 1)
        self.pace.validation_ended(time.time() - self.batches.last_batch_end)

    def epoch_record(self, epoch: int, logs: dict) -> dict:
        """The epoch's line for metrics.jsonl: its learning rate, duration and Keras' logs."""
        optimizer = self.model.optimizer
        lr = optimizer.learning_rate
        lr = float(lr(optimizer.iterations) if callable(lr) else np.asarray(lr))
        record = {
            "kind": "epoch",
            "epoch": epoch + 1,
            "lr": lr,
            "time": time.time(),
            "duration_s": round(time.time() - self.batches.epoch_start, 2),
        }
        record.update({key: float(logs[key]) for key in EPOCH_LOGS if key in logs})
        return record

    def keep_best(self, record: dict) -> None:
        """The epoch of `record` is the best so far: keep its weights, write its checkpoint, say so."""
        epoch, val_auc = record["epoch"], record["val_auc"]
        self.best_auc, self.best_epoch, self.best_record = val_auc, epoch, record
        self.best_weights = self.model.get_weights()
        best = {"epoch": epoch, "val_auc": val_auc, "val_accuracy": record.get("val_accuracy")}
        save_model(self.model, self.shape.job.run_dir / CHECKPOINT_FILE, {**best, **self.checkpoint_meta})
        self.shape.job.update(best=best)

    def partial_epoch_end(self, epoch: int, logs: dict) -> None:
        """A stopped part of an epoch: its training metrics as `partial_epoch`, never a best epoch."""
        step, steps = self.batches.step, self.shape.steps_per_epoch
        record = {"kind": "partial_epoch", "epoch": epoch + 1, "step": step, "steps": steps}
        record.update({key: float(logs[key]) for key in ("loss", "accuracy", "auc") if key in logs})
        append_metrics(self.shape.job.run_dir, {**record, "time": time.time()})
        self.shape.print(f"epoch {epoch + 1} stopped at step {step}/{steps}", newline=True)

    def report_chance(self, epoch: int) -> None:
        """Set (or clear) status `warning` for the model the run would deliver (its best checkpoint):
        its validation AUC at chance while the training AUC reached LEARNED_AUC at some epoch.
        A warning also goes to metrics.jsonl as a note and to the terminal."""
        warning = chance_warning(
            self.top_train_auc,
            self.best_record.get("val_auc"),
            val_accuracy=self.best_record.get("val_accuracy"),
            majority_rate=self.val_majority_rate,
        )
        if warning:
            warning = f"After epoch {epoch}: {warning}"
        self.shape.job.update(warning=warning)
        if warning:
            append_metrics(self.shape.job.run_dir, {"kind": "note", "text": warning, "time": time.time()})
            self.shape.print(f"warning: {warning}", newline=True)


def job_callbacks(shape: RunShape, *, validation_batches: int = 1, **epoch_options) -> list:
    """[BatchReporter, EpochReporter] for one run, sharing its pace; `epoch_options` go to the latter."""
    pace = Pace(
        epochs=shape.epochs, steps_per_epoch=shape.steps_per_epoch, validation_batches=validation_batches
    )
    batches = BatchReporter(shape, pace)
    return [batches, EpochReporter(shape, pace, batches, **epoch_options)]
