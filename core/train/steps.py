"""The steps of a training run, in the order core.train.job runs them:

    data → pipelines → model → callbacks → fit → average → predict → save

Each step is one function of the `Run` (what the job was handed: configuration, run directory,
reporter, printer, start time) and of what earlier steps returned. Imported inside the training
process only: it imports TensorFlow and Keras.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from core.constants import PATCH_SHAPE
from core.data.hashes import write_training_hashes
from core.data.normalise import META_KEY
from core.errors import TrainConfigError
from core.files import atomic_write_csv
from core.model.calibration import calibrate_model, stored_temperature
from core.model.io import AVERAGED_MODEL_FILE, FINAL_MODEL_FILE, read_model_meta, save_model
from core.train.averaging import adopt_average, learning_rate, weight_averager
from core.train.batch_norm import PRECISE_BN_PATCHES, precise_batch_norm_callback
from core.train.callbacks import EpochReporter, RunShape, job_callbacks
from core.train.config import DEFAULT_BATCH_SIZE, GPU_BATCH_SIZE, TrainConfig
from core.train.data import TrainingData, fit_normaliser, prepare_data
from core.train.distributed import make_strategy
from core.train.pipeline import make_dataset
from core.train.reporting import JobReporter
from core.train.resume import report_resume, restore_checkpoint
from core.train.runs import append_metrics

VAL_BATCH_MIN = 128  # validation batches are at least this large: no gradients, so memory allows it


@dataclass
class Run:
    """What the training job hands every step."""

    config: TrainConfig
    run_dir: Path
    job: JobReporter
    printer: object
    started: float


@dataclass
class Data:
    """The training and validation selections, and the stain normaliser fitted on the training one."""

    train: object
    val: object
    normaliser: object | None  # core.data.normalise's, or None when the run does not normalise
    stain_meta: dict  # what the model files record of it ({} without one)


@dataclass
class Pipelines:
    """The tf.data pipelines of a run and the distribution strategy they are shaped for."""

    train: object
    val: object
    batch_norm: object  # a fixed sample of un-augmented training patches (core.train.batch_norm)
    strategy: object
    global_batch: int
    steps_per_epoch: int


@dataclass
class Callbacks:
    """The callbacks handed to fit, and the two that later steps read."""

    all: list
    best: EpochReporter  # the best epoch by validation AUC: its weights
    averager: object | None  # the running mean of the last epochs' weights (None without averaging)


def load_data(run: Run) -> Data:
    """Open and split the datasets, record the training patches' hashes, fit the stain normaliser."""
    run.job.update(phase="preparing data")
    data: TrainingData = prepare_data(run.config, report=lambda text: run.job.update(phase=text))
    write_training_hashes(data.train, run.run_dir)  # the model's training record, by pixel content
    for note in data.notes:
        append_metrics(run.run_dir, {"kind": "note", "text": note, "time": time.time()})
    run.job.update(
        phase="building the model",
        n_train=len(data.train),
        n_val=len(data.val),
        n_train_positive=int(data.train.labels.sum()),
        n_val_positive=int(data.val.labels.sum()),
        notes=data.notes,
    )
    normaliser = fit_normaliser(run.config, data.train)
    if not normaliser.active:
        return Data(data.train, data.val, None, {})
    return Data(data.train, data.val, normaliser, {META_KEY: normaliser.to_meta()})


def make_pipelines(run: Run, data: Data) -> Pipelines:
    """The strategy, the global batch and the train / validation / BatchNorm pipelines; seeds TF."""
    config = run.config
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
    options = dict(memory_limit_bytes=int(config.memory_limit_gb * 1024**3), normaliser=data.normaliser)
    train = make_dataset(
        data.train, batch_size=global_batch, shuffle=True, augment=config.augment, seed=config.seed, **options
    )
    val = make_dataset(data.val, batch_size=max(global_batch, VAL_BATCH_MIN), shuffle=False, **options)
    sample = data.train.sample(PRECISE_BN_PATCHES, seed=config.seed)
    batch_norm = make_dataset(sample, batch_size=global_batch, shuffle=False, **options)
    if replicas > 1 or config.strategy == "multiworker":
        train, val, batch_norm = (
            _sharded(pipeline, tf.data.experimental.AutoShardPolicy.DATA)
            for pipeline in (train, val, batch_norm)
        )
    run.job.update(strategy=config.strategy, replicas=replicas, global_batch=global_batch, gpu=gpu)
    steps_per_epoch = int(np.ceil(len(data.train) / global_batch))
    return Pipelines(train, val, batch_norm, strategy, global_batch, steps_per_epoch)


def _sharded(pipeline, policy):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return pipeline.with_options(options)


def build_model(run: Run, pipelines: Pipelines):
    """The compiled model, fresh or restored from the checkpoint the run resumes; and its first epoch."""
    from core.model.architectures import build_model as build_architecture

    config, initial_epoch = run.config, 0
    with pipelines.strategy.scope():
        weights = None if config.resume_from else config.weights  # a resumed run loads its checkpoint
        model = build_architecture(config.architecture, seed=config.seed, weights=weights)
        if config.resume_from:
            initial_epoch = restore_checkpoint(model, config.resume_from)
            report_resume(run.run_dir, run.job, config.resume_from, initial_epoch)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(config, pipelines.steps_per_epoch)),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
        )
        build_training_state(model)
        if initial_epoch:  # continue the learning-rate schedule where the checkpoint left it
            model.optimizer.iterations.assign(initial_epoch * pipelines.steps_per_epoch)
    if initial_epoch >= config.epochs:
        raise TrainConfigError(
            f"The checkpoint is from epoch {initial_epoch}; ask for more than {initial_epoch} epochs to resume."
        )
    return model, initial_epoch


def build_training_state(model) -> None:
    """Create the optimizer's slots and the compiled metrics' variables now, before fit.

    Outside a distribution strategy Keras 3 leaves them to the first traced training step, and a
    tf.function that creates variables while it is traced is traced a second time without: every
    run paid for tracing its training step twice (20 s more for MobileNetV3Small here, before the
    first step). Keras' own build (`_symbolic_build`, what `fit` runs under a strategy) on a
    symbolic batch creates them without running the model.
    """
    patches = np.zeros((1, *PATCH_SHAPE), np.float32)
    model._symbolic_build(data_batch=(patches, np.zeros((1, 1), np.float32), None))


def make_callbacks(run: Run, data: Data, pipelines: Pipelines) -> Callbacks:
    """Precise BatchNorm, the job's reporters, the weight averager and early stopping, in that order."""
    config, batch = run.config, pipelines.global_batch
    deadline = run.started + 60 * config.max_minutes if config.max_minutes else None
    shape = RunShape(run.job, pipelines.steps_per_epoch, config.epochs, batch, deadline, run.printer)
    reporters = job_callbacks(
        shape,
        val_majority_rate=float(max(data.val.labels.mean(), 1 - data.val.labels.mean())),
        checkpoint_meta=data.stain_meta,
        validation_batches=int(  # each validation: precise BatchNorm's forward passes, then the pass itself
            np.ceil(min(PRECISE_BN_PATCHES, len(data.train)) / batch)
            + np.ceil(len(data.val) / max(batch, VAL_BATCH_MIN))
        ),
    )
    # before each validation: BatchNorm statistics that match the weights (see core.train.batch_norm)
    callbacks = [precise_batch_norm_callback(pipelines.batch_norm, strategy=pipelines.strategy), *reporters]
    averager = weight_averager(config.epochs - config.swa_epochs + 1) if config.swa_epochs else None
    callbacks += [averager] if averager else []
    if config.early_stopping_patience > 0:
        patience = config.early_stopping_patience
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience))
    return Callbacks(callbacks, reporters[-1], averager)


def fit(run: Run, model, data: Data, pipelines: Pipelines, callbacks: Callbacks, initial_epoch: int) -> None:
    """Model.fit (or core.train.distributed's loop under multiworker) from `initial_epoch`."""
    config = run.config
    class_weight = _class_weight(data.train.labels) if config.class_weighting else None
    progress = {"epoch": 0, "epochs": config.epochs, "step": 0, "steps": pipelines.steps_per_epoch}
    run.job.update(phase="training", progress=progress)
    fit = model.fit
    if config.strategy == "multiworker":  # the custom loop of core.train.distributed, called as Model.fit
        from core.train.distributed import fit_multiworker

        if class_weight is not None:
            raise TrainConfigError("Class weighting is not available with --strategy multiworker.")

        def fit(train, *, validation_data, class_weight, shuffle, verbose, **options):  # as Model.fit
            fit_multiworker(
                model,
                pipelines.strategy,
                train,
                validation_data,
                global_batch=pipelines.global_batch,
                **options,
            )

    fit(
        pipelines.train,
        validation_data=pipelines.val,
        epochs=config.epochs,
        callbacks=callbacks.all,
        initial_epoch=initial_epoch,
        class_weight=class_weight,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=0,
    )


def _class_weight(labels: np.ndarray) -> dict[int, float]:
    """Weights that make each class count as much as the other in the loss."""
    n, n_pos = len(labels), float(labels.sum())
    return {0: n / (2 * (n - n_pos)), 1: n / (2 * n_pos)}


def average(run: Run, model, data: Data, pipelines: Pipelines, callbacks: Callbacks) -> dict | None:
    """Keep the averaged weights when they validate as well as the best epoch, else the best epoch's;
    the averaged model is saved either way. Returns the averaging's record (None without one)."""
    best, averager = callbacks.best, callbacks.averager
    if averager:
        run.job.update(phase="validating the averaged weights")
    swa = adopt_average(
        model,
        averager,
        best_auc=best.best_auc,
        batch_norm_data=pipelines.batch_norm,
        val_data=pipelines.val,
        strategy=pipelines.strategy,
    )
    if swa:  # kept whether delivered or not, so a user can score both on their own slides
        append_metrics(run.run_dir, {**swa, "time": time.time()})
        save_model(model, run.run_dir / AVERAGED_MODEL_FILE, {"swa": swa, **data.stain_meta})
    if not (swa and swa["adopted"]) and best.best_weights is not None:
        model.set_weights(best.best_weights)  # the final model is the best by validation AUC
    return swa


def predict(run: Run, model, data: Data, pipelines: Pipelines) -> tuple[np.ndarray, dict]:
    """The final model's validation probabilities, after folding in a temperature fitted on them (when
    the run calibrates), written to val_predictions.csv; returns them and the calibration metadata."""
    run.job.update(phase="predicting the validation set")
    val = pipelines.val
    if run.config.strategy == "multiworker":  # every worker predicts the whole validation set, unsharded
        val = _sharded(val, tf.data.experimental.AutoShardPolicy.OFF)

    def predict_val() -> np.ndarray:
        return model.predict(val, verbose=0).reshape(-1)[: len(data.val)]

    labels = data.val.labels.astype(int)
    calibration: dict = {}
    if run.config.calibrate:  # temperature scaling on the validation set, folded into the final model
        run.job.update(phase="calibrating on the validation set")
        probs, calibration = calibrate_model(model, predict_val, labels)
    else:
        probs = predict_val()
    frame = pd.DataFrame({"id": data.val.ids, "label": labels, "prob": probs})
    atomic_write_csv(frame, run.run_dir / "val_predictions.csv")  # core.evaluate.predictions reads it
    return probs, calibration


def save(run: Run, model, data: Data, outcome: dict, probs: np.ndarray, calibration: dict) -> dict:
    """The final model file with the run's summary and metadata, then its out-of-distribution
    statistics; returns the summary (status.json's final fields). `outcome`: best_epoch and swa."""
    from sklearn.metrics import roc_auc_score

    labels = data.val.labels.astype(int)
    summary = {
        **outcome,
        "val_auc": float(roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else None,
        "val_accuracy": float(np.mean((probs >= 0.5) == labels)),
        "n_train": len(data.train),
        "n_val": len(data.val),
        **({"temperature": stored_temperature(calibration)} if calibration else {}),
    }
    meta = {"config": run.config.to_dict(), **summary, "duration_s": round(time.time() - run.started, 1)}
    save_model(model, run.run_dir / FINAL_MODEL_FILE, {**meta, **data.stain_meta, **calibration})
    summary["ood_fit_s"] = _store_ood_stats(run, model, data)
    return summary


def _store_ood_stats(run: Run, model, data: Data) -> float:
    """Fit the out-of-distribution statistics (core.model.ood) on un-augmented training patches,
    calibrate them on validation patches, store them in the final model file; returns the seconds."""
    from core.model.ood import CALIBRATION_PATCHES, FIT_PATCHES, fit_ood_stats, write_ood_stats
    from core.train.pipeline import load_pixels

    run.job.update(phase="fitting the out-of-distribution statistics")
    start, model_file, seed = time.time(), run.run_dir / FINAL_MODEL_FILE, run.config.seed
    model.patchlens_meta = read_model_meta(model_file)  # score as the saved model will: its stain normaliser
    fit_on, held_out = (
        data.train.sample(FIT_PATCHES, seed=seed),
        data.val.sample(CALIBRATION_PATCHES, seed=seed),
    )
    write_ood_stats(
        model_file, fit_ood_stats(model, load_pixels(fit_on), fit_on.labels, load_pixels(held_out))
    )
    return round(time.time() - start, 1)
