"""Labels and probabilities of tumour, validated once, and how well the probabilities are calibrated.

The lowest layer of the metrics: core.evaluate.metrics (every metric of a set of predictions) and
core.model.calibration (the temperature a training run folds into its model) both start here, so
training needs nothing from core.evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InputError

CALIBRATION_BINS = 10


def check_labels_probs(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels (0/1) and probabilities ([0, 1]) once; return int8 and float64 arrays."""
    labels = np.asarray(labels)
    probs = np.asarray(probs)
    if labels.ndim != 1 or probs.ndim != 1:
        raise InputError(f"labels and probs must be 1-D; got shapes {labels.shape} and {probs.shape}.")
    if len(labels) != len(probs):
        raise InputError(f"labels and probs differ in length: {len(labels)} labels, {len(probs)} probs.")
    if len(labels) == 0:
        raise InputError("No predictions to evaluate: labels and probs are empty.")
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
        raise InputError(f"labels must be numbers 0/1; got dtype {labels.dtype}.")
    labels_float = labels.astype(float)
    if np.isnan(labels_float).any():
        missing = int(np.isnan(labels_float).sum())
        raise InputError(f"{missing} of {len(labels)} labels are missing (NaN); metrics need every label.")
    if not np.isin(labels_float, (0.0, 1.0)).all():
        bad = np.unique(labels_float[~np.isin(labels_float, (0.0, 1.0))])[:5]
        raise InputError(f"labels must be 0 or 1; found {bad.tolist()}.")
    if not np.issubdtype(probs.dtype, np.number):
        raise InputError(f"probs must be numbers in [0, 1]; got dtype {probs.dtype}.")
    probs = probs.astype(np.float64)
    if not np.isfinite(probs).all():
        raise InputError(f"{int((~np.isfinite(probs)).sum())} probs are NaN or infinite.")
    if probs.min() < 0.0 or probs.max() > 1.0:
        raise InputError(f"probs must lie in [0, 1]; found range [{probs.min():.4g}, {probs.max():.4g}].")
    return labels_float.astype(np.int8), probs


@dataclass(frozen=True)
class ReliabilityCurve:
    """Calibration per equal-width probability bin; empty bins have count 0 and NaN means."""

    bin_edges: np.ndarray  # bins + 1 edges from 0 to 1
    mean_predicted: np.ndarray
    observed_fraction: np.ndarray
    count: np.ndarray
    ece: float


def reliability_curve(labels, probs, bins: int = CALIBRATION_BINS) -> ReliabilityCurve:
    """Mean predicted probability, observed tumour fraction and count in each of `bins`
    equal-width bins over [0, 1], plus the ECE. Bins are (low, high] (0 falls in the first), the
    rule of sklearn.calibration.calibration_curve, whose points this reproduces."""
    labels, probs = check_labels_probs(labels, probs)
    if int(bins) != bins or bins < 1:
        raise InputError(f"bins must be a positive integer; got {bins}.")
    bins = int(bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], probs)  # (low, high] bins, as sklearn
    count = np.bincount(index, minlength=bins)
    prob_sum = np.bincount(index, weights=probs, minlength=bins)
    positive_sum = np.bincount(index, weights=labels.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = prob_sum / count
        observed_fraction = positive_sum / count
    filled = count > 0
    gaps = np.abs(mean_predicted[filled] - observed_fraction[filled])
    ece = float(np.sum(gaps * count[filled]) / len(labels))
    return ReliabilityCurve(
        bin_edges=edges,
        mean_predicted=mean_predicted,
        observed_fraction=observed_fraction,
        count=count,
        ece=ece,
    )
