"""Temperature scaling (Guo et al. 2017): the one number T, fitted on held-out labelled patches, that
divides a model's logit so that its probabilities match how often it is right.

T > 1 softens an over-confident model, T < 1 sharpens an under-confident one; the ranking of patches
(AUC) and the 0.5 call do not change. T is folded into the final Dense layer (its kernel and bias are
divided by T), so every consumer of the model file (Predict, Evaluate, Grad-CAM, the CLI, region
heatmaps) gets calibrated probabilities with no code of its own, and the model contract (0-255 RGB in,
P(tumour) out) holds. The fit's record is kept in the model's `patchlens.json` under `calibration`.

Owns: fitting T (`fit_temperature`), applying it to probabilities (`scaled_probabilities`) or to a
model (`fold_temperature`, `calibrate_model` at the end of a training run), and writing a calibrated
copy of a model file (`calibrate_model_file`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.constants import SCORING_BATCH_SIZE
from core.errors import InputError, ModelError
from core.evaluate.metrics import check_labels_probs, reliability_curve

META_KEY = "calibration"
OUTPUT_LAYER = "tumour_probability"  # the Dense(1, sigmoid) every PatchLens architecture ends with
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


def calibration_note(meta: dict) -> str:
    """One sentence on whether (and how) a model's probabilities were calibrated, from its metadata."""
    info = meta.get(META_KEY) or {}
    if not info:
        return (
            "This model's probabilities are the network's own, not calibrated: `python -m core calibrate "
            "MODEL DATA --out CALIBRATED.keras` fits temperature scaling on patches it never trained on."
        )
    if info.get("skipped"):
        return f"Temperature scaling was skipped when this model was trained: {info['skipped']}"
    fit = info.get("fit") or {}
    where = f" on {info['fitted_on']}" if info.get("fitted_on") else ""
    change = (
        f"; ECE there {fit['ece_before']:.3f} → {fit['ece_after']:.3f}"
        if {"ece_before", "ece_after"} <= fit.keys()
        else ""
    )
    return f"Probabilities calibrated by temperature scaling (T = {info['temperature']:.3f}, fitted{where}{change})."


def calibrate_model_file(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    batch_size: int = SCORING_BATCH_SIZE,
    progress=None,
) -> TemperatureFit:
    """Fit T on the labelled dataset `data` and write a calibrated copy of the model to `out`.

    The copy keeps every PatchLens entry of the original (metadata, stain normaliser, out-of-distribution
    statistics); its `patchlens.json` gains `calibration` with the fit and the total temperature folded
    in so far (a second calibration multiplies onto the first). Written atomically.
    """
    from core.data.dataset import open_checked
    from core.evaluate.predict import predict_dataset
    from core.model.io import (
        META_ENTRY,
        load_model,
        read_model_entry,
        read_model_meta,
        resolve_model_path,
        save_model,
    )

    source, out = resolve_model_path(model_path), Path(out)  # a run directory: the model it offers
    dataset = open_checked(data)
    if dataset.labels is None:
        raise InputError(f"{Path(data).name} has no labels: temperature scaling needs labelled patches.")
    model = load_model(source)
    meta = read_model_meta(source)
    kept = {name: read_model_entry(source, name) for name in _extra_entries(source, META_ENTRY)}
    frame = predict_dataset(model, dataset, batch_size=batch_size, progress=progress)
    fit = fit_temperature(frame["label"].to_numpy(), frame["prob"].to_numpy())
    fold_temperature(model, fit.temperature)
    total = stored_temperature(meta) * fit.temperature
    meta[META_KEY] = {"temperature": round(total, 6), "fitted_on": str(data), "fit": fit.summary()}
    # one atomic write with the kept entries (e.g. the out-of-distribution statistics: the features they
    # describe do not change with T), so `out` is never a model without them, even when it is `source`
    save_model(model, out, meta, entries=kept)
    return fit


def _extra_entries(path: Path, meta_entry: str) -> list[str]:
    """The PatchLens entries of a .keras file besides its metadata (read before the file is replaced)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return [name for name in archive.namelist() if name.startswith("patchlens") and name != meta_entry]
