"""Stochastic weight averaging (SWA, Izmailov et al. 2018) of the last epochs of a training run.

With `TrainConfig.swa_epochs = K`, the learning rate decays over the first `epochs - K` epochs to
`swa_lr` and stays there; the weights at the end of each of the last K epochs are averaged (a
running mean, `WeightAverager`). When the run ends, `adopt_average` puts the mean into the model,
re-estimates its BatchNorm statistics (core.train.batch_norm: an average of weights has no
statistics of its own) and validates it like an epoch. The run delivers the average only when
its validation AUC is at least the best epoch's; otherwise the best epoch, as without averaging.
TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import numpy as np

SWA_LR_FRACTION = 0.2  # the default swa_lr: a fifth of the initial learning rate
MIN_AVERAGED_EPOCHS = 2  # fewer epochs make no average


def swa_learning_rate(config) -> float:
    """The learning rate of the averaging epochs: `config.swa_lr`, else a fifth of the initial one."""
    return config.swa_lr if config.swa_lr else config.learning_rate * SWA_LR_FRACTION


def learning_rate(config, steps_per_epoch: int):
    """The optimizer's learning rate: a cosine decay to 2 % over the run or, with averaging, to
    `swa_learning_rate` over the epochs before it (Keras' CosineDecay holds its end value after
    `decay_steps`); or a constant one."""
    import keras

    if config.schedule != "cosine":
        return config.learning_rate
    if config.swa_epochs:
        decay_epochs = config.epochs - config.swa_epochs
        alpha = swa_learning_rate(config) / config.learning_rate
    else:
        decay_epochs, alpha = config.epochs, 0.02
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=max(1, steps_per_epoch * decay_epochs), alpha=alpha
    )


STOPPED_INSIDE_EPOCH = "patchlens_stopped_inside_epoch"  # set on the model by core.train.reporting


def weight_averager(first_epoch: int):
    """A Keras callback keeping the running mean of the trainable weights at the end of every epoch
    from `first_epoch` (1-based) on; `.count` epochs averaged, `.epochs` which ones."""
    import keras

    class WeightAverager(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.mean: list[np.ndarray] | None = None
            self.epochs: list[int] = []

        @property
        def count(self) -> int:
            return len(self.epochs)

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 < first_epoch or getattr(self.model, STOPPED_INSIDE_EPOCH, False):
                return  # a part of an epoch is not an epoch to average
            values = [np.asarray(v.numpy(), np.float64) for v in self.model.trainable_weights]
            self.epochs.append(epoch + 1)
            if self.mean is None:
                self.mean = values
            else:  # running mean: m += (x - m) / n
                self.mean = [m + (v - m) / self.count for m, v in zip(self.mean, values)]

    return WeightAverager()


def adopt_average(
    model, averager, *, best_auc: float, batch_norm_data, val_data, strategy=None
) -> dict | None:
    """Validate the averaged weights and keep them in `model` when their validation AUC is at least
    `best_auc`; returns the record {"kind": "swa", epochs, val_*, "adopted"} (None when fewer than
    MIN_AVERAGED_EPOCHS were averaged). When not adopted, the model's weights are left for the
    caller to replace (with the best epoch's)."""
    from core.train.batch_norm import recompute_batch_norm

    if averager is None or averager.count < MIN_AVERAGED_EPOCHS:
        return None
    for variable, mean in zip(model.trainable_weights, averager.mean):
        variable.assign(mean.astype(variable.dtype))
    recompute_batch_norm(model, batch_norm_data, strategy=strategy)
    logs = model.evaluate(val_data, verbose=0, return_dict=True)
    record = {
        "kind": "swa",
        "first_epoch": averager.epochs[0],
        "last_epoch": averager.epochs[-1],
        "epochs_averaged": averager.count,
        **{f"val_{name}": float(logs[name]) for name in ("loss", "accuracy", "auc") if name in logs},
    }
    record["adopted"] = bool(record.get("val_auc", -1.0) >= best_auc)
    return record
