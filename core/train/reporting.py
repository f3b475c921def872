"""How a running job reports: status.json with a heartbeat thread, and a Keras callback that appends
batch-window and epoch lines to metrics.jsonl, saves the best checkpoint, warns when validation sits
at chance (status `warning`, see core.train.chance) and honours stop requests and the time budget."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from core.formatting import ProgressLine
from core.jobs.status import JobReporter  # noqa: F401 (the one status.json writer of every job; was here)
from core.model.io import CHECKPOINT_FILE
from core.train.averaging import STOPPED_INSIDE_EPOCH
from core.train.chance import chance_warning
from core.train.pace import Pace, eta_words
from core.train.runs import append_metrics, stop_requested

BATCH_RECORD_SECONDS = 2.0  # how often a batch-window line is appended to metrics.jsonl


def make_callback(
    job: JobReporter,
    *,
    steps_per_epoch: int,
    epochs: int,
    batch_size: int,
    deadline: float | None,
    printer: Callable[[str], None] | None,
    val_majority_rate: float | None = None,
    checkpoint_meta: dict | None = None,
    validation_batches: int = 1,
):
    import keras

    pace = Pace(epochs=epochs, steps_per_epoch=steps_per_epoch, validation_batches=validation_batches)

    class JobCallback(keras.callbacks.Callback):
        """Writes batch-window and epoch lines, saves the best checkpoint, honours stop requests."""

        def __init__(self):
            super().__init__()
            self.best_auc = -1.0
            self.best_epoch = None
            self.best_weights = None
            self.best_record: dict = {}
            self.top_train_auc: float | None = None  # the highest training AUC of any epoch
            self.train_start = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.step = epoch, 0
            self.epoch_start = self.window_start = self.last_batch_end = time.time()
            self.window_seen = 0

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.window_seen += batch_size
            now = self.last_batch_end = time.time()
            self.step = batch + 1
            pace.step_ended(self.step, now)
            last = batch + 1 == steps_per_epoch
            if now - self.window_start >= BATCH_RECORD_SECONDS or last:
                self.report_batch(logs, now)
            if stop_requested(job.run_dir):
                self.stop("stopped by the user")
            elif deadline and now > deadline:
                self.stop("time budget reached")

        def report_batch(self, logs: dict, now: float) -> None:
            """One batch-window line in metrics.jsonl and the progress in status.json."""
            rate = self.window_seen / max(now - self.window_start, 1e-9)
            eta = pace.eta_s(self.epoch + 1, self.step)
            record = {
                "kind": "batch",
                "epoch": self.epoch + 1,
                "step": self.step,
                "steps": steps_per_epoch,
                "loss": float(logs.get("loss", np.nan)),
                "accuracy": float(logs.get("accuracy", np.nan)),
                "patches_per_s": round(rate, 1),
                "eta_s": None if eta is None else round(eta, 1),
                "time": now,
            }
            append_metrics(job.run_dir, record)
            progress = {key: record[key] for key in ("epoch", "step", "steps", "patches_per_s", "eta_s")}
            job.update(progress={**progress, "epochs": epochs}, phase="training")
            if printer:
                printer(
                    f"epoch {self.epoch + 1}/{epochs} step {self.step}/{steps_per_epoch} "
                    f"loss {record['loss']:.4f} acc {record['accuracy']:.3f} "
                    f"{rate:.0f} patches/s {eta_words(eta)}"
                )
            self.window_start, self.window_seen = now, 0

        def stop(self, reason: str) -> None:
            """End training after this batch. Stopped inside an epoch, the part-epoch is not validated
            (Keras would validate it as if whole) and status `stopped_at` says how far the run got."""
            job.stop_reason = job.stop_reason or reason
            self.model.stop_training = True
            partial = self.step < steps_per_epoch
            if partial:  # Keras' trainer asks _should_eval before validating an epoch
                self.model._should_eval = lambda epoch, validation_freq: False
                setattr(self.model, STOPPED_INSIDE_EPOCH, True)  # nor is it averaged
            stopped_at = {"epoch": self.epoch + 1, "step": self.step, "steps": steps_per_epoch}
            job.update(stopped_at={**stopped_at, "epochs_complete": self.epoch + (0 if partial else 1)})

        def partial_epoch_end(self, epoch: int, logs: dict) -> None:
            """A stopped part of an epoch: its training metrics as `partial_epoch`, never a best epoch."""
            record = {
                "kind": "partial_epoch",
                "epoch": epoch + 1,
                "step": self.step,
                "steps": steps_per_epoch,
            }
            record.update({key: float(logs[key]) for key in ("loss", "accuracy", "auc") if key in logs})
            append_metrics(job.run_dir, {**record, "time": time.time()})
            if printer:
                printer(f"epoch {epoch + 1} stopped at step {self.step}/{steps_per_epoch}", newline=True)

        def on_epoch_end(self, epoch, logs=None):
            from core.model.io import save_model

            logs = logs or {}
            if self.step < steps_per_epoch:
                self.partial_epoch_end(epoch, logs)
                return
            optimizer = self.model.optimizer
            lr = optimizer.learning_rate
            lr = float(lr(optimizer.iterations) if callable(lr) else np.asarray(lr))
            record = {
                "kind": "epoch",
                "epoch": epoch + 1,
                "lr": lr,
                "time": time.time(),
                "duration_s": round(time.time() - self.epoch_start, 2),
            }
            for key in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"):
                if key in logs:
                    record[key] = float(logs[key])
            append_metrics(job.run_dir, record)
            if printer:
                printer(
                    f"epoch {epoch + 1}/{epochs} done: loss {record.get('loss', np.nan):.4f} "
                    f"val_loss {record.get('val_loss', np.nan):.4f} "
                    f"val_acc {record.get('val_accuracy', np.nan):.4f} "
                    f"val_auc {record.get('val_auc', np.nan):.4f}",
                    newline=True,
                )
            val_auc = record.get("val_auc", -1.0)
            if val_auc > self.best_auc:
                self.best_auc, self.best_epoch, self.best_record = val_auc, epoch + 1, record
                self.best_weights = self.model.get_weights()
                save_model(
                    self.model,
                    job.run_dir / CHECKPOINT_FILE,
                    {
                        "epoch": epoch + 1,
                        "val_auc": val_auc,
                        "val_accuracy": record.get("val_accuracy"),
                        **(checkpoint_meta or {}),
                    },
                )
                job.update(
                    best={"epoch": epoch + 1, "val_auc": val_auc, "val_accuracy": record.get("val_accuracy")}
                )
            train_auc = record.get("auc", np.nan)
            if not np.isnan(train_auc):
                self.top_train_auc = max(train_auc, self.top_train_auc or train_auc)
            self.report_chance(epoch + 1)
            pace.validation_ended(time.time() - self.last_batch_end)

        def report_chance(self, epoch: int) -> None:
            """Set (or clear) status `warning` for the model the run would deliver (its best checkpoint):
            its validation AUC at chance while the training AUC reached LEARNED_AUC at some epoch.
            A warning also goes to metrics.jsonl as a note and to the terminal."""
            warning = chance_warning(
                self.top_train_auc,
                self.best_record.get("val_auc"),
                val_accuracy=self.best_record.get("val_accuracy"),
                majority_rate=val_majority_rate,
            )
            if warning:
                warning = f"After epoch {epoch}: {warning}"
            job.update(warning=warning)
            if warning:
                append_metrics(job.run_dir, {"kind": "note", "text": warning, "time": time.time()})
                if printer:
                    printer(f"warning: {warning}", newline=True)

    return JobCallback()


def terminal_printer(stream=None):
    """The training's progress printer, show(text, newline=False): the one progress line of
    core.formatting, on `stream` (default sys.stderr as it is when printing)."""
    return ProgressLine(stream=stream).show
