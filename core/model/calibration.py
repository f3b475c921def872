"""Temperature scaling (Guo et al. 2017): the one number T, fitted on held-out labelled patches, that
divides a model's logit so that its probabilities match how often it is right.

T > 1 softens an over-confident model, T < 1 sharpens an under-confident one; the ranking of patches
(AUC) and the 0.5 call do not change. T is folded into the final Dense layer (its kernel and bias are
divided by T), so every consumer of the model file (Predict, Evaluate, Grad-CAM, the CLI, region
heatmaps) gets calibrated probabilities with no code of its own, and the model contract (0-255 RGB in,
P(tumour) out) holds. The fit's record is kept in the model's `patchlens.json` under `calibration`.

Owns: fitting T (`fit_temperature`), applying it to probabilities (`scaled_probabilities`) or to a
model (`fold_temperature`, `calibrate_model` at the end of a training run), and reading the T a model
holds (`stored_temperature`). Calibrating a model file after training, and the words for a model's
calibration, are core.evaluate.calibration's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import InputError, ModelError
from core.model.architectures import OUTPUT_LAYER  # the Dense(1, sigmoid) every architecture ends with
from core.probabilities import check_labels_probs, reliability_curve

META_KEY = "calibration"
TEMPERATURE_RANGE = (0.05, 20.0)
MIN_PATCHES = 30  # fewer held-out patches than this cannot pin T down
_EPS = 1e-7  # float32 probabilities of exactly 0 or 1 would give infinite logits


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and what it did to the held-out patches it was fitted on."""

    temperature: float
    n: int
    log_loss_before: float
    log_loss_after: float
    ece_before: float
    ece_after: float

    def summary(self) -> dict:
        return {
            key: round(value, 6) if isinstance(value, float) else value for key, value in asdict(self).items()
        }


def _logits(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(probs.astype(np.float64), _EPS, 1 - _EPS)
    return np.log(clipped) - np.log1p(-clipped)


def _log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(logits), computed stably from the logits."""
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def scaled_probabilities(probs, temperature: float) -> np.ndarray:
    """The probabilities a model would give with its logit divided by `temperature`."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise InputError(f"The temperature must be a positive number; got {temperature}.")
    probs = np.asarray(probs, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-_logits(probs) / temperature))


def fit_temperature(labels, probs) -> TemperatureFit:
    """The temperature that minimises the log loss of `probs` against `labels` (both classes needed).

    Parameters
    ----------
    labels : array of 0/1 (1 = tumour), held-out patches the model was not trained on.
    probs : the model's probabilities of tumour for them.
    """
    from scipy.optimize import minimize_scalar

    labels, probs = check_labels_probs(labels, probs)
    if len(labels) < MIN_PATCHES:
        raise InputError(
            f"Temperature scaling needs at least {MIN_PATCHES} labelled patches; got {len(labels)}."
        )
    if labels.min() == labels.max():
        raise InputError("Temperature scaling needs patches of both classes (tumour and normal).")
    logits = _logits(probs)
    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(
        lambda log_t: _log_loss(labels, logits / np.exp(log_t)), bounds=(low, high), method="bounded"
    )
    temperature = float(np.exp(result.x))
    after = scaled_probabilities(probs, temperature)
    return TemperatureFit(
        temperature=temperature,
        n=len(labels),
        log_loss_before=_log_loss(labels, logits),
        log_loss_after=_log_loss(labels, logits / temperature),
        ece_before=reliability_curve(labels, probs).ece,
        ece_after=reliability_curve(labels, after).ece,
    )


def fold_temperature(model, temperature: float) -> None:
    """Divide the final Dense layer's kernel and bias by `temperature`, in place."""
    try:
        layer = model.get_layer(OUTPUT_LAYER)
    except ValueError:
        raise ModelError(
            f"{model.name} has no {OUTPUT_LAYER!r} layer: temperature scaling needs a PatchLens architecture."
        ) from None
    if getattr(getattr(layer, "activation", None), "__name__", "") != "sigmoid":
        raise ModelError(f"The {OUTPUT_LAYER!r} layer of {model.name} does not end in a sigmoid.")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, bias / temperature])


def calibrate_model(model, predict, labels) -> tuple[np.ndarray, dict]:
    """Fit T on held-out `labels` against `predict()` (the model's probabilities for them), fold it
    into `model`, and return the probabilities the model now gives with the `calibration` metadata.

    When the held-out patches cannot pin T down (too few, one class) the model is left as it is and
    the metadata says why, so a tiny run still finishes.
    """
    probs = predict()
    try:
        fit = fit_temperature(labels, probs)
    except InputError as error:
        return probs, {META_KEY: {"temperature": 1.0, "skipped": str(error)}}
    fold_temperature(model, fit.temperature)
    meta = {"temperature": round(fit.temperature, 6), "fitted_on": "the validation set", "fit": fit.summary()}
    return predict(), {META_KEY: meta}


def stored_temperature(meta: dict) -> float:
    """The temperature already folded into a model (1.0 when it was never calibrated)."""
    return float((meta.get(META_KEY) or {}).get("temperature", 1.0))
