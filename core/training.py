"""A training job: a TrainConfig and a run directory in, a trained model and its record out.

`launch(config)` (the Train page) writes the run directory and starts `python -m core train
--config RUN/config.json --out RUN` as its own process, so training survives page reruns and
browser reloads. The CLI's `train` calls `run_training` directly: both take the same code path.
The job reports only through files (see core.runs); the page reads them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from core.augment import AugmentConfig
from core.errors import JobConflictError, PatchLensError, RunError
from core.runs import (
    HEARTBEAT_SECONDS,
    acquire_lock,
    active_run,
    append_metrics,
    atomic_write_json,
    new_run_dir,
    read_json,
    release_lock,
    stop_requested,
    write_status,
)
from core.settings import PROJECT_DIR

BATCH_RECORD_SECONDS = 2.0  # how often a batch-window line is appended to metrics.jsonl
SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as config.json in the run directory."""

    data: list[str]
    val_data: str | None = None  # a second dataset; when None, a fraction of `data` is held out
    val_fraction: float = 0.2
    architecture: str = "patchnet"
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    early_stopping_patience: int = 0  # epochs without a better val AUC before stopping; 0 = off
    class_weighting: bool = False
    seed: int = 0
    max_minutes: float | None = None  # wall-clock budget; stops gracefully when reached
    limit: int | None = None  # use at most this many training patches (quick trials)
    workers: int = 2  # processes for the one-time conversion into the HDF5 cache
    strategy: str = "default"  # default | mirrored (several GPUs) | multiworker (TF_CONFIG)
    memory_limit_gb: float = 3.0  # selections larger than this stream from the HDF5 cache
    resume_from: str | None = None  # a checkpoint (.keras) or run directory to continue from

    def validate(self) -> TrainConfig:
        from core.models import ARCHITECTURES

        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]
        self.data = [str(d) for d in self.data]
        if not self.data:
            raise RunError("Choose at least one training dataset.")
        for path in [*self.data, *([self.val_data] if self.val_data else [])]:
            if not Path(path).exists():
                raise RunError(f"No dataset at {path}.")
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        if self.architecture not in ARCHITECTURES:
            raise RunError(f"Unknown architecture {self.architecture!r}: {', '.join(ARCHITECTURES)}.")
        if not self.val_data and not 0.0 < self.val_fraction < 1.0:
            raise RunError("The validation fraction must lie between 0 and 1.")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise RunError("Epochs, batch size and learning rate must be positive.")
        if self.schedule not in SCHEDULES:
            raise RunError(f"Unknown schedule {self.schedule!r}: {', '.join(SCHEDULES)}.")
        if self.strategy not in ("default", "mirrored", "multiworker"):
            raise RunError(f"Unknown strategy {self.strategy!r}.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in known})
        return config.validate()


# ---------------------------------------------------------------- data


@dataclass
class TrainingData:
    train: object  # core.pipeline.Selection
    val: object
    notes: list[str]


def _cache_for(path: str, workers: int, report: Callable[[str], None]) -> Path:
    """The HDF5 cache of a dataset, converting it once (reused by every later run)."""
    from core.cache import cache_path_for, prepare
    from core.datasets import open_dataset

    dataset = open_dataset(path)
    if dataset.layout == "cache":
        return Path(dataset.path)
    target = cache_path_for(dataset)
    if not target.exists():
        start = time.time()

        def progress(done: int, total: int) -> None:
            report(f"Converting {Path(path).name} into a cache: {done}/{total} patches")

        prepare(dataset, target, workers=workers, progress=progress)
        report(f"Cached {len(dataset)} patches of {Path(path).name} in {time.time() - start:.0f} s")
    return target


def prepare_data(config: TrainConfig, report: Callable[[str], None] = lambda _: None) -> TrainingData:
    """Caches for every dataset, then the training and validation selections."""
    from core.pipeline import Selection, read_cache_index

    rng = np.random.default_rng(config.seed)
    notes: list[str] = []
    entries = []  # (cache path, ids, labels)
    for path in config.data:
        cache = _cache_for(path, config.workers, report)
        ids, labels = read_cache_index(cache)
        entries.append((cache, ids, labels))

    def select(parts_rows, all_ids, all_labels) -> Selection:
        parts, ids, labels = [], [], []
        for (cache, rows), part_ids, part_labels in zip(parts_rows, all_ids, all_labels):
            rows = np.sort(rows)
            if len(rows):
                parts.append((cache, rows))
                ids += [part_ids[r] for r in rows]
                labels.append(part_labels[rows])
        label_array = np.concatenate(labels).astype(np.float32) if labels else np.zeros(0, np.float32)
        return Selection(parts=parts, labels=label_array, ids=ids)

    labelled = [np.flatnonzero(labels >= 0) for _, _, labels in entries]
    n_unlabelled = sum(len(ids) - len(rows) for (_, ids, _), rows in zip(entries, labelled))
    if n_unlabelled:
        notes.append(f"{n_unlabelled} unlabelled patches were left out of training.")

    if config.val_data:
        val_cache = _cache_for(config.val_data, config.workers, report)
        val_ids, val_labels = read_cache_index(val_cache)
        val_rows = np.flatnonzero(val_labels >= 0)
        if len(val_rows) == 0:
            raise RunError(f"The validation dataset {config.val_data} has no labelled patches.")
        held_out = {val_ids[r] for r in val_rows}
        train_rows = []
        excluded = 0
        for (_, ids, _), rows in zip(entries, labelled):
            keep = np.array([ids[r] not in held_out for r in rows], dtype=bool)
            excluded += int((~keep).sum())
            train_rows.append(rows[keep])
        if excluded:
            notes.append(f"{excluded} training patches also in the validation set were excluded.")
        val = select([(val_cache, val_rows)], [val_ids], [val_labels])
    else:
        # One stratified random split over all labelled patches (shares slides: optimistic).
        train_rows, val_rows_parts = [], []
        for _, _, labels in entries:
            rows = np.flatnonzero(labels >= 0)
            val_mask = np.zeros(len(rows), dtype=bool)
            for cls in (0, 1):
                members = np.flatnonzero(labels[rows] == cls)
                n_val = int(round(len(members) * config.val_fraction))
                val_mask[rng.permutation(members)[:n_val]] = True
            train_rows.append(rows[~val_mask])
            val_rows_parts.append(rows[val_mask])
        val = select(
            [(c, r) for (c, _, _), r in zip(entries, val_rows_parts)],
            [ids for _, ids, _ in entries],
            [labels for _, _, labels in entries],
        )
    if config.limit:
        total = sum(len(r) for r in train_rows)
        if total > config.limit:
            keep = np.sort(rng.permutation(total)[: config.limit])
            bounds = np.cumsum([0] + [len(r) for r in train_rows])
            train_rows = [
                rows[keep[(keep >= lo) & (keep < hi)] - lo]
                for rows, lo, hi in zip(train_rows, bounds[:-1], bounds[1:])
            ]
            notes.append(f"Training limited to {config.limit} of {total} patches.")
    train = select(
        [(c, r) for (c, _, _), r in zip(entries, train_rows)],
        [ids for _, ids, _ in entries],
        [labels for _, _, labels in entries],
    )
    if len(train) == 0:
        raise RunError("No labelled training patches are left after the validation split.")
    if len(val) == 0:
        raise RunError("The validation set is empty; raise the validation fraction.")
    if len(np.unique(train.labels)) < 2:
        raise RunError("The training patches hold only one class; a classifier needs both.")
    return TrainingData(train=train, val=val, notes=notes)


# ---------------------------------------------------------------- distribution


def cluster_role() -> tuple[str, int]:
    """(task type, index) from TF_CONFIG; ("chief", 0) when there is no cluster."""
    spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = spec.get("task") or {}
    return task.get("type", "chief"), int(task.get("index", 0))


def is_chief() -> bool:
    """The chief writes the run directory: task "chief", or worker 0 when the cluster has no chief."""
    spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
    kind, index = cluster_role()
    has_chief = "chief" in (spec.get("cluster") or {})
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


def make_strategy(name: str):
    """TensorFlow's own distribution engine: default, MirroredStrategy or MultiWorkerMirroredStrategy."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise RunError("--strategy multiworker needs TF_CONFIG describing the cluster (see README).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


# ---------------------------------------------------------------- the job


class _Job:
    """Owns status.json for one run: state, phase, progress, heartbeat (from a thread)."""

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


def _make_callback(
    job: _Job,
    *,
    steps_per_epoch: int,
    epochs: int,
    batch_size: int,
    deadline: float | None,
    printer: Callable[[str], None] | None,
):
    import keras

    class JobCallback(keras.callbacks.Callback):
        """Writes batch-window and epoch lines, saves the best checkpoint, honours stop requests."""

        def __init__(self):
            super().__init__()
            self.best_auc = -1.0
            self.best_epoch = None
            self.best_weights = None
            self.train_start = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_start = self.window_start = time.time()
            self.window_seen = 0

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.window_seen += batch_size
            now = time.time()
            last = batch + 1 == steps_per_epoch
            if now - self.window_start >= BATCH_RECORD_SECONDS or last:
                rate = self.window_seen / max(now - self.window_start, 1e-9)
                done_steps = self.epoch * steps_per_epoch + batch + 1
                eta = (epochs * steps_per_epoch - done_steps) * batch_size / max(rate, 1e-9)
                record = {
                    "kind": "batch",
                    "epoch": self.epoch + 1,
                    "step": batch + 1,
                    "steps": steps_per_epoch,
                    "loss": float(logs.get("loss", np.nan)),
                    "accuracy": float(logs.get("accuracy", np.nan)),
                    "patches_per_s": round(rate, 1),
                    "eta_s": round(eta, 1),
                    "time": now,
                }
                append_metrics(job.run_dir, record)
                job.update(
                    progress={
                        "epoch": self.epoch + 1,
                        "epochs": epochs,
                        "step": batch + 1,
                        "steps": steps_per_epoch,
                        "patches_per_s": record["patches_per_s"],
                        "eta_s": record["eta_s"],
                    },
                    phase="training",
                )
                if printer:
                    printer(
                        f"epoch {self.epoch + 1}/{epochs} step {batch + 1}/{steps_per_epoch} "
                        f"loss {record['loss']:.4f} acc {record['accuracy']:.3f} "
                        f"{rate:.0f} patches/s ETA {eta / 60:.1f} min"
                    )
                self.window_start, self.window_seen = now, 0
            if stop_requested(job.run_dir):
                job.stop_reason = job.stop_reason or "stopped by the user"
                self.model.stop_training = True
            elif deadline and now > deadline:
                job.stop_reason = job.stop_reason or "time budget reached"
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            from core.models import save_model

            logs = logs or {}
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
                self.best_auc, self.best_epoch = val_auc, epoch + 1
                self.best_weights = self.model.get_weights()
                save_model(
                    self.model,
                    job.run_dir / "best.keras",
                    {"epoch": epoch + 1, "val_auc": val_auc, "val_accuracy": record.get("val_accuracy")},
                )
                job.update(
                    best={"epoch": epoch + 1, "val_auc": val_auc, "val_accuracy": record.get("val_accuracy")}
                )

    return JobCallback()


def _terminal_printer(stream=sys.stderr):
    def show(text: str, newline: bool = False) -> None:
        stream.write("\r" + text.ljust(100) + ("\n" if newline else ""))
        stream.flush()

    return show


def run_training(config: TrainConfig, run_dir: str | Path, *, verbose: bool = True) -> dict:
    """Train in this process, writing everything into `run_dir`. Returns the final status.

    Errors end in status `failed` with a readable message (and the traceback in train.log);
    a stop request or SIGTERM ends the run gracefully as `stopped`, keeping the best checkpoint.
    """
    config.validate()
    chief = config.strategy != "multiworker" or is_chief()
    if not chief:  # other workers train in step with the chief but write only to a scratch folder
        run_dir = Path(tempfile.mkdtemp(prefix="patchlens-worker-"))
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = read_json(run_dir / "status.json")
    if existing and existing.get("state") != "queued":
        raise RunError(f"{run_dir} already holds a run ({existing.get('state')}); choose a new --out.")
    if chief:
        acquire_lock(run_dir)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    job = _Job(run_dir)
    started = time.time()
    job.update("running", pid=os.getpid(), started=started, phase="starting", error=None)
    job.start_heartbeat()
    printer = _terminal_printer() if verbose else None
    previous_sigterm = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        job.stop_reason = "stopped by SIGTERM"
        (run_dir / "stop.request").touch()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
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
        if not isinstance(error, (Exception, KeyboardInterrupt)):
            raise
    finally:
        job.stop_heartbeat()
        if chief:
            release_lock(run_dir)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_sigterm)
    final = json.loads((run_dir / "status.json").read_text())
    if not chief:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    elif printer:
        printer(f"{job.state}: {run_dir}", newline=True)
    return final


def _train(config: TrainConfig, run_dir: Path, job: _Job, printer, started: float) -> dict:
    job.update(phase="preparing data")
    data = prepare_data(config, report=lambda text: job.update(phase=text))
    for note in data.notes:
        append_metrics(run_dir, {"kind": "note", "text": note, "time": time.time()})
    job.update(
        phase="building the model",
        n_train=len(data.train),
        n_val=len(data.val),
        n_train_positive=int(data.train.labels.sum()),
        n_val_positive=int(data.val.labels.sum()),
        notes=data.notes,
    )

    import keras
    import tensorflow as tf

    from core.models import build_model, save_model
    from core.pipeline import make_dataset

    strategy = make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:  # mixed precision pays on a GPU only; the output layer stays float32
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    global_batch = config.batch_size * replicas  # batch_size is per replica
    steps_per_epoch = int(np.ceil(len(data.train) / global_batch))
    memory_limit = int(config.memory_limit_gb * 1024**3)
    train_ds = make_dataset(
        data.train,
        batch_size=global_batch,
        shuffle=True,
        augment=config.augment,
        seed=config.seed,
        memory_limit_bytes=memory_limit,
    )
    val_ds = make_dataset(
        data.val, batch_size=max(global_batch, 128), shuffle=False, memory_limit_bytes=memory_limit
    )
    if replicas > 1 or config.strategy == "multiworker":
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)
    job.update(strategy=config.strategy, replicas=replicas, global_batch=global_batch, gpu=gpu)

    initial_epoch = 0
    with strategy.scope():
        model = build_model(config.architecture, seed=config.seed)
        if config.resume_from:
            initial_epoch = _restore_checkpoint(model, config.resume_from)
            append_metrics(
                run_dir,
                {
                    "kind": "note",
                    "text": f"Resumed from {config.resume_from} after epoch {initial_epoch}.",
                    "time": time.time(),
                },
            )
        if config.schedule == "cosine":
            lr = keras.optimizers.schedules.CosineDecay(
                config.learning_rate, decay_steps=steps_per_epoch * config.epochs, alpha=0.02
            )
        else:
            lr = config.learning_rate
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
        )
        if initial_epoch:  # continue the learning-rate schedule where the checkpoint left it
            model.optimizer.iterations.assign(initial_epoch * steps_per_epoch)
    if initial_epoch >= config.epochs:
        raise RunError(
            f"The checkpoint is from epoch {initial_epoch}; ask for more than {initial_epoch} epochs to resume."
        )
    class_weight = None
    if config.class_weighting:
        n, n_pos = len(data.train.labels), float(data.train.labels.sum())
        class_weight = {0: n / (2 * (n - n_pos)), 1: n / (2 * n_pos)}
    deadline = started + 60 * config.max_minutes if config.max_minutes else None
    callback = _make_callback(
        job,
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        batch_size=global_batch,
        deadline=deadline,
        printer=printer,
    )
    callbacks = [callback]
    if config.early_stopping_patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=config.early_stopping_patience
            )
        )
    job.update(
        phase="training", progress={"epoch": 0, "epochs": config.epochs, "step": 0, "steps": steps_per_epoch}
    )
    if config.strategy == "multiworker":
        from core.distributed import fit_multiworker

        if class_weight is not None:
            raise RunError("Class weighting is not available with --strategy multiworker.")
        fit_multiworker(
            model,
            strategy,
            train_ds,
            val_ds,
            epochs=config.epochs,
            global_batch=global_batch,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
        )
    else:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            callbacks=callbacks,
            class_weight=class_weight,
            initial_epoch=initial_epoch,
            verbose=0,
        )

    if callback.best_weights is not None:
        model.set_weights(callback.best_weights)  # the final model is the best by validation AUC
    job.update(phase="predicting the validation set")
    if config.strategy == "multiworker":  # every worker predicts the whole validation set, unsharded
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        val_ds = val_ds.with_options(options)
    probs = model.predict(val_ds, verbose=0).reshape(-1)[: len(data.val)]
    _write_val_predictions(run_dir / "val_predictions.csv", data.val.ids, data.val.labels, probs)
    from sklearn.metrics import roc_auc_score

    labels = data.val.labels.astype(int)
    summary = {
        "best_epoch": callback.best_epoch,
        "val_auc": float(roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else None,
        "val_accuracy": float(np.mean((probs >= 0.5) == labels)),
        "n_train": len(data.train),
        "n_val": len(data.val),
    }
    save_model(
        model,
        run_dir / "model.keras",
        {"config": config.to_dict(), **summary, "duration_s": round(time.time() - started, 1)},
    )
    return summary


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory's best checkpoint (else its final model), or the .keras file itself."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.keras", "model.keras"):
            if (path / name).is_file():
                return path / name
        raise RunError(f"{path.name} has no checkpoint to resume from (no best.keras).")
    if not path.is_file():
        raise RunError(f"No checkpoint at {path}.")
    return path


def _restore_checkpoint(model, path: str | Path) -> int:
    """Load a checkpoint's weights (safely) into `model`; returns the epoch it was saved after."""
    from core.models import load_model, read_model_meta

    checkpoint = resolve_checkpoint(path)
    saved = load_model(checkpoint)
    if len(saved.weights) != len(model.weights) or any(
        tuple(a.shape) != tuple(b.shape) for a, b in zip(saved.weights, model.weights)
    ):
        raise RunError(f"{checkpoint} does not match the {model.name} architecture; cannot resume from it.")
    model.set_weights(saved.get_weights())
    meta = read_model_meta(checkpoint)
    return int(meta.get("epoch") or meta.get("best_epoch") or 0)


def resume_config(run_dir: str | Path, *, epochs: int | None = None) -> TrainConfig:
    """The configuration of an earlier run, set to continue from its best checkpoint."""
    run_dir = Path(run_dir)
    data = read_json(run_dir / "config.json")
    if not data:
        raise RunError(f"{run_dir.name} has no readable config.json.")
    config = TrainConfig.from_dict(data)
    config.resume_from = str(resolve_checkpoint(run_dir))
    if epochs:
        config.epochs = epochs
    return config


def _write_val_predictions(path: Path, ids, labels, probs) -> None:
    from core.runs import atomic_write_bytes

    lines = ["id,label,prob"] + [f"{i},{int(y)},{p:.6f}" for i, y, p in zip(ids, labels, probs)]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


# ---------------------------------------------------------------- launching from the page


def launch(config: TrainConfig, run_dir: str | Path | None = None) -> Path:
    """Start `python -m core train` for `config` in its own process; returns the run directory.

    Refused with JobConflictError when another job runs in this workspace.
    """
    config.validate()
    running = active_run()
    if running is not None:
        raise JobConflictError(
            f"A training job is already running in this workspace: {running.name}. "
            "Stop it or wait for it to finish before starting another."
        )
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
    command = [
        sys.executable,
        "-m",
        "core",
        "train",
        "--config",
        str(run_dir / "config.json"),
        "--out",
        str(run_dir),
        "--quiet",
    ]
    with open(run_dir / "train.log", "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    write_status(run_dir, "queued", pid=process.pid)
    return run_dir
