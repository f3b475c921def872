"""A training job: a TrainConfig and a run directory in, a trained model and its record out.

`launch(config)` (the Train page) writes the run directory and queues `python -m core train
--config RUN/config.json --out RUN` on the job engine (core.jobs), so training survives page reruns
and browser reloads. The CLI's `train` calls `run_training` directly: both take the same code path.
The job reports only through files (see core.train.runs and core.train.reporting); the page reads them.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from core.data.hashes import write_training_hashes
from core.data.normalise import META_KEY
from core.errors import JobConflictError, PatchLensError, RunError
from core.model.io import AVERAGED_MODEL_FILE, FINAL_MODEL_FILE, read_model_meta
from core.train.averaging import adopt_average, learning_rate, weight_averager
from core.train.config import DEFAULT_BATCH_SIZE, GPU_BATCH_SIZE, TrainConfig
from core.train.data import fit_normaliser, prepare_data
from core.train.distributed import is_chief, make_strategy
from core.train.reporting import JobReporter, make_callback, terminal_printer
from core.train.resume import report_resume, restore_checkpoint, resume_config
from core.train.runs import (
    acquire_lock,
    active_run,
    append_metrics,
    atomic_write_json,
    job_conflict,
    new_run_dir,
    read_json,
    release_lock,
    write_status,
)

__all__ = ["TrainConfig", "launch", "prepare_data", "resume_config", "run_training"]


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
    existing = read_json(run_dir / "status.json")
    if existing is not None and (not isinstance(existing, dict) or existing.get("state") != "queued"):
        state = existing.get("state") if isinstance(existing, dict) else "damaged"
        raise RunError(f"{run_dir} already holds a run ({state}); choose a new --out.")
    if chief:  # before anything is created: a refused job leaves no folder behind
        acquire_lock(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    job = JobReporter(run_dir)
    started = time.time()
    job.update("running", pid=os.getpid(), started=started, phase="starting", error=None)
    job.start_heartbeat()
    printer = terminal_printer() if verbose else None
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


def _train(config: TrainConfig, run_dir: Path, job: JobReporter, printer, started: float) -> dict:
    job.update(phase="preparing data")
    data = prepare_data(config, report=lambda text: job.update(phase=text))
    write_training_hashes(data.train, run_dir)  # the model's training record, by pixel content
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
    normaliser = fit_normaliser(config, data.train)
    stain_meta = {META_KEY: normaliser.to_meta()} if normaliser.active else {}
    normaliser = normaliser if normaliser.active else None

    import keras
    import tensorflow as tf

    from core.model.architectures import build_model
    from core.model.io import save_model
    from core.train.batch_norm import PRECISE_BN_PATCHES, precise_batch_norm_callback
    from core.train.pipeline import make_dataset

    strategy = make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:  # mixed precision pays on a GPU only; the output layer stays float32
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    per_replica = config.batch_size
    if gpu and config.batch_size == DEFAULT_BATCH_SIZE:  # a GPU is starved by the CPU-sized default
        per_replica = GPU_BATCH_SIZE
    global_batch = per_replica * replicas  # batch_size is per replica
    steps_per_epoch = int(np.ceil(len(data.train) / global_batch))
    memory_limit = int(config.memory_limit_gb * 1024**3)
    train_ds = make_dataset(
        data.train,
        batch_size=global_batch,
        shuffle=True,
        augment=config.augment,
        seed=config.seed,
        memory_limit_bytes=memory_limit,
        normaliser=normaliser,
    )
    val_ds = make_dataset(
        data.val,
        batch_size=max(global_batch, 128),
        shuffle=False,
        memory_limit_bytes=memory_limit,
        normaliser=normaliser,
    )
    batch_norm_ds = make_dataset(  # a fixed sample of un-augmented training patches (core.train.batch_norm)
        data.train.sample(PRECISE_BN_PATCHES, seed=config.seed),
        batch_size=global_batch,
        shuffle=False,
        memory_limit_bytes=memory_limit,
        normaliser=normaliser,
    )
    if replicas > 1 or config.strategy == "multiworker":
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)
        batch_norm_ds = batch_norm_ds.with_options(options)
    job.update(strategy=config.strategy, replicas=replicas, global_batch=global_batch, gpu=gpu)

    initial_epoch = 0
    with strategy.scope():
        weights = None if config.resume_from else config.weights  # a resumed run loads its checkpoint
        model = build_model(config.architecture, seed=config.seed, weights=weights)
        if config.resume_from:
            initial_epoch = restore_checkpoint(model, config.resume_from)
            report_resume(run_dir, job, config.resume_from, initial_epoch)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch)),
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
    callback = make_callback(
        job,
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        batch_size=global_batch,
        deadline=deadline,
        printer=printer,
        val_majority_rate=float(max(data.val.labels.mean(), 1 - data.val.labels.mean())),
        checkpoint_meta=stain_meta,
        validation_batches=int(  # each validation: precise BatchNorm's forward passes, then the pass itself
            np.ceil(min(PRECISE_BN_PATCHES, len(data.train)) / global_batch)
            + np.ceil(len(data.val) / max(global_batch, 128))
        ),
    )
    # before each validation: BatchNorm statistics that match the weights (see core.train.batch_norm)
    callbacks = [precise_batch_norm_callback(batch_norm_ds, strategy=strategy), callback]
    averager = weight_averager(config.epochs - config.swa_epochs + 1) if config.swa_epochs else None
    callbacks += [averager] if averager else []
    if config.early_stopping_patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=config.early_stopping_patience
            )
        )
    job.update(
        phase="training", progress={"epoch": 0, "epochs": config.epochs, "step": 0, "steps": steps_per_epoch}
    )
    fit = model.fit
    if config.strategy == "multiworker":  # the custom loop of core.train.distributed, called as Model.fit
        from core.train.distributed import fit_multiworker

        if class_weight is not None:
            raise RunError("Class weighting is not available with --strategy multiworker.")

        def fit(train, *, validation_data, class_weight, shuffle, verbose, **options):  # as Model.fit
            fit_multiworker(model, strategy, train, validation_data, global_batch=global_batch, **options)

    fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        callbacks=callbacks,
        initial_epoch=initial_epoch,
        class_weight=class_weight,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=0,
    )

    if averager:
        job.update(phase="validating the averaged weights")
    swa = adopt_average(
        model,
        averager,
        best_auc=callback.best_auc,
        batch_norm_data=batch_norm_ds,
        val_data=val_ds,
        strategy=strategy,
    )
    if swa:  # kept whether delivered or not, so a user can score both on their own slides
        append_metrics(run_dir, {**swa, "time": time.time()})
        save_model(model, run_dir / AVERAGED_MODEL_FILE, {"swa": swa, **stain_meta})
    if not (swa and swa["adopted"]) and callback.best_weights is not None:
        model.set_weights(callback.best_weights)  # the final model is the best by validation AUC
    job.update(phase="predicting the validation set")
    if config.strategy == "multiworker":  # every worker predicts the whole validation set, unsharded
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        val_ds = val_ds.with_options(options)
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from core.evaluate.calibration import calibrate_model, stored_temperature
    from core.evaluate.predictions import write_predictions

    def predict_val() -> np.ndarray:
        return model.predict(val_ds, verbose=0).reshape(-1)[: len(data.val)]

    labels = data.val.labels.astype(int)
    calibration: dict = {}
    if config.calibrate:  # temperature scaling on the validation set, folded into the final model
        job.update(phase="calibrating on the validation set")
        probs, calibration = calibrate_model(model, predict_val, labels)
    else:
        probs = predict_val()
    write_predictions(
        pd.DataFrame({"id": data.val.ids, "label": labels, "prob": probs}), run_dir / "val_predictions.csv"
    )
    summary = {
        "best_epoch": callback.best_epoch or initial_epoch or None,  # no epoch of its own: its checkpoint
        **({"swa": {k: v for k, v in swa.items() if k != "kind"}} if swa else {}),
        "val_auc": float(roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else None,
        "val_accuracy": float(np.mean((probs >= 0.5) == labels)),
        "n_train": len(data.train),
        "n_val": len(data.val),
        **({"temperature": stored_temperature(calibration)} if calibration else {}),
    }
    save_model(
        model,
        run_dir / FINAL_MODEL_FILE,
        {
            "config": config.to_dict(),
            **summary,
            "duration_s": round(time.time() - started, 1),
            **stain_meta,
            **calibration,
        },
    )
    summary["ood_fit_s"] = _store_ood_stats(model, data, run_dir / FINAL_MODEL_FILE, config.seed, job)
    return summary


def _store_ood_stats(model, data, model_file: Path, seed: int, job: JobReporter) -> float:
    """Fit the out-of-distribution statistics (core.model.ood) on un-augmented training patches,
    calibrate them on validation patches, store them in the final model file; returns the seconds."""
    from core.model.ood import CALIBRATION_PATCHES, FIT_PATCHES, fit_ood_stats, write_ood_stats
    from core.train.pipeline import load_pixels

    job.update(phase="fitting the out-of-distribution statistics")
    start = time.time()
    model.patchlens_meta = read_model_meta(model_file)  # score as the saved model will: its stain normaliser
    fit_on, held_out = (
        data.train.sample(FIT_PATCHES, seed=seed),
        data.val.sample(CALIBRATION_PATCHES, seed=seed),
    )
    write_ood_stats(
        model_file, fit_ood_stats(model, load_pixels(fit_on), fit_on.labels, load_pixels(held_out))
    )
    return round(time.time() - start, 1)


# ---------------------------------------------------------------- launching from the page


def launch(config: TrainConfig, run_dir: str | Path | None = None) -> Path:
    """Queue `python -m core train` for `config` on the job engine (core.jobs: a warm worker); returns
    the run directory. The run is never rerun: a lost worker leaves it failed with its checkpoint kept.

    Refused with JobConflictError when another job runs in this workspace.
    """
    config.validate()
    running = active_run()
    if running is not None:
        raise job_conflict(running.name)
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
    from core.jobs.launch import start

    start("train", run_dir, ["--config", str(run_dir / "config.json"), "--out", str(run_dir), "--quiet"])
    return run_dir
